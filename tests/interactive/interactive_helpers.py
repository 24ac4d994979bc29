"""A live explorer server on loopback for the interactive tests."""

from __future__ import annotations

import socket
from contextlib import contextmanager

from worldmem.config import ServerConfig
from worldmem.interactive.server import running_server


@contextmanager
def live_server(template, cfg: ServerConfig | None = None, info=None, start_frame=None):
    """Serve ``template`` on 127.0.0.1 at a free port in a thread; yields (base URL, app)."""
    cfg = cfg or ServerConfig()
    cfg.host, cfg.port = "127.0.0.1", 0
    with running_server(cfg, template, info, start_frame=start_frame) as (url, app):
        yield url, app


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
