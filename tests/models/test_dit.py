"""WorldDiT: shapes, block-causal KV cache, masking, memory zero-init, camera invariance, I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import tiny_model_config

from worldmem.diffusion import encode_frames
from worldmem.diffusion.dummy import dummy_world_batch
from worldmem.geometry import look_at
from worldmem.models import IdentityCodec, ModelFrames, WorldDiT
from worldmem.models.dit import frames_mean, memory_prior


def _perturb(model: WorldDiT, seed: int = 0, std: float = 0.05, skip=()) -> WorldDiT:
    """Add noise to every weight (the zero-initialised output layer would hide everything)."""
    g = torch.Generator().manual_seed(seed)
    skip = {id(p) for p in skip}
    with torch.no_grad():
        for p in model.parameters():
            if id(p) not in skip:
                p.add_(std * torch.randn(p.shape, generator=g))
    return model


def _inputs(B=2, T=2, Tc=2, Tk=2, size=32, seed=0):
    batch = dummy_world_batch(B, T, Tc, Tk, size, seed=seed)
    codec = IdentityCodec()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(B, T, 4, size, size, generator=g)
    sigma = torch.rand(B, T, generator=g)
    target = ModelFrames(x, sigma, batch.target.c2w, batch.target.K, batch.target.valid)
    memory = codec.encode_memory(batch.memory_rgb, batch.memory_depth, batch.memory_mask)
    return dict(
        target=target,
        context=encode_frames(codec, batch.context),
        keyframes=encode_frames(codec, batch.keyframes),
        memory=memory,
        captions=batch.caption,
    )


@pytest.fixture(scope="module")
def model() -> WorldDiT:
    torch.manual_seed(0)
    return _perturb(WorldDiT.from_model_config(tiny_model_config())).eval()


def test_forward_backward_shapes():
    torch.manual_seed(0)
    m = WorldDiT.from_model_config(tiny_model_config())
    inp = _inputs()
    out = m(**inp)
    assert out.sample.shape == out.x0.shape == (2, 2, 4, 32, 32)
    assert out.gate.shape == (2, 2, 1, 32, 32)
    # zero output layer at init: x0 is the prior, the render itself where valid
    mem, valid = inp["memory"][:, :, :4], inp["memory"][:, :, 4:] > 0.5
    default = frames_mean(inp["context"], inp["keyframes"])  # (B, C): far from memory
    v = [inp[k].valid[..., None] for k in ("context", "keyframes")]
    xs = [inp[k].x.mean((3, 4)) for k in ("context", "keyframes")]
    expect = sum((x * m).sum(1) for x, m in zip(xs, v)) / sum(m.sum(1) for m in v)
    torch.testing.assert_close(default, expect)
    prior, has_prior = memory_prior(inp["memory"], default)
    assert has_prior.all()
    torch.testing.assert_close(out.x0, prior, atol=0, rtol=0)
    v4 = valid.expand_as(mem)
    torch.testing.assert_close(out.x0[v4], mem[v4], atol=0, rtol=0)
    # holes: a fill between the valid values and the default
    lo = torch.minimum(mem.masked_fill(~v4, float("inf")).amin((3, 4)), default[:, None])
    hi = torch.maximum(mem.masked_fill(~v4, -float("inf")).amax((3, 4)), default[:, None])
    ok = (out.x0 >= lo[..., None, None] - 1e-6) & (out.x0 <= hi[..., None, None] + 1e-6)
    assert bool(ok.all())
    # velocity and x0 describe the same point of the flow path
    sigma = inp["target"].sigma[:, :, None, None, None]
    torch.testing.assert_close(inp["target"].x - sigma * out.sample, out.x0, atol=1e-5, rtol=0)
    out2 = _perturb(m)(**inp).sample
    out2.square().mean().backward()
    assert m.stem.inp.weight.grad is not None and m.stem.inp.weight.grad.abs().sum() > 0
    assert m.blocks[0].qkv.weight.grad.abs().sum() > 0


def test_kv_cached_forward_equals_uncached(model):
    inp = _inputs(seed=3)
    inp["context"].valid[0, 0] = False  # padding in the working memory of one sample
    full = model(**inp).sample
    cache = model.encode_context(
        inp["context"], inp["keyframes"], inp["target"].c2w[:, 0], captions=inp["captions"]
    )
    assert len(cache.keys) == 2 and cache.keys[0].shape[2] == 4 * 16
    cached = model(inp["target"], memory=inp["memory"], cache=cache).sample
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)


def test_a_blocks_keys_and_values_alone_are_those_of_its_full_pass(model):
    """The last block of a KV cache's frames computes only its keys and values."""
    g = torch.Generator().manual_seed(5)
    block, D = model.blocks[-1], model.config.hidden_size
    x, mod = torch.randn(2, 3, 4, D, generator=g), torch.randn(2, 3, 6, D, generator=g)
    mask = torch.ones(2, 1, 12, 12, dtype=torch.bool)
    text, text_mask = torch.randn(2, 5, D, generator=g), torch.ones(2, 5, dtype=torch.bool)
    _, k, v = block(x, mod, mask, text, text_mask)
    k2, v2 = block.keys_values(x, mod)
    torch.testing.assert_close(k2, k, atol=0, rtol=0)
    torch.testing.assert_close(v2, v, atol=0, rtol=0)


