"""Repeating patterns found from one start frame, laid on the true geometry against the true frames.

    python benchmarks/pattern_truth.py [--worlds 100000,100001,100002,100005,100012,100013] \
        [--kinds look_up_down,turn,out_and_back] [--frames 80]

For each held-out world and walk, the texture is fitted to the walk's start frame alone (true
rgb and depth, ``ExemplarTexture.from_frames`` as the pipeline fits it). Every floor, ceiling
and wall whose pattern it found in the world's phase is then laid in full (the tile as each
pixel's footprint averages it, colour and all: ``_Patch.lows``) at the points the true depth
of the walk's frames gives, and compared with the true frames over that surface's pixels:
PSNR, the correlation of the two about their means, and the laid pattern's variance over the
truth's there (1: as much contrast). Each with the tile sharpened by the samples' footprints
(``periodic.sharpen_tile``, shipped) and with the samples' mean fold alone, in the same run,
with the mean paired difference of PSNR over the surfaces (95% t-interval). Every pixel of
such a surface counts, those the start frame saw too: a pattern off in period or phase, or
blurred, loses on both. Runs on the CPU in under a minute.
"""

from __future__ import annotations

import argparse
import math

import torch

from worldmem.data.synthetic import make_world
from worldmem.eval.metrics import mean_ci
from worldmem.eval.walk import walk_case
from worldmem.geometry import unproject_depth
from worldmem.geometry.camera import intrinsics_from_fov
from worldmem.memory.texture import (
    CEILING,
    FLOOR,
    SURFACE_KINDS,
    WALL,
    ExemplarTexture,
    _read_along,
)

SIZE, FOV_DEG = 64, 75.0  # the shipped pipeline's frames
NAMES = {CEILING: "ceiling", WALL: "wall", FLOOR: "floor"}


def laid_against_truth(case, sharpen: bool) -> dict:
    """{(kind, axis, offset): (PSNR, correlation, variance ratio, pixels)} of each plane
    whose pattern the start frame of walk ``case`` shows, laid on its frames' true points."""
    start = [(case.c2w[0], case.K[0], case.rgb[0], case.depth[0, 0])]
    texture = ExemplarTexture.from_frames(start, sharpen=sharpen)
    cams, K = case.c2w[1:], case.K[1:]
    points = unproject_depth(case.depth[1:, 0], cams, K)
    truth = case.rgb[1:].permute(0, 2, 3, 1)
    out = {}
    for r in texture._reads(points, cams, SURFACE_KINDS):
        if not r.patch.periodic or r.offset is None:
            continue
        laid = _read_along(list(r.patch.lows), r.u, r.v, r.level, r.along).double()
        true = truth[r.pixels].double()
        mse = float((laid - true).pow(2).mean())
        a, b = laid - laid.mean(0), true - true.mean(0)
        corr = float((a * b).sum() / (a.pow(2).sum() * b.pow(2).sum()).sqrt().clamp_min(1e-12))
        ratio = float(a.pow(2).mean() / b.pow(2).mean().clamp_min(1e-12))
        out[(r.kind, r.axis, round(r.offset, 3))] = (
            -10 * math.log10(max(mse, 1e-10)),
            corr,
            ratio,
            int(r.pixels.sum()),
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", default="100000,100001,100002,100005,100012,100013")
    ap.add_argument("--kinds", default="look_up_down,turn,out_and_back")
    ap.add_argument("--frames", type=int, default=80)
    args = ap.parse_args()
    torch.set_num_threads(2)
    K = intrinsics_from_fov(FOV_DEG, SIZE, SIZE).float()
    print(
        "| world | walk | surface | pixels | PSNR fold / sharpened | correlation | variance ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = []
    for seed in (int(s) for s in args.worlds.split(",")):
        world = make_world(seed)
        for kind in args.kinds.split(","):
            case = walk_case(world, kind, args.frames, seed, SIZE, K)
            fold = laid_against_truth(case, sharpen=False)
            sharp = laid_against_truth(case, sharpen=True)
            for key in sorted(fold.keys() & sharp.keys()):
                (p0, c0, v0, n), (p1, c1, v1, _) = fold[key], sharp[key]
                rows.append((p0, p1, c0, c1, v0, v1))
                name = NAMES[key[0]] + ("" if key[1] == 1 else f" along {'xz'[key[1] // 2]}")
                print(
                    f"| {seed} | {kind} | {name} | {n} | {p0:.2f} / {p1:.2f} | {c0:.2f} / {c1:.2f} "
                    f"| {v0:.2f} / {v1:.2f} |",
                    flush=True,
                )
    if not rows:
        raise SystemExit("no start frame showed a repeating pattern")
    cols = list(zip(*rows))
    mean = [sum(c) / len(c) for c in cols]
    d, lo, hi, n = mean_ci([b - a for a, b in zip(cols[0], cols[1])])
    higher = sum(b > a for a, b in zip(cols[0], cols[1]))
    print(
        f"\n{n} surfaces: PSNR {mean[0]:.2f} (mean fold) -> {mean[1]:.2f} (sharpened), "
        f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}] dB, higher on {higher}; "
        f"correlation {mean[2]:.3f} -> {mean[3]:.3f}; variance ratio {mean[4]:.2f} -> {mean[5]:.2f}"
    )


if __name__ == "__main__":
    main()
