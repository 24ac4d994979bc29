"""Which kernel to read an observed frame with: the start frame read through the true depth.

    python benchmarks/resample_kernel.py [--worlds 100000,100001,100002,100003,100004,100005,
        100012,100013] [--kinds out_and_back,loop,turn,strafe] [--frames 160]

For each held-out world and walk (the walk protocol's paths), every frame's pixels are carried
through their true depth into the start camera and the start frame is read there, bilinearly
and bicubically (``grid_sample``; Keys' cubic convolution with a = -0.75, the kernel
``memory.observed_frames`` reads with), and compared with the true frame over the pixels the
start saw (``walk.start_seen``): PSNR over those pixels, and sharpness (the read's high-frequency
energy over the truth's there, median over frames; 1: as sharp). No model and no memory: what
a warp of the start frame can give back, by kernel. Runs on the CPU in about a minute.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from worldmem.data.synthetic import make_world
from worldmem.eval.metrics import masked_sharpness_ratio, mean_ci, psnr_from_mse
from worldmem.eval.walk import start_seen, walk_case
from worldmem.geometry import unproject_depth
from worldmem.geometry.camera import intrinsics_from_fov, project_points

SIZE, FOV_DEG = 64, 75.0  # the shipped pipeline's frames
KERNELS = ("bilinear", "bicubic")


def reads(case) -> dict[str, torch.Tensor]:
    """The start frame read at every frame's true surface points, by kernel: ``(N, 3, S, S)``."""
    N, S = case.rgb.shape[0], case.rgb.shape[-1]
    pts = unproject_depth(case.depth[:, 0].double(), case.c2w.double(), case.K.double())
    uv, _ = project_points(pts.reshape(1, -1, 3), case.c2w[:1].double(), case.K[:1].double())
    grid = (uv.reshape(N, S, S, 2) / S * 2 - 1).float()  # pixel centres at +0.5
    start = case.rgb[:1].float().expand(N, -1, -1, -1)
    out = {}
    for k in KERNELS:
        read = F.grid_sample(start, grid, mode=k, padding_mode="border", align_corners=False)
        out[k] = read.clamp(0, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", default="100000,100001,100002,100003,100004,100005,100012,100013")
    ap.add_argument("--kinds", default="out_and_back,loop,turn,strafe")
    ap.add_argument("--frames", type=int, default=160)
    args = ap.parse_args()
    torch.set_num_threads(2)
    K = intrinsics_from_fov(FOV_DEG, SIZE, SIZE).float()
    print("| world | walk | " + " | ".join(f"{k} PSNR | {k} sharpness" for k in KERNELS) + " |")
    print("|---|---|" + "---|---|" * len(KERNELS))
    squared = dict.fromkeys(KERNELS, 0.0)
    count, gains = 0, []
    for seed in (int(s) for s in args.worlds.split(",")):
        world = make_world(seed)
        for kind in args.kinds.split(","):
            case = walk_case(world, kind, args.frames, seed, SIZE, K)
            seen = start_seen(case)[1:, None]  # (N - 1, 1, S, S); the start frame itself left out
            truth = case.rgb[1:].float()
            n = 3 * int(seen.sum())
            cells, row = [], {}
            for k, rgb in reads(case).items():
                se = float(((rgb[1:] - truth) ** 2 * seen).sum())
                sharp = masked_sharpness_ratio(rgb[1:], truth, seen)
                squared[k] += se
                row[k] = float(psnr_from_mse(torch.tensor(se / n)))
                cells += [f"{row[k]:.2f}", f"{float(sharp.nanmedian()):.2f}"]
            count += n
            gains.append(row["bicubic"] - row["bilinear"])
            print(f"| {seed} | {kind} | " + " | ".join(cells) + " |", flush=True)
    pooled = {k: float(psnr_from_mse(torch.tensor(squared[k] / count))) for k in KERNELS}
    mean, lo, hi, n = mean_ci(gains)
    print(
        "\nover every start-seen pixel: "
        + ", ".join(f"{k} {v:.2f} dB" for k, v in pooled.items())
        + f"; bicubic - bilinear per walk {mean:+.2f} dB [{lo:+.2f}, {hi:+.2f}], "
        f"higher on {sum(g > 0 for g in gains)} of {n}"
    )


if __name__ == "__main__":
    main()
