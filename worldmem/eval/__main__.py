"""Evaluation command line.

    python -m worldmem.eval revisit --checkpoint checkpoints/worldmem-tiny --episodes 20 \\
        [--out outputs/eval] [--protocols gt,recall] [--horizons short,long] \\
        [--modes working,episodic,spatial,all] [--data DIR] [--lpips-weights FILE]
    python -m worldmem.eval perf --checkpoint checkpoints/worldmem-tiny [--frames 1000]
    python -m worldmem.eval compare <walk run A> <walk run B> [--row model] [--row-b ROW]
    python -m worldmem.eval depth-scale --checkpoint checkpoints/worldmem-tiny [--write]
    python -m worldmem.eval walk --checkpoint checkpoints/worldmem-tiny [--quick] \\
        [--episodes N] [--out docs/results/walk]

``walk`` is the headline protocol (``worldmem.eval.walk``): every generated frame against the
true render of held-out synthetic worlds, beside non-learned baselines, with sharpness and
KID/FID, plus memory fidelity, drift and prompt-only starts (``worldmem.eval.studies``).
``revisit`` runs the revisit-consistency protocols (``worldmem.eval.revisit``) on held-out
synthetic worlds, or on a dataset in the episode format with ``--data``, and writes
``summary.md``, ``summary.csv``, ``frames.csv`` and plots. ``perf`` writes the performance
report (``worldmem.eval.report``). ``compare`` pairs two ``walk`` runs walk by walk
(``worldmem.eval.compare``). ``depth-scale`` fits the scale the depth the model gives a start
image without depth is multiplied by (``sampler.start_depth_scale`` in pipeline.json) on
worlds neither trained on nor evaluated, and with ``--write`` stores it. Both ``revisit`` and
``walk`` print an estimate of their run time first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from worldmem.config import MEMORY_MODES
from worldmem.eval.metrics import load_lpips
from worldmem.eval.report import (
    PERF_PROMPT,
    generation_profile,
    perf_summary,
    spatial_memory_bytes,
    training_samples_per_s,
    write_perf_report,
)
from worldmem.eval.revisit import (
    ABLATION_MODES,
    HELD_OUT_SEED,
    HORIZONS,
    PROTOCOLS,
    REVISIT_FRAMES,
    dataset_cases,
    frames_to_generate,
    horizon_gap,
    run_revisit_eval,
    synthetic_case,
    write_results,
)

TRAINING_SEEDS = 10_000  # synthetic training worlds use seeds below this


def _choices(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise SystemExit(f"--{what}: {', '.join(bad) or 'nothing'} not in {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def _load(args):
    from worldmem.pipeline import WorldPipeline

    overrides = {} if args.steps is None else {"steps": args.steps}
    if args.chunk_frames is not None:
        overrides["chunk_frames"] = args.chunk_frames
    try:
        return WorldPipeline.from_pretrained(args.checkpoint, device=args.device, **overrides)
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None


def _seconds_per_frame(pipe, case) -> float:
    """Time one warm-up chunk pair in memory mode all at a case's first cameras."""
    T = pipe.chunk_frames
    n = min(case.num_frames, 2 * T)
    pipe.start(prompt=case.caption, c2w=case.c2w[0], seed=0, memory="all")
    pipe.step(case.c2w[:T], case.K[:T])  # first call: allocation and caches
    t0 = time.perf_counter()
    pipe.step(case.c2w[:n], case.K[:n])
    return (time.perf_counter() - t0) / n


