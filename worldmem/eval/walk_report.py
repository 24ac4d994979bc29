"""Tables, CSV files and figures of the walk protocol and its studies.

The headline table has one row per model variant and baseline (``walk.ROWS``): PSNR, SSIM,
the sharpness ratio (geometric mean over frames of generated / true high-frequency energy),
KID and FID on EfficientNet-Lite0 features (frames pooled over all walks), the same PSNR/SSIM
at start revisits, and self-recall PSNR (consistency only) with the sharpness ratio at those
frames. A model row that does not beat ``warp`` (PSNR over all frames or at start revisits)
or whose sharpness ratio is outside ``SHARPNESS_BOUNDS`` is marked.
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from worldmem.eval.metrics import SHARPNESS_BOUNDS, geometric_mean, mean_ci
from worldmem.eval.walk import MODEL_ROWS, REFERENCE_ROWS, ROWS, WALK_KINDS

__all__ = [
    "CONTACT_COLUMNS",
    "summarize_walk",
    "verdict",
    "walk_markdown",
    "depth_markdown",
    "write_csv",
    "plot_walk_psnr",
    "plot_drift",
    "contact_sheet",
    "image_grid",
]


def _episode_means(records: list[dict], key: str, where=lambda r: True) -> list[float]:
    per: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if where(r) and not math.isnan(r[key]):
            per[r["episode"]].append(r[key])
    return [sum(v) / len(v) for v in per.values()]


def summarize_walk(records: list[dict], kind: str | None = None, confidence: float = 0.95):
    """Rows (one per ``walk.ROWS`` entry present) over the walks of ``kind`` (None: all
    kinds): psnr (mean over episodes of each episode's mean), psnr_ci (half-width of the
    t-interval over episodes), ssim, sharpness (geometric mean over frames; sharp_held /
    sharp_new over the pixels the model's memory held / did not), depth_abs_rel (mean over
    episodes) and depth_scale (median over frames) of a model row's depth, psnr_rev /
    ssim_rev / n_rev at start revisits, psnr_seen (there, over the pixels the start saw),
    recall_psnr / n_recall / sharp_recall at self-recall frames, and recall_truth: the true
    frames' own self-recall over the same frames (NaN in records without it)."""
    sel = [r for r in records if kind is None or r["kind"] == kind]
    out = []
    for row in ROWS:
        rs = [r for r in sel if r["row"] == row]
        if not rs:
            continue
        m, lo, hi, _ = mean_ci(_episode_means(rs, "psnr"), confidence)
        rev = [r for r in rs if r["start_revisit"]]
        rec = [r for r in rs if not math.isnan(r["recall_psnr"])]
        out.append(
            {
                "row": row,
                "kind": kind or "all",
                "frames": len(rs),
                "psnr": m,
                "psnr_ci": (hi - lo) / 2 if not math.isnan(lo) else math.nan,
                "ssim": _mean(_episode_means(rs, "ssim")),
                "sharpness": geometric_mean([r["sharpness"] for r in rs]),
                "sharp_held": geometric_mean([r.get("sharpness_held", math.nan) for r in rs]),
                "sharp_new": geometric_mean([r.get("sharpness_new", math.nan) for r in rs]),
                "psnr_rev": _mean(_episode_means(rev, "psnr")),
                "ssim_rev": _mean(_episode_means(rev, "ssim")),
                "psnr_seen": _mean(_episode_means(rev, "psnr_seen")),
                "n_rev": len(rev),
                "recall_psnr": _mean(_episode_means(rec, "recall_psnr")),
                "recall_truth": _mean(_episode_means(rec, "recall_truth")),
                "n_recall": len(rec),
                "sharp_recall": geometric_mean([r["sharpness"] for r in rec]),
                "depth_abs_rel": _mean(_episode_means(rs, "depth_abs_rel")),
                "depth_scale": _median([r.get("depth_scale", math.nan) for r in rs]),
            }
        )
    return out


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else math.nan


def _median(v: list[float]) -> float:
    v = [x for x in v if not math.isnan(x)]
    return float(np.median(v)) if v else math.nan


