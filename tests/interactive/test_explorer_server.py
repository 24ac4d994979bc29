"""The websocket server under hostile and ordinary use (FastAPI's TestClient, no browser)."""

from __future__ import annotations

import io
import json
import time

import av
import numpy as np
import pytest
import torch
from conftest import make_tiny_pipeline
from fastapi.testclient import TestClient
from plyfile import PlyData
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from worldmem.config import ActionConfig, ConfigError, ServerConfig
from worldmem.interactive.protocol import decode_image_message
from worldmem.interactive.server import create_app, serving_threads

pytestmark = pytest.mark.timeout(180)  # a hung websocket fails the test instead of the run

MOVE = ActionConfig().move_m


@pytest.fixture(scope="module")
def template():
    return make_tiny_pipeline()


class _HostClient(TestClient):
    """TestClient whose websockets, too, go to its base URL's host (not ``testserver``)."""

    def websocket_connect(self, url: str, *args, **kwargs):
        host = self.base_url.netloc.decode()
        return super().websocket_connect(f"ws://{host}{url}", *args, **kwargs)


def local_client(app, host: str = "127.0.0.1:8765") -> TestClient:
    """A test client whose requests name ``host`` (a loopback one by default), as a browser
    on the page would."""
    return _HostClient(app, base_url=f"http://{host}")


def receive(ws) -> dict:
    """The next message: JSON as a dict, an image as {"type": "image", "header", "png"}."""
    msg = ws.receive()
    if msg["type"] == "websocket.close":
        raise WebSocketDisconnect(msg.get("code", 1000))
    if msg.get("text") is not None:
        return json.loads(msg["text"])
    header, png = decode_image_message(msg["bytes"])
    return {"type": "image", "header": header, "png": png}


def receive_until_idle(ws, frames: int) -> list[dict]:
    """Messages until the server reports it is idle with ``frames`` frames generated."""
    out = []
    while True:
        m = receive(ws)
        out.append(m)
        if m["type"] == "status" and m["state"] == "idle" and m["frames"] == frames:
            return out


def frames_of(messages) -> list[dict]:
    return [
        m["header"] for m in messages if m["type"] == "image" and m["header"]["kind"] == "frame"
    ]


def test_the_server_leaves_a_core_for_its_event_loop_unless_told():
    """torch_threads 0: one thread fewer than the cores, at least one; a set value is kept."""
    auto = ServerConfig()
    assert [serving_threads(auto, cores) for cores in (1, 2, 4, 8)] == [1, 1, 3, 7]
    assert serving_threads(auto) == max(1, torch.get_num_threads() - 1)
    assert serving_threads(ServerConfig(torch_threads=2), cores=2) == 2


def test_hostile_messages_each_get_an_error_and_the_server_stays_responsive(template):
    cfg = ServerConfig(max_messages_per_s=20)
    app = create_app(cfg, template)
    with local_client(app) as client, client.websocket_connect("/ws") as ws:
        hello = receive(ws)
        assert hello["type"] == "hello" and hello["limits"]["max_message_bytes"] == 4096
        cases = [
            ("{bad json", "bad_json"),
            ('{"type": "teleport"}', "unknown_type"),
            (json.dumps({"type": "ping", "pad": "x" * 100_000}), "too_large"),
            (json.dumps({"type": "start", "prompt": "p" * 301}), "prompt_too_long"),
            ('{"type": "keys", "keys": ["w"]}', "no_world"),
            ('{"type": "keys", "keys": ["fly"]}', "invalid"),
        ]
        for raw, code in cases:
            ws.send_text(raw)
            reply = receive(ws)
            assert reply["type"] == "error" and reply["code"] == code, (raw[:40], reply)
            assert reply["message"] and reply["fatal"] is False
        ws.send_bytes(b"\x00\xff\x10")
        assert receive(ws)["code"] == "binary_not_accepted"

        # a burst of 1,000 bad messages: every one is answered with an error
        t0 = time.monotonic()
        for i in range(1000):
            ws.send_text("{bad" if i % 2 else '{"type": "nope"}')
        replies = [receive(ws) for _ in range(1000)]
        elapsed = time.monotonic() - t0
        assert all(r["type"] == "error" for r in replies)
        codes = [r["code"] for r in replies]
        assert set(codes) <= {"bad_json", "unknown_type", "rate_limited"}
        # the bucket lets through at most its capacity plus what refilled meanwhile
        passed = 1000 - codes.count("rate_limited")
        assert passed <= cfg.max_messages_per_s * (1 + elapsed) + 1

        time.sleep(1.1)  # the bucket refills
        ws.send_text('{"type": "ping", "t": 5}')
        assert receive(ws) == {
            "type": "pong",
            "t": 5.0,
            "server_time": pytest.approx(time.time(), abs=60),
        }
        ws.send_text('{"type": "start", "prompt": "a brick corridor", "seed": 3}')
        msgs = receive_until_idle(ws, frames=1)
        assert any(m["type"] == "started" for m in msgs)
        ws.send_text('{"type": "keys", "keys": ["w", "w"], "t": 17.0}')
        frames = frames_of(receive_until_idle(ws, frames=3))
        assert [f["key"] for f in frames] == ["w", "w"] and [f["t"] for f in frames] == [17, 17]
        assert [f["pose"]["position"][2] for f in frames] == pytest.approx([MOVE, 2 * MOVE])
    assert app.state.worldmem.errors == []


