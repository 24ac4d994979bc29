"""Write a synthetic dataset: procedural worlds walked by revisiting cameras, with depth.

    python datasets/synthetic.py --out data/synthetic --episodes 64 --frames 96 --size 64

Episode i uses seed ``--seed + i`` (world kind and trajectory kind are picked from the seed)
and goes to ``OUT/ep_<seed>``; ``OUT/manifest.jsonl`` lists them. The split rule is
deterministic: the last ``round(episodes * val_fraction)`` episodes (at least one when the
fraction is positive and there are two or more episodes) are "val", the rest "train".
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from worldmem.data.episode import write_episode, write_manifest
from worldmem.data.synthetic import generate_episode


def num_val(episodes: int, val_fraction: float) -> int:
    """How many of ``episodes`` go to the validation split."""
    if val_fraction <= 0 or episodes < 2:
        return 0
    return min(episodes - 1, max(1, round(episodes * val_fraction)))


def _make_one(job: tuple[str, int, int, int, str, int]) -> dict:
    out, seed, frames, size, split, threads = job
    if threads:
        torch.set_num_threads(threads)
    ep = generate_episode(seed, frames, image_size=size)
    name = f"ep_{seed:06d}"
    write_episode(Path(out) / name, ep.rgb, ep.c2w, ep.K, ep.caption, depth=ep.depth)
    return dict(
        path=name,
        split=split,
        num_frames=frames,
        caption=ep.caption,
        seed=seed,
        world_kind=ep.world_kind,
        traj_kind=ep.traj_kind,
    )


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--frames", type=int, default=96, help="frames per episode")
    p.add_argument("--size", type=int, default=64, help="frame height and width in pixels")
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--workers", type=int, default=1, help="processes (1 = in this process)")
    a = p.parse_args(argv)
    if a.episodes < 1 or a.frames < 2 or a.size < 2 or a.size % 2:
        p.error(
            f"need --episodes >= 1, --frames >= 2 and an even --size >= 2; got "
            f"{a.episodes}, {a.frames}, {a.size}"
        )
    if not 0 <= a.val_fraction < 1:
        p.error(f"--val-fraction must be in [0, 1), got {a.val_fraction}")
    if a.workers < 1:
        p.error(f"--workers must be >= 1, got {a.workers}")

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    n_val = num_val(a.episodes, a.val_fraction)
    threads = 1 if a.workers > 1 else 0
    jobs = [
        (
            str(out),
            a.seed + i,
            a.frames,
            a.size,
            "val" if i >= a.episodes - n_val else "train",
            threads,
        )
        for i in range(a.episodes)
    ]
    t0 = time.perf_counter()
    if a.workers > 1:
        with ProcessPoolExecutor(a.workers) as pool:
            entries = list(pool.map(_make_one, jobs))
    else:
        entries = [_make_one(j) for j in jobs]
    write_manifest(out, entries)
    dt = time.perf_counter() - t0

    frames = a.episodes * a.frames
    splits = Counter(e["split"] for e in entries)
    worlds = Counter(e["world_kind"] for e in entries)
    trajs = Counter(e["traj_kind"] for e in entries)
    print(f"wrote {a.episodes} episodes ({frames} frames, {a.size}x{a.size}) to {out}")
    print(f"  splits: {dict(splits)}")
    print(f"  worlds: {dict(worlds)}")
    print(f"  trajectories: {dict(trajs)}")
    print(f"  {dt:.1f} s, {frames / dt:.0f} frames/s including encoding")
    print(f"  e.g. {entries[0]['path']}: {entries[0]['caption']}")
    return entries


if __name__ == "__main__":
    main(sys.argv[1:])
