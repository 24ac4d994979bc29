"""Frames per second of the synthetic world renderer.

    python benchmarks/synthetic.py [--frames 96] [--threads 1] [--repeats 2]

Renders a 96-frame walk in one world of each kind (room, corridor, plaza) at 64, 128 and
256 px, with and without shadow rays, and prints frames/s (all three worlds together) and the
cost of shadows as a ratio against the no-shadow run in the same process. frames per
CPU-second (process time) is shown too: on a machine shared with other jobs it is the
steadier number (with one thread, what one free core would do). Also times the trajectory
builders and a whole ``generate_episode``.
"""

from __future__ import annotations

import argparse
import time

import torch

from worldmem.data.synthetic import (
    TRAJECTORY_KINDS,
    WORLD_KINDS,
    generate_episode,
    make_trajectory,
    make_world,
)
from worldmem.geometry import intrinsics_from_fov


def _best_of(fn, repeats: int) -> tuple[float, float]:
    """Best (wall seconds, process CPU seconds) over ``repeats`` runs."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--frames", type=int, default=96)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    n = a.frames
    worlds = [make_world(7, k) for k in WORLD_KINDS]
    paths = [make_trajectory(w, "random_return", n, 7) for w in worlds]
    prims = ", ".join(f"{w.kind} {w.num_primitives}" for w in worlds)
    print(
        f"torch {torch.__version__}, {a.threads} threads, {n} frames per world; primitives: {prims}"
    )
    head = f"{'size':>6} {'shadows':>8} {'frames/s':>10} {'ms/frame':>9} {'frames/cpu-s':>13}"
    print(f"{head} {'cost of shadows':>16}")
    for size in (64, 128, 256):
        K = intrinsics_from_fov(75.0, size, size).expand(n, 3, 3)
        fps = {}
        for shadows in (False, True):

            def run(shadows=shadows, K=K, size=size):
                for w, c2w in zip(worlds, paths):
                    w.render(c2w, K, size, size, shadows=shadows)

            run() if size == 64 and not shadows else None  # warm-up
            wall, cpu = _best_of(run, a.repeats)
            fps[shadows] = 3 * n / wall
            ratio = fps[False] / fps[shadows]
            print(
                f"{size:>6} {str(shadows):>8} {fps[shadows]:>10.0f} {1000 / fps[shadows]:>9.2f}"
                f" {3 * n / cpu:>13.0f} {ratio:>15.2f}x"
            )
    print()
    print(f"{'trajectory':>14} {'ms (96 frames, 3 worlds)':>26}")
    for kind in TRAJECTORY_KINDS:
        dt, _ = _best_of(lambda kind=kind: [make_trajectory(w, kind, n, 3) for w in worlds], 2)
        print(f"{kind:>14} {1000 * dt:>26.1f}")
    dt, _ = _best_of(lambda: generate_episode(3, n, image_size=64), 2)
    print(f"\ngenerate_episode({n} frames, 64 px): {dt * 1000:.0f} ms = {n / dt:.0f} frames/s")


if __name__ == "__main__":
    main()
