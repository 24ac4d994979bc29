"""Paired comparison of two runs of the walk protocol on the same walks.

Two models scored on the same held-out walks differ by less than the walks differ from each
other, so their separate intervals overlap even where one is better on every walk. Pairing
removes the walks' own spread: each walk (one world, one kind) gives one difference, B minus
A, of its mean PSNR over all frames, of its mean PSNR over the pixels the start frame saw at
start revisits, and of the log of its sharpness; the t-interval is over those walks (frames
within a walk are not independent, so they are never the unit).

    python -m worldmem.eval compare <run A> <run B> [--row model] [--row-b warp]

A run is a ``walk`` output folder (its ``walk_frames.csv``) or the CSV itself. When both
folders hold the features of their pooled frames (``features.pt``, written by ``walk``) for
the same true frames, the two rows' KIDs are tested against each other on those frames too
(``metrics.kid_paired_test``).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import torch

from worldmem.eval.metrics import geometric_mean, kid_paired_test, mean_ci

__all__ = [
    "FEATURES_FILE",
    "read_walk_frames",
    "walk_means",
    "paired_differences",
    "paired_kid",
    "compare_markdown",
]

FEATURES_FILE = "features.pt"  # a walk run's pooled frame features, per row and the truth

_MEASURES = ("psnr", "psnr_seen", "log_sharpness")


def read_walk_frames(path: str | Path) -> list[dict]:
    """The per-frame records of a walk run (a folder holding ``walk_frames.csv``, or the
    file)."""
    p = Path(path)
    if p.is_dir():
        p = p / "walk_frames.csv"
    if not p.is_file():
        raise ValueError(f"compare: {p} not found (want a walk output folder or its CSV)")
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"episode", "kind", "row", "frame", "psnr", "psnr_seen", "sharpness"}
    if not rows or not need <= set(rows[0]):
        raise ValueError(f"compare: {p} is not a walk_frames.csv (columns {sorted(need)})")
    return rows


def walk_means(records: list[dict], row: str) -> dict[tuple[str, str], dict]:
    """Per walk ``(episode, kind)`` of ``row``: frames (sorted), mean PSNR, mean PSNR over
    the start's pixels at start revisits (nan without revisits) and the log of its
    geometric mean sharpness (frames with no high-frequency energy dropped, as the report does)."""
    frames: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        if r["row"] == row:
            frames[(r["episode"], r["kind"])].append(r)
    out = {}
    for key, rs in frames.items():
        seen = [float(r["psnr_seen"]) for r in rs if not math.isnan(float(r["psnr_seen"]))]
        out[key] = {
            "frames": sorted(int(r["frame"]) for r in rs),
            "psnr": sum(float(r["psnr"]) for r in rs) / len(rs),
            "psnr_seen": sum(seen) / len(seen) if seen else math.nan,
            # as the walk report: frames with no high-frequency energy (or inf) are dropped
            "log_sharpness": math.log(geometric_mean([float(r["sharpness"]) for r in rs])),
        }
    return out


def paired_differences(
    a: list[dict], b: list[dict], row: str = "model", row_b: str | None = None
) -> dict:
    """B minus A per walk, for walks that both runs scored on the same frames: ``row`` of
    run A against ``row_b`` (default ``row``) of run B, so one run's model can be paired
    with its own baselines too.

    Returns ``{"walks": [(episode, kind), ...], "diff": {measure: [per walk]}, "a": ...,
    "b": ...}`` (``walk_means`` of each). Raises if either run lacks its row or the runs do
    not hold the same walks and frames (runs of other worlds or lengths do not pair)."""
    row_b = row if row_b is None else row_b
    ma, mb = walk_means(a, row), walk_means(b, row_b)
    for name, r, m in (("A", row, ma), ("B", row_b, mb)):
        if not m:
            raise ValueError(f"compare: run {name} has no row '{r}'")
    if set(ma) != set(mb):
        only = sorted(set(ma) ^ set(mb))
        raise ValueError(f"compare: the runs hold different walks (in one only: {only[:4]})")
    walks = sorted(ma)
    for w in walks:
        if ma[w]["frames"] != mb[w]["frames"]:
            raise ValueError(f"compare: walk {w} has different frames in the two runs")
    diff = {m: [mb[w][m] - ma[w][m] for w in walks] for m in _MEASURES}
    return {"walks": walks, "diff": diff, "a": ma, "b": mb}


def paired_kid(run_a: str | Path, run_b: str | Path, row: str, row_b: str) -> dict | None:
    """``row_b`` of run B against ``row`` of run A in KID on the same frames: ``{"delta": KID B
    - KID A, "p": two-sided p, "n": frames}``, or None when a run is not a folder with
    ``FEATURES_FILE`` holding its row. Raises if the two runs' true frames differ (their
    features do not agree), since their rows would not pair."""
    loaded = []
    for run, r in ((run_a, row), (run_b, row_b)):
        f = Path(run) / FEATURES_FILE
        if not f.is_file():
            return None
        saved = torch.load(f, weights_only=True)
        if r not in saved["rows"]:
            return None
        loaded.append((saved["truth"], saved["rows"][r]))
    (truth_a, fa), (truth_b, fb) = loaded
    if truth_a.shape != truth_b.shape or not torch.allclose(truth_a, truth_b, atol=1e-3):
        raise ValueError("compare: the two runs' features are of different true frames")
    delta, p = kid_paired_test(fb, fa, truth_a)
    return {"delta": delta, "p": p, "n": len(truth_a)}


def compare_markdown(
    result: dict, confidence: float = 0.95, names=("A", "B"), kid: dict | None = None
) -> str:
    """Per walk and pooled (mean and t-interval over walks) differences, as markdown."""
    a, b = names
    walks, d = result["walks"], result["diff"]
    lines = [
        f"B = {b}, A = {a}; differences B - A per walk (sharpness as a ratio B / A).",
        "",
        "| walk | PSNR A | PSNR B | Δ PSNR | Δ PSNR @ start's pixels | sharpness B / A |",
        "|---|---|---|---|---|---|",
    ]
    for i, (ep, kind) in enumerate(walks):
        pa, pb = result["a"][(ep, kind)]["psnr"], result["b"][(ep, kind)]["psnr"]
        lines.append(
            f"| {ep} {kind} | {pa:.2f} | {pb:.2f} | {d['psnr'][i]:+.2f} | "
            f"{d['psnr_seen'][i]:+.2f} | {math.exp(d['log_sharpness'][i]):.2f} |"
        )
    pct = round(100 * confidence)
    lines += ["", f"| pooled over walks ({pct}% t-interval) | mean | low | high | walks |"]
    lines.append("|---|---|---|---|---|")
    for m, label in (("psnr", "Δ PSNR"), ("psnr_seen", "Δ PSNR @ start's pixels")):
        mean, lo, hi, n = mean_ci(d[m], confidence)
        lines.append(f"| {label} | {mean:+.3f} | {lo:+.3f} | {hi:+.3f} | {n} |")
    mean, lo, hi, n = mean_ci(d["log_sharpness"], confidence)
    lines.append(
        f"| sharpness B / A | {math.exp(mean):.3f} | {math.exp(lo):.3f} | {math.exp(hi):.3f} "
        f"| {n} |"
    )
    better = sum(x > 0 for x in d["psnr"])
    lines += ["", f"B is higher in PSNR on {better} of {len(walks)} walks."]
    if kid is not None:
        lines.append(
            f"KID B - A on the same {kid['n']} frames: {kid['delta']:+.4f} (p = {kid['p']:.3f}, "
            "two-sided paired permutation test; below 0: B nearer the truth)."
        )
    return "\n".join(lines)