def test_a_prompt_only_world_says_which_bank_frame_it_began_from():
    """With a first-frame bank, the "started" message names the training frame the world
    began from, and the first frame shown is that frame; from the start frame it names none."""
    from PIL import Image

    from worldmem.interactive.session import StartFrame
    from worldmem.models.first_frame_bank import FirstFrameBank

    pipe = make_tiny_pipeline()
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8)
    depth = 1 + 3 * torch.rand(2, 1, 32, 32, generator=g)
    pipe.first_frame = FirstFrameBank(
        rgb, depth, pipe.K.cpu(), ["a red brick corridor", "a sunny plaza"], ["ep_7:0", "ep_9:3"]
    )
    start = StartFrame(torch.rand(3, 32, 32, generator=g), 2 + torch.rand(1, 32, 32), "a room")
    app = create_app(ServerConfig(), pipe, start_frame=start)
    with local_client(app) as client, client.websocket_connect("/ws") as ws:
        receive(ws)
        ws.send_text('{"type": "start", "prompt": "a crimson brick hallway", "seed": 2}')
        msgs = receive_until_idle(ws, frames=2)  # start frame + one
        [started] = [m for m in msgs if m["type"] == "started"]
        assert started["first_frame"]["kind"] == "bank"
        assert started["first_frame"]["source"] == "ep_7:0"
        [shown] = [m for m in msgs if m["type"] == "image" and m["header"]["kind"] == "frame"]
        png = np.asarray(Image.open(io.BytesIO(shown["png"])).convert("RGB"), np.float32)
        assert np.abs(png / 255 - rgb[0].permute(1, 2, 0).numpy() / 255).mean() < 0.01
        ws.send_text('{"type": "start", "prompt": "a room", "from_image": true}')
        msgs = receive_until_idle(ws, frames=2)  # start frame + one
        [started] = [m for m in msgs if m["type"] == "started"]
        assert started["first_frame"] is None


def test_keys_sent_during_generation_are_bounded_and_the_newest_kept(template):
    app = create_app(ServerConfig(), template)
    with local_client(app) as client, client.websocket_connect("/ws") as ws:
        hello = receive(ws)
        cap = hello["limits"]["pending_keys"]
        assert cap == 4 * hello["chunk_frames"] == 8
        ws.send_text('{"type": "start", "prompt": "a plaza"}')
        ws.send_text(json.dumps({"type": "keys", "keys": ["w"] * 8 + ["d"] * 8}))
        msgs = receive_until_idle(ws, frames=1 + cap)
        frames = frames_of(msgs)
        assert [f["key"] for f in frames] == ["start"] + ["d"] * cap  # the oldest were dropped
        assert frames[-1]["pose"]["position"] == pytest.approx([cap * MOVE, 0, 0], abs=1e-5)
        assert msgs[-1]["dropped"] == 8
        kinds = {m["header"]["kind"] for m in msgs if m["type"] == "image"}
        assert kinds == {"frame", "depth", "memory", "map"}
        ws.send_text('{"type": "reset", "t": 1}')
        frames = frames_of(receive_until_idle(ws, frames=2 + cap))
        assert frames[0]["key"] == "reset"
        assert frames[0]["pose"]["position"] == pytest.approx([0, 0, 0], abs=1e-6)
    assert app.state.worldmem.errors == []


