"""Interactive exploration speed over a live websocket (uvicorn on loopback).

    python benchmarks/interactive.py [--seconds 8] [--trials 10] [--rounds 3] [--threads N]
        [--steps N] [--chunk-frames N] [--checkpoint DIR] [--no-browser]

The page's own numbers come from the server as it is run, ``python sample.py --interactive``
in a process of its own, measured from outside it:

* key-to-first-frame latency and streamed frames/s of a websocket client in this process;
* the page itself in Chromium (``/usr/bin/chromium``, headless, through Playwright), a key
  held for ``--seconds``: the frames it draws per second (``--no-browser`` skips it).

The target is judged on those. The rows below run the server in a thread of this process,
its client beside it (sharing the interpreter lock with the generating thread), to compare
settings with each other in one process. For the tiny model at its 64 px (the trained
checkpoint at checkpoints/worldmem-tiny when present, else a random-weight model of the tiny
preset; the server process always loads a checkpoint, the bundled one by default):

* key-to-first-frame latency: a single key sent while the server is idle, until the first
  frame it produced arrives at the client (median and 90th percentile over the trials);
* streamed frames/s: a client that keeps the server busy (as a held key does) counts the
  frames it receives, at the server's torch threads (``serving_threads``: one fewer than the
  cores by default) and at one per core (or, if the server already uses that many, at one),
  the runs alternated, medians of ``--rounds``: the server's event loop, its PNG encoding and
  the client share the cores with the generating thread;
* the same model stepped directly in this process (``Session.step``, no server, the server's
  threads): the baseline the streamed rate is a ratio of;
* the stem cache (``WorldDiT.cache_memory_stems``): chunk time with it against without it,
  two sessions of the same weights stepped alternately in this process (median ratio);
* torch threads: chunk time stepped directly at one thread against one per core, one
  session's chunks alternating between the two (median ratio);
* the share of the streaming wall time spent in the pipeline (memories + model, from the
  timing the server reports per chunk): 1 minus this is what the server adds (insets, PNG,
  websocket, scheduling).

Targets (the server in its own process): >= 8 frames/s streamed and < 0.6 s latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

import torch

REPO = Path(__file__).resolve().parents[1]

TARGET_FPS = 8.0
TARGET_LATENCY_S = 0.6


def build_template(
    steps: int | None, checkpoint: str | None = None, chunk_frames: int | None = None
):
    from worldmem.config import MemoryConfig
    from worldmem.interactive.server import ModelInfo, tiny_model_config
    from worldmem.models import WorldDiT
    from worldmem.pipeline import WorldPipeline

    ckpt = Path(checkpoint) if checkpoint else REPO / "checkpoints" / "worldmem-tiny"
    if (ckpt / "pipeline.json").is_file():
        kw = {} if steps is None else {"steps": steps}
        pipe = WorldPipeline.from_pretrained(ckpt, device="cpu", chunk_frames=chunk_frames, **kw)
        name = f"trained ({ckpt})"
    else:
        cfg = tiny_model_config()
        model = WorldDiT.from_model_config(cfg)
        pipe = WorldPipeline(
            model, cfg, MemoryConfig(), steps=steps or 4, chunk_frames=chunk_frames
        )
        name = "random tiny preset (no checkpoint at checkpoints/worldmem-tiny)"
    info = ModelInfo(name, "trained" in name, pipe.size, pipe.chunk_frames)
    return pipe, info


def _chunk_keys(template) -> list[str]:
    """One chunk's keys: forward and a turn in turn."""
    return (["w", "left"] * template.chunk_frames)[: template.chunk_frames]


def direct_fps(template, seconds: float) -> float:
    """Frames/s of Session.step in this process, one chunk's keys at a time."""
    s = _warm_session(template)
    keys = _chunk_keys(template)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += len(s.step(keys))
    return n / (time.perf_counter() - t0)


def _warm_session(template):
    """A started session of ``template`` past its first (warm-up) chunk."""
    from worldmem.interactive.session import Session

    s = Session(template)
    s.start("a long corridor with red brick walls", seed=0)
    s.step(["w", "w"])
    return s


def _median_ratio(first, second, chunks: int) -> float:
    """Median time of ``first()`` over that of ``second()``, each one chunk, run in turn."""
    times: tuple[list, list] = ([], [])
    for _ in range(chunks):
        for run, t in zip((first, second), times):
            t0 = time.perf_counter()
            run()
            t.append(time.perf_counter() - t0)
    return statistics.median(times[0]) / statistics.median(times[1])


