"""Where and in what colour the box room guesses the walls a start frame did not see: the
non-learned box fill's PSNR along the walk protocol's walks, against the synthetic worlds'
truth.

    python benchmarks/room_guess.py [--worlds 0:60] [--frames 160] [--where mirrored]
        [--margins 1,2,3,4]

For each room and corridor (plazas have no walls) and each walk kind, ``BoxLayout`` is fitted
to the walk's start frame (true rgb and depth, 64 px, 75 degrees) and the start frame is
warped to every camera with its holes filled towards the box (the walk protocol's ``warp, box
fill``). Only the walls the start frame did not see (``BoxLayout.seen``) change between the
variants:

- where they stand: ``reach, else mirrored`` (shipped: the points' reach whenever any reached
  that way, taken as the wall, else the opposite side's), ``mirrored`` (beyond the points
  that reached towards them, and at least as far as the opposite wall when that was seen,
  else ``DEFAULT_EXTENT_M``), ``mirrored, any reach`` (as far as the points reaching the
  opposite way, wall or not), ``at least D m`` (beyond those points and at least D m away);
- how far ahead of a camera walking towards them they stay: ``margin M m`` (the shipped box
  with its unseen walls at least M metres beyond every camera, ``--margins``; shipped
  ``UNSEEN_MARGIN_M``, 1 m, as a seen wall's);
- their colour: ``half hue, mix M`` (shipped at M = ``UNSEEN_WALL_MIX``: halfway between the
  seen walls' mean and a grey as bright as M of them and the rest of all that was seen),
  ``grey, mix M`` (that grey) or ``seen walls`` (their mean, hue and all: before).

The row ``shipped`` is ``BoxLayout`` as it is (it should equal its rules' row: ``reach, else
mirrored``, ``half hue, mix 0.5``). Printed: PSNR over all frames (each world's mean over its
walks, then the mean over worlds), the paired difference from the rules before (``reach, else
mirrored``, ``seen walls``) and the worlds it is higher in; and the box's depth against the
true depth where the warped start frame left holes (mean absolute log ratio, and the share of
those pixels within 10%). The rules were chosen on training worlds (seeds 0-299) and checked
on held-out ones (``--worlds 100002:100062``); ``--where mirrored`` leaves out the other
placements. About 6 s per world.
"""

from __future__ import annotations

import argparse
import copy

import torch

from worldmem.data.synthetic import make_world
from worldmem.eval.baselines import forward_warp
from worldmem.eval.metrics import psnr
from worldmem.eval.walk import WALK_KINDS, walk_case
from worldmem.geometry.camera import intrinsics_from_fov
from worldmem.memory import layout as L
from worldmem.memory.fill import push_pull_fill
from worldmem.memory.texture import WALL, observed_surfaces

SIZE, FOV_DEG = 64, 75.0  # the shipped pipeline's frames
DEFAULTS = (3.0, 4.0, 5.0)
MARGINS = (1.0, 2.0, 3.0, 4.0)
MIXES = (0.5, 1.0)
BEFORE = ("reach, else mirrored", "seen walls")  # the rules before, and the placement kept


def variants(box: L.BoxLayout, start: list, margins=MARGINS) -> dict[tuple[str, str], L.BoxLayout]:
    """``box`` with its unseen walls placed and coloured by each rule, and kept ``margins``
    ahead of the cameras: {(where, colour): box}."""
    ((points, kinds, _),), _ = observed_surfaces(start)
    known = start[0][3] > 0
    offsets = (points - box.anchor.double())[known]
    rgb = start[0][2].permute(1, 2, 0)[known].double()
    every = rgb.mean(0)
    walls = kinds[known] == WALL
    seen_walls = rgb[walls].mean(0) if int(walls.sum()) >= L.MIN_PIXELS else every

    def reach(axis: int, sign: int) -> float | None:
        r = offsets[:, axis] * sign
        r = r[r > L.MIN_REACH_M]
        return float(torch.quantile(r, L.EXTENT_QUANTILE)) if len(r) >= L.MIN_PIXELS else None

    def opposite_wall(a: int, s: int) -> float:
        return (reach(a, -s) if box.seen[(a, -s)] else None) or L.DEFAULT_EXTENT_M

    where = {
        BEFORE[0]: lambda a, s: reach(a, s) or reach(a, -s) or L.DEFAULT_EXTENT_M,
        "mirrored": lambda a, s: max(reach(a, s) or 0.0, opposite_wall(a, s)),
        "mirrored, any reach": lambda a, s: max(reach(a, s) or 0.0, reach(a, -s) or 3.0),
    }
    for d in DEFAULTS:
        where[f"at least {d:g} m"] = lambda a, s, d=d: max(reach(a, s) or 0.0, d)
    colours = {"seen walls": seen_walls.float()}
    for mix in MIXES:
        grey = (mix * seen_walls + (1 - mix) * every).mean()
        colours[f"grey, mix {mix:g}"] = grey.expand(3).float()
        hue = L.UNSEEN_WALL_HUE
        colours[f"half hue, mix {mix:g}"] = (hue * seen_walls + (1 - hue) * grey).float()
    out = {("shipped", "shipped"): box}
    for m in margins:
        b = copy.copy(box)
        b.unseen_margin = m
        out[(f"margin {m:g} m", "shipped")] = b
    for wn, place in where.items():
        for cn, colour in colours.items():
            b = copy.copy(box)
            b.extent, b.wall_rgb = dict(box.extent), dict(box.wall_rgb)
            for side in L.SIDES:
                if not box.seen[side]:
                    b.extent[side], b.wall_rgb[side] = place(*side), colour
            out[(wn, cn)] = b
    return out


