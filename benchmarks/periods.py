"""Floor, ceiling and wall patterns found from one start frame, against the synthetic worlds' truth.

    python benchmarks/periods.py [--worlds 100000:100020] [--frames 160] [--no-held-out] \
        [--no-square] [--no-square-when-refused] [--no-located] [--no-resolved]

For each held-out world and each walk kind of the walk protocol, the texture is fitted to the
walk's start frame alone (true rgb and depth; ``ExemplarTexture.from_frames``, as the pipeline
fits it), and the period laid on the floor, on the ceiling and on each wall plane it found is
compared with the world's own material: a tiled or checkered surface repeats at its scale both
ways, a brick one at its brick length and two courses, a windowed facade at its bay and storey,
a striped one across its stripes and a wooden one across its planks (along them any period is
right), and a plain or mottled surface, or the sky, repeats nothing. A wall plane is the face
of the world's enclosure it lies on (within 0.25 m; a plane off every face is an object's and
is not counted). Each surface the start frame shows is counted as: right (within 3% along each
axis the material repeats along), wrong, found where nothing repeats (false), missed (no period
where one repeats; the surface then takes its mirror-tiled square), or right to find none, and
the found periods' error against the truth. ``--no-held-out`` switches off the check that one
period's fold predicts the next (``periodic.MAX_HELD_OUT``), ``--no-square`` the square period
taken when it keeps nearly all the harmonics' peak (``periodic.SQUARE_SPAN``),
``--no-square-when-refused`` the square of either axis's period tried when a period is refused
(``periodic.SQUARE_WHEN_REFUSED``), ``--no-located`` the check that the bins of phase do not
tell where the samples lie (``periodic.MIN_POSITION_DISPERSION``), ``--no-resolved`` the check
that enough samples are fine enough to resolve the period (``periodic.MAX_FOOTPRINT_SHARE``).
Runs on the CPU in about three minutes for 20 worlds.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter

import torch

import worldmem.memory.periodic as periodic
from worldmem.data.synthetic import make_world
from worldmem.eval.walk import WALK_KINDS, walk_case
from worldmem.geometry.camera import intrinsics_from_fov
from worldmem.memory.texture import (
    CEILING,
    FLOOR,
    ExemplarTexture,
    observed_surfaces,
    turn_about_y,
    wall_planes,
)

SIZE, FOV_DEG = 64, 75.0  # the shipped pipeline's frames
VERDICTS = ("right", "wrong", "false", "missed", "right: none")
SURFACES = ("floor", "ceiling", "wall")
FACE_TOL_M = 0.25  # a wall plane further than this from every face of the enclosure: an object's


def true_period(material) -> tuple[float | None, float | None] | None:
    """(along u, along v) metres of a material's pattern, None along an axis it does not
    repeat along (any period is right there); None: no pattern. On a floor or ceiling u is x
    and v is z; on a wall u runs along it and v is down."""
    s, kind = material.scale_m, material.texture
    if kind == "striped":  # variant 0: horizontal bands (across v), 1: vertical
        return (None, s) if material.variant == 0 else (s, None)
    return {
        "tiled": (s, s),
        "checkered": (s, s),
        "brick": (s, 0.84 * s),
        "windowed": (0.8 * s, s),
        "wooden": (None, s),
    }.get(kind)


def error(want: tuple, got: tuple[float, float], turns: bool = True) -> float:
    """The worse axis's relative error, over the axes the truth repeats along; with ``turns``
    (a floor or ceiling, whose pattern may run along either of its axes) in the better order.
    A wall's axes are fixed: along it and down."""
    orders = (got, got[::-1]) if turns else (got,)
    return min(max(abs(g / w - 1) for g, w in zip(o, want) if w is not None) for o in orders)


def verdict(want, got: tuple[float, float] | None, turns: bool = True) -> str:
    if want is None:
        return "right: none" if got is None else "false"
    if got is None:
        return "missed"
    return "right" if error(want, got, turns) < 0.03 else "wrong"