def stem_cache_speedup(
    checkpoint: str | None, steps: int | None, chunk_frames: int | None, chunks: int = 30
) -> float:
    """Median chunk time without the stem cache / with it, the two sessions stepped in turn."""
    uncached, _ = build_template(steps, checkpoint, chunk_frames)  # the cache is on by default
    uncached.model.cache_memory_stems(None)
    cached, _ = build_template(steps, checkpoint, chunk_frames)
    a, b = _warm_session(uncached), _warm_session(cached)
    keys = _chunk_keys(cached)
    return _median_ratio(lambda: a.step(keys), lambda: b.step(keys), chunks)


def threads_speedup(template, threads: int, chunks: int = 20) -> float:
    """Median chunk time at one torch thread / at ``threads``, one session whose chunks
    alternate between the two settings (the setting is restored afterwards)."""
    before = torch.get_num_threads()
    s = _warm_session(template)

    def at(n: int):
        torch.set_num_threads(n)
        s.step(_chunk_keys(template))

    try:
        return _median_ratio(lambda: at(1), lambda: at(threads), chunks)
    finally:
        torch.set_num_threads(before)


async def measure(
    url: str, seconds: float, trials: int, thread_counts: list[int], rounds: int, set_threads
) -> dict:
    """Latency at the server's setting, then streaming ``rounds`` times at each of
    ``thread_counts`` torch threads in turn (``set_threads(n)`` sets the server's)."""
    from websockets.asyncio.client import connect

    from worldmem.interactive.protocol import decode_image_message

    async with connect(url, max_size=2**24) as ws:
        hello = json.loads(await ws.recv())
        T = hello["chunk_frames"]
        state = {"frames": 0, "idle": False, "first": {}, "pipeline_s": 0.0}

        async def reader():
            async for m in ws:
                if isinstance(m, bytes):
                    header, _ = decode_image_message(m)
                    if header["kind"] == "depth":  # one per chunk: the chunk's own timing
                        state["pipeline_s"] += sum(header["timing"].values())
                    if header["kind"] == "frame":
                        state["frames"] += 1
                        t = header.get("t")
                        if t is not None and t not in state["first"]:
                            state["first"][t] = time.perf_counter()
                else:
                    m = json.loads(m)
                    if m["type"] == "status":
                        state["idle"] = m["state"] == "idle" and m["pending"] == 0
                    elif m["type"] == "error":
                        raise RuntimeError(f"server error: {m}")

        task = asyncio.create_task(reader())

        async def until_idle():
            while not state["idle"]:
                await asyncio.sleep(0.002)

        state["idle"] = False
        await ws.send(json.dumps({"type": "start", "prompt": "a long corridor", "seed": 0}))
        await until_idle()
        for _ in range(2):  # warm up
            state["idle"] = False
            await ws.send(json.dumps({"type": "keys", "keys": ["w"] * T}))
            await until_idle()

        latencies = []
        for i in range(trials):
            await asyncio.sleep(0.05)
            key = "left" if i % 2 else "right"
            t_ms = float(i)
            state["idle"] = False
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "keys", "keys": [key], "t": t_ms}))
            while t_ms not in state["first"]:
                await asyncio.sleep(0.001)
            latencies.append(state["first"][t_ms] - sent)
            await until_idle()

        async def stream() -> tuple[float, float]:
            """A held key for ``seconds``: about two chunks kept waiting, as the page does ->
            (frames/s received, the pipeline's share of the wall time)."""
            start_frames, sent_keys = state["frames"], 0
            state["pipeline_s"] = 0.0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                if sent_keys - (state["frames"] - start_frames) < 2 * T:
                    await ws.send(json.dumps({"type": "keys", "keys": ["w"] * T}))
                    sent_keys += T
                await asyncio.sleep(0.005)
            wall = time.perf_counter() - t0
            fps = (state["frames"] - start_frames) / wall
            busy = state["pipeline_s"] / wall
            # the chunks still queued are not counted in the next run (bounded wait)
            deadline = time.perf_counter() + 60
            while state["frames"] - start_frames < sent_keys and time.perf_counter() < deadline:
                await asyncio.sleep(0.005)
            return fps, busy

        # the thread settings in turn, so a slow spell of the machine falls on each
        streams: dict[int, list[tuple[float, float]]] = {n: [] for n in thread_counts}
        for _ in range(rounds):
            for n in thread_counts:
                await asyncio.get_running_loop().run_in_executor(None, set_threads, n)
                streams[n].append(await stream())
        task.cancel()
    return {"latencies": latencies, "streams": streams, "chunk_frames": T}


