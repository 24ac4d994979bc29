"""The model's own rollouts (datasets/rollouts.py) and training on them as history."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import spy_inserts, tiny_memory_config

from worldmem.config import DataConfig
from worldmem.data.dataset import WorldDataset, read_episode_frames
from worldmem.data.episode import Episode, EpisodeError, write_episode
from worldmem.pipeline import WorldPipeline

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("rollouts", REPO / "datasets" / "rollouts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean().clamp(min=1e-10)))


@pytest.fixture(scope="module")
def rollout_root(synthetic_root, tiny_pipeline_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rollouts")
    _script().main(
        ["--root", str(synthetic_root), "--out", str(out), "--checkpoint", str(tiny_pipeline_dir)]
    )
    return out


def test_a_rollout_is_the_pipelines_generation_from_the_true_start(
    rollout_root, synthetic_root, tiny_pipeline_dir
):
    lines = (rollout_root / "manifest.jsonl").read_text().splitlines()
    names = [json.loads(line)["path"] for line in lines]
    assert names == ["ep_000", "ep_001"]  # the training episodes; ep_002 is validation
    true = read_episode_frames(Episode.open(synthetic_root / "ep_001"), 32)
    made = read_episode_frames(Episode.open(rollout_root / "ep_001"), 32)
    assert torch.equal(made.c2w, true.c2w) and made.caption == true.caption
    # frame 0 is the true frame; the rest is what the pipeline makes from it along the cameras
    assert _psnr(made.rgb[0].float() / 255, true.rgb[0].float() / 255) > 35
    pipe = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    rgb, depth = true.rgb.float() / 255, true.depth.float()
    pipe.start(prompt=true.caption, image=rgb[0], depth=depth[0], c2w=true.c2w[0], seed=1)
    chunk = pipe.step(true.c2w[1:], true.K[1:])
    want = chunk.rgb.detach().float().clamp(0, 1)
    got = made.rgb[1:].float() / 255
    assert _psnr(got, want) > 30  # the same frames, through the video codec
    assert _psnr(got, rgb[1:]) < 20  # and not the truth: the tiny model is untrained
    torch.testing.assert_close(made.depth[1:].float(), chunk.depth.float(), rtol=0.02, atol=0.05)


def test_training_samples_take_the_rollout_as_a_generated_history(
    rollout_root, synthetic_root, monkeypatch
):
    cfg = DataConfig(
        root=str(synthetic_root),
        image_size=32,
        num_workers=0,
        revisit_ratio=0.0,
        rollout_root=str(rollout_root),
        p_rollout_history=1.0,
    )
    ds = WorldDataset(cfg, tiny_memory_config(), "train")
    assert sorted(ds.rollouts) == [0, 1]
    inserts = spy_inserts(monkeypatch)
    e, t = 1, 11
    sample = ds[ds.starts.index((e, t))]
    (start, start_obs), (rest, rest_obs) = inserts
    true = ds.frames(e).rgb.float() / 255
    made = ds.rollout_frames(e).rgb.float() / 255
    assert start_obs and not rest_obs and torch.equal(start, true[:1])  # the start stays true
    hist = list(range(1, t))[::-1][:: cfg.memory_stride_frames][::-1]  # as the dataset strides
    assert torch.equal(rest, made[hist])  # the rest is what the model made, not the truth
    assert _psnr(rest, true[hist]) < 20
    assert torch.equal(sample.context.rgb[0], made[t - 2 : t])
    assert torch.equal(sample.target.rgb[0], true[t : t + 2])  # targets are the truth
    assert sample.memory_observed.sum() < sample.memory_mask.sum()  # generated points shown
    # validation never takes one
    assert WorldDataset(cfg, tiny_memory_config(), "val").rollouts == {}


def test_a_rollout_along_other_cameras_is_refused(rollout_root, synthetic_root, tmp_path):
    bad = tmp_path / "bad"
    ep = read_episode_frames(Episode.open(rollout_root / "ep_000"), 32)
    c2w = ep.c2w.clone()
    c2w[:, 0, 3] += 0.5  # shifted cameras
    rgb = ep.rgb.permute(0, 2, 3, 1)
    write_episode(bad / "ep_000", rgb, c2w, ep.K, ep.caption, depth=ep.depth[:, 0].float())
    cfg = DataConfig(root=str(synthetic_root), image_size=32, rollout_root=str(bad))
    with pytest.raises(EpisodeError, match="ep_000.*cameras"):
        WorldDataset(cfg, tiny_memory_config(), "train")
    with pytest.raises(ValueError, match="rollout_root"):
        DataConfig(p_rollout_history=0.5)
    with pytest.raises(ValueError, match="no rollout"):
        WorldDataset(replace(cfg, rollout_root=str(tmp_path)), tiny_memory_config(), "train")