def test_dtype_and_device_are_those_diffusers_finds():
    from diffusers.models.modeling_utils import get_parameter_device, get_parameter_dtype

    m = WorldDiT.from_model_config(tiny_model_config())
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        m.to(dtype)
        assert m.dtype == get_parameter_dtype(m) == dtype
        assert m.device == get_parameter_device(m) == torch.device("cpu")


def test_memory_tokens_never_see_targets(model):
    """Block-causal: the context cache must not depend on anything about the targets."""
    inp = _inputs(seed=4)
    ref = inp["target"].c2w[:, 0]
    a = model.encode_context(inp["context"], inp["keyframes"], ref, captions=inp["captions"])
    other = _inputs(seed=9)["target"]
    other = replace(other, c2w=inp["target"].c2w)
    m = model(other, memory=inp["memory"], cache=a).sample
    full = model(other, inp["context"], inp["keyframes"], inp["memory"], inp["captions"]).sample
    torch.testing.assert_close(m, full, atol=1e-5, rtol=0)


def test_invalid_frames_are_ignored(model):
    inp = {**_inputs(seed=5), "memory": None}  # no prior: the output is all the network's
    inp["keyframes"].valid[:, 1] = False
    out = model(**inp).sample
    kf = inp["keyframes"]
    scrambled = replace(kf, x=kf.x.clone(), c2w=kf.c2w.clone())
    scrambled.x[:, 1] = torch.randn_like(kf.x[:, 1]) * 5
    scrambled.c2w[:, 1] = look_at(torch.tensor([5.0, 1.0, 2.0]), torch.zeros(3))
    out2 = model(**{**inp, "keyframes": scrambled}).sample
    torch.testing.assert_close(out2, out, atol=1e-5, rtol=0)
    # ... while a valid keyframe does matter
    scrambled.valid[:, 1] = True
    assert (model(**{**inp, "keyframes": scrambled}).sample - out).abs().max() > 1e-3


def test_output_is_invariant_to_the_world_frame(model):
    """Cameras enter relative to the first target camera: a rigid motion of the whole world
    (every camera moved alike) must not change the prediction."""
    inp = _inputs(seed=6)
    M = look_at(torch.tensor([1.0, -2.0, 3.0]), torch.tensor([0.0, 0.5, 0.0]))  # rigid
    moved = {k: replace(inp[k], c2w=M @ inp[k].c2w) for k in ("target", "context", "keyframes")}
    out = model(**inp).sample
    out2 = model(**{**inp, **moved}).sample
    torch.testing.assert_close(out2, out, atol=1e-4, rtol=0)
    # a change of only the target camera is seen
    t = inp["target"]
    turned = replace(t, c2w=t.c2w.clone())
    turned.c2w[:, 1] = M @ t.c2w[:, 1]
    assert (model(**{**inp, "target": turned}).sample - out).abs().max() > 1e-3


