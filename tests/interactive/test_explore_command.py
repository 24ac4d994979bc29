"""`worldmem explore` and `sample.py --interactive`: config errors, and a real server process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import REPO
from websockets.sync.client import connect

from worldmem.cli import main


def test_a_bad_override_is_a_config_error_with_exit_code_2(capsys):
    assert main(["explore", "server.nope=1"]) == 2
    err = capsys.readouterr().err
    assert "server.nope" in err or "nope" in err
    with pytest.raises(SystemExit):
        main(["fly"])


def test_explore_forwards_the_config_to_the_server(monkeypatch):
    import worldmem.interactive.server as server

    got = []
    monkeypatch.setattr(server, "serve", got.append)
    argv = ["explore", "--host", "0.0.0.0", "--port", "9001", "server.max_sessions=8"]
    assert main([*argv, "sample.steps=2"]) == 0
    (cfg,) = got
    assert (cfg.server.host, cfg.server.port, cfg.server.max_sessions) == ("0.0.0.0", 9001, 8)
    assert cfg.sample.steps == 2


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sample_py_interactive_prints_the_url_and_serves_the_page(tiny_pipeline_dir):
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["--port", str(port), f"sample.checkpoint={tiny_pipeline_dir}", "sample.device=cpu"]
    cmd = [sys.executable, "sample.py", "--interactive", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "http://" in line:
                break
        url_line = next((x for x in lines if "http://" in x), None)
        assert url_line is not None, "".join(lines)
        assert f"http://127.0.0.1:{port}/" in url_line  # loopback unless --host says otherwise
        for _ in range(100):  # uvicorn binds just after the line is printed
            try:
                ws = connect(f"ws://127.0.0.1:{port}/ws", open_timeout=30)
                break
            except OSError:
                time.sleep(0.1)
        with ws:
            hello = json.loads(ws.recv(timeout=30))
            assert hello["type"] == "hello" and hello["image_size"] == 32
    finally:
        proc.terminate()
        proc.wait(timeout=30)