def cmd_revisit(args) -> int:
    protocols = _choices(args.protocols, PROTOCOLS, "protocols")
    horizons = _choices(args.horizons, HORIZONS, "horizons")
    modes = _choices(args.modes, MEMORY_MODES, "modes")
    if args.episodes < 1 or args.revisit_frames < 1:
        raise SystemExit("--episodes and --revisit-frames must be >= 1")
    if args.data is None and args.seed < TRAINING_SEEDS:
        print(
            f"warning: --seed {args.seed} overlaps the training worlds (seeds < {TRAINING_SEEDS})"
        )
    lpips = load_lpips(args.lpips_weights)
    pipe = _load(args)
    S, W = pipe.size, pipe.memory_cfg.working_frames
    print(
        f"model {args.checkpoint}: {S} px, {pipe.steps} denoising steps, chunks of "
        f"{pipe.chunk_frames}, working window {W} frames; "
        f"gaps: short {sorted({horizon_gap('short', W, i) for i in range(args.episodes)})}, "
        f"long {sorted({horizon_gap('long', W, i) for i in range(args.episodes)})}"
    )
    t_start = time.perf_counter()
    if args.data is not None:
        cases = dataset_cases(
            args.data, args.episodes, horizons, S, W, args.revisit_frames, pipe.actions
        )
        if not cases:
            raise SystemExit(f"{args.data}: no usable episodes")
        build_s = 0.0
        spf = _seconds_per_frame(pipe, cases[0])
    else:
        # build (render) one episode to time it, and time the model, before promising a time
        t0 = time.perf_counter()
        first = [
            synthetic_case(
                args.seed, h, horizon_gap(h, W, 0), S, pipe.K, args.revisit_frames, pipe.actions
            )
            for h in horizons
        ]
        build_s = time.perf_counter() - t0
        spf = _seconds_per_frame(pipe, first[-1])
        cases = first
    start_image = not args.no_start_image
    if args.data is not None:
        frames = frames_to_generate(cases, protocols, len(modes), start_image)
        est = frames * spf
    else:
        frames = 0
        for i in range(args.episodes):
            for h in horizons:
                gap, R = horizon_gap(h, W, i), args.revisit_frames
                frames += R if "gt" in protocols else 0
                frames += gap + R - int(start_image) if "recall" in protocols else 0
        frames *= len(modes)
        est = frames * spf * 1.15 + build_s * (args.episodes - 1)  # memories grow with a run
    print(
        f"estimated time: {frames} generated frames x {1000 * spf:.0f} ms"
        + (f" + rendering {args.episodes} episodes x {build_s:.1f} s" if build_s else "")
        + f" = about {est / 60:.1f} min"
    )
    if args.data is None:
        for i in range(1, args.episodes):
            cases += [
                synthetic_case(
                    args.seed + i,
                    h,
                    horizon_gap(h, W, i),
                    S,
                    pipe.K,
                    args.revisit_frames,
                    pipe.actions,
                )
                for h in horizons
            ]
        # episode-major order, so a partial log reads naturally
        cases.sort(key=lambda c: (c.seed, horizons.index(c.horizon)))
    records = run_revisit_eval(pipe, cases, protocols, modes, lpips, start_image=start_image)
    source = f"`{args.data}`" if args.data else f"synthetic worlds {args.seed}+"
    note = (
        f"Model `{args.checkpoint}` ({pipe.steps} steps); {source}; "
        f"{len({c.name for c in cases})} episodes; working window {W} frames.\n\n"
    )
    paths = write_results(records, args.out, args.confidence, note)
    (Path(args.out) / "run.json").write_text(json.dumps(vars(args), indent=2, default=str))
    print(paths["summary.md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    print(f"total {(time.perf_counter() - t_start) / 60:.1f} min")
    return 0


def cmd_perf(args) -> int:
    if args.frames < 1:
        raise SystemExit("--frames must be >= 1")
    pipe = _load(args)
    T = pipe.chunk_frames
    spf = _seconds_per_frame_walk(pipe)
    print(
        f"estimated time: {args.frames} frames x {1000 * spf:.0f} ms = about "
        f"{args.frames * spf / 60:.1f} min, plus {args.train_steps + 1} training steps"
    )
    if args.frames < 251 * T:
        print(f"note: chunk 250 needs --frames >= {251 * T}; comparing with the last chunk")
    rows = generation_profile(pipe, args.frames, PERF_PROMPT, args.seed)
    summary = perf_summary(rows, spatial_memory_bytes(pipe.spatial), pipe.memory_cfg.max_points)
    train = (
        None if args.train_steps == 0 else training_samples_per_s(pipe.model_cfg, args.train_steps)
    )
    header = (
        f"Model `{args.checkpoint}` ({pipe.steps} steps, {pipe.size} px, chunks of {T}) on "
        f"{torch.get_num_threads()} threads, device {pipe.device}.\n\n"
    )
    paths = write_perf_report(rows, summary, args.out, train, header)
    print(paths["perf.md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _seconds_per_frame_walk(pipe) -> float:
    T = pipe.chunk_frames
    pipe.start(prompt=PERF_PROMPT, seed=0, memory="all")
    pipe.step(["w"] * T)
    t0 = time.perf_counter()
    pipe.step(["w"] * (2 * T))
    return (time.perf_counter() - t0) / (2 * T)


def cmd_walk(args) -> int:
    from worldmem.eval.walk_cli import run_walk_command

    return run_walk_command(args, _load(args))


def cmd_compare(args) -> int:
    from worldmem.eval.compare import (
        compare_markdown,
        paired_differences,
        paired_kid,
        read_walk_frames,
    )

    row_b = args.row if args.row_b is None else args.row_b
    try:
        a, b = read_walk_frames(args.a), read_walk_frames(args.b)
        result = paired_differences(a, b, args.row, args.row_b)
        kid = paired_kid(args.a, args.b, args.row, row_b)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    names = (f"{args.a} ({args.row})", f"{args.b} ({row_b})")
    print(compare_markdown(result, args.confidence, names=names, kid=kid))
    return 0


def cmd_depth_scale(args) -> int:
    from worldmem.eval.metrics import depth_abs_rel, depth_delta
    from worldmem.eval.studies import CALIBRATION_SEED, scale_from_depths, start_depths
    from worldmem.pipeline_checks import check_start_depth_scale
    from worldmem.pipeline_files import read_pipeline_json, write_pipeline_json

    first = CALIBRATION_SEED if args.seed is None else args.seed
    seeds = list(range(first, first + args.worlds))
    if args.worlds < 1:
        raise SystemExit("--worlds must be >= 1")
    if first < TRAINING_SEEDS or seeds[-1] >= HELD_OUT_SEED:
        print(
            f"warning: seeds {first}-{seeds[-1]} overlap the training worlds (< {TRAINING_SEEDS})"
            f" or the evaluated ones (>= {HELD_OUT_SEED})",
            file=sys.stderr,
        )
    pipe = _load(args)
    t0 = time.perf_counter()
    before = pipe.start_depth_scale
    pred, truth = start_depths(pipe, seeds)  # given at `before`
    try:
        scale, ratios = scale_from_depths(pred, truth, before)
    except ValueError as e:
        raise SystemExit(f"depth-scale: {args.checkpoint}: {e}") from None
    q = torch.quantile(ratios * before, torch.tensor([0.25, 0.5, 0.75]))
    print(
        f"{args.worlds} start views (worlds {first}-{seeds[-1]}) in "
        f"{time.perf_counter() - t0:.0f} s: the depth given to an image without depth is "
        f"{1 / q[1]:.3f} of the true median unscaled (quartiles of true / given: "
        f"{q[0]:.3f}, {q[1]:.3f}, {q[2]:.3f})\n"
        f"start_depth_scale {before:g} -> {scale:.4f}"
    )
    for name, s in ((f"at {before:g}", before), (f"at {scale:.4f}", scale)):
        d = pred * (s / before)  # the depth given is proportional to the scale
        abs_rel, delta = depth_abs_rel(d, truth).nanmean(), depth_delta(d, truth).nanmean()
        print(f"  {name}: AbsRel {float(abs_rel):.3f}, delta < 1.25 {float(delta):.3f}")
    if args.write:
        try:
            scale = check_start_depth_scale(float(f"{scale:.6g}"))
        except ValueError as e:
            raise SystemExit(f"not written: {e}") from None
        path = Path(args.checkpoint)
        meta = read_pipeline_json(path)
        meta["sampler"]["start_depth_scale"] = scale
        write_pipeline_json(path, {k: v for k, v in meta.items() if k != "format_version"})
        print(f"wrote sampler.start_depth_scale = {scale} to {path / 'pipeline.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m worldmem.eval", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(q):
        q.add_argument("--checkpoint", required=True, help="a WorldPipeline folder")
        q.add_argument("--device", default="auto")
        q.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
        q.add_argument("--steps", type=int, default=None, help="denoising steps (default: saved)")
        q.add_argument(
            "--chunk-frames", type=int, default=None, help="frames per chunk (default: saved)"
        )

    r = sub.add_parser("revisit", help="revisit-consistency protocols and memory ablations")
    common(r)
    r.add_argument("--episodes", type=int, default=20)
    r.add_argument("--out", default="outputs/eval")
    r.add_argument("--protocols", default=",".join(PROTOCOLS), help="gt,recall")
    r.add_argument("--horizons", default=",".join(HORIZONS), help="short,long")
    r.add_argument("--modes", default=",".join(ABLATION_MODES), help="memory modes to compare")
    r.add_argument("--data", default=None, help="a dataset root (manifest.jsonl) or an episode")
    r.add_argument("--revisit-frames", type=int, default=REVISIT_FRAMES)
    r.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="first synthetic world seed")
    r.add_argument("--no-start-image", action="store_true", help="recall from the prompt only")
    r.add_argument("--lpips-weights", default=None, help="local LPIPS (AlexNet) state dict")
    r.add_argument("--confidence", type=float, default=0.95)
    r.set_defaults(func=cmd_revisit)

    w = sub.add_parser("walk", help="walks vs the true render, with baselines (the headline)")
    common(w)
    w.add_argument("--quick", action="store_true", help="short walks, one world: a few minutes")
    w.add_argument("--episodes", type=int, default=None, help="worlds (default 2; quick 1)")
    w.add_argument("--frames", type=int, default=None, help="frames per walk (160; quick 40)")
    w.add_argument("--kinds", default="all", help="walk kinds, comma-separated, or all")
    w.add_argument("--drift-rounds", type=int, default=None, help="circuits (10; quick 3)")
    w.add_argument("--drift-frames", type=int, default=None, help="frames per circuit (100)")
    w.add_argument("--prompt-worlds", type=int, default=None, help="captions (12; quick 4)")
    w.add_argument("--out", default="outputs/eval/walk")
    w.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="first world seed")
    w.add_argument("--no-kid", action="store_true", help="skip KID/FID (no feature network)")
    w.add_argument("--confidence", type=float, default=0.95)
    w.set_defaults(func=cmd_walk)

    c = sub.add_parser("compare", help="two walk runs on the same walks, paired per walk")
    c.add_argument("a", help="run A: a walk output folder or its walk_frames.csv")
    c.add_argument("b", help="run B, on the same walks")
    c.add_argument("--row", default="model", help="the row to compare (default model)")
    c.add_argument("--row-b", default=None, help="run B's row (default: --row), e.g. warp")
    c.add_argument("--confidence", type=float, default=0.95)
    c.set_defaults(func=cmd_compare, threads=0)

    d = sub.add_parser("depth-scale", help="fit start_depth_scale (an image without depth)")
    common(d)
    d.add_argument("--worlds", type=int, default=48, help="start views to fit on")
    d.add_argument("--seed", type=int, default=None, help="first world seed (default: 50000)")
    d.add_argument("--write", action="store_true", help="store the scale in pipeline.json")
    d.set_defaults(func=cmd_depth_scale)

    f = sub.add_parser("perf", help="generation speed vs video length, memory size, training")
    common(f)
    f.add_argument("--frames", type=int, default=1000)
    f.add_argument("--out", default="outputs/eval/perf")
    f.add_argument("--train-steps", type=int, default=3, help="0 skips the training measure")
    f.add_argument("--seed", type=int, default=0)
    f.set_defaults(func=cmd_perf)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