def test_per_frame_sigma_changes_only_through_that_frame(model):
    inp = _inputs(seed=7)
    out = model(**inp).sample
    t = inp["target"]
    s = t.sigma.clone()
    s[:, 1] = 1.0 - s[:, 1]
    out2 = model(**{**inp, "target": replace(t, sigma=s)}).sample
    assert (out2[:, 1] - out[:, 1]).abs().max() > 1e-3


def test_a_given_hole_default_is_what_the_holes_tend_to():
    """``hole_default`` takes the place of the model's own default: at init (zero output
    layer) x0 is the render where valid and its push-pull fill towards the given default in
    the holes, and the cached path agrees with the direct one."""
    torch.manual_seed(0)
    m = WorldDiT.from_model_config(tiny_model_config()).eval()
    inp = _inputs(seed=3)
    B, T, C, h, w = inp["target"].x.shape
    given = torch.rand(B, T, C, h, w, generator=torch.Generator().manual_seed(4))
    out = m(**inp, hole_default=given)
    prior, has = memory_prior(inp["memory"], given)
    assert has.all()
    torch.testing.assert_close(out.x0, prior, atol=0, rtol=0)
    assert (out.x0 - m(**inp).x0).abs().max() > 1e-2  # not the model's own default
    cache = m.encode_context(
        inp["context"],
        inp["keyframes"],
        inp["target"].c2w[:, 0],
        text=m.encode_text(inp["captions"]),
    )
    cached = m(inp["target"], memory=inp["memory"], cache=cache, hole_default=given)
    torch.testing.assert_close(cached.x0, out.x0, atol=1e-5, rtol=0)


def test_no_memory_equals_an_empty_render(model):
    inp = _inputs(seed=8)
    empty = torch.zeros_like(inp["memory"])
    out_none = model(**{**inp, "memory": None})
    out_empty = model(**{**inp, "memory": empty})
    torch.testing.assert_close(out_none.sample, out_empty.sample, atol=0, rtol=0)
    assert torch.count_nonzero(out_empty.gate) == 0
    # a render with points does change the prediction
    assert (model(**inp).sample - out_none.sample).abs().max() > 1e-3


def _with_gate_bias(model, delta: float, **inp):
    """Two predictions (the given noisy targets, then fresh noise) with the gate logit moved."""
    with torch.no_grad():
        model.decoder.out.bias[-1] += delta  # +-40: sigmoid -> 1 or 0 in float32
    try:
        t = inp["target"]
        return model(**inp), model(**{**inp, "target": replace(t, x=torch.randn_like(t.x))})
    finally:
        with torch.no_grad():
            model.decoder.out.bias[-1] -= delta


def test_open_gate_passes_valid_memory_through_exactly(model):
    """With the gate open, x0 is the render where it is valid whatever the noisy input, and
    the network draws on the fill in the holes; with the gate shut, it draws everywhere."""
    inp = _inputs(seed=10)
    a, b = _with_gate_bias(model, 40.0, **inp)
    mem, valid = inp["memory"][:, :, :4], inp["memory"][:, :, 4:] > 0.5
    assert valid.any() and (~valid).any()
    v4 = valid.expand_as(mem)
    torch.testing.assert_close(a.x0[v4], mem[v4], atol=1e-6, rtol=0)
    torch.testing.assert_close(b.x0[v4], mem[v4], atol=1e-6, rtol=0)
    assert (a.x0[~v4] - b.x0[~v4]).abs().max() > 1e-3  # holes follow the noisy input
    shut, shut_b = _with_gate_bias(model, -40.0, **inp)
    assert (shut.x0[v4] - shut_b.x0[v4]).abs().max() > 1e-3


