"""Floor and ceiling patterns found from one start frame, against the synthetic worlds' truth.

    python benchmarks/periods.py [--worlds 100000:100020] [--frames 160] [--no-held-out] \
        [--no-square] [--no-square-when-refused]

For each held-out world and each walk kind of the walk protocol, the texture is fitted to the
walk's start frame alone (true rgb and depth; ``ExemplarTexture.from_frames``, as the pipeline
fits it), and the period laid on the floor and on the ceiling is compared with the world's own
material: a tiled or checkered surface repeats at its scale both ways, a brick one at its
brick length and two courses, and a plain, mottled, wooden or sky surface repeats nothing.
Each surface the start frame shows is counted as: right (within 3% both ways), wrong, found
where nothing repeats (false), missed (no period where one repeats; the surface then takes
its mirror-tiled square), or right to find none, and the found periods' error against the
truth. ``--no-held-out`` switches off the check that one period's fold predicts the next
(``periodic.MAX_HELD_OUT``), ``--no-square`` the square period taken when it keeps nearly all
the harmonics' peak (``periodic.SQUARE_SPAN``), ``--no-square-when-refused`` the square of
either axis's period tried when a period is refused (``periodic.SQUARE_WHEN_REFUSED``): with
all three, the search as it was before them.
Runs on the CPU in about a minute and a half for 20 worlds.
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

import worldmem.memory.periodic as periodic
from worldmem.data.synthetic import make_world
from worldmem.eval.walk import WALK_KINDS, walk_case
from worldmem.geometry.camera import intrinsics_from_fov
from worldmem.memory.texture import CEILING, FLOOR, ExemplarTexture

SIZE, FOV_DEG = 64, 75.0  # the shipped pipeline's frames
VERDICTS = ("right", "wrong", "false", "missed", "right: none")


def true_period(material) -> tuple[float, float] | None:
    """(along x, along z) metres of a floor or ceiling material's pattern; None: none."""
    s = material.scale_m
    return {"tiled": (s, s), "checkered": (s, s), "brick": (s, 0.84 * s)}.get(material.texture)


def error(want: tuple[float, float], got: tuple[float, float]) -> float:
    """The worse axis's relative error, in the better order (the walls' axes may be the
    world's turned by 90 degrees: the two periods swap)."""
    return min(max(abs(g / w - 1) for g, w in zip(o, want)) for o in (got, got[::-1]))


def verdict(want: tuple[float, float] | None, got: tuple[float, float] | None) -> str:
    if want is None:
        return "right: none" if got is None else "false"
    if got is None:
        return "missed"
    return "right" if error(want, got) < 0.03 else "wrong"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", default="100000:100020", help="first:last+1 world seeds")
    ap.add_argument("--frames", type=int, default=160, help="the walks' length (their start)")
    ap.add_argument("--no-held-out", action="store_true")
    ap.add_argument("--no-square", action="store_true")
    ap.add_argument("--no-square-when-refused", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.no_held_out:
        periodic.MAX_HELD_OUT = float("inf")
    if args.no_square:
        periodic.SQUARE_SPAN = -1.0
    if args.no_square_when_refused:
        periodic.SQUARE_WHEN_REFUSED = False
    first, last = (int(s) for s in args.worlds.split(":"))
    K = intrinsics_from_fov(FOV_DEG, SIZE, SIZE)
    counts: dict[str, Counter] = {"floor": Counter(), "ceiling": Counter()}
    errors: dict[str, list[float]] = {"floor": [], "ceiling": []}
    for seed in range(first, last):
        world = make_world(seed)
        for kind in WALK_KINDS:
            case = walk_case(world, kind, args.frames, seed, SIZE, K)
            start = [(case.c2w[0], case.K[0], case.rgb[0], case.depth[0, 0])]
            texture = ExemplarTexture.from_frames(start)
            for k, face in ((FLOOR, "floor"), (CEILING, "ceiling")):
                if k not in texture.plane_y:
                    continue  # the start frame does not show this plane
                patch = texture.patches.get(k)
                got = None if patch is None else patch.period
                want = true_period(world.faces[face])
                counts[face][verdict(want, got)] += 1
                if want is not None and got is not None:
                    errors[face].append(error(want, got))
    print(
        f"worlds {first}-{last - 1}, {len(WALK_KINDS)} walks each; the held-out check "
        f"{'off' if args.no_held_out else 'on'}, the square period "
        f"{'off' if args.no_square else 'on'}, the squares when refused "
        f"{'off' if args.no_square_when_refused else 'on'}"
    )
    print("| surface | " + " | ".join(VERDICTS) + " | error of those found: median, max |")
    print("|---" * (len(VERDICTS) + 2) + "|")
    for face in ("floor", "ceiling"):
        e = torch.tensor(errors[face] or [float("nan")])
        print(
            f"| {face} | "
            + " | ".join(str(counts[face][v]) for v in VERDICTS)
            + f" | {100 * float(e.median()):.1f}%, {100 * float(e.max()):.1f}% |"
        )


if __name__ == "__main__":
    main()
