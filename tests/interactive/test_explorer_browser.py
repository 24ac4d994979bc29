"""The exploration page in a real browser: Playwright drives Debian's chromium against a live
server. Walk forward and turn, check the frame and the reported pose; walk back and check
the frame comes back (the memory at work; needs the trained model)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLED, REPO, make_tiny_pipeline
from interactive_helpers import free_port, live_server

from worldmem.config import ActionConfig, ServerConfig
from worldmem.interactive.server import ModelInfo, running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MOVE, TURN = ActionConfig().move_m, ActionConfig().turn_deg
FORWARD, TURNS = 4, 3  # W presses, then left-arrow presses
PROMPT = "a crimson brick hallway"  # the page's prompt-only world, after the walk


def ensure_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and os.environ.get("CI"):
        for cmd in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
        ):
            subprocess.run(cmd, check=False, capture_output=True, timeout=600)
        if Path(CHROMIUM).exists():
            return
    pytest.skip(
        f"{CHROMIUM} not found: install Debian's chromium with `apt-get install -y "
        "--no-install-recommends chromium` (done automatically only as root with CI set)"
    )


def wait_frames(page, n: int) -> None:
    """Until the page has drawn n frames and the server reports it is idle."""
    page.wait_for_function(
        """n => Number(document.getElementById('pose').dataset.framesReceived) >= n
               && document.body.dataset.state === 'ready'""",
        arg=n,
        timeout=120_000,
    )


def grab(page) -> dict:
    """The frame canvas's pixels (float RGB (H, W, 3) in [0, 255]) and the reported pose."""
    data = page.evaluate(
        """() => {
            const c = document.getElementById('frame');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const d = document.getElementById('pose').dataset;
            return {w: c.width, h: c.height, px: Array.from(px),
                    pose: [Number(d.x), Number(d.y), Number(d.z)],
                    yaw: Number(d.yaw), pitch: Number(d.pitch), index: Number(d.frameIndex)};
        }"""
    )
    rgb = np.asarray(data["px"], np.float64).reshape(data["h"], data["w"], 4)[..., :3]
    return {"rgb": rgb, **{k: data[k] for k in ("pose", "yaw", "pitch", "index")}}


