"""How strongly to lay the observed texture: the walk protocol's measures at several gains.

    python benchmarks/texture_gain.py --checkpoint checkpoints/worldmem-tiny [--gains 1,1.6] \
        [--wall-gains 0,0.75 | --wall-ratio 0.8333] [--no-pattern-detail] [--no-room-kinds] \
        [--no-sharpen] [--whole] [--worlds 100000,100001]

The laid texture is drawn on the frames shown only: the memories keep the model's frames
without it, so the walk protocol's ten walks (held-out worlds 100000 and 100001, or
``--worlds``; five walks of 160 frames each from the true start frame and depth) are
generated once without it (``texture_gain`` 0) and every variant is laid on those same
frames, exactly as the pipeline would lay it. For each: PSNR against the true frames (mean
over worlds of each world's mean), sharpness (generated / true high-frequency energy,
geometric mean over frames; then over the pixels the texture is laid on and over the rest),
self-recall (the walk protocol's; the true frames' own score on the same pairs is printed
first), and KID on EfficientNet-Lite0 features of every seventh frame, paired against the
frames without texture (1,000 permutations). Variants: each gain with levels of detail
(shipped) and, at the first gain, without them (the finest level everywhere: a distant
surface's texture aliases); with ``--wall-gains``, each gain on floors and ceilings with
each of those on the walls (``sampler.texture_gain`` and ``sampler.wall_texture_gain``), or
with ``--wall-ratio``, each gain with the walls at that ratio of it.
Every variant carries the pattern detail on the pixels memory passed observed samples
through (``sampler.pattern_detail``, as shipped), unless ``--no-pattern-detail``, and lays
each kind of surface's texture only where the room the observed frames imply shows that kind,
and a wall they did not show on the room's wall (as the pipeline does with ``memory.layout:
box``: ``BoxLayout.texture_points``), unless ``--no-room-kinds``. ``--no-sharpen`` takes each
repeating pattern as its samples' mean fold, not sharpened by their footprints
(``periodic.sharpen_tile``). ``--whole`` lays a pattern known in the world's phase whole, at
gain 1, the gains scaling only the other surfaces' bands (``sampler.pattern_whole``).
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from collections.abc import Callable

import torch

from worldmem.data.synthetic import make_world
from worldmem.eval.metrics import (
    EfficientNetFeatures,
    geometric_mean,
    image_features,
    kid_paired_test,
    masked_sharpness_ratio,
    psnr,
    sharpness_ratio,
)
from worldmem.eval.walk import WALK_KINDS, self_recall, walk_case
from worldmem.geometry import unproject_depth
from worldmem.memory.layout import BoxLayout
from worldmem.memory.texture import (
    CEILING,
    FLOOR,
    LOD_LEVELS,
    WALL,
    ExemplarTexture,
    without_cracks,
)
from worldmem.pipeline import WorldPipeline

SEEDS = (100000, 100001)
FRAMES, KEEP_EVERY = 160, 7


def walk(pipe: WorldPipeline, case) -> dict:
    """One walk chunk by chunk without texture: its frames, depth, the pixels its memory
    render held no observed sample of (holes), those less cracks (where the texture would be
    laid), and the observed frames it would be taken from."""
    pipe.start(
        prompt=case.caption, image=case.rgb[0], depth=case.depth[0], c2w=case.c2w[0],
        seed=case.seed,
    )  # fmt: skip
    T = pipe.chunk_frames
    rgb, depth, holes, shown = [], [], [], []
    for i in range(1, case.num_frames, T):
        cams, K = case.c2w[i : i + T], case.K[i : i + T]
        observed = pipe.model_inputs(cams, K).memory_observed[0]
        shown.append(pipe.state.spatial.shown_quality(cams, K, pipe.size, pipe.size))
        chunk = pipe.step(cams, K)
        rgb.append(chunk.rgb.float())
        depth.append(chunk.depth.float())
        holes.append((observed <= 0.5).float())
    observed = [tuple(x.clone() for x in f) for f in pipe.state.spatial.observed_frames()]
    return {
        "case": case,
        "rgb": torch.cat(rgb),
        "depth": torch.cat(depth),
        "holes": torch.cat(holes),
        "laid_on": without_cracks(torch.cat(holes)),
        "observed": observed,
        "shown": torch.cat(shown),
    }


def all_walks(pipe: WorldPipeline, seeds=SEEDS) -> list[dict]:
    """``walk`` along the protocol's ten walks (``seeds`` x ``WALK_KINDS``)."""
    walks = []
    for seed in seeds:
        world = make_world(seed)
        for kind in WALK_KINDS:
            walks.append(walk(pipe, walk_case(world, kind, FRAMES, seed, pipe.size, pipe.K.cpu())))
            print(f"world {seed} {kind}: done", flush=True)
    return walks


