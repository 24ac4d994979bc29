"""``python -m worldmem.eval walk``: the walk protocol and its studies, end to end.

Writes to ``--out``: ``walk.md`` (every table), ``walk_summary.csv``, ``walk_frames.csv``,
``memory_fidelity.csv``, ``drift.csv``, ``drift_rounds.csv``, ``prompt_kid.csv``, the
figures ``walk_psnr.png``, ``drift.png``, ``contact_<kind>.png``, ``prompts.png``,
``prompt_captions.png``, and (unless ``--no-kid``) ``features.pt``, the features of the frames
KID was measured on (about 12 MB; ``compare`` tests two runs' KIDs with it: keep it with the
run, not in the repository).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from worldmem.eval.compare import FEATURES_FILE
from worldmem.eval.metrics import (
    KID_PERMUTATIONS,
    SHARPNESS_BOUNDS,
    EfficientNetFeatures,
    fid,
    geometric_mean,
    image_features,
    kid,
    kid_paired_test,
    psnr,
    sharpness_ratio,
)
from worldmem.eval.studies import (
    FREE_PROMPTS,
    drift,
    free_prompt_frames,
    memory_fidelity,
    prompt_starts,
    start_depth_rows,
    start_depths,
)
from worldmem.eval.walk import ROWS, WALK_KINDS, run_walk, walk_case
from worldmem.eval.walk_report import (
    CONTACT_COLUMNS,
    contact_sheet,
    depth_markdown,
    image_grid,
    plot_drift,
    plot_walk_psnr,
    summarize_walk,
    walk_markdown,
    write_csv,
)

__all__ = ["WalkPlan", "plan_for", "run_walk_command", "FEATURE_S_PER_FRAME"]

FEATURE_S_PER_FRAME = 0.2  # EfficientNet-Lite0 at 224 px on 2 CPU cores (measured ~0.17 s)
PROMPT_SEED_OFFSET = 5_000  # prompt-only worlds: HELD_OUT_SEED + this + i (not walked)


@dataclass
class WalkPlan:
    """How much to run. ``kid_frames``: frames per row pooled for KID/FID."""

    episodes: int
    frames: int
    drift_rounds: int
    drift_frames: int
    prompt_worlds: int
    kid_frames: int


FULL = WalkPlan(episodes=2, frames=160, drift_rounds=10, drift_frames=100, prompt_worlds=12,
                kid_frames=240)  # fmt: skip
QUICK = WalkPlan(episodes=1, frames=40, drift_rounds=3, drift_frames=24, prompt_worlds=4,
                 kid_frames=40)  # fmt: skip


def plan_for(args) -> WalkPlan:
    base = QUICK if args.quick else FULL
    plan = WalkPlan(**vars(base))
    if args.episodes is not None:
        plan.episodes = args.episodes
    for name in ("frames", "drift_rounds", "drift_frames", "prompt_worlds"):
        if getattr(args, name, None) is not None:
            setattr(plan, name, getattr(args, name))
    if plan.episodes < 1 or plan.frames < 16 or plan.prompt_worlds < 2:
        raise SystemExit("--episodes must be >= 1, --frames >= 16, --prompt-worlds >= 2")
    if plan.drift_rounds < 2 or plan.drift_frames < 4:
        raise SystemExit("--drift-rounds must be >= 2 and --drift-frames >= 4")
    return plan


def _kinds(text: str) -> list[str]:
    if text == "all":
        return list(WALK_KINDS)
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in WALK_KINDS]
    if bad or not kinds:
        raise SystemExit(f"--kinds: {', '.join(bad) or 'nothing'} not in {', '.join(WALK_KINDS)}")
    return kinds


def _seconds_per_frame(pipe, case) -> float:
    T = pipe.chunk_frames
    pipe.start(prompt=case.caption, image=case.rgb[0], depth=case.depth[0], c2w=case.c2w[0])
    pipe.step(case.c2w[1 : 1 + T], case.K[1 : 1 + T])  # warm-up
    n = min(case.num_frames - 1, 4 * T)
    t0 = time.perf_counter()
    pipe.step(case.c2w[1 : 1 + n], case.K[1 : 1 + n])
    return (time.perf_counter() - t0) / n


def _dist(
    features,
    images: dict[str, torch.Tensor],
    ref: torch.Tensor,
    paired_with: str | None = None,
    save: Path | None = None,
) -> dict[str, dict]:
    """KID (mean, std) and FID of each set of images against ``ref``; with ``paired_with``
    (a name of ``images`` whose frames pair with the others' row by row) also each other
    set's ``kid_paired_test`` against it: ``kid_delta`` and ``kid_p``. ``save``: a file to
    write the features to (``compare.FEATURES_FILE``: ``{"truth": (N, D), "rows": {name:
    (N, D)}}``, float32), so another run of the same walks can be tested against these."""
    fr = image_features(features, ref)
    feats = {name: image_features(features, x) for name, x in images.items()}
    if save is not None:
        rows = {name: f.float() for name, f in feats.items()}
        torch.save({"truth": fr.float(), "rows": rows}, save)
    out = {}
    for name, fx in feats.items():
        k, ks = kid(fx, fr)
        out[name] = {"kid": k, "kid_std": ks, "fid": fid(fx, fr), "n": len(fx)}
        if paired_with in feats and name != paired_with:
            delta, p = kid_paired_test(fx, feats[paired_with], fr)
            out[name].update(kid_delta=delta, kid_p=p)
    return out


def _layout_and_sharpness(x: torch.Tensor, truth: torch.Tensor) -> dict:
    """How near first frames ``x`` are to the truth in layout and colour (PSNR of their 8x8
    block means: what a caption can say, not where each edge lies) and their sharpness."""
    pool = torch.nn.functional.avg_pool2d
    return {
        "layout_psnr": float(psnr(pool(x, 8), pool(truth, 8)).mean()),
        "sharpness": geometric_mean(sharpness_ratio(x, truth).tolist()),
    }


def run_walk_command(args, pipe, log=print) -> int:
    plan = plan_for(args)
    kinds = _kinds(args.kinds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from worldmem.data.synthetic import make_world

    t_start = time.perf_counter()
    S = pipe.size
    K = pipe.K.float().cpu()
    t0 = time.perf_counter()
    first = walk_case(make_world(args.seed), kinds[0], plan.frames, args.seed, S, K)
    case_s = time.perf_counter() - t0
    spf = _seconds_per_frame(pipe, first)
    walk_frames = (
        plan.episodes
        * len(kinds)
        * (plan.frames - 1)
        * len([r for r in ROWS if r.startswith(("model", "no memory"))])
    )
    other = plan.drift_rounds * plan.drift_frames + 2 * plan.prompt_worlds + len(FREE_PROMPTS)
    n_feat = 0 if args.no_kid else plan.kid_frames * (len(ROWS) + 1) + 3 * plan.prompt_worlds
    est = (walk_frames + other) * spf + n_feat * FEATURE_S_PER_FRAME
    est += case_s * plan.episodes * len(kinds)
    log(
        f"model {args.checkpoint}: {S} px, {pipe.steps} steps, chunks of {pipe.chunk_frames}; "
        f"{plan.episodes} worlds x {len(kinds)} walks x {plan.frames} frames; "
        f"drift {plan.drift_rounds} x {plan.drift_frames}; {plan.prompt_worlds} prompt worlds"
    )
    log(
        f"estimated time: {walk_frames + other} generated frames x {1000 * spf:.0f} ms + "
        f"{n_feat} feature frames x {FEATURE_S_PER_FRAME} s + rendering = about "
        f"{est / 60:.1f} min"
    )

    # 1. the walks
    total = plan.episodes * len(kinds) * (plan.frames - 1)
    # the frames kept for KID / FID, and without them enough for the contact sheets
    if args.no_kid:
        keep_every = max(1, (plan.frames - 1) // CONTACT_COLUMNS)
    else:
        keep_every = max(1, math.ceil(total / plan.kid_frames))
    records: list[dict] = []
    fidelity: list[dict] = []
    pooled: dict[str, list[torch.Tensor]] = defaultdict(list)
    sheets = {}
    for e in range(plan.episodes):
        seed = args.seed + e
        world = make_world(seed)
        for kind in kinds:
            case = first if (e == 0 and kind == kinds[0]) else None
            case = case or walk_case(world, kind, plan.frames, seed, S, K)
            res = run_walk(pipe, case, keep_every=keep_every)
            records += res.records
            for name, x in res.frames.items():
                pooled[name].append(x)
            if e == 0:
                sheets[kind] = contact_sheet(res.frames, res.kept, out / f"contact_{kind}.png")
            fidelity += memory_fidelity(pipe.memory_cfg, case, pipe.device)
            model_p = [r["psnr"] for r in res.records if r["row"] == "model"]
            warp_p = [r["psnr"] for r in res.records if r["row"] == "warp"]
            log(
                f"[world {seed}] {kind}: {case.num_frames} frames in {res.seconds:.0f} s; "
                f"PSNR model {sum(model_p) / len(model_p):.2f}, warp "
                f"{sum(warp_p) / len(warp_p):.2f}; {time.perf_counter() - t_start:.0f} s elapsed"
            )

    # 2. KID / FID over the pooled frames
    features = None if args.no_kid else EfficientNetFeatures().eval()
    dist = None
    if features is not None:
        ref = torch.cat(pooled["truth"])
        rows = {r: torch.cat(pooled[r]) for r in ROWS if r in pooled}
        dist = _dist(features, rows, ref, paired_with="warp", save=out / FEATURES_FILE)

    # 3. drift
    world = make_world(args.seed)
    d = drift(pipe, world, args.seed, plan.drift_rounds, plan.drift_frames)
    per_round = defaultdict(list)
    for r in d["records"]:
        per_round[r["round"]].append(r)
    rounds = [
        {
            "round": k,
            "psnr": _avg(v, "psnr"),
            "ssim": _avg(v, "ssim"),
            "sharpness": geometric_mean([r["sharpness"] for r in v]),
            "warp_psnr": _avg(v, "warp_psnr"),
            "self_psnr": _avg(v, "self_psnr"),
        }
        for k, v in sorted(per_round.items())
    ]
    log(f"drift: {d['frames']} frames in {d['seconds']:.0f} s")

    # 4. prompt-only starts
    seeds = [args.seed + PROMPT_SEED_OFFSET + i for i in range(plan.prompt_worlds)]
    gen, truth, captions = prompt_starts(pipe, seeds)
    free = free_prompt_frames(pipe)
    prompt_rows = []
    if features is not None:
        other_seeds = [s + plan.prompt_worlds for s in seeds]
        _, other, _ = prompt_starts(_TruthOnly(pipe), other_seeds)
        g = torch.Generator().manual_seed(0)
        noise = torch.rand(truth.shape, generator=g)
        sets = {
            "pipeline (caption only)": gen,
            "true frames of other worlds": other,
            "noise": noise,
        }
        pd = _dist(features, sets, truth)
        prompt_rows = [
            {"set": k, **v, **_layout_and_sharpness(sets[k], truth)} for k, v in pd.items()
        ]
    image_grid([("generated", free)], out / "prompts.png", list(FREE_PROMPTS))
    n = min(6, len(gen))
    image_grid(
        [("truth", truth[:n]), ("generated", gen[:n])],
        out / "prompt_captions.png",
        [c[:60] for c in captions[:n]],
    )

    # 5. the depth a start image without depth is given, on the same worlds
    source = "depth net" if pipe.start_depth == "depth_net" else "model"
    depth_rows = start_depth_rows(*start_depths(pipe, seeds), f"{source} (image without depth)")

    # 6. tables and files
    md = _markdown(args, plan, records, dist, fidelity, rounds, prompt_rows, kinds, depth_rows)
    (out / "walk.md").write_text(md)
    summary = [dict(r) for k in [None, *kinds] for r in summarize_walk(records, k)]
    for r in summary:
        got = (dist or {}).get(r["row"], {})
        r.update({m: got.get(m, math.nan) for m in ("kid", "kid_delta", "kid_p", "fid")})
    write_csv(out / "walk_summary.csv", summary)
    write_csv(out / "walk_frames.csv", records)
    write_csv(out / "memory_fidelity.csv", fidelity)
    write_csv(out / "drift.csv", d["records"])
    write_csv(out / "drift_rounds.csv", rounds)
    if prompt_rows:
        write_csv(out / "prompt_kid.csv", prompt_rows)
    write_csv(out / "start_depth.csv", depth_rows)
    plot_walk_psnr(records, out / "walk_psnr.png")
    plot_drift(rounds, out / "drift.png")
    minutes = (time.perf_counter() - t_start) / 60
    run = {k: v for k, v in vars(args).items() if k != "func"}
    run.update(plan=vars(plan), minutes=minutes)
    (out / "run.json").write_text(json.dumps(run, indent=2, default=str))
    log(md)
    log(f"wrote {out}/walk.md and CSV/PNG files; total {minutes:.1f} min")
    return 0


class _TruthOnly:
    """Stands in for a pipeline in ``prompt_starts`` to render true frames only (the KID floor:
    true frames of other worlds against the reference worlds)."""

    def __init__(self, pipe):
        self.size, self.K = pipe.size, pipe.K
        self._seed = 0

    def start(self, prompt="", c2w=None, seed=0, **_):
        self._seed = seed

    def step(self, cameras, K):
        from worldmem.data.synthetic import make_world

        rgb = make_world(self._seed).render(cameras, K, self.size, self.size)[0]
        return type("C", (), {"rgb": rgb})()


def _avg(rows: list[dict], key: str) -> float:
    v = [r[key] for r in rows if not math.isnan(r[key])]
    return sum(v) / len(v) if v else math.nan


def _kid_against_warp(dist: dict | None) -> str:
    """A paragraph: each row's KID against the warp's on the same frames, with its p-value."""
    rows = [(k, v) for k, v in (dist or {}).items() if "kid_delta" in v]
    if not rows:
        return ""
    cells = "; ".join(f"`{k}` {v['kid_delta']:+.4f} (p = {v['kid_p']:.3f})" for k, v in rows)
    return (
        "KID against the warp's, on the same frames (each row's KID minus the warp's over the "
        "whole sets; below 0 nearer the truth; p: two-sided paired permutation test, "
        f"{KID_PERMUTATIONS} random swaps of the two rows' frames of each view): {cells}.\n"
    )


def _markdown(args, plan, records, dist, fidelity, rounds, prompt_rows, kinds, depth_rows) -> str:
    lo, hi = SHARPNESS_BOUNDS
    parts = [
        "# Walk evaluation\n",
        f"Model `{args.checkpoint}`; held-out worlds {args.seed}..{args.seed + plan.episodes - 1}; "
        f"walks {', '.join(kinds)} of {plan.frames} frames each, from the true first frame. "
        "Every generated frame is compared with the true render. PSNR: mean over worlds ± "
        f"half-width of the {args.confidence:.0%} t-interval. Sharpness: generated / true "
        f"high-frequency energy (geometric mean; < {lo} blur, > {hi} noise: flagged); beside "
        "it the same over the pixels where the model's memory render held something and where "
        "it had holes (what the model had to invent; the same split for every row). KID/FID: "
        "EfficientNet-Lite0 features of the frames pooled over all walks"
        + (f" ({next(iter(dist.values()))['n']} frames per row)" if dist else " (skipped)")
        + ". Start revisits: frames that see again what the start frame saw (half or more of "
        "them); scored over the whole frame, and over only the pixels the start saw, where "
        "memory must give back what was observed (the rest of such a frame is new). "
        "Self-recall: a view the start never saw, against the same row's earlier "
        "frame warped through the true depth: consistency only (a flat image is perfectly "
        "consistent), read it with the sharpness beside it. Baselines: `warp` (start frame "
        "warped with its true depth, holes its mean colour), `warp, filled` (its holes "
        "push-pull filled towards that colour), `warp, elevation fill` (filled towards the "
        "start frame's mean along each ray's elevation: ceiling above, floor below), `memory` "
        "(the spatial-memory render the model was given, holes alike), `previous` (the "
        "previous true frame). Reference (it uses the truth at the target, so no method could "
        "run it): `start, true target depth` (the start frame sampled bilinearly through each "
        "frame's own true depth, holes its mean colour): over the pixels the start saw, the "
        "most that giving back a start frame of this resolution scores.\n",
        "## All walks\n",
        walk_markdown(summarize_walk(records, None, args.confidence), dist),
        _kid_against_warp(dist),
    ]
    for kind in kinds:
        parts += [f"## {kind}\n", walk_markdown(summarize_walk(records, kind, args.confidence))]
    parts.append(
        "## Generated depth\n\nEach model row's depth against the true depth: AbsRel over "
        "all frames, and in brackets the median of generated / true depth (1 is right, > 1 too "
        "far) over the first and the last quarter of each walk: whether invented surfaces "
        "keep their distance as the walk goes on.\n"
    )
    parts.append(depth_markdown(records, kinds))
    parts.append(
        "## Memory fidelity\n\nThe spatial memory filled with the true frames 0, 2, 4, ... of "
        "each walk, rendered at those cameras (seen) and at the frames between (novel); the "
        "brute-force reference is a z-buffer of every observed pixel. PSNR over covered "
        "pixels; filled: holes the start frame's mean colour.\n"
    )
    parts.append(_fidelity_table(fidelity))
    parts.append(
        f"## Drift\n\nOne circuit of {plan.drift_frames} frames walked {plan.drift_rounds} "
        "times from the true start frame.\n\n| round | PSNR vs truth | SSIM | sharpness | "
        "warp PSNR | PSNR vs own round 0 (consistency) |\n|---|---|---|---|---|---|\n"
        + "".join(
            f"| {r['round']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['sharpness']:.2f} | "
            f"{r['warp_psnr']:.2f} | {r['self_psnr']:.2f} |\n"
            for r in rounds
        )
        + f"\nFirst round {rounds[0]['psnr']:.2f} dB, last round {rounds[-1]['psnr']:.2f} dB.\n"
    )
    if prompt_rows:
        parts.append(
            f"## Prompt-only starts\n\nFirst frames from the captions of {plan.prompt_worlds} "
            "held-out worlds, against the true frames at their start cameras (KID on "
            "EfficientNet-Lite0 features; tiny sets, so read the rows against each other; "
            "layout: PSNR of 8x8 block means, what the caption can say; true frames of other "
            "worlds are the layout a real frame unrelated to the caption scores).\n\n"
            "| set | KID ↓ | FID ↓ | layout PSNR ↑ | sharpness | n |\n|---|---|---|---|---|---|\n"
            + "".join(
                f"| {r['set']} | {r['kid']:.4f} ± {r['kid_std']:.4f} | {r['fid']:.1f} | "
                f"{r['layout_psnr']:.2f} | {r['sharpness']:.2f} | {r['n']} |\n"
                for r in prompt_rows
            )
        )
    parts.append(
        f"## Start image without depth\n\nThe true start frames of the prompt-only starts' "
        f"{depth_rows[0]['n']} worlds begin a world without their depth; the depth the "
        "pipeline gives them (its depth net's, or without one the model's) against the true "
        "depth, beside two depths that need no learning "
        "(leave one out: from the other worlds' true start depths). Median scale: the "
        "predicted median depth over the true (1 is right; < 1 too near).\n\n"
        "| depth | AbsRel ↓ | δ < 1.25 ↑ | median scale |\n|---|---|---|---|\n"
        + "".join(
            f"| {r['row']} | {r['abs_rel']:.3f} | {r['delta1']:.3f} | {r['median_scale']:.2f} |\n"
            for r in depth_rows
        )
    )
    return "\n".join(parts)


def _fidelity_table(rows: list[dict]) -> str:
    groups = defaultdict(list)
    for r in rows:
        groups[(r["source"], r["views"])].append(r)
    lines = [
        "| source | views | PSNR (covered) | coverage | PSNR (filled) | PSNR vs brute force |",
        "|---|---|---|---|---|---|",
    ]
    for (source, views), rs in groups.items():
        lines.append(
            f"| {source} | {views} | {_avg(rs, 'psnr_valid'):.2f} | {_avg(rs, 'coverage'):.3f} "
            f"| {_avg(rs, 'psnr_filled'):.2f} | "
            + ("–" if source != "memory" else f"{_avg(rs, 'psnr_vs_brute'):.2f}")
            + " |"
        )
    return "\n".join(lines) + "\n"
