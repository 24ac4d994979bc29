"""Mine revisits in a dataset: chunks whose view was already seen long before.

For every episode in ``<root>/manifest.jsonl`` and every target chunk start, finds the earlier
frames (at least ``--min-gap`` frames before the chunk) that see at least ``--min-overlap`` of
the chunk's frusta (``worldmem.data.revisits.find_revisits``; depth-aware when the episode has
depth). Writes ``<root>/revisits.jsonl`` (one line per episode), prints statistics and saves
overlap and gap histograms to ``<root>/revisits_stats.png``.

    python datasets/mine_revisits.py --root data/synthetic --min-overlap 0.5 --min-gap 12 --chunk 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from worldmem.data.episode import Episode, EpisodeError, episode_folder, read_manifest
from worldmem.data.revisits import find_revisits, write_revisit_index


def save_histograms(path: Path, overlaps: list[float], gaps: list[int], title: str) -> None:
    """Two histograms (best overlap, frame gap to the best source) in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].hist(overlaps, bins=20, range=(0, 1), color="tab:blue")
    axes[0].set_xlabel("overlap with the best earlier frame")
    axes[0].set_ylabel("revisiting chunks")
    axes[1].hist(gaps, bins=30, color="tab:orange")
    axes[1].set_xlabel("frames back to the best earlier frame")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, required=True, help="dataset root with manifest.jsonl")
    p.add_argument("--min-overlap", type=float, default=0.5, help="overlap threshold (default 0.5)")
    p.add_argument("--min-gap", type=int, default=12, help="frames between source and chunk (12)")
    p.add_argument("--chunk", type=int, default=2, help="frames per target chunk (default 2)")
    p.add_argument("--stride", type=int, default=1, help="test every k-th chunk start (default 1)")
    p.add_argument("--samples", type=int, default=256, help="frustum samples per frame (256)")
    p.add_argument("--near", type=float, default=0.1, help="frustum near plane without depth")
    p.add_argument("--far", type=float, default=10.0, help="frustum far plane without depth")
    p.add_argument("--no-depth", action="store_true", help="ignore depth even when present")
    p.add_argument("--skip-bad", action="store_true", help="report broken episodes and go on")
    p.add_argument("--plot", type=Path, default=None, help="histogram PNG path")
    args = p.parse_args(argv)
    if not 0 < args.min_overlap <= 1:
        p.error(f"--min-overlap must be in (0, 1], got {args.min_overlap}")
    if args.min_gap < 1 or args.chunk < 1 or args.stride < 1 or args.samples < 1:
        p.error("--min-gap, --chunk, --stride and --samples must be >= 1")
    try:
        entries = read_manifest(args.root)
    except ValueError as e:
        p.error(str(e))

    rows, overlaps, gaps = [], [], []
    n_chunks = n_bad = 0
    t0 = time.perf_counter()
    for entry in entries:
        try:
            ep = Episode.open(episode_folder(args.root, entry["path"], str(args.root)))
        except EpisodeError as e:
            if not args.skip_bad:
                raise
            print(f"skipping: {e}", file=sys.stderr)
            n_bad += 1
            continue
        use_depth = ep.has_depth and not args.no_depth
        depth = ep.read_depth(range(ep.num_frames))[:, 0] if use_depth else None
        revisits = find_revisits(
            ep.c2w,
            ep.K,
            ep.height,
            ep.width,
            chunk_frames=args.chunk,
            min_gap_frames=args.min_gap,
            min_overlap=args.min_overlap,
            depth=depth,
            stride_frames=args.stride,
            num_samples=args.samples,
            near=args.near,
            far=args.far,
        )
        n_chunks += len(range(args.min_gap, ep.num_frames - args.chunk + 1, args.stride))
        rows.append(
            dict(
                path=entry["path"],
                num_frames=ep.num_frames,
                chunk_frames=args.chunk,
                min_gap_frames=args.min_gap,
                min_overlap=args.min_overlap,
                depth_aware=use_depth,
                revisits=revisits,
            )
        )
        overlaps += [r.overlap for r in revisits]
        gaps += [r.target_start - r.source_frames[0] for r in revisits]
    seconds = time.perf_counter() - t0
    index = write_revisit_index(args.root, rows)

    n_rev = len(overlaps)
    with_rev = sum(1 for r in rows if r["revisits"])
    print(f"episodes            {len(rows)} ({n_bad} skipped), {with_rev} with revisits")
    print(f"candidate chunks    {n_chunks}")
    print(f"revisiting chunks   {n_rev} ({100 * n_rev / max(1, n_chunks):.1f}%)")
    if n_rev:
        o, g = np.array(overlaps), np.array(gaps)
        print(
            f"best overlap        mean {o.mean():.2f}  median {np.median(o):.2f}  min {o.min():.2f}"
        )
        print(f"gap (frames)        mean {g.mean():.1f}  median {np.median(g):.0f}  max {g.max()}")
    print(f"time                {seconds:.1f} s")
    print(f"index               {index}")
    plot = args.plot or args.root / "revisits_stats.png"
    save_histograms(
        plot,
        overlaps,
        gaps,
        f"{n_rev} revisiting chunks of {n_chunks} (chunk {args.chunk}, gap >= {args.min_gap}, "
        f"overlap >= {args.min_overlap})",
    )
    print(f"histograms          {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