def test_downloads_decode_and_vanish_with_the_session(template, tmp_path):
    app = create_app(ServerConfig(), template)
    with local_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            hello = receive(ws)
            ws.send_text('{"type": "start", "prompt": "a room"}')
            ws.send_text('{"type": "keys", "keys": ["w", "left", "w"]}')
            frames = frames_of(receive_until_idle(ws, frames=4))
            r = client.get(hello["downloads"]["video"])
            assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
            with av.open(io.BytesIO(r.content)) as c:
                video = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
            S = hello["image_size"]
            assert video.shape == (4, S, S, 3) and len(frames) == 4
            r = client.get(hello["downloads"]["memory"])
            assert r.status_code == 200
            (tmp_path / "m.ply").write_bytes(r.content)
            assert PlyData.read(str(tmp_path / "m.ply"))["vertex"].count > 0
            assert client.get("/session/nope/video.mp4").status_code == 404
            page = client.get("/")
            assert page.status_code == 200 and "app.js" in page.text
            assert client.get("/static/app.js").status_code == 200
        deadline = time.monotonic() + 10
        while app.state.worldmem.sessions and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.worldmem.sessions == {}  # freed when the socket closed
        assert client.get(hello["downloads"]["video"]).status_code == 404
    assert app.state.worldmem.errors == []


def test_a_connection_over_the_session_cap_is_told_and_closed(template):
    app = create_app(ServerConfig(max_sessions=1), template)
    with local_client(app) as client, client.websocket_connect("/ws") as first:
        assert receive(first)["type"] == "hello"
        with client.websocket_connect("/ws") as second:
            reply = receive(second)
            assert reply["code"] == "server_full" and reply["fatal"] is True
            with pytest.raises(WebSocketDisconnect) as e:
                receive(second)
            assert e.value.code == 1013
        first.send_text('{"type": "ping"}')  # the first session is unaffected
        assert receive(first)["type"] == "pong"
    assert app.state.worldmem.errors == []


def test_an_idle_session_is_closed_and_freed(template):
    app = create_app(ServerConfig(idle_timeout_s=0.3), template)
    with local_client(app) as client, client.websocket_connect("/ws") as ws:
        assert receive(ws)["type"] == "hello"
        reply = receive(ws)
        assert reply["code"] == "idle_timeout" and reply["fatal"] is True
        with pytest.raises(WebSocketDisconnect):
            receive(ws)
    deadline = time.monotonic() + 10
    while app.state.worldmem.sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.state.worldmem.sessions == {}
    assert app.state.worldmem.errors == []


# ---- who may connect: same-origin websockets, loopback Host names --------------------------


def test_a_foreign_origin_is_refused_and_the_same_origin_accepted(template):
    app = create_app(ServerConfig(allowed_origins=["https://demo.example.org"]), template)
    with local_client(app) as client:
        for origin in ["http://evil.example.com", "null", "http://127.0.0.1:9999"]:
            with pytest.raises(WebSocketDenialResponse) as e:
                with client.websocket_connect("/ws", headers={"Origin": origin}):
                    pass
            assert e.value.status_code == 403
            assert f"Origin '{origin}' is not this page's (http://127.0.0.1:8765)" in e.value.text
            assert "server.allowed_origins" in e.value.text
        for headers in [
            {"Origin": "http://127.0.0.1:8765"},
            {"Origin": "https://demo.example.org/"},
            {},  # not a browser: no Origin
        ]:
            with client.websocket_connect("/ws", headers=headers) as ws:
                assert receive(ws)["type"] == "hello"
    assert app.state.worldmem.errors == []


@pytest.mark.parametrize("host", ["localhost:8765", "[::1]:80", "127.0.0.1"])
def test_loopback_host_names_are_accepted(template, host):
    app = create_app(ServerConfig(), template)
    with local_client(app, host) as client:
        assert client.get("/").status_code == 200
        with client.websocket_connect("/ws") as ws:
            assert receive(ws)["type"] == "hello"