def wall_faces(world, yaw: float) -> dict[int, list[tuple[float, str]]]:
    """The enclosure's walls in the texture's axes (turned by -``yaw`` about y): by the axis
    they are normal to, (their offset along it, their face name)."""
    lo, hi = world.lo.double(), world.hi.double()
    mid = (lo + hi) / 2
    faces: dict[int, list[tuple[float, str]]] = {0: [], 2: []}
    for axis, names in ((0, ("x-", "x+")), (2, ("z-", "z+"))):
        for bound, name in zip((lo, hi), names):
            centre = mid.clone()
            centre[axis] = bound[axis]
            faces[axis].append((float(turn_about_y(centre, -yaw)[axis]), name))
    return faces


def surfaces_found(world, frames: list) -> list[tuple[str, str, tuple | None]]:
    """(surface, the world's face it is, the period laid on it or None) for the floor and
    ceiling the observed ``frames`` show and each wall plane they show (``wall_planes``) on a
    face of the enclosure."""
    texture = ExemplarTexture.from_frames(frames)
    laid = {(axis, offset): patch.period for axis, offset, patch in texture.walls}
    out = []
    for k, face in ((FLOOR, "floor"), (CEILING, "ceiling")):
        if k in texture.plane_y:  # the start frame shows this plane
            patch = texture.patches.get(k)
            out.append((face, face, None if patch is None else patch.period))
    faces = wall_faces(world, texture.yaw)
    for axis, offset in wall_planes(frames, observed_surfaces(frames)[0]):
        dist, face = min((abs(o - offset), name) for o, name in faces[axis])
        if dist <= FACE_TOL_M:
            out.append(("wall", face, laid.get((axis, offset))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", default="100000:100020", help="first:last+1 world seeds")
    ap.add_argument("--frames", type=int, default=160, help="the walks' length (their start)")
    ap.add_argument("--no-held-out", action="store_true")
    ap.add_argument("--no-square", action="store_true")
    ap.add_argument("--no-square-when-refused", action="store_true")
    ap.add_argument("--no-located", action="store_true")
    ap.add_argument("--no-resolved", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.no_held_out:
        periodic.MAX_HELD_OUT = float("inf")
    if args.no_square:
        periodic.SQUARE_SPAN = -1.0
    if args.no_square_when_refused:
        periodic.SQUARE_WHEN_REFUSED = False
    if args.no_located:
        periodic.MIN_POSITION_DISPERSION = -math.inf
    if args.no_resolved:
        periodic.MAX_FOOTPRINT_SHARE = math.inf
    first, last = (int(s) for s in args.worlds.split(":"))
    K = intrinsics_from_fov(FOV_DEG, SIZE, SIZE)
    counts = {s: Counter() for s in SURFACES}
    errors: dict[str, list[float]] = {s: [] for s in SURFACES}
    for seed in range(first, last):
        world = make_world(seed)
        for kind in WALK_KINDS:
            case = walk_case(world, kind, args.frames, seed, SIZE, K)
            start = [(case.c2w[0], case.K[0], case.rgb[0], case.depth[0, 0])]
            for surface, face, got in surfaces_found(world, start):
                want, turns = true_period(world.faces[face]), surface != "wall"
                counts[surface][verdict(want, got, turns)] += 1
                if want is not None and got is not None:
                    errors[surface].append(error(want, got, turns))
    on = {True: "off", False: "on"}
    print(
        f"worlds {first}-{last - 1}, {len(WALK_KINDS)} walks each; the held-out check "
        f"{on[args.no_held_out]}, the square period {on[args.no_square]}, the squares when "
        f"refused {on[args.no_square_when_refused]}, the located check {on[args.no_located]}, "
        f"the resolved check {on[args.no_resolved]}"
    )
    print("| surface | " + " | ".join(VERDICTS) + " | error of those found: median, max |")
    print("|---" * (len(VERDICTS) + 2) + "|")
    for surface in SURFACES:
        e = torch.tensor(errors[surface] or [float("nan")])
        print(
            f"| {surface} | "
            + " | ".join(str(counts[surface][v]) for v in VERDICTS)
            + f" | {100 * float(e.median()):.1f}%, {100 * float(e.max()):.1f}% |"
        )


if __name__ == "__main__":
    main()
