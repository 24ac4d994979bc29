"""Shared fixtures: tiny models and small synthetic datasets built in seconds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from worldmem.config import MemoryConfig, ModelConfig

REPO = Path(__file__).resolve().parents[1]


def load_script(relpath: str, name: str):
    """The module of a script of the repository (``benchmarks/...``), imported from its file."""
    spec = importlib.util.spec_from_file_location(name, REPO / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUNDLED = REPO / "checkpoints" / "worldmem-tiny"

torch.set_num_threads(2)


def tiny_model_config(**kw) -> ModelConfig:
    """A model small enough to run a forward pass in milliseconds (32 px frames)."""
    base = dict(
        image_size=32,
        patch_size=8,
        hidden_size=64,
        depth=2,
        num_heads=2,
        text_width=64,
        text_layers=1,
        text_max_tokens=32,
        max_frames=8,
        chunk_frames=2,
        conv_widths=[8, 16, 16],
        text_encoder="bytes",  # the dependency-free fallback: no weights to load in unit tests
    )
    base.update(kw)
    return ModelConfig(**base)


def tiny_memory_config(**kw) -> MemoryConfig:
    base = dict(
        voxel_size_m=0.05,
        max_points=20_000,
        keyframe_capacity=8,
        retrieve_k=2,
        overlap_samples=128,
        working_frames=2,
    )
    base.update(kw)
    return MemoryConfig(**base)


def make_tiny_pipeline(steps: int = 2, seed: int = 0, **model_kw):
    from worldmem.models import WorldDiT
    from worldmem.pipeline import WorldPipeline

    torch.manual_seed(seed)
    mcfg = tiny_model_config(**model_kw)
    model = WorldDiT.from_model_config(mcfg)
    # random weights all the way out: the zero-initialised output layer would make every
    # untrained frame the same grey, whatever the noise
    torch.nn.init.normal_(model.decoder.out.weight, std=0.05)
    return WorldPipeline(model, mcfg, tiny_memory_config(), steps=steps)


def spy_inserts(monkeypatch) -> list:
    """Record every ``SpatialMemory.insert`` from now on: a list of (rgb, observed) that fills
    as inserts happen (they still happen)."""
    from worldmem.memory import SpatialMemory

    inserts = []
    real_insert = SpatialMemory.insert

    def spy(self, rgb, depth, c2w, K, **kw):
        inserts.append((rgb.clone(), kw["observed"]))
        return real_insert(self, rgb, depth, c2w, K, **kw)

    monkeypatch.setattr(SpatialMemory, "insert", spy)
    return inserts


def spy_chunk_sizes(monkeypatch) -> list:
    """Record how many cameras every chunk ``WorldPipeline._generate`` makes from now on is
    given (the chunks are still made)."""
    from worldmem.pipeline import WorldPipeline

    sizes = []
    real = WorldPipeline._generate

    def spy(self, world, cams, *args, **kw):
        sizes.append(len(cams))
        return real(self, world, cams, *args, **kw)

    monkeypatch.setattr(WorldPipeline, "_generate", spy)
    return sizes


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory) -> Path:
    """A saved pipeline folder with random tiny weights."""
    path = tmp_path_factory.mktemp("tiny_pipeline")
    make_tiny_pipeline().save_pretrained(path)
    return path


def write_synthetic_dataset(
    root: Path, episodes: int = 3, frames: int = 24, size: int = 32, traj_kind: str = "out_and_back"
) -> Path:
    """Episodes from the synthetic world generator, the last one in the val split."""
    from worldmem.data.episode import write_episode, write_manifest
    from worldmem.data.synthetic import generate_episode

    entries = []
    for i in range(episodes):
        ep = generate_episode(
            seed=1000 + i, num_frames=frames, image_size=size, traj_kind=traj_kind
        )
        name = f"ep_{i:03d}"
        write_episode(root / name, ep.rgb, ep.c2w, ep.K, ep.caption, depth=ep.depth)
        split = "val" if i == episodes - 1 else "train"
        entries.append(
            dict(path=name, split=split, num_frames=frames, caption=ep.caption, seed=1000 + i)
        )
    write_manifest(root, entries)
    return root


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"))
