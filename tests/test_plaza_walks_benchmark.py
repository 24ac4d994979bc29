"""benchmarks/plaza_walks.py: it walks plazas only, and its comparison of two runs pairs the
same views (a run against itself differs by nothing; a row made worse is found worse)."""

from __future__ import annotations

import copy

import pytest
from conftest import load_script

from worldmem.data.synthetic import make_world
from worldmem.pipeline import WorldPipeline


def test_plazas_are_walked_and_two_runs_compared_view_by_view(tiny_pipeline_dir):
    bench = load_script("benchmarks/plaza_walks.py", "plaza_bench")
    seeds = bench.plaza_seeds(100002, 2)
    assert len(seeds) == 2 and seeds[0] < seeds[1]
    assert all(make_world(s).kind == "plaza" for s in seeds)
    assert any(make_world(s).kind != "plaza" for s in range(100002, seeds[1]))  # others skipped
    pipe = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    walks = bench.run(pipe, seeds[:1], ["turn"], frames=12)
    (walk,) = walks.values()
    assert set(walk["psnr"]) == set(bench.ROWS) and walk["sharpness"] > 0
    assert walk["frames"]["model"].shape == walk["frames"]["truth"].shape  # every 4th of 11

    same = bench.compare(walks, walks)
    for row in bench.ROWS:
        assert same[row]["delta"][0] == 0 and same[row]["kid_delta"][0] == pytest.approx(0)
        assert same[row]["kid"][0] == same[row]["kid"][1]
    worse = copy.deepcopy(walks)
    w = next(iter(worse.values()))
    w["psnr"]["model"] -= 1.0
    w["frames"]["model"] = w["frames"]["model"] * 0 + 0.5  # grey frames
    got = bench.compare(worse, walks)["model"]
    assert got["delta"][0] == pytest.approx(-1.0) and got["higher"] == 0
    assert got["kid"][0] != got["kid"][1]
    with pytest.raises(ValueError, match="share no walk"):
        bench.compare(walks, {})
