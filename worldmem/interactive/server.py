"""The exploration web server: one page, one websocket per explorer, one model for all.

    python sample.py --interactive [--host H] [--port P]      # or: worldmem explore

Routes: ``/`` the page, ``/static/*`` its script and style, ``/ws`` the websocket (protocol in
``protocol.py``), ``/session/{id}/video.mp4`` and ``/session/{id}/memory.ply`` downloads.

This module loads the shared model (``load_template``) and serves it (``serve``, or
``running_server`` in a background thread). The app and its routes are in ``app.py``; each
websocket's ``Connection`` (its own ``Session`` over the shared model, the keys waiting for
generation, the frames streamed back) in ``connection.py``; the check that lets only the
page's own origin connect in ``guard.py``.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from worldmem.config import (
    MemoryConfig,
    ModelConfig,
    SampleConfig,
    SampleRootConfig,
    ServerConfig,
    TrainRootConfig,
    load_config,
)
from worldmem.interactive.app import STATIC_DIR as STATIC_DIR
from worldmem.interactive.app import VIDEO_FPS as VIDEO_FPS
from worldmem.interactive.app import create_app
from worldmem.interactive.connection import MAP_INTERVAL_S as MAP_INTERVAL_S
from worldmem.interactive.connection import PENDING_CHUNKS as PENDING_CHUNKS
from worldmem.interactive.connection import ModelInfo
from worldmem.interactive.guard import LOOPBACK_HOSTS as LOOPBACK_HOSTS
from worldmem.interactive.guard import SECURITY_HEADERS as SECURITY_HEADERS
from worldmem.interactive.guard import WILDCARD_HOSTS as WILDCARD_HOSTS
from worldmem.interactive.session import Session, StartFrame
from worldmem.pipeline import WorldPipeline

__all__ = [
    "ModelInfo",
    "create_app",
    "load_template",
    "running_server",
    "serve",
    "tiny_model_config",
    "ws_max_size_bytes",
]

WS_MAX_SIZE_FLOOR_BYTES = 1 << 20  # messages up to this size get an error reply, not a close
_REPO_TINY_PRESET = Path(__file__).resolve().parents[2] / "configs" / "model" / "tiny.yaml"


def ws_max_size_bytes(cfg: ServerConfig) -> int:
    """The websocket layer's own limit: larger than ``max_message_bytes``, so an oversized
    message still gets an error reply; beyond it the connection is closed (code 1009)."""
    return max(WS_MAX_SIZE_FLOOR_BYTES, 16 * cfg.max_message_bytes)


def load_template(cfg: SampleRootConfig) -> tuple[WorldPipeline, ModelInfo]:
    """The shared pipeline: the checkpoint ``cfg.sample.checkpoint`` when it exists, else a
    random-weight model of the tiny preset (it streams noise, but the page works)."""
    from worldmem.models import WorldDiT

    s = cfg.sample
    ckpt = Path(s.checkpoint)
    if (ckpt / "pipeline.json").is_file():
        pipe = WorldPipeline.from_pretrained(
            ckpt,
            device=s.device,
            steps=s.steps,
            chunk_frames=s.chunk_frames,
            guidance_scale=s.guidance_scale,
            actions=cfg.actions,
        )
        info = ModelInfo(str(ckpt), True, pipe.size, pipe.chunk_frames)
        return pipe, info
    model_cfg = tiny_model_config()
    model = WorldDiT.from_model_config(model_cfg)
    pipe = WorldPipeline(
        model,
        model_cfg,
        MemoryConfig(),
        steps=s.steps or 2,
        chunk_frames=s.chunk_frames,
        guidance_scale=s.guidance_scale,
        actions=cfg.actions,
        device=s.device,
    )
    note = (
        f"no checkpoint at {ckpt}: serving a random-weight tiny model (frames are noise). "
        "Train one with `python train.py --config configs/train/tiny.yaml`."
    )
    info = ModelInfo("random tiny", False, pipe.size, model_cfg.chunk_frames, note)
    return pipe, info


def load_start_frame(cfg: SampleConfig, size: int) -> StartFrame | None:
    """The frame worlds may begin from: ``sample.image`` with ``sample.depth`` and
    ``sample.prompt`` (by default the bundled held-out corridor); None with ``image=none``
    or without a depth (the page then starts worlds from prompts alone)."""
    from worldmem.sampling import load_start

    try:
        image, depth = load_start(cfg, size)
    except FileNotFoundError as e:  # e.g. run outside the repository: prompts still work
        print(f"warning: {e}; worlds start from prompts alone", flush=True)
        return None
    if image is None or depth is None:
        return None
    return StartFrame(image, depth, cfg.prompt)


def tiny_model_config() -> ModelConfig:
    """The tiny preset (``configs/model/tiny.yaml`` when run from the repository, else the
    ``ModelConfig`` defaults)."""
    if _REPO_TINY_PRESET.is_file():
        return load_config(TrainRootConfig, [_REPO_TINY_PRESET]).model
    return ModelConfig()


@contextlib.contextmanager
def running_server(
    cfg: ServerConfig,
    template: WorldPipeline,
    info: ModelInfo | None = None,
    memory: str = "all",
    start_timeout_s: float = 60.0,
    start_frame: StartFrame | None = None,
):
    """Serve in a background thread (for tests, benchmarks and notebooks); yields
    ``(base_url, app)`` and stops the server on exit. ``cfg.port = 0`` picks a free port."""
    import threading

    import uvicorn

    app = create_app(cfg, template, info, memory=memory, start_frame=start_frame)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=cfg.host,
            port=cfg.port,
            ws_max_size=ws_max_size_bytes(cfg),
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, name="worldmem-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the explorer server did not start on {cfg.host}:{cfg.port}")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    try:
        yield f"http://{host}:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def serving_threads(cfg: ServerConfig, cores: int | None = None) -> int:
    """The torch threads the server generates with: ``cfg.torch_threads``, or with 0 one fewer
    than ``cores`` (default: torch's count, one per core) and at least one. The server's event
    loop, its PNG encoding and a page on the same machine need a core too: on 2 cores one
    thread streamed 1.23-1.29x the frames of two (``benchmarks/interactive.py``), and with the
    server in a process of its own the page in Chromium drew 1.2x the frames (5.99 against
    4.99 frames/s, alternated), though a chunk stepped alone runs 1.25-1.33x faster on two."""
    if cfg.torch_threads:
        return cfg.torch_threads
    return max(1, (torch.get_num_threads() if cores is None else cores) - 1)


def serve(cfg: SampleRootConfig) -> None:
    """Load the model once, print the page's URL and serve until interrupted."""
    import uvicorn

    s = cfg.server
    torch.set_num_threads(serving_threads(s))
    template, info = load_template(cfg)
    if info.note:
        print(f"warning: {info.note}", flush=True)
    start_frame = load_start_frame(cfg.sample, template.size)
    print("warming up the model ...", flush=True)
    warm = Session(template, memory=cfg.sample.memory, start_frame=start_frame)
    warm.start("", seed=0, from_image=start_frame is not None)
    warm.step(["w"] * warm.chunk_frames)
    warm.insets()
    del warm
    app = create_app(s, template, info, memory=cfg.sample.memory, start_frame=start_frame)
    host = f"[{s.host}]" if ":" in s.host else s.host
    url = f"http://{host}:{s.port}/"
    print(f"worldmem explorer ({info.name}, {info.image_size} px): {url}", flush=True)
    uvicorn.run(
        app, host=s.host, port=s.port, ws_max_size=ws_max_size_bytes(s), log_level="warning"
    )