def layer(
    w: dict,
    lod_levels: int,
    room_kinds: bool = True,
    sharpen: bool = True,
    whole: bool = False,
) -> Callable[[dict[int, float] | None], torch.Tensor]:
    """The texture of walk ``w``'s observed frames, read at the points the pipeline lays it on
    (built once): -> a function of the gains by kind of surface (as ``ExemplarTexture.band``
    takes them, None: 1 on every kind) giving what the pipeline lays on the walk's frames.
    ``room_kinds``: only where the room of the observed frames shows that kind, and on its
    walls where they did not see them; ``sharpen``: repeating patterns sharpened by their
    samples' footprints, as shipped; ``whole``: a pattern in the world's phase laid whole, at
    gain 1."""
    case = w["case"]
    texture = ExemplarTexture.from_frames(
        w["observed"], lod_levels=lod_levels, sharpen=sharpen, whole=whole
    )
    cams, K = case.c2w[1:], case.K[1:]
    points = unproject_depth(w["depth"][:, 0], cams, K)  # where the pipeline lays it
    expected = None
    if room_kinds:
        points, expected = BoxLayout.from_frames(w["observed"]).texture_points(points, cams, K)
    return lambda gains: w["laid_on"] * texture.band(points, cams, gains, expected)


def band(w: dict, lod_levels: int, gains: dict[int, float] | None = None, **kw) -> torch.Tensor:
    """What the pipeline lays on walk ``w``'s frames at ``gains`` (``layer``, its keywords)."""
    return layer(w, lod_levels, **kw)(gains)


def pattern_detail(w: dict, sharpen: bool = True) -> torch.Tensor:
    """The pattern detail the pipeline adds to walk ``w``'s frames where memory passed
    observed samples through (``sampler.pattern_detail``; ``sharpen`` as in ``band``)."""
    case = w["case"]
    texture = ExemplarTexture.from_frames(w["observed"], sharpen=sharpen)
    cams, K = case.c2w[1:], case.K[1:]
    points = unproject_depth(w["depth"][:, 0], cams, K)
    return (1 - w["laid_on"]) * texture.detail(points, cams, K, w["shown"])


def over_worlds(values: dict[int, list[float]]) -> float:
    """The mean over worlds of each world's mean, as the walk protocol averages."""
    return sum(sum(v) / len(v) for v in values.values()) / len(values)


def truth_recall(walks: list[dict]) -> float:
    """The true frames' own self-recall over the walks' pairs."""
    out = defaultdict(list)
    for w in walks:
        case = w["case"]
        out[case.seed] += [p for p, _ in self_recall(case, case.rgb, case.recall_pairs()).values()]
    return over_worlds(out)


