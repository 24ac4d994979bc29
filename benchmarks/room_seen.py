"""Which walls the box room counts as seen: the non-learned box fill's PSNR along the walk
protocol's walks for each rule, against the synthetic worlds' truth.

    python benchmarks/room_seen.py [--worlds 100000:100040] [--frames 160]

For every world (rooms, corridors and plazas) and walk kind, ``BoxLayout`` is fitted to the
walk's start frame (true rgb and depth, 64 px, 75 degrees) and the start frame is warped to
every camera with its holes filled towards the box (the walk protocol's ``warp, box fill``).
Only which walls count as seen changes between the rows, and with it their colour (a seen
wall its own points' mean, a wall not seen the room's guess); where each wall stands does not:

- ``facing points`` (before): at least ``MIN_PIXELS`` points of wall facing back along the
  side's axis, anywhere that way;
- ``away from outlines``: those beside a depth step of more than ``OUTLINE_STEP`` (or unknown
  depth, or the border: ``texture.edges`` without its folds) left out, where normals mix two
  surfaces;
- ``near the reach``: only those within ``SEEN_AT_REACH_REL`` of where the points reach that
  way (a wall hides what is behind it; a pillar's face does not);
- ``both``: the two together, the rule ``BoxLayout`` ships (the row ``shipped``, ``BoxLayout``
  itself, should equal it).

Printed: PSNR over all frames (each world's mean over its walks, then the mean over worlds),
the paired difference from ``facing points`` and the worlds higher and lower. About 5 s per
world.
"""

from __future__ import annotations

import argparse
import copy

import torch
from room_guess import box_fills  # beside this file

from worldmem.data.synthetic import make_world
from worldmem.memory import layout as L
from worldmem.memory.texture import WALL, edges, observed_surfaces

RULES = {  # (away from outlines, near the reach)
    "facing points": (False, False),
    "away from outlines": (True, False),
    "near the reach": (False, True),
    "both": (True, True),
}


def variants(box: L.BoxLayout, start: list) -> dict[str, L.BoxLayout]:
    """``box`` with its walls' seen-ness and colours by each rule: {rule: box}."""
    ((points, kinds, normals),), _ = observed_surfaces(start)
    known = start[0][3] > 0
    clean = ~edges(start[0][3], None, L.OUTLINE_STEP)[known]
    offsets = (points - box.anchor.double())[known]
    rgb = start[0][2].permute(1, 2, 0)[known].double()
    walls = kinds[known] == WALL
    n = normals[known]
    facing_x = n[:, 0].abs() >= n[:, 2].abs()
    every = rgb.mean(0)
    seen_walls = rgb[walls].mean(0) if int(walls.sum()) >= L.MIN_PIXELS else every
    grey = (L.UNSEEN_WALL_MIX * seen_walls + (1 - L.UNSEEN_WALL_MIX) * every).mean()
    unseen_rgb = (L.UNSEEN_WALL_HUE * seen_walls + (1 - L.UNSEEN_WALL_HUE) * grey).float()
    out = {"shipped": box}
    for name, (away, near) in RULES.items():
        b = copy.copy(box)
        b.seen, b.wall_rgb = dict(box.seen), dict(box.wall_rgb)
        for axis, sign in L.SIDES:
            along = offsets[:, axis] * sign
            far = along > L.MIN_REACH_M
            wall = walls & (facing_x if axis == 0 else ~facing_x) & far
            if away:
                wall &= clean
            if near and int(far.sum()) >= L.MIN_PIXELS:
                reach = float(torch.quantile(along[far], L.EXTENT_QUANTILE))
                wall &= along >= (1 - L.SEEN_AT_REACH_REL) * reach
            seen = int(wall.sum()) >= L.MIN_PIXELS
            b.seen[(axis, sign)] = seen
            b.wall_rgb[(axis, sign)] = rgb[wall].mean(0).float() if seen else unseen_rgb
        out[name] = b
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", default="100000:100040", help="seeds first:last (last excluded)")
    ap.add_argument("--frames", type=int, default=160, help="frames of each walk (the protocol's)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    first, last = (int(x) for x in args.worlds.split(":"))
    scores: dict[str, dict[int, float]] = {}
    for seed in range(first, last):
        world = make_world(seed)
        for name, psnr_db in box_fills(world, seed, args.frames, variants).items():
            scores.setdefault(name, {})[seed] = psnr_db
        print(f"world {seed} ({world.kind}): done", flush=True)
    before = scores["facing points"]
    print(f"\n{len(before)} worlds ({args.worlds}), 5 walks of {args.frames} frames each\n")
    print("| walls seen: rule | box fill PSNR | paired vs facing points | worlds higher / lower |")
    print("|---|---|---|---|")
    for name, v in scores.items():
        d = [v[s] - before[s] for s in before]
        higher, lower = sum(x > 1e-6 for x in d), sum(x < -1e-6 for x in d)
        print(
            f"| {name} | {sum(v.values()) / len(v):.3f} | {sum(d) / len(d):+.3f} "
            f"| {higher} / {lower} of {len(d)} |"
        )


if __name__ == "__main__":
    main()
