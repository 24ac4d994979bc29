"""One input assembly: a training sample equals what a generation builds from the same past."""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch
from conftest import make_tiny_pipeline, tiny_memory_config

from worldmem.config import DataConfig
from worldmem.data.dataset import WorldDataset
from worldmem.data.inputs import MEMORY_MODE_GIVES


def _same(a, b, where: str) -> None:
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y), f"{where}.{f.name} differs"
        elif hasattr(x, "__dataclass_fields__"):
            _same(x, y, f"{where}.{f.name}")
        else:
            assert x == y, f"{where}.{f.name}: {x!r} != {y!r}"


@pytest.mark.parametrize("t", [1, 9, 20])
def test_dataset_sample_equals_what_the_pipeline_builds_after_observing(synthetic_root, t):
    """The dataset fills memories from frames 0..t-1 of an episode; a pipeline that observes
    the same true frames must give the model bit-identical inputs (stride 1, no cap, the same
    window and keyframe counts: the dataset's only deliberate differences)."""
    mem = tiny_memory_config()
    data = DataConfig(
        root=str(synthetic_root), image_size=32, chunk_frames=2, context_frames=2, keyframes=2,
        memory_stride_frames=1, memory_max_frames=1000, revisit_ratio=0.0,
    )  # fmt: skip
    ds = WorldDataset(data, mem, "train")
    sample = ds.sample(0, t)
    fr = ds.frames(0)
    rgb, depth = fr.rgb.float() / 255, fr.depth.float()
    tgt = slice(t, t + 2)

    pipe = make_tiny_pipeline()
    for mode, given in MEMORY_MODE_GIVES.items():
        pipe.start(prompt=fr.caption, memory=mode)
        pipe.observe(rgb[:t], depth[:t], fr.c2w[:t], fr.K[:t])
        built = pipe.model_inputs(fr.c2w[tgt], fr.K[tgt])
        if mode == "all":
            _same(sample.context, built.context, "context")
            _same(sample.keyframes, built.keyframes, "keyframes")
            for name in ("memory_rgb", "memory_depth", "memory_mask"):
                assert torch.equal(getattr(sample, name), getattr(built, name)), name
            assert built.caption == sample.caption
            assert torch.equal(built.c2w, sample.target.c2w)
            assert sample.memory_mask.any() and sample.context.valid.any()
        # what a mode leaves out is absent, what it gives is the full memory's
        assert bool(built.context.valid.any()) == ("working" in given)
        assert bool(built.memory_mask.any()) == ("spatial" in given)
        if "spatial" in given:
            assert torch.equal(built.memory_rgb, sample.memory_rgb)
        if "episodic" not in given:
            assert not built.keyframes.valid.any()
