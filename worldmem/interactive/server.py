"""The exploration web server: one page, one websocket per explorer, one model for all.

    python sample.py --interactive [--host H] [--port P]      # or: worldmem explore

Routes: ``/`` the page, ``/static/*`` its script and style, ``/ws`` the websocket (protocol in
``protocol.py``), ``/session/{id}/video.mp4`` and ``/session/{id}/memory.ply`` downloads.

Each websocket connection owns one ``Session`` (its own memories and pose) over the shared
model. Generation runs in a single worker thread, off the event loop: the server keeps
answering while a chunk is denoised, and the chunks of all sessions take turns on the model
(torch already spreads one chunk over the cores). Keys that arrive while a chunk is being
generated wait in a bounded list and become the next chunk's motion; when the list is full
the oldest keys are dropped (and counted), so a held key never builds an unbounded backlog.

Only the page's own origin may connect: every request must name a loopback Host (or the host
the server was bound to), and a websocket whose Origin is another site (a page the user happens
to visit, a DNS-rebinding attack) is refused with HTTP 403 before it gets a session; the
``server.allowed_origins`` list widens this. A session with no action (start, keys, reset) for
``idle_timeout_s`` is closed; when every session is taken, the one idle longest is closed for a
newcomer once it has been idle ``reclaim_idle_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import secrets
import socket
import time
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from fastapi import FastAPI, WebSocket
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, MutableHeaders

from worldmem.config import (
    MemoryConfig,
    ModelConfig,
    SampleConfig,
    SampleRootConfig,
    ServerConfig,
    TrainRootConfig,
    load_config,
)
from worldmem.geometry.actions import KEYS
from worldmem.interactive.protocol import (
    ERROR_CODES,
    ImageHeader,
    KeysMessage,
    PingMessage,
    ProtocolError,
    ResetMessage,
    StartMessage,
    TokenBucket,
    encode_image_message,
    parse_client_message,
)
from worldmem.interactive.session import (
    Frame,
    Session,
    StartFrame,
    encode_png,
)
from worldmem.io import depth_to_rgb
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

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
PENDING_CHUNKS = 4  # keys kept waiting: at most this many chunks' worth
VIDEO_FPS = 8  # frame rate of the downloaded mp4
MAP_INTERVAL_S = 0.5  # the top-down map is redrawn at most this often while keys keep coming
WS_MAX_SIZE_FLOOR_BYTES = 1 << 20  # messages up to this size get an error reply, not a close
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # bound to every interface
# the page loads its own script and style, draws PNG frames (blobs) and opens its websocket
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_REPO_TINY_PRESET = Path(__file__).resolve().parents[2] / "configs" / "model" / "tiny.yaml"


@dataclass
class ModelInfo:
    """What the page is told about the model."""

    name: str
    trained: bool
    image_size: int
    chunk_frames: int
    note: str = ""


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


@dataclass
class _Pending:
    """A key (or reset/start) waiting for generation, with the client time it was sent."""

    key: str
    t: float | None


@dataclass
class _ServerState:
    cfg: ServerConfig
    template: WorldPipeline
    info: ModelInfo
    memory: str
    max_video_frames: int
    executor: ThreadPoolExecutor
    sessions: dict[str, Session | None] = field(default_factory=dict)  # None: being set up
    connections: dict[str, _Connection] = field(default_factory=dict)  # the live ones
    errors: list[str] = field(default_factory=list)  # server-side failures, for tests and logs

    def record_error(self, where: str) -> None:
        text = f"{where}: {traceback.format_exc()}"
        log.error(text)
        self.errors.append(text)
        del self.errors[:-100]


class _Connection:
    """One websocket: reads and validates messages, schedules generation, streams frames."""

    def __init__(self, ws, state: _ServerState, sid: str, session: Session):
        self.ws, self.state, self.sid, self.session = ws, state, sid, session
        cfg = state.cfg
        self.bucket = TokenBucket(cfg.max_messages_per_s)
        self.pending: deque[_Pending] = deque(maxlen=PENDING_CHUNKS * session.chunk_frames)
        # ("start", prompt, seed, from_image) or ("reset", t)
        self.control: tuple | None = None
        self.world_requested = False  # a start has been received
        self.dropped = 0  # keys dropped because the pending list was full
        self.busy = False
        self.last_map_time = -float("inf")
        self.wake = asyncio.Event()
        self.send_lock = asyncio.Lock()
        self.closed = False
        self.last_action = time.monotonic()  # the last start, keys or reset (or chunk done)
        self.reclaimed = asyncio.Event()  # set when a newcomer takes this idle session
        self.close_reason = (1000, "")  # websocket close code and reason

    def idle_s(self) -> float:
        """Seconds since the last action; 0 while generation is running or waiting. Pings
        and refused messages do not count: idle means nothing for the model to do."""
        if self.busy or self.pending or self.control is not None:
            return 0.0
        return time.monotonic() - self.last_action

    # -- sending ----------------------------------------------------------------------------

    async def send_json(self, data: dict) -> None:
        if self.closed:
            return
        async with self.send_lock:
            await self.ws.send_json(data)

    async def send_bytes(self, data: bytes) -> None:
        if self.closed:
            return
        async with self.send_lock:
            await self.ws.send_bytes(data)

    async def send_error(self, code: str, message: str | None = None, fatal: bool = False):
        err = ProtocolError(code, message or ERROR_CODES[code])
        await self.send_json(err.reply(fatal=fatal))

    async def send_status(self) -> None:
        await self.send_json(
            {
                "type": "status",
                "state": "generating" if self.busy else "idle",
                "pending": len(self.pending) + (self.control is not None),
                "dropped": self.dropped,
                "frames": self.session.frame_count,
            }
        )

    # -- reading ----------------------------------------------------------------------------

    async def read_loop(self) -> None:
        cfg = self.state.cfg
        while True:
            remaining = cfg.idle_timeout_s - self.idle_s()
            if remaining <= 0:
                msg = f"no start, keys or reset for {cfg.idle_timeout_s:g} s; closing"
                await self.send_error("idle_timeout", msg, True)
                self.close_reason = (1000, "idle timeout")
                return
            try:  # cancelling receive() loses no message: it waits on the server's queue
                msg = await asyncio.wait_for(self.ws.receive(), timeout=remaining)
            except TimeoutError:
                continue  # re-check: an action may have come, or generation kept it busy
            if msg["type"] == "websocket.disconnect":
                return
            raw = msg.get("text") if msg.get("text") is not None else msg.get("bytes")
            if not self.bucket.take():
                await self.send_error(
                    "rate_limited",
                    f"more than {cfg.max_messages_per_s:g} messages per second; message dropped",
                )
                continue
            try:
                m = parse_client_message(raw, cfg.max_message_bytes, cfg.max_prompt_chars)
            except ProtocolError as e:
                await self.send_json(e.reply())
                continue
            await self.handle(m)

    async def handle(self, m) -> None:
        if isinstance(m, PingMessage):
            await self.send_json({"type": "pong", "t": m.t, "server_time": time.time()})
            return
        if isinstance(m, StartMessage):
            if m.from_image and self.session.start_frame is None:
                await self.send_error("no_start_frame")
                return
            self.control = ("start", m.prompt, m.seed, m.from_image)
            self.pending.clear()
            self.world_requested = True
        elif not self.world_requested:
            await self.send_error("no_world")
            return
        elif isinstance(m, ResetMessage):
            if not (self.control and self.control[0] == "start"):
                self.control = ("reset", m.t)
            self.pending.clear()
        elif isinstance(m, KeysMessage):
            for k in m.keys:
                if len(self.pending) == self.pending.maxlen:
                    self.dropped += 1  # the deque drops the oldest
                self.pending.append(_Pending(k, m.t))
        self.last_action = time.monotonic()
        self.wake.set()

    # -- generating -------------------------------------------------------------------------

    def _generate(
        self, job: tuple | None, items: list[_Pending], with_map: bool
    ) -> tuple[list[bytes], dict]:
        """In the worker thread: run the session, encode every image message."""
        s = self.session
        started = None
        if job is not None and job[0] == "start":
            frames = s.start(job[1], job[2], from_image=job[3])
            started = {
                "type": "started",
                "prompt": job[1],
                "seed": job[2],
                "from_image": job[3],
                "pose": s.start_pose.as_dict(),
            }
            times = [None] * len(frames)
        elif job is not None:
            frames = s.reset()
            times = [job[1]] * len(frames)
        else:
            frames = s.step([p.key for p in items])
            times = [p.t for p in items]
        out = [self._image(f, "frame", f.rgb, t) for f, t in zip(frames, times)]
        last = frames[-1]
        for kind, img in s.insets(with_map).items():
            out.append(self._image(last, kind, img, None))
        return out, started

    @staticmethod
    def _image(frame: Frame, kind: str, image, t: float | None) -> bytes:
        header = ImageHeader(
            kind=kind,
            frame_index=frame.index,
            pose=frame.pose.as_dict(),
            key=frame.key,
            t=t,
            timing={k: round(v, 5) for k, v in frame.timing.items()},
        )
        return encode_image_message(header, encode_png(image))

    async def generate_loop(self) -> None:
        loop = asyncio.get_running_loop()
        T = self.session.chunk_frames
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.control is not None or self.pending:
                job, items = self.control, []
                self.control = None
                if job is None:
                    items = [self.pending.popleft() for _ in range(min(T, len(self.pending)))]
                self.busy = True
                await self.send_status()
                # the map costs O(memory points): draw it at most every MAP_INTERVAL_S while
                # keys keep coming, and always for the last chunk before the server idles
                now = time.monotonic()
                with_map = (
                    job is not None
                    or not self.pending
                    or now - self.last_map_time >= MAP_INTERVAL_S
                )
                if with_map:
                    self.last_map_time = now
                try:
                    msgs, started = await loop.run_in_executor(
                        self.state.executor, self._generate, job, items, with_map
                    )
                except Exception as e:  # a failing chunk is reported; the server goes on
                    self.state.record_error(f"session {self.sid}: generation")
                    await self.send_error("generation_failed", f"{type(e).__name__}: {e}")
                    continue
                finally:
                    self.busy = False
                if started is not None:
                    await self.send_json(started)
                for data in msgs:
                    await self.send_bytes(data)
            self.last_action = time.monotonic()  # idle time counts from the last frame shown
            await self.send_status()


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
    state = _ServerState(cfg, template, info, memory, max_video_frames, executor)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        depth_to_rgb(np.ones((2, 2), np.float32))  # imports matplotlib before the first frame
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="worldmem explorer", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.add_middleware(_RequestGuard, cfg=cfg)
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
            conn = _Connection(ws, state, sid, session)
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


def _longest_idle(state: _ServerState) -> _Connection | None:
    """The connection idle the longest, if that is at least ``reclaim_idle_s``."""
    live = [c for c in state.connections.values() if not c.reclaimed.is_set()]
    if not live:
        return None
    conn = max(live, key=lambda c: c.idle_s())
    return conn if conn.idle_s() >= state.cfg.reclaim_idle_s else None


def _host_name(value: str) -> str:
    """The host of a Host header or an origin's netloc: lower case, no port, no brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    return value.split(":", 1)[0] if value.count(":") == 1 else value  # else bare IPv6


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class _RequestGuard:
    """ASGI middleware in front of every route.

    Refuses (HTTP 403, naming what was wrong) a request whose Host is not a loopback name,
    the host the server is bound to or an allowed origin's host (a DNS-rebinding page names
    its own domain), and a websocket whose Origin header is neither the request's own
    scheme://host nor in ``cfg.allowed_origins`` (another site's page opening it). A missing
    Origin (a script, not a browser) is accepted. Bound to every interface (0.0.0.0, ::),
    any IP-address Host and this machine's name are accepted too: an address cannot be
    rebound. Adds ``SECURITY_HEADERS`` to every HTTP response.
    """

    def __init__(self, app, cfg: ServerConfig):
        from urllib.parse import urlsplit

        self.app = app
        self.origins = {_origin_key(o) for o in cfg.allowed_origins}
        bound = _host_name(cfg.host)
        self.any_address = bound in WILDCARD_HOSTS
        hosts = {*LOOPBACK_HOSTS, bound, *(urlsplit(o).hostname or "" for o in self.origins)}
        if self.any_address:
            hosts |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        self.hosts = hosts - {"", *WILDCARD_HOSTS}

    def refusal(self, scope) -> str | None:
        """Why this request is refused, or None."""
        headers = Headers(scope=scope)
        host = headers.get("host")
        if not host:
            return "the request has no Host header"
        name = _host_name(host)
        if name not in self.hosts and not (self.any_address and _is_ip(name)):
            return (
                f"Host {host!r} is not this server (expected {', '.join(sorted(self.hosts))}, "
                "any port)"
            )
        origin = headers.get("origin")
        if scope["type"] == "websocket" and origin is not None:
            own = f"{'https' if scope.get('scheme') == 'wss' else 'http'}://{host}"
            if _origin_key(origin) not in {_origin_key(own), *self.origins}:
                return (
                    f"websocket Origin {origin!r} is not this page's ({own}); "
                    "add it to server.allowed_origins to allow it"
                )
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.refusal(scope)
        if reason is not None:
            log.warning("refused %s %s: %s", scope["type"], scope.get("path"), reason)
            if scope["type"] == "http" or "websocket.http.response" in scope.get("extensions", {}):
                response = PlainTextResponse(
                    f"403 forbidden: {reason}", status_code=403, headers=SECURITY_HEADERS
                )
                await response(scope, receive, send)
            else:  # the server answers the handshake with 403 itself
                await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS.items():
                    headers.setdefault(k, v)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _origin_key(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


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


def serve(cfg: SampleRootConfig) -> None:
    """Load the model once, print the page's URL and serve until interrupted."""
    import uvicorn

    s = cfg.server
    if s.torch_threads:
        torch.set_num_threads(s.torch_threads)
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
