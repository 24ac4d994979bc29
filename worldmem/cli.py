"""The worldmem command line.

    worldmem explore [--config FILE] [--host H] [--port P] [key=value ...]

explore: serve the interactive exploration page (the same as
`python sample.py --interactive`). The key=value overrides are those of sample.py, e.g.
sample.checkpoint=checkpoints/worldmem-tiny or server.max_sessions=8.
"""

from __future__ import annotations

import argparse
import sys

from worldmem.config import ConfigError, SampleRootConfig, load_config

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="worldmem", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="command")
    ex = sub.add_parser(
        "explore",
        help="serve the interactive exploration page",
        description="Serve the interactive exploration page (one model, many explorers).",
    )
    ex.add_argument("--config", action="append", default=[], help="YAML preset (repeatable)")
    ex.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    ex.add_argument("--port", type=int, default=None, help="port (default 8765)")
    ex.add_argument("overrides", nargs="*", help="key=value overrides, e.g. sample.steps=2")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    overrides = list(args.overrides)
    if args.host is not None:
        overrides.append(f"server.host={args.host}")
    if args.port is not None:
        overrides.append(f"server.port={args.port}")
    try:
        cfg = load_config(SampleRootConfig, args.config, overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    from worldmem.interactive.server import serve

    try:
        serve(cfg)
    except (ValueError, OSError) as e:  # OSError: a port in use, a file that is not there
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
