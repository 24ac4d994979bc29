"""Performance report: generation speed against video length, the memories' share of it,
the spatial memory's size, and training throughput.

``python -m worldmem.eval perf --checkpoint checkpoints/worldmem-tiny --frames 1000`` walks
a seeded random key sequence (forward, turns, strafes) for ``frames`` frames in memory mode
``all``, timing every chunk, then prints a table and writes ``perf.md``, ``perf_chunks.csv``
and plots. The claim under test (docs/design.md): nothing in the loop grows with the length of the
video, so chunk 250 costs what chunk 10 costs.
"""

from __future__ import annotations

import csv
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "walk_keys",
    "generation_profile",
    "spatial_memory_bytes",
    "training_samples_per_s",
    "perf_summary",
    "write_perf_report",
    "PERF_PROMPT",
]

PERF_PROMPT = "a long corridor with red brick walls and a tiled floor"
WINDOW_CHUNKS = 5  # chunk times are compared as medians over chunk +- this many chunks
_BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "model.py"


def walk_keys(num_frames: int, seed: int = 0) -> list[str]:
    """A seeded exploring walk of ``num_frames`` action keys: runs of forward steps, turns and
    strafes (3-12 frames each), so the camera keeps seeing new ground."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    rng = np.random.default_rng(seed)
    moves = ("w", "w", "w", "left", "right", "a", "d")
    keys: list[str] = []
    while len(keys) < num_frames:
        keys += [moves[int(rng.integers(len(moves)))]] * int(rng.integers(3, 13))
    return keys[:num_frames]


def generation_profile(
    pipe,
    num_frames: int,
    prompt: str = PERF_PROMPT,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Generate ``num_frames`` frames (``walk_keys``) one chunk per ``step`` in memory mode
    ``all``. Returns one row per chunk: chunk, frames (generated so far), total_s,
    memory_s, model_s (``Chunk.timing``), points (spatial memory), keyframes."""
    pipe.start(prompt=prompt, seed=seed, memory="all")
    keys = walk_keys(num_frames, seed)
    T = pipe.chunk_frames
    rows = []
    t_start = time.perf_counter()
    for i in range(0, num_frames, T):
        t0 = time.perf_counter()
        chunk = pipe.step(keys[i : i + T])
        dt = time.perf_counter() - t0
        rows.append(
            {
                "chunk": len(rows),
                "frames": pipe.frame_count,
                "total_s": dt,
                "memory_s": chunk.timing.get("memory_s", float("nan")),
                "model_s": chunk.timing.get("model_s", float("nan")),
                "points": pipe.spatial.num_points,
                "keyframes": len(pipe.episodic.keyframes),
            }
        )
        if len(rows) % 50 == 0:
            log(
                f"  {pipe.frame_count} frames, {time.perf_counter() - t_start:.0f} s, "
                f"{pipe.spatial.num_points} points"
            )
    return rows


def _tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def spatial_memory_bytes(spatial) -> dict[str, int]:
    """Bytes held by a ``SpatialMemory``: ``stored`` (its ``state_dict`` tensors, what a saved
    world keeps) and ``resident`` (every tensor attribute, spare capacity and index
    included)."""
    return {
        "stored": _tensor_bytes(spatial.state_dict()),
        "resident": sum(_tensor_bytes(v) for v in vars(spatial).values()),
    }