def depth_markdown(records: list[dict], kinds: list[str]) -> str:
    """The model rows' generated depth against the true depth, per walk kind: AbsRel (mean
    over worlds) and the median of generated / true depth (``metrics.depth_scale``, median
    over frames; 1 is right) over the first and the last quarter of each walk's frames."""
    rows = [row for row in MODEL_ROWS if any(r["row"] == row for r in records)]
    head = ["row", *kinds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row]
        for kind in kinds:
            rs = [r for r in records if r["row"] == row and r["kind"] == kind]
            if not rs:
                cells.append("–")
                continue
            last = max(r["frame"] for r in rs)
            first_q = [r["depth_scale"] for r in rs if r["frame"] <= last / 4]
            last_q = [r["depth_scale"] for r in rs if r["frame"] > 3 * last / 4]
            rel = _mean(_episode_means(rs, "depth_abs_rel"))
            cells.append(f"{_f(rel)} ({_f(_median(first_q))} -> {_f(_median(last_q))})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def verdict(row: dict, warp: dict | None) -> str:
    """Marks for a model row: ``✗ below warp`` (PSNR over all frames or at start revisits not
    above the warp baseline's), ``✗ blur`` / ``✗ noise`` (sharpness ratio below / above
    ``SHARPNESS_BOUNDS``); ``ok`` when none apply. Baseline rows get ``baseline``, the
    reference rows (which use the truth at the target) ``reference``."""
    if row["row"] in REFERENCE_ROWS:
        return "reference"
    if row["row"] not in MODEL_ROWS:
        return "baseline"
    marks = []
    if warp is not None:
        below = not row["psnr"] > warp["psnr"]
        if not math.isnan(warp["psnr_rev"]) and not row["psnr_rev"] > warp["psnr_rev"]:
            below = True
        if below:
            marks.append("✗ below warp")
    lo, hi = SHARPNESS_BOUNDS
    if row["sharpness"] < lo:
        marks.append("✗ blur")
    elif not row["sharpness"] <= hi:
        marks.append("✗ noise")
    return ", ".join(marks) or "ok"


def _f(x: float, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def walk_markdown(rows: list[dict], dist: dict[str, dict] | None = None) -> str:
    """The walk table as markdown. ``dist``: row -> {"kid", "kid_std", "fid"} (optional)."""
    warp = next((r for r in rows if r["row"] == "warp"), None)
    head = ["row", "PSNR ↑", "SSIM ↑", "sharpness (=1)", "… where memory held / had holes"]
    if dist:
        head += ["KID ↓", "FID ↓"]
    head += ["PSNR @ start revisits ↑", "SSIM @ start revisits ↑", "… over pixels the start saw ↑"]
    head += ["self-recall PSNR (consistency only)", "sharpness @ self-recall", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        p = _f(r["psnr"]) + (f" ± {_f(r['psnr_ci'])}" if not math.isnan(r["psnr_ci"]) else "")
        cells = [r["row"], p, _f(r["ssim"], 3), _f(r["sharpness"])]
        cells.append(f"{_f(r.get('sharp_held', math.nan))} / {_f(r.get('sharp_new', math.nan))}")
        if dist:
            d = dist.get(r["row"], {})
            cells += [_f(d.get("kid", math.nan), 4), _f(d.get("fid", math.nan), 1)]
        cells += [f"{_f(r['psnr_rev'])} (n={r['n_rev']})", _f(r["ssim_rev"], 3)]
        cells.append(_f(r.get("psnr_seen", math.nan)))
        cells += [f"{_f(r['recall_psnr'])} (n={r['n_recall']})", _f(r["sharp_recall"])]
        cells.append(verdict(r, warp))
        lines.append("| " + " | ".join(cells) + " |")
    truth = next(
        (r["recall_truth"] for r in rows if not math.isnan(r.get("recall_truth", math.nan))), None
    )
    if truth is not None:
        lines.append(
            f"\nThe true frames' own self-recall over the same frames: {truth:.2f} dB (resampling "
            "a textured surface from one view into another costs even the truth this much: a "
            "row above it is smoother than the truth, not more consistent)."
        )
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Write dict rows (union of keys, in first-seen order) to ``path``."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_walk_psnr(records: list[dict], path: Path) -> Path:
    """PSNR along each walk kind (mean over episodes per frame), one line per row, start
    revisit frames shaded."""
    plt = _plt()
    kinds = [k for k in WALK_KINDS if any(r["kind"] == k for r in records)]
    fig, axes = plt.subplots(len(kinds), 1, figsize=(9, 2.6 * len(kinds)), squeeze=False)
    for ax, kind in zip(axes[:, 0], kinds):
        mine = [r for r in records if r["kind"] == kind]
        for row in ROWS:
            per: dict[int, list[float]] = defaultdict(list)
            for r in mine:
                if r["row"] == row:
                    per[r["frame"]].append(r["psnr"])
            if per:
                xs = sorted(per)
                style = "-" if row in MODEL_ROWS else "--"
                ax.plot(xs, [np.mean(per[x]) for x in xs], style, label=row, lw=1.2)
        rev = sorted({r["frame"] for r in mine if r["start_revisit"]})
        for x in rev:
            ax.axvspan(x - 0.5, x + 0.5, color="0.9", lw=0, zorder=0)
        ax.set_title(f"{kind}: PSNR vs truth (shaded: start revisits)")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("frame")
    axes[0, 0].legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_drift(rounds: list[dict], path: Path) -> Path:
    """Drift: PSNR vs truth per round (model and warp), and vs the model's own round 0."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = [r["round"] for r in rounds]
    ax.plot(x, [r["psnr"] for r in rounds], "o-", label="model vs truth")
    ax.plot(x, [r["warp_psnr"] for r in rounds], "s--", label="warp baseline vs truth")
    ax.plot(x, [r["self_psnr"] for r in rounds], "^:", label="model vs own round 0 (consistency)")
    ax.set_xlabel("round of the circuit")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("drift: the same circuit, again and again")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def image_grid(
    rows: list[tuple[str, Tensor]], path: Path, titles: list[str] | None = None, scale: int = 2
) -> Path:
    """A labelled grid: each row a (label, images ``(n, 3, S, S)``) pair; ``titles`` above the
    columns."""
    plt = _plt()
    n = max(len(x) for _, x in rows)
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.1 * scale * n, 1.1 * scale * len(rows) + 0.4), squeeze=False
    )
    for i, (label, imgs) in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(imgs):
                ax.imshow(imgs[j].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            if i == 0 and titles is not None and j < len(titles):
                ax.set_title(textwrap.fill(titles[j], 30), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


CONTACT_COLUMNS = 8  # frames a walk's contact sheet shows, spread along it


def contact_sheet(
    frames: dict[str, Tensor], kept: Tensor, path: Path, columns: int = CONTACT_COLUMNS
) -> Path:
    """truth | generated (model) | memory render | warp baseline at ``columns`` frames spread
    along one walk. frames: row -> ``(len(kept), 3, S, S)`` (``WalkResult.frames``)."""
    pick = torch.linspace(0, len(kept) - 1, min(columns, len(kept))).round().long()
    rows = [
        (name, frames[key][pick])
        for name, key in (
            ("truth", "truth"),
            ("generated", "model"),
            ("memory render", "memory"),
            ("warp", "warp"),
        )
        if key in frames
    ]
    return image_grid(rows, path, [f"frame {int(kept[i])}" for i in pick])
