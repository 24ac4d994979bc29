"""The exploration server's FastAPI app: the page, its static files, the downloads and the
websocket endpoint that gives each connection its own ``Session`` over the shared model.

A session with no action (start, keys, reset) for ``idle_timeout_s`` is closed; when every
session is taken, the one idle longest is closed for a newcomer once it has been idle
``reclaim_idle_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from fastapi import FastAPI, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from worldmem.config import ServerConfig
from worldmem.geometry.actions import KEYS
from worldmem.interactive.connection import PENDING_CHUNKS, Connection, ModelInfo, ServerState
from worldmem.interactive.guard import RequestGuard
from worldmem.interactive.protocol import ProtocolError
from worldmem.interactive.session import Session, StartFrame
from worldmem.io import depth_to_rgb
from worldmem.pipeline import WorldPipeline

__all__ = ["STATIC_DIR", "VIDEO_FPS", "create_app"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
VIDEO_FPS = 8  # frame rate of the downloaded mp4


def create_app(
    cfg: ServerConfig,
    template: WorldPipeline,
    info: ModelInfo | None = None,
    memory: str = "all",
    max_video_frames: int = 2000,
    start_frame: StartFrame | None = None,
):
    """The FastAPI app serving ``template``'s model to at most ``cfg.max_sessions`` sessions.
    ``start_frame``: the frame a world may begin from (``{"from_image": true}``).

    ``app.state.worldmem`` holds the live sessions and any server-side errors.
    """
    if not isinstance(cfg, ServerConfig):
        raise ValueError(f"cfg: expected a ServerConfig, got {type(cfg).__name__}")
    if info is None:
        info = ModelInfo("model", True, template.size, template.model_cfg.chunk_frames)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worldmem-generate")
    state = ServerState(cfg, template, info, memory, max_video_frames, executor)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        depth_to_rgb(np.ones((2, 2), np.float32))  # imports matplotlib before the first frame
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="worldmem explorer", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.add_middleware(RequestGuard, cfg=cfg)
    app.state.worldmem = state
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/")
    async def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    def _session_or_404(sid: str):
        session = state.sessions.get(sid)
        if session is None:
            return None, JSONResponse({"error": f"no live session {sid!r}"}, status_code=404)
        return session, None

    async def _download(sid: str, make, media_type: str, filename: str):
        session, missing = _session_or_404(sid)
        if missing is not None:
            return missing
        try:
            data = await asyncio.get_running_loop().run_in_executor(None, make, session)
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        except Exception:
            state.record_error(f"session {sid}: {filename}")
            return JSONResponse({"error": f"could not make {filename}"}, status_code=500)
        disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
        return Response(data, media_type=media_type, headers=disposition)

    @app.get("/session/{sid}/video.mp4")
    async def video(sid: str):
        return await _download(
            sid, lambda s: s.video_mp4(fps=VIDEO_FPS), "video/mp4", "worldmem.mp4"
        )

    @app.get("/session/{sid}/memory.ply")
    async def memory_ply(sid: str):
        return await _download(
            sid, lambda s: s.memory_ply(), "application/octet-stream", "worldmem-memory.ply"
        )

    @app.websocket("/ws")
    async def ws_endpoint(ws: WebSocket):
        await ws.accept()
        if len(state.sessions) >= cfg.max_sessions:
            victim = _longest_idle(state)
            if victim is None:
                msg = (
                    f"all {cfg.max_sessions} sessions are in use (none idle for "
                    f"{cfg.reclaim_idle_s:g} s); try again later"
                )
                await ws.send_json(ProtocolError("server_full", msg).reply(fatal=True))
                await ws.close(code=1013, reason="server full")
                return
            # free its slot now (its own handler tells its client and closes it)
            log.info("session %s idle for %.0f s: reclaimed", victim.sid, victim.idle_s())
            state.sessions.pop(victim.sid, None)
            state.connections.pop(victim.sid, None)
            victim.reclaimed.set()
        sid = secrets.token_urlsafe(12)
        state.sessions[sid] = None  # reserve the slot before the first await
        conn = None
        tasks: list[asyncio.Task] = []
        try:
            # a new world on the shared template (its memories are allocated off the loop)
            session = await asyncio.get_running_loop().run_in_executor(
                None,
                functools.partial(
                    Session,
                    template,
                    max_video_frames=max_video_frames,
                    memory=memory,
                    start_frame=start_frame,
                ),
            )
            state.sessions[sid] = session
            conn = Connection(ws, state, sid, session)
            state.connections[sid] = conn
            await conn.send_json(_hello(sid, info, cfg, session))
            reader = asyncio.create_task(conn.read_loop())
            worker = asyncio.create_task(conn.generate_loop())
            reclaimed = asyncio.create_task(conn.reclaimed.wait())
            tasks = [reader, worker, reclaimed]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    _raise_unless_disconnect(t.exception())
            if conn.reclaimed.is_set():
                idle = time.monotonic() - conn.last_action
                msg = (
                    f"closed as idle: no start, keys or reset for {idle:.0f} s and another "
                    f"explorer needed the session (all {cfg.max_sessions} were in use)"
                )
                conn.close_reason = (1000, "idle session reclaimed")
                await conn.send_error("idle_timeout", msg, fatal=True)
        except Exception as e:
            if not _is_disconnect(e):
                state.record_error(f"session {sid}: websocket")
        finally:
            # free the session before any await: the handler may itself be being cancelled;
            # a reclaimed session's slot already belongs to the newcomer
            if conn is None or not conn.reclaimed.is_set():
                state.sessions.pop(sid, None)
                state.connections.pop(sid, None)
            if conn is not None:
                conn.closed = True
            for t in tasks:
                t.cancel()
            if tasks:  # wait, not gather: gather re-raises a child's CancelledError in place of
                # the handler's own, which the server's cancel scope would not recognise
                await asyncio.wait(tasks)
            code, reason = conn.close_reason if conn is not None else (1000, "")
            try:
                await ws.close(code=code, reason=reason)
            except Exception:  # already closed by the client
                pass

    return app


def _hello(sid: str, info: ModelInfo, cfg: ServerConfig, session: Session) -> dict:
    return {
        "type": "hello",
        "session": sid,
        "model": {"name": info.name, "trained": info.trained, "note": info.note},
        "image_size": session.image_size,
        "chunk_frames": session.chunk_frames,
        "start_frame": (
            None if session.start_frame is None else {"caption": session.start_frame.caption}
        ),
        "keys": list(KEYS),
        "limits": {
            "max_message_bytes": cfg.max_message_bytes,
            "max_prompt_chars": cfg.max_prompt_chars,
            "max_messages_per_s": cfg.max_messages_per_s,
            "pending_keys": PENDING_CHUNKS * session.chunk_frames,
            "max_video_frames": session.max_video_frames,
            "idle_timeout_s": cfg.idle_timeout_s,
            "reclaim_idle_s": cfg.reclaim_idle_s,
        },
        "downloads": {
            "video": f"/session/{sid}/video.mp4",
            "memory": f"/session/{sid}/memory.ply",
        },
    }


def _longest_idle(state: ServerState) -> Connection | None:
    """The connection idle the longest, if that is at least ``reclaim_idle_s``."""
    live = [c for c in state.connections.values() if not c.reclaimed.is_set()]
    if not live:
        return None
    conn = max(live, key=lambda c: c.idle_s())
    return conn if conn.idle_s() >= state.cfg.reclaim_idle_s else None


def _is_disconnect(e: BaseException) -> bool:
    from starlette.websockets import WebSocketDisconnect

    if isinstance(e, WebSocketDisconnect | asyncio.CancelledError):
        return True
    try:
        from websockets.exceptions import ConnectionClosed
    except ImportError:  # pragma: no cover
        return False
    # starlette raises RuntimeError when sending on a socket the client already closed
    return isinstance(e, ConnectionClosed | OSError) or (
        isinstance(e, RuntimeError) and "close" in str(e).lower()
    )


def _raise_unless_disconnect(e: BaseException) -> None:
    if not _is_disconnect(e):
        raise e
