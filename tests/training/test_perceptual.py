"""The feature and texture terms: zero for the truth, larger the more a frame is blurred, a
gradient that gives a blurred frame back its edges, a texture term blind to where things are,
a frozen network, and a run that trains with both and exports the model alone."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from test_training import _cfg

from worldmem.config import ConfigError, to_dict
from worldmem.data.dataset import WorldDataModule
from worldmem.eval.metrics import hf_energy
from worldmem.pipeline import WorldPipeline
from worldmem.training.module import WorldModule
from worldmem.training.perceptual import FeatureLoss
from worldmem.training.trainer import build_trainer


@pytest.fixture(scope="module")
def features():
    return FeatureLoss()


def _checkers(n: int, size: int = 32, seed: int = 0, cell: int | None = None) -> torch.Tensor:
    """``(n, 3, size, size)`` checkerboards in [0, 1] of random (or the given) cell size and
    random colours."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = []
    for _ in range(n):
        c = int(torch.randint(3, 7, (1,), generator=g)) if cell is None else cell
        board = ((y // c + x // c) % 2).float()
        a, b = torch.rand(2, 3, 1, 1, generator=g)
        out.append(a * board + b * (1 - board))
    return torch.stack(out)


def _blur(x: torch.Tensor, k: int) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, 1)


def test_zero_for_the_truth_and_growing_with_blur(features):
    x = _checkers(4)
    assert torch.allclose(features(x, x), torch.zeros(4), atol=1e-6)
    d3, d5 = features(_blur(x, 3), x), features(_blur(x, 5), x)
    flat = features(x.mean((2, 3), keepdim=True).expand_as(x), x)
    assert bool((d3 > 0).all() and (d5 > d3).all() and (flat > d5).all())


def test_its_gradient_gives_a_blurred_frame_back_its_edges(features):
    truth = _checkers(2, seed=1)
    start = _blur(truth, 5)
    x = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.02)
    for _ in range(40):
        opt.zero_grad()
        features(x.clamp(0, 1), truth).sum().backward()
        opt.step()
    x = x.detach().clamp(0, 1)
    # the squared-error-free term restores detail (Laplacian energy) and lowers the pixel error
    assert bool((hf_energy(x) > 2 * hf_energy(start)).all())
    assert F.mse_loss(x, truth) < 0.5 * F.mse_loss(start, truth)


def test_the_texture_term_ignores_where_things_are_but_not_blur_or_flatness(features):
    """A checkerboard shifted by one cell (its two colours swapped everywhere) has the same
    statistics: the texture term stays near 0 where the aligned distance is large; blurring
    or flattening raises it; a region of zeros gives 0."""
    x = _checkers(3, size=48, seed=2, cell=4)
    everywhere = torch.ones(3, 1, 48, 48)
    shifted = torch.roll(x, 4, 3)
    blurred = _blur(x, 5)
    flat = x.mean((2, 3), keepdim=True).expand_as(x)
    s_shift = features.style(shifted, x, everywhere)
    s_blur, s_flat = features.style(blurred, x, everywhere), features.style(flat, x, everywhere)
    assert bool((s_shift < 0.2 * s_blur).all() and (s_blur < s_flat).all())
    assert bool((features(shifted, x) > features(blurred, x)).all())  # aligned: the opposite
    assert torch.equal(features.style(flat, x, torch.zeros(3, 1, 48, 48)), torch.zeros(3))


def test_the_network_is_frozen_and_stays_in_eval_mode(features):
    assert not any(p.requires_grad for p in features.parameters())
    features.train()
    assert not features.training and not any(m.training for m in features.modules())
    with pytest.raises(ValueError, match="pred and target"):
        features(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))


def test_a_negative_weight_is_named(tmp_path):
    with pytest.raises(ConfigError, match="perceptual_weight"):
        _cfg(tmp_path, tmp_path, "train.perceptual_weight=-1")


def test_a_run_with_it_trains_the_model_and_exports_it_alone(synthetic_root, tmp_path):
    cfg = _cfg(
        synthetic_root, tmp_path, "train.max_steps=2", "train.perceptual_weight=0.05",
        "train.style_weight=0.1", "train.ckpt_every_steps=0",
    )  # fmt: skip
    L.seed_everything(0)
    module = WorldModule(to_dict(cfg))
    frozen = {k: v.clone() for k, v in module.features.state_dict().items()}
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    build_trainer(cfg.train).fit(module, datamodule=WorldDataModule(cfg.data, cfg.memory))
    after = module.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # batch norm statistics and weights of the feature network never move
    assert all(torch.equal(v, module.features.state_dict()[k]) for k, v in frozen.items())
    folder = WorldPipeline.from_module(module).save_pretrained(tmp_path / "pipeline")
    saved = load_file(str(folder / "model" / "diffusion_pytorch_model.safetensors"))
    assert set(saved) == set(module.model.state_dict())
