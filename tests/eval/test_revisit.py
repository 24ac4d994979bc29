"""Revisit protocols: paths that repeat, ground truth that matches a fresh render, a perfect
model that scores perfectly, memory modes that change the model's inputs, results on disk."""

import math
from types import SimpleNamespace

import pytest
import torch
from conftest import make_tiny_pipeline

from worldmem.data.synthetic import make_world
from worldmem.eval.metrics import LPIPS, MAX_PSNR_DB, t_quantile
from worldmem.eval.revisit import (
    ABLATION_MODES,
    MEMORY_RENDER_ROW,
    dataset_cases,
    frames_to_generate,
    horizon_gap,
    periodic_path,
    run_gt_context,
    run_recall,
    run_revisit_eval,
    summarize,
    synthetic_case,
    write_results,
)
from worldmem.geometry import c2w_to_pose, intrinsics_from_fov, pose_to_c2w

S = 32
K = intrinsics_from_fov(75.0, S, S)


def test_periodic_path_repeats_and_walks_a_closed_polygon():
    start = pose_to_c2w(torch.tensor([1.0, 0.0, -2.0]), 30.0, 5.0)
    c2w = periodic_path(start, 8, 13, 0.1, 45.0)
    assert torch.equal(c2w[8:], c2w[:5])
    pos, yaw, pitch = c2w_to_pose(c2w[:8])
    # first step along the start heading (yaw 30: between +z and +x)
    step = pos[1] - pos[0]
    want = 0.1 * torch.tensor([math.sin(math.radians(30)), 0.0, math.cos(math.radians(30))])
    assert torch.allclose(step, want, atol=1e-5)
    assert yaw[1].item() == pytest.approx(75.0, abs=1e-3)  # turned right by 45
    assert torch.allclose(pitch, torch.full((8,), 5.0), atol=1e-3)
    # a regular octagon: every side (the closing one too) 0.1 m, all corners on one circle
    sides = (pos.roll(-1, 0) - pos).norm(dim=1)
    assert torch.allclose(sides, torch.full((8,), 0.1), atol=1e-5)
    radius = (pos - pos.mean(0)).norm(dim=1)
    assert torch.allclose(radius, torch.full((8,), 0.1 / (2 * math.sin(math.pi / 8))), atol=1e-5)


def test_horizon_gaps_relate_to_the_working_window():
    assert [horizon_gap("short", 2, i) for i in range(3)] == [2, 3, 2]
    assert [horizon_gap("long", 2, i) for i in range(3)] == [20, 22, 24]
    assert horizon_gap("long", 4, 0) == 40
    with pytest.raises(ValueError, match="horizon 'medium'"):
        horizon_gap("medium", 2)


def test_synthetic_case_ground_truth_matches_a_fresh_render():
    case = synthetic_case(100_003, "long", 10, S, K, revisit_frames=2)
    assert case.num_frames == 12 and case.context_frames == 10
    assert case.first_visit.tolist() == [-1] * 10 + [0, 1]
    world = make_world(100_003)
    rgb, depth = world.render(case.c2w[-1:], K[None], S, S)
    assert torch.allclose(rgb, case.rgb[-1:], atol=1e-5)
    assert torch.allclose(depth, case.depth[-1:], atol=1e-5)
    pos = case.c2w[:, :3, 3]
    in_place = bool((pos - pos[0]).norm(dim=1).max() < 1e-6)
    assert in_place or bool(world.is_free(pos, 0.35).all())


class OraclePipe:
    """A perfect world model: every generated frame is the world rendered at its camera."""

    def __init__(self, world, shift_px: int = 0):
        self.world, self.shift_px, self.size, self.K = world, shift_px, S, K
        self.observed = 0

    def start(self, prompt="", image=None, depth=None, c2w=None, seed=0, memory="all", **kw):
        self.observed = 0
        self.draw_first = kw.get("draw_first")

    def observe(self, rgb, depth, c2w, K=None):
        self.observed += len(rgb)

    def step(self, cameras, K=None):
        rgb, depth = self.world.render(cameras, K, S, S)
        if self.shift_px:  # a model that misplaces everything by a few pixels
            rgb, depth = rgb.roll(self.shift_px, -1), depth.roll(self.shift_px, -1)
        ones = torch.ones_like(depth)  # its memory render is the truth too
        return SimpleNamespace(rgb=rgb, depth=depth, memory_rgb=rgb, memory_depth=depth,
                               memory_mask=ones)  # fmt: skip


