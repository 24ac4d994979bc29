"""Revisit mining: finds the chunks that come back to earlier views, and nothing else."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmem.data.episode import write_episode, write_manifest
from worldmem.data.revisits import find_revisits, frame_overlaps, read_revisit_index
from worldmem.geometry import intrinsics_from_fov, rotation_y

REPO = Path(__file__).resolve().parents[2]
H = W = 32
FOV_DEG = 60.0
HALF_WIDTH = math.tan(math.radians(FOV_DEG / 2))  # wall half-width seen at 1 m


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "datasets" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _K(n: int) -> torch.Tensor:
    return intrinsics_from_fov(FOV_DEG, W, H).expand(n, 3, 3).clone()


def _strafe_out_and_back(steps: int = 30, step_m: float = 0.1):
    """Facing +z towards a wall 1 m away, strafe +x for ``steps`` frames, then back.

    Returns c2w (2*steps, 4, 4), the x position of every frame, and depth (1 m everywhere).
    """
    x = torch.cat([torch.arange(steps), steps - 1 - torch.arange(steps)]).float() * step_m
    n = x.numel()
    c2w = torch.eye(4).repeat(n, 1, 1)
    c2w[:, 0, 3] = x
    return c2w, x, torch.ones(n, H, W)


def _pan_twice(per_lap: int = 36, radius_m: float = 2.0) -> torch.Tensor:
    """Walk a circle twice looking outward, 10 degrees per frame: lap two repeats lap one."""
    n = 2 * per_lap
    yaw = torch.arange(n) * 2 * math.pi / per_lap
    c2w = torch.eye(4).repeat(n, 1, 1)
    c2w[:, :3, :3] = rotation_y(yaw)
    c2w[:, 0, 3] = radius_m * torch.sin(yaw)
    c2w[:, 2, 3] = radius_m * torch.cos(yaw)
    return c2w


def test_overlap_matches_analytic_wall_coverage():
    """Two cameras facing a wall at 1 m, dx apart, share 1 - |dx| / (2 tan(fov/2)) of it."""
    c2w, x, depth = _strafe_out_and_back()
    ov = frame_overlaps(c2w, _K(len(x)), H, W, 12, depth=depth, num_samples=512)
    i = torch.arange(len(x))[:, None]
    j = torch.arange(len(x))[None]
    analytic = (1 - (x[:, None] - x[None]).abs() / (2 * HALF_WIDTH)).clamp(min=0)
    mask = j <= i - 12
    err = (ov - analytic)[mask].abs()
    assert float(err.max()) < 0.1, float(err.max())  # 512 samples: a few percent of noise
    assert bool((ov[~mask] == 0).all())  # no sources closer than the gap


def test_strafe_out_and_back_finds_only_the_return_leg():
    c2w, x, depth = _strafe_out_and_back()
    revisits = find_revisits(c2w, _K(60), H, W, 2, 12, 0.5, depth=depth)
    starts = [r.target_start for r in revisits]
    assert starts and min(starts) >= 30  # nothing on the way out
    # every return chunk far enough from the turn (gap to its twin >= 12) is found ...
    assert set(range(36, 59)) <= set(starts)
    for r in revisits:
        # ... and its best source stands where the chunk stands, on the way out
        src = r.source_frames[0]
        assert src < 30 and src <= r.target_start - 12
        if r.target_start >= 36:  # nearer the turn the gap rule keeps the twin out of reach
            assert abs(float(x[src] - x[r.target_start : r.target_start + 2].mean())) < 0.15
        assert r.overlap == r.source_overlaps[0] >= 0.5
        assert r.source_overlaps == sorted(r.source_overlaps, reverse=True)


def test_depth_decides_what_is_seen():
    """Without depth the 10 m deep frusta of a sideways walk overlap on the way out; with the
    wall's depth they do not."""
    c2w, _, depth = _strafe_out_and_back()
    blind = find_revisits(c2w, _K(60), H, W, 2, 12, 0.5)
    seeing = find_revisits(c2w, _K(60), H, W, 2, 12, 0.5, depth=depth)
    assert min(r.target_start for r in blind) < 30
    assert min(r.target_start for r in seeing) >= 30


def test_second_lap_of_a_circle_revisits_the_first():
    c2w = _pan_twice()
    revisits = find_revisits(c2w, _K(72), H, W, 2, 12, 0.5)
    starts = {r.target_start for r in revisits}
    assert min(starts) >= 33  # the first lap sees nothing seen 12+ frames before
    assert set(range(36, 71)) <= starts
    for r in revisits:
        if r.target_start >= 36:
            # same heading one lap earlier (+-1 frame: the chunk spans two frames)
            assert r.source_frames[0] - (r.target_start - 36) in (-1, 0, 1, 2)


def test_stride_and_short_episode():
    c2w = _pan_twice()
    every_other = find_revisits(c2w, _K(72), H, W, 2, 12, 0.5, stride_frames=2)
    assert all(r.target_start % 2 == 0 for r in every_other)
    assert find_revisits(c2w[:10], _K(10), H, W, 2, 12, 0.5) == []


def test_bad_input_raises():
    c2w = _pan_twice()
    with pytest.raises(ValueError, match=r"K: expected shape \(72, 3, 3\)"):
        find_revisits(c2w, _K(71), H, W, 2, 12, 0.5)
    with pytest.raises(ValueError, match="min_overlap"):
        find_revisits(c2w, _K(72), H, W, 2, 12, 1.5)
    with pytest.raises(ValueError, match="depth: expected"):
        find_revisits(c2w, _K(72), H, W, 2, 12, 0.5, depth=torch.ones(72, H, W + 1))
    bad = c2w.clone()
    bad[4, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="pose 4"):
        find_revisits(bad, _K(72), H, W, 2, 12, 0.5)


def test_cli_writes_index_and_histograms(tmp_path, capsys):
    c2w, _, depth = _strafe_out_and_back()
    rgb = np.zeros((60, H, W, 3), np.uint8)
    write_episode(tmp_path / "strafe", rgb, c2w, _K(60), "a wall", depth=depth.numpy())
    write_episode(tmp_path / "circle", np.zeros((72, H, W, 3), np.uint8), _pan_twice(), _K(72), "")
    write_manifest(
        tmp_path,
        [
            dict(path="strafe", split="train", num_frames=60, caption="a wall"),
            dict(path="circle", split="val", num_frames=72, caption=""),
        ],
    )
    mine = _load_script("mine_revisits")
    assert mine.main(["--root", str(tmp_path), "--min-gap", "12", "--chunk", "2"]) == 0
    out = capsys.readouterr().out
    assert "revisiting chunks" in out
    index = read_revisit_index(tmp_path)
    assert set(index) == {"strafe", "circle"}
    assert index["strafe"]["depth_aware"] and not index["circle"]["depth_aware"]
    assert min(r.target_start for r in index["strafe"]["revisits"]) >= 30
    row = json.loads((tmp_path / "revisits.jsonl").read_text().splitlines()[0])
    assert row["chunk_frames"] == 2 and row["min_gap_frames"] == 12
    png = (tmp_path / "revisits_stats.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