def test_a_foreign_host_is_refused_over_http_and_websocket(template):
    app = create_app(ServerConfig(), template)
    with local_client(app, "rebind.evil.example.com:8765") as client:
        r = client.get("/")
        assert r.status_code == 403
        assert "Host 'rebind.evil.example.com:8765' is not this server" in r.text
        assert "app.js" not in r.text
        with pytest.raises(WebSocketDenialResponse) as e:
            with client.websocket_connect("/ws"):
                pass
        assert e.value.status_code == 403 and "rebind.evil.example.com" in e.value.text
    assert app.state.worldmem.sessions == {}


def test_the_bound_host_is_accepted_and_a_wildcard_bind_accepts_addresses(template):
    app = create_app(ServerConfig(host="explorer.lan"), template)
    with local_client(app, "explorer.lan:8765") as client:
        assert client.get("/").status_code == 200
    with local_client(app, "192.168.1.20:8765") as client:
        assert client.get("/").status_code == 403
    app = create_app(ServerConfig(host="0.0.0.0"), template)
    with local_client(app, "192.168.1.20:8765") as client:
        assert client.get("/").status_code == 200
    with local_client(app, "rebind.evil.example.com") as client:
        assert client.get("/").status_code == 403


def test_allowed_origins_must_be_origins():
    for bad in ["evil.com", "http://a.org/path", "javascript:alert(1)", "*"]:
        with pytest.raises(ConfigError, match="allowed_origins"):
            ServerConfig(allowed_origins=[bad])


def test_http_responses_carry_csp_and_frame_headers(template):
    app = create_app(ServerConfig(), template)
    with local_client(app) as client:
        for path in ["/", "/static/app.js", "/session/nope/video.mp4"]:
            r = client.get(path)
            csp = r.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
            assert "img-src 'self' data: blob:" in csp and "connect-src 'self' ws: wss:" in csp
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["x-content-type-options"] == "nosniff"


# ---- idle sessions: actions count, pings do not; the longest idle is reclaimed -------------


def test_pings_do_not_keep_a_session_alive(template):
    app = create_app(ServerConfig(idle_timeout_s=0.6), template)
    with local_client(app) as client, client.websocket_connect("/ws") as ws:
        assert receive(ws)["type"] == "hello"
        t0 = time.monotonic()
        while True:
            ws.send_text('{"type": "ping"}')
            reply = receive(ws)
            if reply["type"] == "error":
                break
            assert reply["type"] == "pong" and time.monotonic() - t0 < 30
            time.sleep(0.1)
        assert reply["code"] == "idle_timeout" and reply["fatal"] is True
        assert "no start, keys or reset" in reply["message"]
        with pytest.raises(WebSocketDisconnect):
            receive(ws)
    assert app.state.worldmem.errors == []


def test_the_longest_idle_session_is_reclaimed_for_a_newcomer(template):
    cfg = ServerConfig(max_sessions=2, reclaim_idle_s=0.5)
    app = create_app(cfg, template)
    with (
        local_client(app) as client,
        client.websocket_connect("/ws") as idle,
        client.websocket_connect("/ws") as active,
    ):
        assert receive(idle)["type"] == "hello" and receive(active)["type"] == "hello"
        time.sleep(0.8)
        idle.send_text('{"type": "ping"}')  # traffic, not an action
        assert receive(idle)["type"] == "pong"
        active.send_text('{"type": "start", "prompt": "a room"}')
        receive_until_idle(active, frames=1)
        with client.websocket_connect("/ws") as newcomer:
            assert receive(newcomer)["type"] == "hello"
            reply = receive(idle)
            assert reply["code"] == "idle_timeout" and reply["fatal"] is True
            assert "closed as idle" in reply["message"] and "another explorer" in reply["message"]
            with pytest.raises(WebSocketDisconnect):
                receive(idle)
            active.send_text('{"type": "ping"}')  # the active session is untouched
            assert receive(active)["type"] == "pong"
            assert len(app.state.worldmem.sessions) == 2
    assert app.state.worldmem.errors == []


def test_a_full_server_of_active_sessions_refuses_the_newcomer(template):
    app = create_app(ServerConfig(max_sessions=1, reclaim_idle_s=60), template)
    with local_client(app) as client, client.websocket_connect("/ws") as first:
        assert receive(first)["type"] == "hello"
        with client.websocket_connect("/ws") as second:
            reply = receive(second)
            assert reply["code"] == "server_full" and "none idle for 60 s" in reply["message"]
        first.send_text('{"type": "ping"}')
        assert receive(first)["type"] == "pong"