def test_a_perfect_model_scores_perfectly_and_a_wrong_one_does_not():
    case = synthetic_case(100_001, "short", 2, S, K, revisit_frames=2)
    oracle = OraclePipe(make_world(100_001))
    rows = run_gt_context(oracle, case, "all")
    gt = [r for r in rows if r["mode"] == "all"]
    memory_rows = [r for r in rows if r["mode"] == MEMORY_RENDER_ROW]
    assert [r["frame"] for r in memory_rows] == [2, 3]
    assert all(r["psnr"] == pytest.approx(MAX_PSNR_DB) for r in memory_rows)
    assert oracle.observed == 2
    assert oracle.draw_first is False  # the true context is the whole start: nothing drawn
    assert [r["frame"] for r in gt] == [2, 3] and [r["gap"] for r in gt] == [2, 2]
    for r in gt:
        assert r["psnr"] == pytest.approx(MAX_PSNR_DB)
        assert r["ssim"] == pytest.approx(1.0, abs=1e-6)
        assert r["abs_rel"] == pytest.approx(0.0, abs=1e-6) and r["delta1"] == 1.0
    recall = run_recall(oracle, case, "all")
    revisits = [r for r in recall if r["reference"] == "recall"]
    assert [r["frame"] for r in revisits] == [2, 3]
    assert all(r["psnr"] == pytest.approx(MAX_PSNR_DB) for r in recall)
    wrong = run_gt_context(OraclePipe(make_world(100_001), shift_px=4), case, "all")
    assert all(r["psnr"] < 40 and r["ssim"] < 0.99 for r in wrong)


def _capture_inputs(pipe, monkeypatch) -> list:
    given = []
    generate = pipe.sampler.generate

    def spy(conditioning, generator=None):
        given.append(conditioning)
        return generate(conditioning, generator=generator)

    monkeypatch.setattr(pipe.sampler, "generate", spy)
    return given


def test_ablation_modes_give_the_model_different_inputs(monkeypatch):
    case = synthetic_case(100_000, "long", 4, S, K, revisit_frames=1)
    seen = {}
    for mode in ABLATION_MODES:
        pipe = make_tiny_pipeline()
        given = _capture_inputs(pipe, monkeypatch)
        run_recall(pipe, case, mode)
        last = given[-1]  # the chunk that comes back to the first pose (padded)
        seen[mode] = (
            bool(last.context.valid.any()),
            bool(last.keyframes.valid.any()),
            bool(last.memory_mask.sum() > 0),
        )
        assert torch.equal(last.c2w[0, -1], case.c2w[-1])  # identical cameras
    assert seen == {
        "working": (True, False, False),
        "episodic": (True, True, False),
        "spatial": (True, False, True),
        "all": (True, True, True),
    }


