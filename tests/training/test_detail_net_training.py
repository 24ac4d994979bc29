"""``python -m worldmem.training.detail_net``: collect rollouts of a tiny pipeline in synthetic
worlds (checked against the worlds' exact renders and the pipeline's own masks), then train
on them end to end."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from worldmem.data.synthetic import make_world
from worldmem.eval.walk import walk_path
from worldmem.models.detail_net import DetailNet
from worldmem.training.detail_net import WALK_SEED_OFFSET, WALKS, Rollouts, collect, main


def test_collect_keeps_the_pipelines_frames_masks_and_the_true_frames(tiny_pipeline_dir):
    from worldmem.pipeline import WorldPipeline

    pipe = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    arrays = collect(pipe, [3, 4], frames=6, log=lambda *_: None)
    assert arrays["model"].shape == (10, 3, 32, 32) and arrays["model"].dtype == np.uint8
    assert arrays["holes"].shape == (10, 1, 32, 32) and arrays["holes"].dtype == bool
    assert arrays["seed"].tolist() == [3] * 5 + [4] * 5
    # the truth is the world's render at the walk's cameras 1..5
    world = make_world(4)
    c2w = walk_path(world, WALKS[4 % len(WALKS)], 6, 4 + WALK_SEED_OFFSET)
    rgb, depth = world.render(c2w, pipe.K.expand(6, 3, 3), 32, 32)
    assert np.array_equal(arrays["truth"][5:], (rgb[1:] * 255).round().byte().numpy())
    # the frames and holes are the pipeline's own along that walk
    pipe.start(prompt=world.caption, image=rgb[0], depth=depth[0], c2w=c2w[0], seed=4)
    chunk = pipe.step(c2w[1:], pipe.K.expand(5, 3, 3))
    assert np.array_equal(arrays["holes"][5:], (chunk.memory_mask <= 0.5).numpy())
    assert np.array_equal(arrays["model"][5:], (chunk.rgb * 255).round().byte().numpy())


def _noise_rollouts(path, worlds: int, frames_per_world: int, hole_from: int, seed: int = 0):
    """A rollouts file of random 32 px frames whose columns from ``hole_from`` are holes ->
    its hole mask (to edit and save again)."""
    rng = np.random.default_rng(seed)
    n = worlds * frames_per_world
    holes = np.zeros((n, 1, 32, 32), bool)
    holes[..., hole_from:] = True
    arrays = {
        "model": rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
        "truth": rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
        "seed": np.repeat(np.arange(worlds), frames_per_world),
    }
    np.savez(path, holes=holes, **arrays)
    return holes, arrays


def test_training_writes_loadable_weights_a_log_and_a_preview(tmp_path):
    holes, arrays = _noise_rollouts(tmp_path / "r.npz", worlds=4, frames_per_world=6, hole_from=20)
    holes[:4] = False  # frames without holes are never sampled
    np.savez(tmp_path / "r.npz", holes=holes, **arrays)
    data = Rollouts([tmp_path / "r.npz"], val_worlds=1, min_holes=0.02)
    assert data.train.tolist() == list(range(4, 18)) and data.val.tolist() == list(range(18, 24))
    out = tmp_path / "net"
    args = ["train", "--rollouts", str(tmp_path / "r.npz"), "--out", str(out), "--steps",
            "4", "--val-every", "2", "--keep-every", "4", "--val-worlds", "1", "--batch",
            "4"]  # fmt: skip
    assert main(args) == 0
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(5 < float(r["psnr_holes_model"]) < 15 for r in rows)  # noise against noise
    assert (out / "preview.png").is_file()
    net = DetailNet.from_pretrained(out)
    assert net.cfg.image_size == 32
    kept = DetailNet.from_pretrained(out / "step_000004")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                 kept.state_dict().values()))  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "net2"), "--resume", str(out)]) == 0


def test_bad_rollouts_are_refused_naming_the_file(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad.npz: not a rollouts file"):
        Rollouts([tmp_path / "bad.npz"], val_worlds=1, min_holes=0.02)
    np.savez(tmp_path / "one.npz", model=np.zeros((2, 3, 8, 8), np.uint8),
             truth=np.zeros((2, 3, 8, 8), np.uint8), holes=np.ones((2, 1, 8, 8), bool),
             seed=np.zeros(2, int))  # fmt: skip
    with pytest.raises(ValueError, match="1 worlds, need more than --val-worlds 1"):
        Rollouts([tmp_path / "one.npz"], val_worlds=1, min_holes=0.02)


def test_flow_training_writes_a_loadable_flow_and_its_log(tmp_path):
    """``train --kind flow``: the EMA of a DetailFlow fitted by regression, saved and logged
    like the adversarial net, and resumable."""
    from worldmem.models.detail_flow import DetailFlow

    _noise_rollouts(tmp_path / "r.npz", worlds=3, frames_per_world=4, hole_from=16, seed=1)
    out = tmp_path / "flow"
    args = ["train", "--kind", "flow", "--rollouts", str(tmp_path / "r.npz"), "--out", str(out),
            "--steps", "4", "--val-every", "2", "--keep-every", "4", "--val-worlds", "1",
            "--batch", "4", "--widths", "8", "16", "--flow-steps", "2",
            "--band-scale", "0.2"]  # fmt: skip
    assert main(args) == 0
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(float(r["loss"]) > 0 for r in rows)
    net = DetailFlow.from_pretrained(out)
    assert (net.cfg.steps, net.cfg.band_scale, net.cfg.widths) == (2, 0.2, (8, 16))
    with pytest.raises(ValueError, match="not a detail net config|not this config's weights"):
        DetailNet.from_pretrained(out)  # a flow is not the adversarial net
    assert main([*args, "--out", str(tmp_path / "flow2"), "--resume", str(out)]) == 0
    # stopped by the clock between checkpoints, the last step's weights are still saved
    timed = ["train", "--kind", "flow", "--rollouts", str(tmp_path / "r.npz"), "--out",
             str(tmp_path / "flow3"), "--steps", "1000", "--minutes", "1e-9", "--val-every",
             "500", "--val-worlds", "1", "--batch", "4", "--widths", "8", "16"]  # fmt: skip
    assert main(timed) == 0
    rows = list(csv.DictReader((tmp_path / "flow3" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1]
    DetailFlow.from_pretrained(tmp_path / "flow3")