def mad(a: dict, b: dict) -> float:
    return float(np.abs(a["rgb"] - b["rgb"]).mean())


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 0-255 images."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def structure_mad(a: dict, b: dict, block: int = 8) -> float:
    """Mean absolute difference of block means (the scene's layout, not per-pixel detail)."""

    def pool(x):
        h, w, c = x.shape
        return x.reshape(h // block, block, w // block, block, c).mean((1, 3))

    return float(np.abs(pool(a["rgb"]) - pool(b["rgb"])).mean())


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """Drive the page once: start, W x4, left x3 (keyboard), right x3 (on-screen buttons),
    S x4; returns the frames and poses seen along the way."""
    ensure_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    trained = (BUNDLED / "pipeline.json").is_file()
    if trained:
        from worldmem.pipeline import WorldPipeline

        template = WorldPipeline.from_pretrained(BUNDLED, device="cpu")
        info = ModelInfo("worldmem-tiny", True, template.size, template.chunk_frames)
    else:
        template = make_tiny_pipeline()
        info = ModelInfo("random tiny", False, template.size, template.model_cfg.chunk_frames)
    shots = tmp_path_factory.mktemp("browser")
    seen: dict = {"trained": trained, "page_errors": []}
    # the page begins from the bundled start frame, as `python sample.py --interactive` does
    from worldmem.config import SampleConfig
    from worldmem.interactive.server import load_start_frame

    start_frame = load_start_frame(SampleConfig(), template.size)
    seen["start_frame"] = start_frame
    server = live_server(template, ServerConfig(), info, start_frame=start_frame)
    with server as (base, app), sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.on("pageerror", lambda e: seen["page_errors"].append(str(e)))
            page.goto(base + "/")
            wait_frames(page, 1)
            seen["start"] = grab(page)
            n = 1
            for _ in range(FORWARD):
                page.keyboard.press("w")
            n += FORWARD
            wait_frames(page, n)
            seen["forward"] = grab(page)
            for _ in range(TURNS):
                page.keyboard.press("ArrowLeft")
            n += TURNS
            wait_frames(page, n)
            seen["far"] = grab(page)
            for _ in range(TURNS):  # turn back with the on-screen button (pointer events)
                page.click("#pad button[data-key='right']")
            n += TURNS
            wait_frames(page, n)
            seen["turned_back"] = grab(page)
            for _ in range(FORWARD):
                page.keyboard.press("s")
            n += FORWARD
            wait_frames(page, n)
            seen["back"] = grab(page)
            page.screenshot(path=str(shots / "interactive.png"))
            if os.environ.get("WORLDMEM_WRITE_DOCS") == "1":
                (REPO / "docs").mkdir(exist_ok=True)
                shutil.copy(shots / "interactive.png", REPO / "docs" / "interactive.png")
            seen["screenshot"] = shots / "interactive.png"
            href = page.get_attribute("#dl-video", "href")
            seen["video"] = page.request.get(base + href).body()
            seen["state"] = page.evaluate("document.body.dataset.state")
            # a new world from a prompt alone (the box unticked)
            page.uncheck("#from-image")
            page.fill("#prompt", PROMPT)
            page.fill("#seed", "5")
            page.click("#start")
            n += 1
            wait_frames(page, n)
            seen["prompt_only"] = grab(page)
            seen["prompt_message"] = page.text_content("#message")
        finally:
            browser.close()
        seen["server_errors"] = list(app.state.worldmem.errors)
    return seen


def test_keys_and_buttons_move_the_reported_pose_as_the_keymap_says(walk):
    assert walk["page_errors"] == [] and walk["server_errors"] == []
    start, fwd, far = walk["start"], walk["forward"], walk["far"]
    assert start["pose"] == pytest.approx([0, 0, 0], abs=1e-6) and start["yaw"] == 0
    # W moves forward along the heading (+z at yaw 0)
    assert fwd["pose"] == pytest.approx([0, 0, FORWARD * MOVE], abs=1e-4)
    assert fwd["index"] == start["index"] + FORWARD  # (a start frame is frame 0 of the world)
    # the left arrow turns left (yaw < 0) without moving
    assert far["yaw"] == pytest.approx(-TURNS * TURN, abs=1e-3)
    assert far["pose"] == pytest.approx(fwd["pose"], abs=1e-4)
    # the on-screen right button turns back; S walks back to the start
    assert walk["turned_back"]["yaw"] == pytest.approx(0, abs=1e-3)
    assert walk["back"]["pose"] == pytest.approx([0, 0, 0], abs=1e-4)
    assert walk["back"]["index"] == start["index"] + 2 * (FORWARD + TURNS)
    # the frame on the page changed as the camera moved
    assert mad(fwd, start) > 1.0 and mad(far, fwd) > 1.0
    assert walk["state"] == "ready"
    assert walk["screenshot"].stat().st_size > 10_000
    assert walk["video"][4:8] == b"ftyp"  # the mp4 download


def test_walking_back_shows_the_remembered_frame(walk):
    if not walk["trained"]:
        pytest.skip(
            f"no trained model at {BUNDLED}: a random-weight model has no memory to show; the "
            "pose and image checks ran in the test above"
        )
    start, far, back = walk["start"], walk["far"], walk["back"]
    # The world began from the bundled start frame: the first frame on the page is that frame
    # (the memory holds it as observed and the model passes it through) ...
    image = (walk["start_frame"].image.permute(1, 2, 0).numpy() * 255).round()
    assert psnr_u8(start["rgb"], image) > 30.0
    # ... and back at the start pose after walking and turning, it comes back
    assert psnr_u8(back["rgb"], start["rgb"]) > 30.0
    near, away = structure_mad(back, start), structure_mad(far, start)
    assert near < away, (near, away)


def test_a_prompt_alone_begins_from_the_banks_frame_and_the_page_says_so(walk):
    """Unticking "from the start frame": the world begins from the frame the shipped
    pipeline's first-frame bank draws for the prompt and seed, and the page names it."""
    if not walk["trained"]:
        pytest.skip(f"no trained model at {BUNDLED} (its first-frame bank ships with it)")
    from worldmem.pipeline import WorldPipeline

    pipe = WorldPipeline.from_pretrained(BUNDLED, device="cpu")
    image, _, info = pipe.first_frame_for(PROMPT, 5)
    assert info["kind"] == "bank"
    shown = walk["prompt_only"]
    assert psnr_u8(shown["rgb"], (image.permute(1, 2, 0).cpu().numpy() * 255).round()) > 30.0
    assert shown["pose"] == pytest.approx([0, 0, 0], abs=1e-6)
    message = walk["prompt_message"]
    assert "began from a frame of a training world" in message and info["source"] in message


def test_held_button_repeats_and_the_page_reconnects_after_a_restart(tmp_path):
    ensure_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    template = make_tiny_pipeline()
    cfg = ServerConfig(host="127.0.0.1", port=free_port())
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 420, "height": 900})  # a phone
            page.on("pageerror", lambda e: errors.append(str(e)))
            with running_server(cfg, template) as (base, app):
                page.goto(base + "/")
                wait_frames(page, 1)
                # hold the on-screen D button: the page repeats it while held
                button = page.locator("#pad button[data-key='d']")
                button.scroll_into_view_if_needed()
                box = button.bounding_box()
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.mouse.down()
                page.wait_for_function(
                    "() => Number(document.getElementById('pose').dataset.framesReceived) >= 4",
                    timeout=60_000,
                )
                page.mouse.up()
                page.wait_for_function("() => document.body.dataset.state === 'ready'")
                held = grab(page)
                assert held["index"] >= 3 and held["yaw"] == pytest.approx(0, abs=1e-6)
                assert held["pose"] == pytest.approx([held["index"] * MOVE, 0, 0], abs=1e-4)
                page.screenshot(path=str(tmp_path / "phone.png"))
                assert app.state.worldmem.errors == []
            page.wait_for_function("() => document.body.dataset.state === 'disconnected'")
            assert "reconnecting" in page.inner_text("#overlay")
            with running_server(cfg, template):  # the same address comes back
                page.wait_for_function(
                    "() => document.body.dataset.state === 'ready' && "
                    "document.getElementById('pose').dataset.frameIndex === '0'",
                    timeout=60_000,
                )
                assert page.is_hidden("#overlay")
        finally:
            browser.close()
    assert errors == []