def test_protocols_run_end_to_end_and_write_table_and_plots(tmp_path, monkeypatch):
    pipe = make_tiny_pipeline()
    generated = []
    step = pipe.step
    monkeypatch.setattr(pipe, "step", lambda c, K=None: generated.append(len(c)) or step(c, K))
    cases = [
        synthetic_case(100_000 + i, h, g, S, K, 2)
        for i in range(2)
        for h, g in (("short", 2), ("long", 4))
    ]
    modes = ["working", "all"]
    torch.manual_seed(0)
    lpips = LPIPS()
    records = run_revisit_eval(pipe, cases, ["gt", "recall"], modes, lpips, log=lambda s: None)
    assert sum(generated) == frames_to_generate(cases, ["gt", "recall"], len(modes))
    # gt: 2 generated frames per case and mode, and the memory render (mode all) as a row;
    # recall: 2 revisits + (N - 1) vs ground truth
    n_gt = sum(2 for _ in cases) * (len(modes) + 1)
    n_recall = sum(2 + c.num_frames - 1 for c in cases) * len(modes)
    assert len(records) == n_gt + n_recall
    assert {"psnr", "ssim", "abs_rel", "delta1", "lpips"} <= set(records[0])
    paths = write_results(records, tmp_path)
    for name in ("revisit_gt.png", "revisit_recall.png", "path_gt.png", "path_recall.png"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = paths["summary.md"].read_text()
    assert "| gt | long |" in md and "| recall | short |" in md and "LPIPS" in md
    csv_rows = paths["summary.csv"].read_text().strip().splitlines()
    # (protocols x modes + the gt memory-render row) x horizons x metrics
    assert len(csv_rows) == 1 + (2 * len(modes) + 1) * 2 * 5
    assert any(MEMORY_RENDER_ROW in row for row in csv_rows)
    assert len(paths["frames.csv"].read_text().strip().splitlines()) == 1 + len(records)


def test_summary_is_the_mean_of_episode_means_with_a_t_interval():
    records = []
    for ep, values in (("a", [0.0, 2.0]), ("b", [2.0, 2.0]), ("c", [3.0, 3.0])):
        for i, v in enumerate(values):
            base = dict(episode=ep, protocol="recall", horizon="long", mode="all", frame=9 + i)
            records.append({**base, "reference": "recall", "gap": 8, "psnr": v})
            records.append({**base, "reference": "gt", "gap": 8, "psnr": 99.0})  # not a revisit
    (row,) = summarize(records)
    # episode means 1, 2, 3: mean 2, s = 1, t(0.975, 2) = 4.302653
    half = 4.302653 / math.sqrt(3)
    assert row["psnr"] == pytest.approx(2.0) and row["episodes"] == 3 and row["gap"] == 8
    assert row["psnr_low"] == pytest.approx(2 - half, abs=1e-5)
    assert row["psnr_high"] == pytest.approx(2 + half, abs=1e-5)
    assert t_quantile(0.975, 2) == pytest.approx(4.302653, abs=1e-5)


def test_dataset_cases_from_episode_folders(tmp_path):
    from worldmem.data.episode import write_episode, write_manifest
    from worldmem.data.synthetic import generate_episode

    ep = generate_episode(100_002, 30, image_size=S, traj_kind="look_around")
    write_episode(tmp_path / "ep0", ep.rgb, ep.c2w, ep.K, ep.caption, depth=ep.depth)
    write_manifest(tmp_path, [dict(path="ep0", split="test", num_frames=30, caption=ep.caption)])
    cases = dataset_cases(tmp_path, 1, ["long"], S, working_frames=1, revisit_frames=2)
    recall, gt = cases  # recall turns in place from the first frame; gt is a mined revisit
    assert recall.protocols == ("recall",) and gt.protocols == ("gt",)
    first = ep.rgb[0].permute(2, 0, 1).float() / 255  # the mp4 is lossy
    assert (recall.start_rgb - first).abs().mean() < 0.02
    s = gt.context_frames
    assert gt.first_visit[s:].tolist() == [gt.first_visit[s].item()] * 2
    assert s - gt.first_visit[s].item() >= 10  # at least 10 working windows back
    lo = 30 - gt.num_frames  # the revisit ends the episode (the pan returns to its start)
    assert torch.allclose(gt.c2w, ep.c2w[lo:], atol=1e-6)
    assert torch.allclose(gt.depth[:, 0], ep.depth[lo:], rtol=1e-2)
    records = run_revisit_eval(make_tiny_pipeline(), cases, ["gt"], ["all"], log=lambda s: None)
    model_rows = [r for r in records if r["mode"] == "all"]
    assert [(r["protocol"], r["frame"]) for r in model_rows] == [("gt", s), ("gt", s + 1)]


def test_observe_puts_ground_truth_frames_into_the_memories():
    case = synthetic_case(100_004, "short", 3, S, K, revisit_frames=1)
    pipe = make_tiny_pipeline()
    pipe.start(prompt=case.caption, c2w=case.c2w[0], memory="all")
    pipe.observe(case.rgb[:3], case.depth[:3], case.c2w[:3], case.K[:3])
    rgb, depth, c2w, _ = pipe.working.frames()
    assert torch.equal(rgb, case.rgb[1:3]) and torch.equal(c2w, case.c2w[1:3])
    assert torch.equal(pipe.c2w, case.c2w[2]) and pipe.frame_count == 3
    assert pipe.spatial.num_points > 0 and len(pipe.episodic.keyframes) >= 1
    with pytest.raises(ValueError, match=r"depth: expected \(3, 1, 32, 32\)"):
        pipe.observe(case.rgb[:3], case.depth[:2], case.c2w[:3])
