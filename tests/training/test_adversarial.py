"""The adversarial term: each network gets only its own gradient, the generator's term has the
asked size, a discriminator learns to tell sharp frames from blurred ones, and a run with it
trains both networks and exports the model alone."""

import copy

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from test_training import _cfg

from worldmem.config import ConfigError, to_dict
from worldmem.data.dataset import WorldDataModule
from worldmem.pipeline import WorldPipeline
from worldmem.training.adversarial import (
    PatchDiscriminator,
    adversarial_losses,
    discriminator_input,
)
from worldmem.training.module import WorldModule
from worldmem.training.trainer import build_trainer

RGB = slice(0, 3)


def _textured(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """``(n, 4, size, size)`` frames in [-1, 1]: checkerboards of random cell size, phase and
    colours (rgb), and a constant inverse depth."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = []
    for _ in range(n):
        cell = int(torch.randint(2, 6, (1,), generator=g))
        dy, dx = torch.randint(0, cell, (2,), generator=g).tolist()
        board = (((y + dy) // cell + (x + dx) // cell) % 2).float()
        a, b = torch.rand(2, 3, 1, 1, generator=g) * 2 - 1
        out.append(torch.cat([a * board + b * (1 - board), torch.zeros(1, size, size)]))
    return torch.stack(out)


def _blur(x: torch.Tensor, k: int = 5) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, 1)


def _losses(disc, x0, truth, memory, rec_weight=1.0, weight=0.5):
    valid = torch.ones(x0.shape[:2], dtype=torch.bool)
    rec = rec_weight * ((x0 - truth) ** 2).mean()
    return rec, adversarial_losses(disc, x0, truth, memory, valid, rec, weight, RGB)


def _frames(g, B=2, T=2, size=16):
    """Textured truths, and renders that hold them on their left half and have holes on the
    right (4 channels + validity)."""
    truth = _textured(B * T, size, g).unflatten(0, (B, T))
    valid = torch.zeros(B, T, 1, size, size)
    valid[..., : size // 2] = 1.0
    return truth, torch.cat([truth * valid, valid], 2)


def test_each_network_gets_only_its_own_gradient():
    g = torch.Generator().manual_seed(0)
    truth, memory = _frames(g)
    weights = torch.zeros_like(truth, requires_grad=True)  # stands for the model
    disc = PatchDiscriminator(7, (8, 16, 16))
    _, adv = _losses(disc, _blur(truth.flatten(0, 1)).unflatten(0, (2, 2)) + weights, truth, memory)
    adv["d"].backward(retain_graph=True)
    assert weights.grad is None or not weights.grad.any()  # the generated frames were detached
    assert all(p.grad is not None for p in disc.parameters())
    assert disc.net[0].parametrizations.weight.original.grad.abs().sum() > 0
    disc.zero_grad(set_to_none=True)
    adv["g"].backward()
    assert weights.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.parameters())  # it ran frozen
    assert all(p.requires_grad for p in disc.parameters())  # and is trainable again


@pytest.mark.parametrize("weight", [0.1, 2.0])
def test_the_generator_term_has_the_asked_gradient_norm_at_the_output(weight):
    g = torch.Generator().manual_seed(1)
    truth, memory = _frames(g)
    x0 = (truth + 0.3 * torch.randn(truth.shape, generator=g)).requires_grad_(True)
    disc = PatchDiscriminator(7, (8, 16, 16))
    for rec_weight in (1.0, 100.0):  # the term follows the reconstruction loss's scale
        rec, adv = _losses(disc, x0, truth, memory, rec_weight, weight)
        (g_rec,) = torch.autograd.grad(rec, x0, retain_graph=True)
        (g_adv,) = torch.autograd.grad(adv["g"], x0)
        assert g_adv.norm() / g_rec.norm() == pytest.approx(weight, rel=1e-4)


def test_only_patches_with_holes_of_the_render_are_judged():
    g = torch.Generator().manual_seed(3)
    truth, memory = _frames(g, size=64)  # holes in columns 32-63
    disc = PatchDiscriminator(7, (8, 16, 16))
    x0 = _blur(truth.flatten(0, 1)).unflatten(0, (2, 2))
    changed = x0.clone()
    changed[..., :16] = torch.rand(changed[..., :16].shape, generator=g)  # far from any hole
    with torch.no_grad():
        disc(torch.zeros(1, 7, 64, 64))  # settle the spectral norms' power iteration
    disc.eval()  # no power-iteration step between the calls: the same weights for both
    a = _losses(disc, x0.requires_grad_(True), truth, memory)[1]
    b = _losses(disc, changed.requires_grad_(True), truth, memory)[1]
    for k in ("g_raw", "d", "fake_logit"):
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    nearer = x0.detach().clone()
    nearer[..., 32:48] = torch.rand(nearer[..., 32:48].shape, generator=g)  # in the holes
    c = _losses(disc, nearer.requires_grad_(True), truth, memory)[1]
    assert not torch.allclose(a["fake_logit"], c["fake_logit"], atol=1e-4)
    empty = memory.clone()
    empty[:, :, 4] = 1.0  # a render without holes: nothing to judge, zero terms
    z = _losses(disc, x0, truth, empty)[1]
    assert all(float(v.detach()) == 0.0 for v in z.values())


def test_the_discriminator_learns_to_tell_sharp_frames_from_blurred_ones():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    disc = PatchDiscriminator(7)
    opt = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.99))
    size = 32
    valid = torch.ones(1, 8, dtype=torch.bool)
    mem = torch.zeros(1, 8, 5, size, size)  # an empty render: judged on texture alone

    def batch():
        real = _textured(8, size, g)[None]
        return real, _blur(real[0]).unsqueeze(0).requires_grad_(True)

    for _ in range(60):
        real, fake = batch()
        rec = ((fake - real) ** 2).mean()
        adv = adversarial_losses(disc, fake, real, mem, valid, rec, 0.5, RGB)
        opt.zero_grad()
        adv["d"].backward()
        opt.step()
    real, fake = batch()  # frames it has not seen
    with torch.no_grad():
        real_logit = disc(discriminator_input(real[0], mem[0], RGB, 4)).mean().item()
        fake_logit = disc(discriminator_input(fake[0], mem[0], RGB, 4)).mean().item()
    assert real_logit > 0.5 and fake_logit < -0.5


def test_a_negative_adversarial_weight_is_named(tmp_path):
    with pytest.raises(ConfigError, match="adv_weight"):
        _cfg(tmp_path, tmp_path, "train.adv_weight=-0.1")


def test_no_weight_no_discriminator_and_the_optimizer_holds_the_model_alone(
    synthetic_root, tmp_path
):
    module = WorldModule(to_dict(_cfg(synthetic_root, tmp_path)))
    assert module.disc is None
    groups = module.configure_optimizers()["optimizer"].param_groups
    assert len(groups) == 2
    assert sum(len(g["params"]) for g in groups) == len(list(module.model.parameters()))


def test_the_discriminator_takes_a_latent_codec_frames(tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(
        block_out_channels=(8, 16), latent_channels=4, norm_num_groups=4, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    ).save_pretrained(tmp_path / "vae")  # fmt: skip
    cfg = _cfg(
        tmp_path, tmp_path, "train.adv_weight=0.5", "model.codec=vae",
        f"model.codec_path={tmp_path / 'vae'}", "model.latent_channels=8",
        "model.latent_downsample=2",
    )  # fmt: skip
    module = WorldModule(to_dict(cfg))
    codec = module.codec
    rgb, depth = torch.rand(1, 2, 3, 32, 32), torch.full((1, 2, 1, 32, 32), 2.0)
    mask = torch.zeros(1, 2, 1, 32, 32)
    mask[..., :16] = 1.0
    x = codec.encode(rgb, depth)  # (1, 2, 8, 16, 16): 4 rgb latent channels, 4 depth
    mem = codec.encode_memory(rgb, depth, mask)
    valid = torch.ones(1, 2, dtype=torch.bool)
    x0 = (x + 0.1 * torch.randn_like(x)).requires_grad_(True)
    rec = ((x0 - x) ** 2).mean()
    adv = adversarial_losses(module.disc, x0, x, mem, valid, rec, 0.5, codec.rgb_channels)
    assert adv["d"] > 0 and adv["lam"] > 0


def test_a_run_trains_both_networks_and_exports_the_model_alone(synthetic_root, tmp_path):
    cfg = _cfg(
        synthetic_root, tmp_path, "train.max_steps=3", "train.adv_weight=0.5",
        "train.ckpt_every_steps=0",
    )  # fmt: skip
    L.seed_everything(0)
    module = WorldModule(to_dict(cfg))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    build_trainer(cfg.train).fit(module, datamodule=WorldDataModule(cfg.data, cfg.memory))
    after = module.state_dict()
    for net in ("model.", "disc."):
        moved = [k for k in after if k.startswith(net) and not torch.equal(before[k], after[k])]
        assert moved, f"no {net} weight changed"
    folder = WorldPipeline.from_module(module).save_pretrained(tmp_path / "pipeline")
    saved = load_file(str(folder / "model" / "diffusion_pytorch_model.safetensors"))
    assert set(saved) == set(module.model.state_dict())  # no discriminator weight in it


def _fit(cfg) -> tuple[WorldModule, dict]:
    """Train ``cfg``; returns the module and its discriminator's weights before (or {})."""
    L.seed_everything(0)
    module = WorldModule(to_dict(cfg))
    before = {} if module.disc is None else copy.deepcopy(module.disc.state_dict())
    L.seed_everything(0)  # the same noise and batches whether or not a discriminator was built
    build_trainer(cfg.train).fit(module, datamodule=WorldDataModule(cfg.data, cfg.memory))
    return module, before


def test_before_adv_start_step_the_discriminator_trains_alone(synthetic_root, tmp_path):
    steps = ("train.max_steps=3", "train.ckpt_every_steps=0")
    plain, _ = _fit(_cfg(synthetic_root, tmp_path / "plain", *steps))
    waiting, disc_before = _fit(
        _cfg(
            synthetic_root, tmp_path / "wait", *steps, "train.adv_weight=2.0",
            "train.adv_start_step=3",
        )
    )  # fmt: skip
    started, _ = _fit(_cfg(synthetic_root, tmp_path / "on", *steps, "train.adv_weight=2.0"))
    p, w, s = (m.model.state_dict() for m in (plain, waiting, started))
    assert all(torch.equal(p[k], w[k]) for k in p)  # the model saw the plain loss alone
    assert not all(torch.equal(p[k], s[k]) for k in p)  # from step 0 the term moves it
    after = waiting.disc.state_dict()
    assert any(not torch.equal(v, after[k]) for k, v in disc_before.items())  # it learned