def box_fills(world, seed: int, frames: int, variants, keep=None) -> dict:
    """The box fill over all frames of ``world``'s walks (each kind of the walk protocol,
    ``frames`` long) for each box ``variants(box, start)`` gives (``keep(name)``: only those),
    averaged over the walks: {name: (PSNR dB, the box's mean absolute log depth ratio to the
    truth on the warp's holes, the share of those within 10%)}."""
    K = intrinsics_from_fov(FOV_DEG, SIZE, SIZE)
    walks: dict = {}
    for kind in WALK_KINDS:
        case = walk_case(world, kind, frames, seed, SIZE, K)
        start = [(case.c2w[0], case.K[0], case.rgb[0], case.depth[0, 0])]
        box = L.BoxLayout.from_frames(start)
        warped, _, mask = forward_warp(
            case.rgb[:1], case.depth[:1], case.c2w[:1], case.K[:1], case.c2w, case.K
        )
        holes = ~mask[1:].bool()
        for name, b in variants(box, start).items():
            if keep is not None and not keep(name):
                continue
            rgb, depth, _ = b.render(case.c2w, case.K, SIZE)
            filled = push_pull_fill(warped, mask, rgb)[0]
            err = (depth[1:].log() - case.depth[1:].clamp_min(1e-3).log()).abs()[holes]
            scores = (float(psnr(filled[1:], case.rgb[1:]).mean()), float(err.mean()))
            walks.setdefault(name, []).append((*scores, float((err < 0.1).double().mean())))
    return {name: tuple(sum(x) / len(v) for x in zip(*v)) for name, v in walks.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", default="0:60", help="seeds first:last (last excluded)")
    ap.add_argument("--frames", type=int, default=160, help="frames of each walk (the protocol's)")
    ap.add_argument("--where", default="", help="only these placements (comma-separated)")
    ap.add_argument(
        "--margins", default=",".join(f"{m:g}" for m in MARGINS), help="unseen walls' margins, m"
    )
    args = ap.parse_args()
    margins = tuple(float(m) for m in args.margins.split(","))
    torch.set_num_threads(2)
    first, last = (int(x) for x in args.worlds.split(":"))
    wanted = (BEFORE[0], "shipped", *args.where.split(","), *(f"margin {m:g} m" for m in margins))
    keep = (lambda name: name[0] in wanted) if args.where else None
    scores: dict[tuple[str, str], dict[int, tuple]] = {}

    def boxes(box, start):
        return variants(box, start, margins)

    for seed in range(first, last):
        world = make_world(seed)
        if world.kind == "plaza":
            continue
        for name, score in box_fills(world, seed, args.frames, boxes, keep).items():
            scores.setdefault(name, {})[seed] = score
        print(f"world {seed} ({world.kind}): done", flush=True)
    before = scores[BEFORE]
    print(f"\n{len(before)} worlds ({args.worlds}), 5 walks of {args.frames} frames each\n")
    print(
        "| unseen walls: where | colour | box fill PSNR | paired vs before | worlds higher "
        "| depth on holes: abs log ratio | within 10% |"
    )
    print("|---|---|---|---|---|---|---|")
    for (wn, cn), v in scores.items():
        d = [v[s][0] - before[s][0] for s in before]
        higher = sum(x > 0 for x in d)
        mean = [sum(x) / len(v) for x in zip(*v.values())]
        print(
            f"| {wn} | {cn} | {mean[0]:.3f} | {sum(d) / len(d):+.3f} | {higher} of {len(d)} "
            f"| {mean[1]:.3f} | {mean[2]:.3f} |"
        )


if __name__ == "__main__":
    main()
