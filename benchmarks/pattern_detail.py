"""The detail a known floor, ceiling or wall pattern adds to observed pixels seen nearer, against
the synthetic worlds' truth.

    python benchmarks/pattern_detail.py [--worlds 100000:100020] [--frames 10,20,30,40] \
        [--figure docs/results/pattern_detail/detail.png] [--figure-world 100001]

For each held-out world, the out-and-back walk of the walk protocol (160 frames) walks in from
its start frame. The texture is fitted to the start frame alone (true rgb and depth;
``ExemplarTexture.from_frames``, as the pipeline fits it). At each of ``--frames`` the start
frame is read through that frame's true depth (``eval.baselines.backward_warp``: what a memory
that holds the start frame gives back there, with exact geometry), and the texture's
``detail`` is added. Over the pixels of the floor and ceiling planes and of each wall plane
(``texture.wall_planes``) the start saw, PSNR against the true frame with and without the
detail, pooled over worlds (the mean squared error over all their pixels), and per surface:
how many take a detail, how many it brings nearer the truth and by how much. No model is run:
this measures the detail alone, the geometry exact. ``--figure`` writes, for world
``--figure-world`` (100001: a checker floor; 100013: brick walls), the true frames over the
start read without and with the detail.
Runs on the CPU in about a minute for 20 worlds.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

import torch

from worldmem.data.synthetic import make_world
from worldmem.eval.baselines import backward_warp
from worldmem.eval.walk import walk_path
from worldmem.geometry import unproject_depth
from worldmem.geometry.camera import intrinsics_from_fov
from worldmem.memory.texture import (
    CEILING,
    FLOOR,
    WALL,
    ExemplarTexture,
    observed_surfaces,
    surface_kinds,
    turn_about_y,
    wall_planes,
)

SIZE, FOV_DEG, WALK, LENGTH = 64, 75.0, "out_and_back", 160  # the walk protocol's
PLANE_TOL_M = 0.01  # a true point this near a floor's, ceiling's or wall's plane lies on it
NAMES = {FLOOR: "floor", CEILING: "ceiling", WALL: "wall"}


def walk_in(seed: int, frames: list[int]) -> dict:
    """World ``seed``'s walk rendered at frame 0 and ``frames``, and the texture of its start:
    per frame, the true rgb, the start read there, the detail, and per plane the start saw (its
    kind, whether its pattern was found) the plane's pixels the start saw at each frame."""
    world = make_world(seed)
    c2w = walk_path(world, WALK, LENGTH, seed)[[0, *frames]]
    K = intrinsics_from_fov(FOV_DEG, SIZE, SIZE)[None].expand(len(c2w), 3, 3)
    rgb, depth = world.render(c2w, K, SIZE, SIZE)
    start = [(c2w[0], K[0], rgb[0], depth[0, 0])]
    texture = ExemplarTexture.from_frames(start)
    points = unproject_depth(depth[1:, 0].double(), c2w[1:].double(), K[1:].double())
    detail = texture.detail(points.float(), c2w[1:], K[1:])
    kind, _ = surface_kinds(points, c2w[1:, 1, 3].double())
    turned = turn_about_y(points, -texture.yaw)
    planes = [(k, 1, texture.plane_y[k]) for k in (FLOOR, CEILING) if k in texture.plane_y]
    planes += [
        (WALL, axis, offset) for axis, offset in wall_planes(start, observed_surfaces(start)[0])
    ]
    found = {(k, axis, offset) for k, axis, offset, _ in texture.planes()}
    reads = [
        backward_warp(rgb[0], depth[0], c2w[0], K[0], depth[i + 1], c2w[i + 1], K[i + 1])
        for i in range(len(frames))
    ]
    surfaces = []
    for k, axis, offset in planes:
        on = [
            valid & (kind[i] == k) & ((turned[i, ..., axis] - offset).abs() < PLANE_TOL_M)
            for i, (_, valid) in enumerate(reads)
        ]
        surfaces.append((k, (k, axis, offset) in found, on))
    read = torch.stack([r for r, _ in reads])
    return {"texture": texture, "truth": rgb[1:], "read": read, "detail": detail, "on": surfaces}


def figure(w: dict, path: Path) -> None:
    """Rows truth / the start read / and with the detail, one column per frame, 4x."""
    from PIL import Image

    rows = [w["truth"], w["read"], (w["read"] + w["detail"]).clamp(0, 1)]
    grid = torch.cat([torch.cat(list(r), 2) for r in rows], 1)
    img = (grid.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).resize((img.shape[1] * 4, img.shape[0] * 4), Image.NEAREST).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worlds", default="100000:100020", help="first:last+1 world seeds")
    ap.add_argument("--frames", default="10,20,30,40", help="frames of the walk in")
    ap.add_argument("--figure", default=None, help="write a figure of --figure-world here")
    ap.add_argument("--figure-world", type=int, default=100001)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    first, last = (int(s) for s in args.worlds.split(":"))
    frames = [int(f) for f in args.frames.split(",")]
    # per kind of surface: squared errors summed without / with detail, pixel count
    sums = {k: defaultdict(float) for k in NAMES}
    surfaces = {k: defaultdict(int) for k in NAMES}
    gains = {k: [] for k in NAMES}
    for seed in range(first, last):
        w = walk_in(seed, frames)
        for k, periodic, masks in w["on"]:
            surfaces[k]["seen"] += 1
            if not periodic:
                continue
            surfaces[k]["periodic"] += 1
            e0 = e1 = n = 0.0
            for i, on in enumerate(masks):
                truth, read = w["truth"][i], w["read"][i]
                with_detail = (read + w["detail"][i]).clamp(0, 1)
                e0 += float(((read - truth) ** 2).mean(0)[on].sum())
                e1 += float(((with_detail - truth) ** 2).mean(0)[on].sum())
                n += int(on.sum())
            if n == 0:
                continue
            sums[k]["without"] += e0
            sums[k]["with"] += e1
            sums[k]["n"] += n
            gains[k].append(10 * math.log10(e0 / max(e1, 1e-12)))
        if args.figure and seed == args.figure_world:
            figure(w, Path(args.figure))
    print(
        f"worlds {first}-{last - 1}, the {WALK} walk's frames {args.frames}, from its start "
        "frame alone; PSNR over the plane's pixels the start saw, pooled"
    )
    print(
        "| surface | seen from the start | with a pattern found | PSNR, the start read | with "
        "the detail | surfaces nearer the truth | per surface, dB: median, min, max |"
    )
    print("|---|---|---|---|---|---|---|")
    for k, name in NAMES.items():
        s, g = sums[k], torch.tensor(gains[k] or [math.nan])
        db = [-10 * math.log10(s[x] / s["n"]) if s["n"] else math.nan for x in ("without", "with")]
        better = sum(x > 0 for x in gains[k])
        print(
            f"| {name} | {surfaces[k]['seen']} | {surfaces[k]['periodic']} | {db[0]:.2f} | "
            f"{db[1]:.2f} | {better} of {len(gains[k])} | {float(g.median()):+.2f}, "
            f"{float(g.min()):+.2f}, {float(g.max()):+.2f} |"
        )


if __name__ == "__main__":
    main()
