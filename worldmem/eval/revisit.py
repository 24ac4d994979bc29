"""Revisit consistency: does the world look the same when the camera comes back?

Two protocols, each at two horizons, each with every memory ablation on identical cameras,
prompts and seeds:

* ``gt`` (ground-truth context, as WorldMem evaluates): the memories are filled with the first
  part of a ground-truth episode (``WorldPipeline.observe``), then the model generates the
  frames that come back to views of that part; they are compared with the ground truth.
* ``recall`` (self-generated recall, as VMem evaluates; self-consistency only, never a
  quality measure on its own: a model that repeats itself scores well whatever it draws;
  ``worldmem.eval.walk`` compares every frame with the truth): from the caption (and,
  optionally, the ground-truth first frame) the model generates the whole path, out and
  back; each frame at a pose visited before is compared with the model's own earlier frame
  at that pose (view recall), depth with the earlier depth.

The cases (synthetic worlds and datasets in the episode format, at each horizon) are built
in ``revisit_cases.py``; the summary, tables and plots are written by ``revisit_report.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch

from worldmem.eval.baselines import fill_holes
from worldmem.eval.metrics import LPIPS, frame_metrics
from worldmem.eval.revisit_cases import CLEARANCE_M as CLEARANCE_M
from worldmem.eval.revisit_cases import DATASET_MAX_CONTEXT as DATASET_MAX_CONTEXT
from worldmem.eval.revisit_cases import DATASET_MIN_OVERLAP as DATASET_MIN_OVERLAP
from worldmem.eval.revisit_cases import (
    HELD_OUT_SEED,
    HORIZONS,
    PROTOCOLS,
    REVISIT_FRAMES,
    RevisitCase,
    dataset_cases,
    horizon_gap,
    periodic_path,
    synthetic_case,
)
from worldmem.eval.revisit_cases import LONG_GAP_FACTORS as LONG_GAP_FACTORS
from worldmem.eval.revisit_cases import LOOP_STEP_M as LOOP_STEP_M
from worldmem.eval.revisit_cases import SHORT_GAP_EXTRA as SHORT_GAP_EXTRA
from worldmem.eval.revisit_report import METRICS, summarize, write_results

__all__ = [
    "PROTOCOLS",
    "HORIZONS",
    "ABLATION_MODES",
    "HELD_OUT_SEED",
    "REVISIT_FRAMES",
    "METRICS",
    "RevisitCase",
    "horizon_gap",
    "periodic_path",
    "synthetic_case",
    "dataset_cases",
    "run_gt_context",
    "run_recall",
    "run_revisit_eval",
    "frames_to_generate",
    "summarize",
    "write_results",
]

# gt rows also hold the spatial-memory render given to the model in mode "all", holes filled
# with the observed frames' mean colour: a baseline that needs no learning
MEMORY_RENDER_ROW = "memory render (no learning)"
ABLATION_MODES = ("working", "episodic", "spatial", "all")
OBSERVE_BLOCK = 16  # ground-truth frames put into the memories at once


def _records(
    case: RevisitCase,
    protocol: str,
    mode: str,
    reference: str,
    frames: torch.Tensor,
    metrics: dict[str, torch.Tensor],
) -> list[dict]:
    out = []
    for i, t in enumerate(frames.tolist()):
        f = int(case.first_visit[t])
        row = {
            "episode": case.name,
            "protocol": protocol,
            "horizon": case.horizon,
            "mode": mode,
            "reference": reference,
            "frame": t,
            "gap": t - f if f >= 0 else -1,
        }
        row.update({k: float(v[i]) for k, v in metrics.items()})
        out.append(row)
    return out


def run_gt_context(pipe, case: RevisitCase, mode: str, lpips: LPIPS | None = None) -> list[dict]:
    """The ground-truth-context protocol on one case in one memory mode.

    Observes ground-truth frames ``[0, context_frames)``, generates the rest at the case's
    cameras and compares every generated frame with the ground truth (reference ``gt``).
    Returns one record per generated frame (episode, protocol, horizon, mode, reference,
    frame, gap = frames since the first visit of its pose or -1, and the metrics).
    """
    if case.rgb is None or case.depth is None:
        raise ValueError(f"case {case.name}: the gt protocol needs ground-truth rgb and depth")
    ctx = case.context_frames
    # the true context frames are the whole start: no first frame is drawn before them
    pipe.start(prompt=case.caption, c2w=case.c2w[0], seed=case.seed, memory=mode, draw_first=False)
    for a in range(0, ctx, OBSERVE_BLOCK):
        b = min(ctx, a + OBSERVE_BLOCK)
        pipe.observe(case.rgb[a:b], case.depth[a:b], case.c2w[a:b], case.K[a:b])
    chunk = pipe.step(case.c2w[ctx:], case.K[ctx:])
    frames = torch.arange(ctx, case.num_frames)
    m = frame_metrics(chunk.rgb.cpu(), case.rgb[ctx:], chunk.depth.cpu(), case.depth[ctx:], lpips)
    out = _records(case, "gt", mode, "gt", frames, m)
    if mode == "all":  # the render the model was given, alone: the baseline it must beat
        fill = case.rgb[:ctx].mean(dim=(0, 2, 3))
        mem = fill_holes(chunk.memory_rgb.cpu().float(), chunk.memory_mask.cpu(), fill)
        mm = frame_metrics(mem, case.rgb[ctx:], chunk.memory_depth.cpu(), case.depth[ctx:], lpips)
        out += _records(case, "gt", MEMORY_RENDER_ROW, "gt", frames, mm)
    return out


def run_recall(
    pipe,
    case: RevisitCase,
    mode: str,
    lpips: LPIPS | None = None,
    start_image: bool = True,
) -> list[dict]:
    """The self-generated recall protocol on one case in one memory mode.

    Starts from the caption (and, with ``start_image``, the case's first frame and its depth
    when known), generates every other frame along the path, and compares each frame at a
    revisited pose with the model's own frame at the first visit (reference ``recall``).
    With a start image and ground truth, every generated frame is also compared with the
    ground truth (reference ``gt``: drift along the path). Returns records as
    ``run_gt_context``.
    """
    use_image = start_image and case.start_rgb is not None
    first = pipe.start(
        prompt=case.caption,
        image=case.start_rgb if use_image else None,
        depth=case.start_depth if use_image else None,
        c2w=case.c2w[0],
        seed=case.seed,
        memory=mode,
        draw_first=False,  # the protocol's prompt-only start is the model's own
    )
    if use_image:
        d0 = case.start_depth if case.start_depth is not None else first.depth[0].cpu()
        chunk = pipe.step(case.c2w[1:], case.K[1:])
        rgb = torch.cat([case.start_rgb[None].cpu(), chunk.rgb.cpu()])
        depth = torch.cat([d0[None].cpu(), chunk.depth.cpu()])
        generated = torch.arange(1, case.num_frames)
    else:
        chunk = pipe.step(case.c2w, case.K)
        rgb, depth = chunk.rgb.cpu(), chunk.depth.cpu()
        generated = torch.arange(case.num_frames)
    out = []
    revisits = generated[case.first_visit[generated] >= 0]
    if len(revisits):
        src = case.first_visit[revisits]
        m = frame_metrics(rgb[revisits], rgb[src], depth[revisits], depth[src], lpips)
        out += _records(case, "recall", mode, "recall", revisits, m)
    if use_image and case.rgb is not None:
        m = frame_metrics(
            rgb[generated],
            case.rgb[generated],
            depth[generated],
            None if case.depth is None else case.depth[generated],
            lpips,
        )
        out += _records(case, "recall", mode, "gt", generated, m)
    return out


def frames_to_generate(
    cases: list[RevisitCase], protocols: Iterable[str], num_modes: int, start_image: bool = True
) -> int:
    """Frames the model generates to run ``protocols`` on ``cases`` in ``num_modes`` modes."""
    n = 0
    for case in cases:
        for p in protocols:
            if p not in case.protocols:
                continue
            if p == "gt":
                n += case.num_frames - case.context_frames
            else:
                n += case.num_frames - (1 if start_image and case.start_rgb is not None else 0)
    return n * num_modes


def run_revisit_eval(
    pipe,
    cases: list[RevisitCase],
    protocols: Iterable[str] = PROTOCOLS,
    modes: Iterable[str] = ABLATION_MODES,
    lpips: LPIPS | None = None,
    start_image: bool = True,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Run every protocol on every case in every memory mode (identical cameras, prompt and
    seed across modes). Returns the per-frame records of all runs."""
    protocols, modes = list(protocols), list(modes)
    for p in protocols:
        if p not in PROTOCOLS:
            raise ValueError(f"protocol '{p}' is not one of {', '.join(PROTOCOLS)}")
    records: list[dict] = []
    t0 = time.perf_counter()
    for i, case in enumerate(cases):
        for p in protocols:
            if p not in case.protocols:
                continue
            for mode in modes:
                if p == "gt":
                    records += run_gt_context(pipe, case, mode, lpips)
                else:
                    records += run_recall(pipe, case, mode, lpips, start_image)
        log(
            f"[{i + 1}/{len(cases)}] {case.name} {case.horizon} ({case.num_frames} frames) "
            f"done, {time.perf_counter() - t0:.0f} s elapsed"
        )
    return records
