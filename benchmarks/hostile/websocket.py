"""Hostile websocket messages to the explorer server (FastAPI's TestClient, as the server's
tests use it): every field of every message type with bad values, broken JSON, oversized and
binary messages. Each must get an error reply and leave the server answering."""

from __future__ import annotations

import json
import random
from pathlib import Path

from hostile.core import (
    Case,
    Context,
    Refused,
    Uncaught,
    runner,
    short,
    tail_lines,
)
from hostile.jobs import JSON_VALUES

# ============================================================================================
# Boundary: websocket messages to the interactive server
# ============================================================================================

_PING = [0]


def _ws_receive(ws) -> dict:
    from starlette.websockets import WebSocketDisconnect

    msg = ws.receive()
    if msg["type"] == "websocket.close":
        raise WebSocketDisconnect(msg.get("code", 1000))
    if msg.get("text") is not None:
        return json.loads(msg["text"])
    return {"type": "image"}


@runner
def ws_message(ctx: Context, folder: Path, raw, fresh: bool) -> str:
    """Send one hostile message, then a ping; every reply up to the pong (and, when the
    message started generation, up to the idle status) is read. A refusal is an error reply;
    a server-side failure, a generation error or a dropped connection is not clean."""
    from starlette.websockets import WebSocketDisconnect

    if fresh:
        ctx.drop_ws()
    ws = ctx.ws()
    errors_before = len(ctx.server_errors)
    _PING[0] += 1
    t = float(_PING[0])
    replies = []
    try:
        if isinstance(raw, bytes):
            ws.send_bytes(raw)
        else:
            ws.send_text(raw)
        ws.send_text(json.dumps({"type": "ping", "t": t}))
        while True:
            m = _ws_receive(ws)
            replies.append(m)
            if m["type"] == "pong" and m.get("t") == t:
                break
        busy = any(m["type"] == "status" and m["state"] == "generating" for m in replies)
        busy = busy or (not any(m["type"] == "error" for m in replies) and _starts_work(raw))
        while busy:
            m = _ws_receive(ws)
            replies.append(m)
            if m["type"] == "status" and m["state"] == "idle" and m["pending"] == 0:
                break
    except WebSocketDisconnect as e:
        ctx.drop_ws()
        new = ctx.server_errors[errors_before:]
        if new:
            raise Uncaught(tail_lines(new[-1], 8)) from None
        raise Refused(f"the connection was closed (code {e.code}) without an error reply") from e
    new = ctx.server_errors[errors_before:]
    if new:
        raise Uncaught(tail_lines(new[-1], 8))
    errors = [m for m in replies if m["type"] == "error"]
    failed = [m for m in errors if m.get("code") == "generation_failed"]
    if failed:
        raise Uncaught(f"generation_failed: {failed[0].get('message')}")
    if errors:
        raise Refused(f"{errors[0]['code']}: {errors[0]['message']}")
    frames = sum(1 for m in replies if m["type"] == "image")
    return f"accepted ({frames} images)"


def _starts_work(raw) -> bool:
    if not isinstance(raw, str):
        return False
    try:
        obj = json.loads(raw)
    except ValueError:
        return False
    return isinstance(obj, dict) and obj.get("type") in ("start", "keys", "reset")


def cases_websocket(rng: random.Random) -> list[Case]:
    cases = []
    expect = (
        r"^(bad_json|invalid|unknown_type|too_large|binary_not_accepted|prompt_too_long"
        r"|no_world|no_start_frame): .+",
    )

    def add(name, raw, fresh=False, always=False):
        cases.append(
            Case(
                "websocket",
                name,
                "ws_message",
                (raw, fresh),
                expect,
                always=always,
                detail=short(raw),
            )
        )

    add("keys before any start", '{"type": "keys", "keys": ["w"]}', fresh=True)
    add("reset before any start", '{"type": "reset"}', fresh=True)
    add("from_image without a start frame", '{"type": "start", "from_image": true}')
    add("accepted: a start", '{"type": "start", "prompt": "a room", "seed": 1}')
    for v in JSON_VALUES[:24] + ['"\\ud800"', '"a\\u0000b"', '"' + "p" * 301 + '"', '"p"']:
        add(
            f"start prompt {short(v, 30)}",
            f'{{"type": "start", "prompt": {v}}}',
            always=v == '"\\ud800"',
        )
    for v in JSON_VALUES[:24] + [str(2**31), str(2**31 - 1), '"3"']:
        add(f"start seed {short(v, 30)}", f'{{"type": "start", "seed": {v}}}')
    for v in ["null", "5", '"yes"', "[]", "1e400"]:
        add(f"start from_image {v}", f'{{"type": "start", "from_image": {v}}}')
    for v in [
        '["fly"]',
        "[]",
        '["w"]',
        '"w"',
        "null",
        "5",
        '[["w"]]',
        "[1]",
        '["w", null]',
        '["W"]',
        "[" + ", ".join(['"w"'] * 17) + "]",
        '["\\ud800"]',
        '{"w": 1}',
    ]:
        add(f"keys {short(v, 30)}", f'{{"type": "keys", "keys": {v}}}')
    for v in ["NaN", "Infinity", "-Infinity", "1e400", '"x"', "null", "[]", "1e308", str(2**64)]:
        add(f"keys t {v}", f'{{"type": "keys", "keys": ["w"], "t": {v}}}')
        add(f"ping t {v}", f'{{"type": "ping", "t": {v}}}')
        add(f"reset t {v}", f'{{"type": "reset", "t": {v}}}')
    for v in ["null", "5", "[]", '"START"', '"start "', '"teleport"', '""', '"\\ud800"']:
        add(f"type {v}", f'{{"type": {v}}}')
    add("no type", '{"prompt": "x"}')
    add("extra field", '{"type": "ping", "extra": 1}')
    add("duplicate type", '{"type": "ping", "type": "start"}')
    for raw in [
        "[]",
        "5",
        '"start"',
        "null",
        "true",
        "{bad",
        "",
        " ",
        "\x00",
        "NaN",
        "[" * 2000 + "]" * 2000,
        '{"type": "ping"',
        "{'type': 'ping'}",
    ]:
        add(f"not an object: {short(raw, 30)}", raw)
    for n in (4097, 100_000, 2_000_000):
        add(f"{n} bytes", json.dumps({"type": "ping", "pad": "x" * n}), always=n == 2_000_000)
    for i in range(12):
        add(f"binary #{i}", rng.randbytes(rng.choice([0, 1, 16, 4096])))
    for i in range(30):  # a valid message with one character replaced
        msg = bytearray(b'{"type": "keys", "keys": ["w", "left"], "t": 12.5}')
        msg[rng.randrange(len(msg))] = rng.randrange(32, 127)
        add(f"one character changed #{i}", msg.decode("ascii"))
    add("accepted: keys", '{"type": "keys", "keys": ["w", "left"], "t": 1}')
    add("accepted: reset", '{"type": "reset", "t": 2}')
    return cases
