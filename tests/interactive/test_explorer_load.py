"""Eight explorers at once on a live server (uvicorn on loopback): no errors, every session
gets its own frames, memory stays bounded and sessions are freed when they close."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import math
import weakref

import pytest
from conftest import make_tiny_pipeline
from interactive_helpers import live_server
from websockets.asyncio.client import connect

from worldmem.config import ActionConfig, ServerConfig
from worldmem.interactive.protocol import decode_image_message

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SESSIONS = 8
MOVE, TURN = ActionConfig().move_m, ActionConfig().turn_deg


def walk_of(i: int) -> list[str]:
    """Session i's own walk: turn right (even i) or left (odd i) 1 + i // 2 times, then 2 steps."""
    return ["right" if i % 2 == 0 else "left"] * (1 + i // 2) + ["w", "w"]


def expected_poses(keys: list[str]) -> list[tuple[tuple[float, float, float], float]]:
    """Analytic poses after each key: turns change yaw, w moves along (sin yaw, 0, cos yaw)."""
    x = z = yaw = 0.0
    out = []
    for k in keys:
        if k in ("left", "right"):
            yaw += TURN if k == "right" else -TURN
        elif k == "w":
            x += MOVE * math.sin(math.radians(yaw))
            z += MOVE * math.cos(math.radians(yaw))
        out.append(((x, 0.0, z), yaw))
    return out


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def explorer(url: str, i: int, app, refs: list) -> list[dict]:
    """Start world i, walk its keys two at a time (as a player would), return its frames."""
    frames: list[dict] = []
    async with connect(url, max_size=2**22) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello"
        refs.append(weakref.ref(app.state.worldmem.sessions[hello["session"]]))

        async def until_idle(total: int):
            while True:
                m = await ws.recv()
                if isinstance(m, bytes):
                    header, png = decode_image_message(m)
                    header["png_hash"] = hashlib.sha1(png).hexdigest()
                    if header["kind"] == "frame":
                        frames.append(header)
                    continue
                m = json.loads(m)
                assert m["type"] != "error", m
                if m["type"] == "status" and m["state"] == "idle" and m["frames"] == total:
                    return

        await ws.send(json.dumps({"type": "start", "prompt": f"world number {i}", "seed": i}))
        await until_idle(1)
        keys = walk_of(i)
        for j in range(0, len(keys), 2):
            part = keys[j : j + 2]
            await ws.send(json.dumps({"type": "keys", "keys": part, "t": float(i * 100 + j)}))
            await until_idle(1 + j + len(part))
    return frames


def test_eight_concurrent_sessions_get_their_own_frames_without_errors():
    template = make_tiny_pipeline()
    errors: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record):
            errors.append(record)

    handler = Collect(level=logging.ERROR)
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "uvicorn", "worldmem")]
    for lg in loggers:
        lg.addHandler(handler)
    refs: list = []
    try:
        with live_server(template, ServerConfig(max_sessions=SESSIONS)) as (base, app):
            url = base.replace("http", "ws") + "/ws"
            rss_before = rss_mb()

            async def all_sessions():
                return await asyncio.gather(*(explorer(url, i, app, refs) for i in range(SESSIONS)))

            results = asyncio.run(all_sessions())
            rss_after = rss_mb()
            state = app.state.worldmem
            for _ in range(200):  # the handlers free their sessions as the sockets close
                if not state.sessions:
                    break
                asyncio.run(asyncio.sleep(0.05))
            assert state.sessions == {}
            assert state.errors == []
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    assert errors == [], [r.getMessage() for r in errors]

    for i, frames in enumerate(results):
        keys = walk_of(i)
        assert [f["key"] for f in frames] == ["start"] + keys  # its own keys, in order
        assert [f["frame_index"] for f in frames] == list(range(1 + len(keys)))
        for f, (pos, yaw) in zip(frames[1:], expected_poses(keys)):
            assert f["pose"]["position"] == pytest.approx(pos, abs=1e-4), (i, f)
            assert f["pose"]["yaw_deg"] == pytest.approx(yaw, abs=1e-3), (i, f)
        assert {f["t"] for f in frames[1:]} <= {float(i * 100 + j) for j in range(0, 8, 2)}

    # different prompts and seeds: every session's first frame is its own picture
    assert len({frames[0]["png_hash"] for frames in results}) == SESSIONS

    gc.collect()
    assert len(refs) == SESSIONS and all(r() is None for r in refs)  # sessions were freed
    # eight 32 px sessions hold a few MB each; anything near this bound would be a leak
    assert rss_after - rss_before < 400, (rss_before, rss_after)
