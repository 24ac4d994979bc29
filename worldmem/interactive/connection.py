"""One websocket connection of the exploration server, and the state all connections share.

A ``Connection`` reads and validates the client's messages (rate limited by a
``TokenBucket``), schedules generation and streams the frames back. Generation runs in the
server's single worker thread, off the event loop: the server keeps answering while a chunk
is denoised, and the chunks of all sessions take turns on the model (torch already spreads
one chunk over the cores). Keys that arrive while a chunk is being generated wait in a
bounded list and become the next chunk's motion; when the list is full the oldest keys are
dropped (and counted), so a held key never builds an unbounded backlog.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from worldmem.config import ServerConfig
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
from worldmem.interactive.session import Frame, Session, encode_png
from worldmem.pipeline import WorldPipeline

__all__ = ["MAP_INTERVAL_S", "PENDING_CHUNKS", "Connection", "ModelInfo", "ServerState"]

log = logging.getLogger(__name__)

PENDING_CHUNKS = 4  # keys kept waiting: at most this many chunks' worth
MAP_INTERVAL_S = 0.5  # the top-down map is redrawn at most this often while keys keep coming


@dataclass
class ModelInfo:
    """What the page is told about the model."""

    name: str
    trained: bool
    image_size: int
    chunk_frames: int
    note: str = ""


@dataclass
class _Pending:
    """A key (or reset/start) waiting for generation, with the client time it was sent."""

    key: str
    t: float | None


@dataclass
class ServerState:
    """What all connections share: the server config, the model, the worker thread, the
    sessions and the server-side errors."""

    cfg: ServerConfig
    template: WorldPipeline
    info: ModelInfo
    memory: str
    max_video_frames: int
    executor: ThreadPoolExecutor
    sessions: dict[str, Session | None] = field(default_factory=dict)  # None: being set up
    connections: dict[str, Connection] = field(default_factory=dict)  # the live ones
    errors: list[str] = field(default_factory=list)  # server-side failures, for tests and logs

    def record_error(self, where: str) -> None:
        text = f"{where}: {traceback.format_exc()}"
        log.error(text)
        self.errors.append(text)
        del self.errors[:-100]


class Connection:
    """One websocket: reads and validates messages, schedules generation, streams frames."""

    def __init__(self, ws, state: ServerState, sid: str, session: Session):
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
                "first_frame": s.first_frame,
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
