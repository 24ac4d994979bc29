"""How many frames per chunk: speed per chunk size, the sizes run in turn in one process.

    python benchmarks/chunk_frames.py [--checkpoint checkpoints/worldmem-tiny]
        [--chunks 2,3,4,6] [--frames 64] [--rounds 4] [--threads 1]

Each round starts the same held-out world (seed 100000, its loop walk) from its true first
frame and depth, and generates ``--frames`` frames along the walk at every chunk size in turn,
so a slow spell of the machine falls on each; the table gives each size's median frames/s
and its ratio to the first size's. A chunk's memory frames (recent frames and keyframes) pass
through the model once for all its targets, so a longer chunk costs less per frame. Quality
per size is the walk protocol's: ``python -m worldmem.eval walk --checkpoint <dir>
--chunk-frames N``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from worldmem.data.synthetic import make_world
from worldmem.eval.revisit import HELD_OUT_SEED
from worldmem.eval.walk import walk_case
from worldmem.pipeline import WorldPipeline
from worldmem.pipeline_checks import check_chunk_frames


def seconds_per_size(
    pipe: WorldPipeline, sizes: list[int], frames: int, rounds: int
) -> dict[int, list[float]]:
    """Seconds to generate ``frames`` frames of the walk at each chunk size, ``rounds`` times
    (the sizes in turn; one warm-up pass first)."""
    case = walk_case(
        make_world(HELD_OUT_SEED), "loop", frames + 1, HELD_OUT_SEED, pipe.size, pipe.K.cpu()
    )

    def run(size: int) -> float:
        pipe.chunk_setting = size  # what chunk_frames= sets when loading
        pipe.start(
            prompt=case.caption, image=case.rgb[0], depth=case.depth[0], c2w=case.c2w[0],
            seed=case.seed,
        )  # fmt: skip
        t0 = time.perf_counter()
        pipe.step(case.c2w[1:], case.K[1:])
        return time.perf_counter() - t0

    for size in sizes:
        run(size)
    times: dict[int, list[float]] = {s: [] for s in sizes}
    for _ in range(rounds):
        for size in sizes:
            times[size].append(run(size))
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/worldmem-tiny")
    p.add_argument("--chunks", default="2,3,4,6", help="chunk sizes, comma separated")
    p.add_argument("--frames", type=int, default=64, help="frames generated per run")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    a = p.parse_args(argv)
    sizes = [int(s) for s in a.chunks.split(",")]
    torch.set_num_threads(a.threads)
    pipe = WorldPipeline.from_pretrained(a.checkpoint, device="cpu")
    for size in sizes:  # refused now, by name, rather than half-way through the runs
        check_chunk_frames(size, pipe.model_cfg.max_frames)
    times = seconds_per_size(pipe, sizes, a.frames, a.rounds)
    fps = {s: a.frames / statistics.median(t) for s, t in times.items()}
    print(f"\n{a.checkpoint}: {a.frames} frames per run, {a.rounds} rounds, {a.threads} thread(s)")
    print("| frames per chunk | frames/s (median) | each run (s) | x the first |")
    print("|---|---|---|---|")
    for s in sizes:
        runs = ", ".join(f"{t:.2f}" for t in times[s])
        print(f"| {s} | {fps[s]:.2f} | {runs} | {fps[s] / fps[sizes[0]]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
