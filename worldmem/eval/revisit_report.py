"""Revisit results: the summary over episodes (mean and t-interval per protocol, horizon and
memory mode), the markdown table, the CSV files and the plots."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

from worldmem.eval.metrics import mean_ci
from worldmem.eval.revisit_cases import HORIZONS, PROTOCOLS

__all__ = ["METRICS", "summarize", "write_results"]

# metric name -> (column title, higher is better)
METRICS = {
    "psnr": ("PSNR", True),
    "ssim": ("SSIM", True),
    "lpips": ("LPIPS", False),
    "abs_rel": ("AbsRel", False),
    "delta1": ("δ<1.25", True),
}


_TITLES = {
    "gt": "gt: generated revisits vs ground truth, after ground-truth context",
    "recall": "recall (self-consistency only): generated revisits vs the model's own first visit",
}


def _primary(protocol: str) -> str:
    return "gt" if protocol == "gt" else "recall"


def _metric_names(records: list[dict]) -> list[str]:
    have = set().union(*(r.keys() for r in records)) if records else set()
    return [m for m in METRICS if m in have]


def summarize(records: list[dict], confidence: float = 0.95) -> list[dict]:
    """Per (protocol, horizon, mode): the mean over episodes of each episode's mean over its
    revisit frames (the protocol's own reference), with a t-interval over episodes.

    Returns rows: protocol, horizon, mode, episodes, gap (mean frames since first visit), and
    per metric ``<m>``, ``<m>_low``, ``<m>_high``.
    """
    metrics = _metric_names(records)
    per_episode: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r["reference"] != _primary(r["protocol"]) or r["gap"] < 0:
            continue
        key = (r["protocol"], r["horizon"], r["mode"], r["episode"])
        for m in metrics + ["gap"]:
            if m in r:
                per_episode[key][m].append(r[m])
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (p, h, mode, _), vals in per_episode.items():
        for m, v in vals.items():
            finite = [x for x in v if not math.isnan(x)]
            groups[(p, h, mode)][m].append(sum(finite) / len(finite) if finite else math.nan)
    order = {n: i for i, n in enumerate(PROTOCOLS + HORIZONS)}
    rows = []
    for (p, h, mode), vals in sorted(
        groups.items(), key=lambda kv: (order.get(kv[0][0], 9), order.get(kv[0][1], 9))
    ):
        row = {"protocol": p, "horizon": h, "mode": mode, "episodes": len(vals["gap"])}
        row["gap"] = sum(vals["gap"]) / len(vals["gap"])
        for m in metrics:
            mean, lo, hi, _ = mean_ci(vals.get(m, []), confidence)
            row[m], row[f"{m}_low"], row[f"{m}_high"] = mean, lo, hi
        rows.append(row)
    return rows


def _fmt(mean: float, lo: float, hi: float) -> str:
    if math.isnan(mean):
        return "–"
    if math.isnan(lo):
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {(hi - lo) / 2:.3f}"


def _markdown(rows: list[dict], metrics: list[str]) -> str:
    head = ["protocol", "horizon", "gap (frames)", "memory", "episodes"] + [
        f"{METRICS[m][0]} {'↑' if METRICS[m][1] else '↓'}" for m in metrics
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["protocol"], r["horizon"], f"{r['gap']:.1f}", r["mode"], str(r["episodes"])]
        cells += [_fmt(r[m], r[f"{m}_low"], r[f"{m}_high"]) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(
    records: list[dict], out_dir: str | Path, confidence: float = 0.95, note: str = ""
) -> dict[str, Path]:
    """Write ``summary.md`` (mean ± half-width of the ``confidence`` t-interval over
    episodes), ``summary.csv`` (one row per protocol, horizon, memory mode and metric),
    ``frames.csv`` (every per-frame record) and plots ``revisit_<protocol>.png`` (metrics vs
    frames since the first visit, one line per memory mode) and ``path_<protocol>.png``
    (metrics along the path). Returns the paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = _metric_names(records)
    rows = summarize(records, confidence)
    paths = {}
    md = (
        f"# Revisit consistency\n\n{note}Mean over episodes ± half-width of the "
        f"{confidence:.0%} t-interval. `gt`: generated revisits vs ground truth after "
        "ground-truth context; `recall`: generated revisits vs the model's own first visit "
        "(self-consistency only: noise or a flat image can score well here; the `walk` "
        "protocol compares every frame with the truth).\n\n" + _markdown(rows, metrics)
    )
    paths["summary.md"] = out / "summary.md"
    paths["summary.md"].write_text(md)
    paths["summary.csv"] = out / "summary.csv"
    with open(paths["summary.csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "protocol",
                "horizon",
                "mode",
                "metric",
                "mean",
                "ci_low",
                "ci_high",
                "episodes",
                "gap_frames",
            ]
        )
        for r in rows:
            for m in metrics:
                w.writerow(
                    [
                        r["protocol"],
                        r["horizon"],
                        r["mode"],
                        m,
                        r[m],
                        r[f"{m}_low"],
                        r[f"{m}_high"],
                        r["episodes"],
                        r["gap"],
                    ]
                )
    paths["frames.csv"] = out / "frames.csv"
    cols = ["episode", "protocol", "horizon", "mode", "reference", "frame", "gap"] + metrics
    with open(paths["frames.csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    paths.update(_plot(records, out, metrics, confidence))
    return paths


def _mean_by(records: list[dict], x_key: str, metric: str, confidence: float):
    """x -> (mean, low, high) over episodes (each episode's mean at that x)."""
    per: dict[float, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if metric in r and not math.isnan(r[metric]):
            per[r[x_key]][r["episode"]].append(r[metric])
    xs = sorted(per)
    stats = [mean_ci([sum(v) / len(v) for v in per[x].values()], confidence) for x in xs]
    return xs, stats


def _plot(records: list[dict], out: Path, metrics: list[str], confidence: float) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    paths = {}
    modes = list(dict.fromkeys(r["mode"] for r in records))
    for protocol in dict.fromkeys(r["protocol"] for r in records):
        mine = [r for r in records if r["protocol"] == protocol]
        # metrics vs frames since the first visit, at revisits
        rev = [r for r in mine if r["reference"] == _primary(protocol) and r["gap"] >= 0]
        fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4), squeeze=False)
        for ax, m in zip(axes[0], metrics):
            for mode in modes:
                xs, st = _mean_by([r for r in rev if r["mode"] == mode], "gap", m, confidence)
                if not xs:
                    continue
                mean = [s[0] for s in st]
                lo = [s[1] if not math.isnan(s[1]) else s[0] for s in st]
                hi = [s[2] if not math.isnan(s[2]) else s[0] for s in st]
                ax.plot(xs, mean, marker="o", label=mode)
                ax.fill_between(xs, lo, hi, alpha=0.15)
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.set_xlabel("frames since first visit")
            title, up = METRICS[m]
            ax.set_title(f"{title} ({'higher' if up else 'lower'} is better)")
            ax.grid(alpha=0.3)
        axes[0][0].legend(title="memory")
        fig.suptitle(_TITLES.get(protocol, protocol))
        fig.tight_layout()
        name = f"revisit_{protocol}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        paths[name] = out / name
        # metrics along the path (against ground truth when there is one)
        ref = "gt" if any(r["reference"] == "gt" for r in mine) else _primary(protocol)
        horizons = [h for h in HORIZONS if any(r["horizon"] == h for r in mine)]
        shown = [m for m in ("psnr", "abs_rel") if m in metrics]
        fig, axes = plt.subplots(
            len(horizons), len(shown), figsize=(5 * len(shown), 3 * len(horizons)), squeeze=False
        )
        for row, h in zip(axes, horizons):
            for ax, m in zip(row, shown):
                for mode in modes:
                    sel = [
                        r
                        for r in mine
                        if r["reference"] == ref and r["horizon"] == h and r["mode"] == mode
                    ]
                    xs, st = _mean_by(sel, "frame", m, confidence)
                    if xs:
                        ax.plot(xs, [s[0] for s in st], marker=".", label=mode)
                ax.set_xlabel("frame")
                ax.set_title(f"{h} horizon: {METRICS[m][0]} vs {ref}")
                ax.grid(alpha=0.3)
        axes[0][0].legend(title="memory")
        fig.tight_layout()
        name = f"path_{protocol}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        paths[name] = out / name
    return paths
