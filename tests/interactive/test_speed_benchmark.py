"""The interactive speed benchmark's own measurement of the page (benchmarks/interactive.py):
the server as it is run, in a process of its own, and the page in a real Chromium."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from conftest import load_script

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/interactive.py", "interactive_bench")


def test_a_server_that_cannot_start_is_an_error_with_its_message(bench, tiny_pipeline_dir):
    with pytest.raises(RuntimeError, match="server process exited") as e:
        with bench.served_process(str(tiny_pipeline_dir), -3, None):
            pass
    assert "SampleConfig.steps" in str(e.value) and "got -3" in str(e.value)


@pytest.mark.browser
def test_the_served_page_streams_frames_to_chromium_and_the_server_stops(bench, tiny_pipeline_dir):
    if not Path(bench.CHROMIUM).exists():
        pytest.skip(f"{bench.CHROMIUM} not found")
    pytest.importorskip("playwright.sync_api")
    with bench.served_process(str(tiny_pipeline_dir), None, None) as base:
        with urllib.request.urlopen(base + "/", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
        runs = bench.page_fps(base, seconds=2.0, rounds=2)
    # a held key streams frames: each round the page drew some (a random tiny model on two
    # cores makes a few a second at least), and the time between them was noted
    assert runs is not None and len(runs) == 2
    assert all(r.fps > 0.5 for r in runs), runs
    for r in runs:
        assert len(r.gaps_ms) >= 1 and all(g >= 0 for g in r.gaps_ms)
        assert sum(r.gaps_ms) < 2000 + 1000  # within the key's hold (and one chunk after)
    with pytest.raises(OSError):  # the process is gone: nothing answers on its port
        urllib.request.urlopen(base + "/", timeout=2)