def measure(
    walks: list[dict], bands: list[torch.Tensor] | None, details: list | None = None
) -> tuple[dict, torch.Tensor]:
    """The measures of the walks' frames with their laid ``bands`` (``band``, one per walk;
    None: none) and their ``details`` (``pattern_detail``; None: none), and the kept frames
    for KID."""
    psnrs, recall = defaultdict(list), defaultdict(list)
    sharp, on, off, kept = [], [], [], []
    for i, w in enumerate(walks):
        case = w["case"]
        x = w["rgb"] if bands is None else w["rgb"] + bands[i]
        x = (x + details[i] if details is not None else x).clamp(0, 1)
        truth = case.rgb[1:]
        psnrs[case.seed] += psnr(x, truth).tolist()
        sharp += sharpness_ratio(x, truth).clamp_min(1e-6).tolist()
        where = w["laid_on"] > 0.5
        on += masked_sharpness_ratio(x, truth, where).tolist()
        off += masked_sharpness_ratio(x, truth, ~where).tolist()
        frames = torch.cat([case.rgb[:1], x])
        recall[case.seed] += [p for p, _ in self_recall(case, frames, case.recall_pairs()).values()]
        kept.append(x[torch.arange(0, len(x), KEEP_EVERY)])

    def gm(values):
        return geometric_mean([v for v in values if not math.isnan(v) and v > 0])

    row = {
        "psnr": over_worlds(psnrs),
        "sharpness": geometric_mean(sharp),
        "on": gm(on),
        "off": gm(off),
        "recall": over_worlds(recall),
    }
    return row, torch.cat(kept)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="checkpoints/worldmem-tiny")
    ap.add_argument("--gains", default="1,1.25,1.5,2", help="comma-separated texture gains")
    ap.add_argument(
        "--wall-gains", default=None, help="comma-separated gains on the walls (default: each gain)"
    )
    ap.add_argument(
        "--wall-ratio",
        type=float,
        default=None,
        help="the walls at this times each gain (instead of --wall-gains)",
    )
    ap.add_argument("--no-pattern-detail", action="store_true")
    ap.add_argument(
        "--no-sharpen",
        action="store_true",
        help="repeating patterns as their samples' mean fold (periodic.sharpen_tile off)",
    )
    ap.add_argument("--no-room-kinds", action="store_true")
    ap.add_argument(
        "--whole",
        action="store_true",
        help="patterns known in the world's phase laid whole, at gain 1 (sampler.pattern_whole)",
    )
    ap.add_argument(
        "--worlds", default=",".join(map(str, SEEDS)), help="comma-separated held-out worlds"
    )
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gains = [float(g) for g in args.gains.split(",")]
    wall_gains = None if args.wall_gains is None else [float(g) for g in args.wall_gains.split(",")]
    if args.wall_ratio is not None and wall_gains is not None:
        raise SystemExit("--wall-ratio and --wall-gains: give one of them")
    sharpen = not args.no_sharpen
    plain = WorldPipeline.from_pretrained(
        args.checkpoint, device="cpu", texture_gain=0, wall_texture_gain=0, pattern_detail=False
    )
    walks = all_walks(plain, [int(x) for x in args.worlds.split(",")])
    details = None if args.no_pattern_detail else [pattern_detail(w, sharpen) for w in walks]
    features = EfficientNetFeatures().eval()
    truth = torch.cat([w["case"].rgb[1:][torch.arange(0, FRAMES - 1, KEEP_EVERY)] for w in walks])
    f_truth = image_features(features, truth)
    rooms = not args.no_room_kinds
    # each variant: its name, the gains on floors and ceilings and on the walls, its levels
    if args.wall_ratio is not None:
        variants = [
            (f"gain {g:g}, walls {g * args.wall_ratio:.4g}", g, g * args.wall_ratio) for g in gains
        ]
    elif wall_gains is None:
        variants = [(f"gain {g:g}", g, g) for g in gains]
    else:
        variants = [(f"gain {g:g}, walls {gw:g}", g, gw) for g in gains for gw in wall_gains]
    variants = [(name, g, gw, LOD_LEVELS) for name, g, gw in variants]
    if wall_gains is None and args.wall_ratio is None:
        variants.append((f"gain {gains[0]:g}, no levels of detail", gains[0], gains[0], 1))
    base, kept = measure(walks, None)
    f_base = image_features(features, kept)
    print(
        f"\n{len(truth)} frames of {len(walks)} walks kept for KID; the true frames' own "
        f"self-recall: {truth_recall(walks):.2f} dB"
    )
    print(
        "| texture | PSNR | sharpness (laid on / the rest) | self-recall | KID against no "
        "texture (p) |\n|---|---|---|---|---|"
    )
    print(
        f"| none | {base['psnr']:.2f} | {base['sharpness']:.2f} ({base['on']:.2f} / "
        f"{base['off']:.2f}) | {base['recall']:.2f} | - |"
    )
    layers = {  # each walk's texture built once, laid at every variant's gains
        levels: [layer(w, levels, rooms, sharpen, args.whole) for w in walks]
        for levels in {v[3] for v in variants}
    }
    for name, g, gw, levels in variants:
        by_kind = {FLOOR: g, CEILING: g, WALL: gw}
        row, kept = measure(walks, [lay(by_kind) for lay in layers[levels]], details)
        delta, p = kid_paired_test(image_features(features, kept), f_base, f_truth)
        print(
            f"| {name} | {row['psnr']:.2f} | {row['sharpness']:.2f} ({row['on']:.2f} / "
            f"{row['off']:.2f}) | {row['recall']:.2f} | {delta:+.4f} ({p:.3f}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