def _runs(fps: list[float]) -> str:
    """Frames/s of several runs: the median and each run's."""
    return f"{statistics.median(fps):.2f}  ({', '.join(f'{f:.2f}' for f in fps)})"


def _streamed(streams: list[tuple[float, float]]) -> str:
    """``_runs`` of ``measure``'s streaming runs (frames/s, pipeline share)."""
    return _runs([f for f, _ in streams])


def _p90(values: list[float]) -> float:
    """The 90th percentile (nearest rank) of values, at least one."""
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, int(0.9 * len(ranked)))]


SERVER_START_TIMEOUT_S = 120.0  # the server process loads the pipeline before it listens
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served_process(
    checkpoint: str | None, steps: int | None, threads: int | None, chunk_frames: int | None = None
):
    """``python sample.py --interactive`` in a process of its own on a free loopback port
    -> yields its base URL once it answers; stopped on exit (terminated, then killed)."""
    port = _free_port()
    cmd = [sys.executable, str(REPO / "sample.py"), "--interactive", "--port", str(port)]
    cmd += [f"sample.checkpoint={checkpoint}"] if checkpoint else []
    cmd += [f"sample.steps={steps}"] if steps else []
    cmd += [f"server.torch_threads={threads}"] if threads else []
    cmd += [f"sample.chunk_frames={chunk_frames}"] if chunk_frames else []
    # its messages go to a file, not a pipe: a pipe nobody reads would stop a chatty server
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"the server process exited ({proc.returncode}): {err}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server process did not answer within {SERVER_START_TIMEOUT_S:g} s"
                )
            try:
                with urllib.request.urlopen(base + "/", timeout=2):
                    break
            except OSError:
                time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


class PageRun(NamedTuple):
    """One held key in the page: frames drawn per second, and the milliseconds between one
    frame drawn and the next (the page spaces a chunk's frames, which arrive together)."""

    fps: float
    gaps_ms: list[float]


def page_fps(base: str, seconds: float, rounds: int) -> list[PageRun] | None:
    """The explorer page in headless Chromium, ``w`` held down for ``seconds`` (the page
    repeats a held key while the server's backlog is short), ``rounds`` times: what it drew
    each time; None without Chromium or Playwright."""
    if not Path(CHROMIUM).exists():
        return None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    # functions, not expressions: the page's content security policy forbids eval
    count = "Number(document.getElementById('pose').dataset.framesReceived || 0)"
    frames = f"() => {count}"
    ready = f"() => document.body.dataset.state === 'ready' && {count} >= 1"
    # each frame drawn sets data-frames-received: note when
    watch = """() => {
        window.drawnAt = [];
        new MutationObserver((records) => {
            for (const _ of records) window.drawnAt.push(performance.now());
        }).observe(document.getElementById('pose'),
                   { attributes: true, attributeFilter: ['data-frames-received'] });
    }"""
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(base + "/")
            page.wait_for_function(ready, timeout=120_000)  # the start frame is drawn
            page.evaluate(watch)
            for _ in range(rounds):
                page.evaluate("() => { window.drawnAt = []; }")
                n0, t0 = page.evaluate(frames), time.perf_counter()
                page.keyboard.down("w")
                page.wait_for_timeout(seconds * 1000)
                n1, t1 = page.evaluate(frames), time.perf_counter()
                drawn = page.evaluate("() => window.drawnAt")
                page.keyboard.up("w")
                gaps = [b - a for a, b in zip(drawn, drawn[1:])]
                out.append(PageRun((n1 - n0) / (t1 - t0), gaps))
                page.wait_for_function(
                    "() => document.body.dataset.state === 'ready'", timeout=120_000
                )
        finally:
            browser.close()
    return out


