"""WorldSampler: cache equivalence, determinism, guidance, one Euler step by hand, and a
model that offers nothing but the WorldModel interface."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_model_config

from worldmem.diffusion import WorldSampler, encode_frames
from worldmem.diffusion.dummy import dummy_world_batch
from worldmem.models import IdentityCodec, ModelFrames, WorldDiT
from worldmem.models.interface import WorldModel, WorldModelOutput
from worldmem.models.text import TextStates


@pytest.fixture(scope="module")
def model() -> WorldDiT:
    torch.manual_seed(0)
    m = WorldDiT.from_model_config(tiny_model_config())
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m.eval()


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_generate_shapes_ranges_and_determinism(model):
    batch = dummy_world_batch(2, 2, 2, 2, 32)
    sampler = WorldSampler(model, IdentityCodec(), steps=3)
    rgb, depth = sampler.generate(batch.conditioning, _gen())
    assert rgb.shape == (2, 2, 3, 32, 32) and depth.shape == (2, 2, 1, 32, 32)
    assert rgb.min() >= 0 and rgb.max() <= 1 and depth.min() >= 0
    rgb2, depth2 = sampler.generate(batch.conditioning, _gen())
    torch.testing.assert_close(rgb2, rgb, atol=0, rtol=0)
    rgb3, _ = sampler.generate(batch.conditioning, _gen(1))
    assert (rgb3 - rgb).abs().max() > 1e-3
    # the ground-truth target pixels are not looked at
    batch.target.rgb.fill_(0.5)
    torch.testing.assert_close(sampler.generate(batch.conditioning, _gen())[0], rgb, atol=0, rtol=0)


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_sampler_with_cache_equals_without(model, guidance):
    batch = dummy_world_batch(2, 2, 2, 1, 32)
    batch.context.valid[1, 0] = False
    codec = IdentityCodec()
    a = WorldSampler(model, codec, 3, guidance, use_cache=True).generate(batch.conditioning, _gen())
    b = WorldSampler(model, codec, 3, guidance, use_cache=False).generate(
        batch.conditioning, _gen()
    )
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(a[1], b[1], atol=1e-4, rtol=1e-4)


def test_one_step_with_guidance_by_hand(model):
    """One Euler step from sigma 1 to 0: x0 = noise - v, v = v_u + g (v_c - v_u), where the
    unconditional branch drops text, spatial memory and keyframes but keeps the context."""
    batch = dummy_world_batch(1, 2, 2, 2, 32)
    codec = IdentityCodec()
    g = 2.5
    rgb, depth = WorldSampler(model, codec, steps=1, guidance_scale=g).generate(
        batch.conditioning, _gen(3)
    )
    noise = torch.randn(1, 2, 4, 32, 32, generator=_gen(3))
    t = batch.target
    target = ModelFrames(noise, torch.ones(1, 2), t.c2w, t.K, t.valid)
    ctx, kf = encode_frames(codec, batch.context), encode_frames(codec, batch.keyframes)
    mem = codec.encode_memory(batch.memory_rgb, batch.memory_depth, batch.memory_mask)
    with torch.no_grad():
        v_c = model(target, ctx, kf, mem, batch.caption).sample
        v_u = model(target, ctx, None, None, [""]).sample
    ref_rgb, ref_depth = codec.decode(noise - (v_u + g * (v_c - v_u)))
    torch.testing.assert_close(rgb, ref_rgb, atol=1e-5, rtol=0)
    torch.testing.assert_close(depth, ref_depth, atol=1e-4, rtol=1e-4)
    plain, _ = WorldSampler(model, codec, steps=1).generate(batch.conditioning, _gen(3))
    assert (plain - rgb).abs().max() > 1e-3


def test_rejects_wrong_frame_size(model):
    with pytest.raises(ValueError, match="the model wants 32x32"):
        WorldSampler(model, IdentityCodec()).generate(
            dummy_world_batch(1, 1, 0, 0, 16).conditioning
        )


def test_generate_takes_the_conditioning_not_a_training_batch(model):
    batch = dummy_world_batch(1, 2, 1, 1, 32)
    with pytest.raises(ValueError, match=r"want a Conditioning .*batch\.conditioning.*WorldBatch"):
        WorldSampler(model, IdentityCodec()).generate(batch)
    cond = batch.conditioning  # the batch's own tensors, without its target frames
    assert cond.c2w is batch.target.c2w and cond.memory_rgb is batch.memory_rgb
    assert cond.context is batch.context and cond.caption == batch.caption
    assert (cond.batch_size, cond.num_targets, cond.image_size) == (1, 2, (32, 32))
    with pytest.raises(ValueError, match=r"Conditioning\.K: expected \(1, 2, 3, 3\)"):
        replace(cond, K=cond.K[:, :1])
    with pytest.raises(ValueError, match=r"Conditioning\.context: expected 1 samples of 32x32"):
        replace(cond, context=dummy_world_batch(1, 1, 1, 0, 16).context)
    hole_rgb, hole_depth = torch.rand(1, 2, 3, 32, 32), torch.rand(1, 2, 1, 32, 32) + 0.5
    with pytest.raises(ValueError, match="hole_rgb and hole_depth come together"):
        replace(cond, hole_rgb=hole_rgb)
    with pytest.raises(ValueError, match=r"Conditioning\.hole_depth: expected \(1, 2, 1, 32, 32\)"):
        replace(cond, hole_rgb=hole_rgb, hole_depth=hole_depth[:, :1])


def test_generate_without_any_memory_frames(model):
    batch = dummy_world_batch(1, 2, 0, 0, 32)
    codec = IdentityCodec()
    a = WorldSampler(model, codec, 2, 2.0, use_cache=True).generate(batch.conditioning, _gen())
    b = WorldSampler(model, codec, 2, 2.0, use_cache=False).generate(batch.conditioning, _gen())
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=0)


def test_two_stochastic_steps_by_hand(model):
    """Re-noising steps: x0 = x - sigma v, then x = (1 - sigma') x0 + sigma' * fresh noise;
    sigmas 1 -> 0.5 -> 0, noise drawn from the same generator after the initial noise."""
    batch = dummy_world_batch(1, 2, 2, 2, 32)
    codec = IdentityCodec()
    rgb, _ = WorldSampler(model, codec, steps=2).generate(batch.conditioning, _gen(4))
    g = _gen(4)
    x = torch.randn(1, 2, 4, 32, 32, generator=g)
    t = batch.target
    ctx, kf = encode_frames(codec, batch.context), encode_frames(codec, batch.keyframes)
    mem = codec.encode_memory(batch.memory_rgb, batch.memory_depth, batch.memory_mask)

    def v(x, sigma):
        target = ModelFrames(x, torch.full((1, 2), sigma), t.c2w, t.K, t.valid)
        with torch.no_grad():
            return model(target, ctx, kf, mem, batch.caption).sample

    x0 = x - 1.0 * v(x, 1.0)
    x = 0.5 * x0 + 0.5 * torch.randn(x.shape, generator=g)
    ref_rgb, _ = codec.decode(x - 0.5 * v(x, 0.5))
    torch.testing.assert_close(rgb, ref_rgb, atol=1e-5, rtol=0)
    euler, _ = WorldSampler(model, codec, steps=2, stochastic=False).generate(
        batch.conditioning, _gen(4)
    )
    assert (euler - rgb).abs().max() > 1e-3


class MemoryEcho:
    """The least a model needs (the WorldModel interface; not even an nn.Module): its clean
    estimate of every target frame is the encoded spatial-memory render (zeros without one)."""

    config = SimpleNamespace(image_size=32)
    device = torch.device("cpu")

    def encode_text(self, captions):
        B = len(captions)
        return TextStates(torch.zeros(B, 1, 1), torch.ones(B, 1, dtype=torch.bool))

    def encode_context(self, context, keyframes, reference_c2w, captions=None, text=None):
        return "nothing to prepare"

    def __call__(self, target, context=None, keyframes=None, memory=None, captions=None,
                 text=None, cache=None):  # fmt: skip
        x0 = torch.zeros_like(target.x) if memory is None else memory[:, :, :-1]
        return WorldModelOutput(sample=(target.x - x0) / target.sigma[..., None, None, None])


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("stochastic", [True, False])
def test_a_model_with_only_the_interface_runs_through_the_sampler(use_cache, stochastic):
    """Every path ends at the model's last clean estimate (sigma 0), here the memory render."""
    echo = MemoryEcho()
    assert isinstance(echo, WorldModel)
    batch = dummy_world_batch(2, 3, 2, 1, 32)
    codec = IdentityCodec()
    sampler = WorldSampler(echo, codec, steps=3, use_cache=use_cache, stochastic=stochastic)
    rgb, depth = sampler.generate(batch.conditioning, _gen())
    assert rgb.shape == (2, 3, 3, 32, 32) and depth.shape == (2, 3, 1, 32, 32)
    memory = codec.encode_memory(batch.memory_rgb, batch.memory_depth, batch.memory_mask)
    want_rgb, want_depth = codec.decode(memory[:, :, :-1])
    torch.testing.assert_close(rgb, want_rgb, atol=1e-5, rtol=0)
    torch.testing.assert_close(depth, want_depth, atol=1e-4, rtol=1e-4)
    seen = batch.memory_mask.bool().expand_as(rgb)
    torch.testing.assert_close(rgb[seen], batch.memory_rgb[seen], atol=1e-5, rtol=0)


def test_rejects_what_is_not_a_world_model():
    with pytest.raises(ValueError, match="want a WorldModel"):
        WorldSampler(torch.nn.Linear(2, 2), IdentityCodec())
