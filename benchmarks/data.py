"""Training-data throughput: WorldDataModule samples/s with 0 and 2 workers.

    python benchmarks/data.py [--root data/synthetic] [--batches 6]

Without ``--root`` it first writes a small synthetic dataset to a temporary folder. A sample
is one target chunk with its working-memory frames, retrieved keyframes and the spatial memory
fused from the earlier frames and rendered at the target cameras (``configs/train/tiny.yaml``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from worldmem.config import TrainRootConfig, load_config

REPO = Path(__file__).resolve().parents[1]


def samples_per_s(root: str, workers: int, batches: int) -> float:
    cfg = load_config(
        TrainRootConfig,
        [REPO / "configs/train/tiny.yaml"],
        [f"data.root={root}", f"data.num_workers={workers}"],
    )
    from worldmem.data.dataset import WorldDataModule

    dm = WorldDataModule(cfg.data, cfg.memory)
    dm.setup()
    it = iter(dm.train_dataloader())
    next(it)  # worker start-up and first decodes are not counted
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * cfg.data.batch_size / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--root", default=None, help="dataset root (default: make 12 episodes)")
    p.add_argument("--batches", type=int, default=6, help="batches timed per setting")
    a = p.parse_args(argv)
    root = a.root
    if root is None:
        root = tempfile.mkdtemp(prefix="worldmem_bench_data_")
        sys.path.insert(0, str(REPO / "datasets"))
        import synthetic as make_synthetic

        make_synthetic.main(["--out", root, "--episodes", "12", "--frames", "96"])
    table = Table(title=f"WorldDataModule throughput ({root})")
    table.add_column("workers")
    table.add_column("samples/s")
    table.add_column("vs 0 workers")
    base = None
    for w in (0, 2):
        sps = samples_per_s(root, w, a.batches)
        base = base or sps
        table.add_row(str(w), f"{sps:.1f}", f"{sps / base:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
