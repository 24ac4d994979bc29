"""Generate long, consistent videos along camera trajectories (or explore interactively).

    python sample.py                                   # bundled tiny model, default revisit walk
    python sample.py --config configs/sample/default.yaml sample.steps=8
    python sample.py sample.jobs=jobs.jsonl            # one job per line (see README)
    torchrun --nproc-per-node 2 sample.py sample.jobs=jobs.jsonl   # jobs sharded by rank
    python sample.py --interactive [--host 0.0.0.0]    # the web page

Each job writes ``<out_dir>/<name>/``: video.mp4, side_by_side.mp4 (generated | memory
render | depth), cameras.json, memory.ply and job.json (config, seed, timing). Every job is
checked (trajectory, start image, checkpoint, output folder) before any generation starts; a
job that fails during generation is reported and the others still run. A job's files are
written to a temporary folder and renamed into place when complete; an existing job folder is
an error unless ``sample.overwrite=true``.
"""

from __future__ import annotations

import argparse
import os
import sys

from worldmem.config import ConfigError, SampleRootConfig, load_config


def parse_args(argv: list[str] | None = None) -> tuple[SampleRootConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", action="append", default=[], help="YAML preset (repeatable)")
    p.add_argument("--interactive", action="store_true", help="serve the exploration web page")
    p.add_argument("--host", default=None, help="interactive: address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="interactive: port")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. sample.steps=8")
    a = p.parse_args(argv)
    overrides = list(a.overrides)
    if a.host is not None:
        overrides.append(f"server.host={a.host}")
    if a.port is not None:
        overrides.append(f"server.port={a.port}")
    return load_config(SampleRootConfig, a.config, overrides), a


def main(cfg: SampleRootConfig, interactive: bool = False) -> int:
    """Run the batch jobs (or the server). Returns the process exit code."""
    from worldmem.sampling import NoCheckpointError, run_jobs

    if interactive:
        from worldmem.interactive.server import serve

        serve(cfg)
        return 0
    try:
        rank = int(os.environ.get("RANK", 0))
        world = int(os.environ.get("WORLD_SIZE", 1))
        results = run_jobs(cfg, rank=rank, world_size=world)
    except NoCheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    try:
        cfg, args = parse_args()
    except ConfigError as e:
        sys.exit(f"config error: {e}")
    try:
        sys.exit(main(cfg, interactive=args.interactive))
    except (ValueError, OSError) as e:  # OSError: a file that exists, a folder not writable
        sys.exit(f"error: {e}")