def training_samples_per_s(model_cfg, train_steps: int = 3) -> tuple[float, str]:
    """Training samples/s of the tiny preset: from ``benchmarks/model.py``'s ``tiny_speed``
    when the repository has it, else measured here on ``model_cfg`` (AdamW, batch 8 of 2
    context + 2 keyframes + ``chunk_frames`` targets, random frames). Returns (value, how)."""
    if _BENCHMARK.is_file():
        spec = importlib.util.spec_from_file_location("worldmem_benchmark_model", _BENCHMARK)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "tiny_speed"):
            out = module.tiny_speed(train_steps, 1)
            return float(out["train_samples_s"]), "benchmarks/model.py tiny_speed (tiny preset)"
    from worldmem.diffusion import FlowMatching
    from worldmem.diffusion.dummy import dummy_world_batch
    from worldmem.models import WorldDiT, build_codec

    torch.manual_seed(0)
    model = WorldDiT.from_model_config(model_cfg).train()
    codec = build_codec(model_cfg)
    batch = dummy_world_batch(8, model_cfg.chunk_frames, 2, 2, model_cfg.image_size)
    fm = FlowMatching()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        loss = fm.training_losses(model, codec, batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(train_steps):
        step()
    return 8 * train_steps / (time.perf_counter() - t0), "measured here (checkpoint's model)"


def _window_median(rows: list[dict], center: int, key: str = "total_s") -> tuple[float, int]:
    """Median of ``key`` over chunks center +- WINDOW_CHUNKS (clipped to the run); returns
    (median, the chunk it is centred on)."""
    center = min(center, len(rows) - 1)
    lo, hi = max(0, center - WINDOW_CHUNKS), min(len(rows), center + WINDOW_CHUNKS + 1)
    return statistics.median(r[key] for r in rows[lo:hi]), center


def perf_summary(rows: list[dict], memory_bytes: dict[str, int], max_points: int) -> dict:
    """Headline numbers from ``generation_profile`` rows: frames/s, chunk 10 vs chunk 250
    (medians over +- ``WINDOW_CHUNKS`` chunks; also over the model's own ratio, whose work is
    the same at every chunk, so that a machine that slows down between the two windows does
    not read as growth), memory share early and late, bytes per point."""
    if not rows:
        raise ValueError("perf_summary: no chunks were generated")
    total = sum(r["total_s"] for r in rows)
    early, c_early = _window_median(rows, 10)
    late, c_late = _window_median(rows, 250)
    parts = {
        f"{key}_{when}": _window_median(rows, c, key)[0]
        for key in ("memory_s", "model_s")
        for when, c in (("early", c_early), ("late", c_late))
    }
    tenth = max(1, len(rows) // 10)

    def share(part: list[dict]) -> float:
        mem = sum(r["memory_s"] for r in part)
        return mem / max(1e-12, mem + sum(r["model_s"] for r in part))

    points = rows[-1]["points"]
    return {
        "frames": rows[-1]["frames"],
        "chunks": len(rows),
        "frames_per_s": rows[-1]["frames"] / total,
        "chunk_early": c_early,
        "chunk_late": c_late,
        "chunk_early_s": early,
        "chunk_late_s": late,
        "late_over_early": late / early,
        # the model does the same work at every chunk (as many memory frames and targets), so
        # its own ratio is the machine's drift between the two windows; divided out, what is
        # left is the memories' growth
        "late_over_early_drift_removed": (late / early)
        / (parts["model_s_late"] / max(1e-12, parts["model_s_early"])),
        **parts,
        "memory_share_first": share(rows[:tenth]),
        "memory_share_last": share(rows[-tenth:]),
        "points": points,
        "max_points": max_points,
        "keyframes": rows[-1]["keyframes"],
        "stored_bytes_per_point": memory_bytes["stored"] / max(1, points),
        "resident_bytes_per_point": memory_bytes["resident"] / max(1, points),
    }


def _table(s: dict, train: tuple[float, str] | None) -> str:
    lines = [
        "| measure | value |",
        "|---|---|",
        f"| frames generated (chunks) | {s['frames']} ({s['chunks']}) |",
        f"| generation frames/s (memory mode all) | {s['frames_per_s']:.2f} |",
        f"| chunk {s['chunk_early']} time (median of ±{WINDOW_CHUNKS}) | "
        f"{1000 * s['chunk_early_s']:.1f} ms |",
        f"| chunk {s['chunk_late']} time (median of ±{WINDOW_CHUNKS}) | "
        f"{1000 * s['chunk_late_s']:.1f} ms |",
        f"| chunk {s['chunk_late']} / chunk {s['chunk_early']} | {s['late_over_early']:.2f} |",
        f"| the same over the model's own ratio (the machine's drift removed) | "
        f"{s['late_over_early_drift_removed']:.2f} |",
        f"| memories: chunk {s['chunk_early']} -> {s['chunk_late']} | "
        f"{1000 * s['memory_s_early']:.1f} -> {1000 * s['memory_s_late']:.1f} ms |",
        f"| model: chunk {s['chunk_early']} -> {s['chunk_late']} | "
        f"{1000 * s['model_s_early']:.1f} -> {1000 * s['model_s_late']:.1f} ms |",
        f"| memory share of chunk time, first / last 10% | "
        f"{100 * s['memory_share_first']:.0f}% / {100 * s['memory_share_last']:.0f}% |",
        f"| spatial points stored (cap) | {s['points']} ({s['max_points']}) |",
        f"| bytes per stored point (saved state / resident) | "
        f"{s['stored_bytes_per_point']:.1f} / {s['resident_bytes_per_point']:.1f} |",
        f"| keyframes stored | {s['keyframes']} |",
    ]
    if train is not None:
        lines.append(f"| training samples/s ({train[1]}) | {train[0]:.1f} |")
    return "\n".join(lines) + "\n"


def _growth_table(rows: list[dict]) -> str:
    lines = ["| frames | points | chunk ms | memory share |", "|---|---|---|---|"]
    marks = sorted(
        {r["frames"] for r in rows if r["frames"] in (10, 50, 100, 250, 500)} | {rows[-1]["frames"]}
    )
    by_frames = {r["frames"]: i for i, r in enumerate(rows)}
    for f in marks:
        i = by_frames[f]
        r = rows[i]
        med, _ = _window_median(rows, i)
        share = r["memory_s"] / max(1e-12, r["memory_s"] + r["model_s"])
        lines.append(f"| {f} | {r['points']} | {1000 * med:.1f} | {100 * share:.0f}% |")
    return "\n".join(lines) + "\n"


def write_perf_report(
    rows: list[dict],
    summary: dict,
    out_dir: str | Path,
    train: tuple[float, str] | None = None,
    header: str = "",
) -> dict[str, Path]:
    """Write ``perf.md`` (the tables), ``perf_chunks.csv`` (one row per chunk) and plots
    ``perf_chunks.png`` (chunk time and its memory/model parts vs frames generated) and
    ``perf_memory.png`` (points stored and memory share vs frames). Returns paths by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"perf.md": out / "perf.md", "perf_chunks.csv": out / "perf_chunks.csv"}
    paths["perf.md"].write_text(
        f"# Performance\n\n{header}" + _table(summary, train) + "\n" + _growth_table(rows)
    )
    with open(paths["perf_chunks.csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    frames = [r["frames"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("total_s", "chunk"), ("model_s", "model"), ("memory_s", "memories")):
        ax.plot(frames, [1000 * r[key] for r in rows], lw=0.8, label=label)
    ax.set_xlabel("frames generated")
    ax.set_ylabel("ms per chunk")
    ax.set_title("time per chunk vs video length")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths["perf_chunks.png"] = out / "perf_chunks.png"
    fig.savefig(paths["perf_chunks.png"], dpi=100)
    plt.close(fig)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.plot(frames, [r["points"] for r in rows])
    a1.axhline(summary["max_points"], ls="--", c="grey", label="max_points")
    a1.set_xlabel("frames generated")
    a1.set_ylabel("spatial points stored")
    a1.legend()
    a1.grid(alpha=0.3)
    share = [100 * r["memory_s"] / max(1e-12, r["memory_s"] + r["model_s"]) for r in rows]
    a2.plot(frames, share, lw=0.8)
    a2.set_xlabel("frames generated")
    a2.set_ylabel("memory share of chunk time (%)")
    a2.grid(alpha=0.3)
    fig.tight_layout()
    paths["perf_memory.png"] = out / "perf_memory.png"
    fig.savefig(paths["perf_memory.png"], dpi=100)
    plt.close(fig)
    return paths