def _gaps(runs: list[PageRun]) -> str:
    """Between frames drawn: the median and 90th percentile over every run, in ms."""
    gaps = [g for r in runs for g in r.gaps_ms]
    if not gaps:
        return "(no two frames drawn)"
    return f"median {statistics.median(gaps):.0f}, 90th percentile {_p90(gaps):.0f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=8.0, help="streaming measurement length")
    p.add_argument("--trials", type=int, default=10, help="latency trials")
    p.add_argument("--rounds", type=int, default=3, help="streaming runs at each thread count")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: model's)")
    p.add_argument(
        "--chunk-frames", type=int, default=None, help="frames per chunk (default: model's)"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: the server's)"
    )
    p.add_argument("--checkpoint", default=None, help="pipeline folder (default: the bundled)")
    p.add_argument("--no-browser", action="store_true", help="skip the page in Chromium")
    a = p.parse_args(argv)

    from worldmem.config import ServerConfig
    from worldmem.interactive.server import running_server, serving_threads

    cores = torch.get_num_threads()
    threads = serving_threads(ServerConfig(torch_threads=a.threads or 0))
    torch.set_num_threads(threads)
    template, info = build_template(a.steps, a.checkpoint, a.chunk_frames)
    base = direct_fps(template, a.seconds)
    cache_speedup = stem_cache_speedup(a.checkpoint, a.steps, a.chunk_frames)
    n_threads = torch.get_num_threads()
    thread_speedup = threads_speedup(template, cores) if cores > 1 else None
    cfg = ServerConfig(host="127.0.0.1", port=0, max_messages_per_s=1000)
    # the server's setting against one more thread (one per core) and, above that, one
    other = cores if n_threads < cores else 1
    counts = [n_threads] + ([other] if other != n_threads else [])
    with running_server(cfg, template, info) as (url, app):
        worker = app.state.worldmem.executor  # the server's generating thread

        def set_threads(n: int) -> None:  # torch's thread count is the calling thread's
            worker.submit(torch.set_num_threads, n).result(timeout=60)

        url = url.replace("http", "ws") + "/ws"
        r = asyncio.run(measure(url, a.seconds, a.trials, counts, a.rounds, set_threads))
        errors = list(app.state.worldmem.errors)
    lat = r["latencies"]
    fps, share = (statistics.median(x) for x in zip(*r["streams"][n_threads]))
    med, p90 = statistics.median(lat), _p90(lat)
    # the server as it is run: a process of its own, measured from this one and from the page
    with served_process(a.checkpoint, a.steps, a.threads, a.chunk_frames) as served:
        url = served.replace("http", "ws") + "/ws"
        own = asyncio.run(measure(url, a.seconds, a.trials, [0], a.rounds, lambda n: None))
        page = None if a.no_browser else page_fps(served, a.seconds, a.rounds)
    own_fps = statistics.median(f for f, _ in own["streams"][0])
    own_lat = statistics.median(own["latencies"])
    page_row = "(no Chromium or Playwright)" if page is None else _runs([r.fps for r in page])
    gaps_row = "(no Chromium or Playwright)" if page is None else _gaps(page)
    rows = [
        ("model", info.name),
        (
            "frame size / chunk / steps",
            f"{info.image_size} px / {r['chunk_frames']} / {template.steps}",
        ),
        (
            "server in its own process: streamed frames/s",
            f"{_streamed(own['streams'][0])}  (target >= {TARGET_FPS:g})",
        ),
        ("  key-to-first-frame median s", f"{own_lat:.3f}  (target < {TARGET_LATENCY_S:g})"),
        ("  the page in Chromium, frames/s drawn", "(skipped)" if a.no_browser else page_row),
        ("  ms between frames drawn", "(skipped)" if a.no_browser else gaps_row),
        ("in this process (the client shares the lock):", ""),
        ("direct Session.step frames/s", f"{base:.2f}"),
        ("chunk time without / with the stem cache", f"{cache_speedup:.2f}x"),
        (
            f"chunk time at 1 / {cores} torch threads",
            "(one thread)" if thread_speedup is None else f"{thread_speedup:.2f}x",
        ),
        ("streamed frames/s", _streamed(r["streams"][n_threads])),
        ("streamed / direct", f"{fps / base:.2f}"),
        ("pipeline time / streaming wall time", f"{share:.2f}"),
        *(
            (f"streamed frames/s at {n} torch thread{'s' * (n > 1)}", _streamed(r["streams"][n]))
            for n in counts[1:]
        ),
        ("torch threads while serving", f"{n_threads} (of {cores} cores)"),
        ("key-to-first-frame median s", f"{med:.3f}"),
        ("key-to-first-frame p90 s", f"{p90:.3f}"),
        ("server errors", str(len(errors))),
    ]
    w = max(len(k) for k, _ in rows)
    print("\nworldmem interactive benchmark (websocket on 127.0.0.1)")
    print("-" * (w + 50))
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print("-" * (w + 50))
    ok = own_fps >= TARGET_FPS and own_lat < TARGET_LATENCY_S
    print("targets met" if ok else "targets NOT met on this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