def test_memory_parameters_read_the_render(model):
    ids = {id(p) for p in model.memory_parameters()}
    assert id(model.stem.inp.weight) in ids and id(model.decoder.out.weight) in ids


def test_save_and_load_round_trip(tmp_path, model):
    inp = _inputs(seed=2)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = WorldDiT.from_pretrained(tmp_path).eval()
    assert loaded.model_config() == model.model_config()
    torch.testing.assert_close(loaded(**inp).sample, model(**inp).sample, atol=0, rtol=0)


def test_gradient_checkpointing_matches():
    torch.manual_seed(0)
    a = _perturb(WorldDiT.from_model_config(tiny_model_config()))
    b = _perturb(WorldDiT.from_model_config(tiny_model_config(gradient_checkpointing=True)))
    b.load_state_dict(a.state_dict())
    inp = _inputs()
    a(**inp).sample.square().sum().backward()
    b(**inp).sample.square().sum().backward()
    torch.testing.assert_close(b.blocks[0].qkv.weight.grad, a.blocks[0].qkv.weight.grad)


def test_bad_inputs_are_rejected(model):
    inp = _inputs()
    t = inp["target"]
    with pytest.raises(ValueError, match="target frames must be"):
        model(**{**inp, "target": replace(t, x=t.x[..., :16, :16])})
    with pytest.raises(ValueError, match="memory must be"):
        model(**{**inp, "memory": inp["memory"][:, :, :4]})
    with pytest.raises(ValueError, match="captions"):
        model(**{**inp, "captions": ["one"]})
    with pytest.raises(ValueError, match="sigma"):
        ModelFrames(t.x, t.sigma[:, :1], t.c2w, t.K, t.valid)
    with pytest.raises(ValueError, match="divisible"):
        WorldDiT.from_model_config(tiny_model_config(image_size=36))


def test_stem_cache_gives_the_uncached_output_and_runs_each_memory_frame_once():
    torch.manual_seed(0)
    m = _perturb(WorldDiT.from_model_config(tiny_model_config())).eval()
    calls = []
    m.stem.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    a, b = _inputs(seed=5), _inputs(seed=6)
    with torch.no_grad():
        want = [m(**a).sample, m(**b).sample]
        m.cache_memory_stems(capacity=8)
        calls.clear()
        first = m(**a).sample  # 2 samples x 2 context frames, x 2 keyframes: all new
        assert calls == [4, 4, 4]  # context, keyframes, then the targets (never cached)
        calls.clear()
        again = m(**a).sample  # the same memory frames: only the targets go through the stem
        assert calls == [4]
        # a chunk later: the newest context frame is new, the older one was the newest
        shifted = dict(b)
        shifted["context"] = ModelFrames(
            torch.cat([a["context"].x[:, 1:], b["context"].x[:, 1:]], 1),
            b["context"].sigma, b["context"].c2w, b["context"].K, b["context"].valid,
        )  # fmt: skip
        calls.clear()
        m(**shifted)
        assert calls == [2, 4, 4]  # of the context only b's two frames are new
    torch.testing.assert_close(first, want[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(again, want[0], atol=1e-5, rtol=0)
    assert len(m._stem_cache) == 8  # capacity: the least recently used were dropped
    # a weight changed in place (an optimizer or EMA step) forgets every kept feature
    with torch.no_grad():
        m.stem.inp.weight.mul_(1.5)
        calls.clear()
        changed = m(**a).sample
    assert calls == [4, 4, 4]
    m.cache_memory_stems(None)
    with torch.no_grad():
        torch.testing.assert_close(changed, m(**a).sample, atol=1e-5, rtol=0)
    # training (gradients on) never reads the cache
    m.cache_memory_stems(8)
    calls.clear()
    m(**a)
    assert calls == [4, 4, 4]  # context, keyframes and targets, each through the stem
