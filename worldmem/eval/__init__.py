"""Evaluation: frame metrics, the walk protocol against the true render with non-learned
baselines (the headline), the revisit-consistency protocols with memory ablations, and the
performance report. Command line: ``python -m worldmem.eval walk|revisit|perf --checkpoint ...``."""

from worldmem.eval.metrics import (
    LPIPS,
    depth_abs_rel,
    depth_delta,
    frame_metrics,
    load_lpips,
    mean_ci,
    psnr,
    ssim,
    t_quantile,
)
from worldmem.eval.revisit import (
    ABLATION_MODES,
    HORIZONS,
    PROTOCOLS,
    RevisitCase,
    dataset_cases,
    run_gt_context,
    run_recall,
    run_revisit_eval,
    summarize,
    synthetic_case,
    write_results,
)
from worldmem.eval.walk import ROWS, WALK_KINDS, WalkCase, run_walk, walk_case, walk_path

__all__ = [
    "ROWS",
    "WALK_KINDS",
    "WalkCase",
    "run_walk",
    "walk_case",
    "walk_path",
    "ABLATION_MODES",
    "HORIZONS",
    "LPIPS",
    "PROTOCOLS",
    "RevisitCase",
    "dataset_cases",
    "depth_abs_rel",
    "depth_delta",
    "frame_metrics",
    "load_lpips",
    "mean_ci",
    "psnr",
    "run_gt_context",
    "run_recall",
    "run_revisit_eval",
    "ssim",
    "summarize",
    "synthetic_case",
    "t_quantile",
    "write_results",
]
