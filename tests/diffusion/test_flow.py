"""Flow matching: noising, clean memory frames, dropout, the masked loss, and learning."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import tiny_model_config

from worldmem.diffusion import FlowMatching, drop_memories
from worldmem.diffusion.dummy import dummy_world_batch
from worldmem.models import IdentityCodec, WorldDiT, WorldDiTOutput


def test_noising_path_and_velocity():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 3, 4, 8, 8, generator=g), torch.randn(2, 3, 4, 8, 8, generator=g)
    fm = FlowMatching()
    torch.testing.assert_close(fm.add_noise(x0, noise, torch.zeros(2, 3)), x0)
    torch.testing.assert_close(fm.add_noise(x0, noise, torch.ones(2, 3)), noise)
    # the target velocity noise - x0 is the derivative of x_sigma (finite difference)
    s, h = torch.full((2, 3), 0.3), 1e-3
    fd = (fm.add_noise(x0, noise, s + h) - fm.add_noise(x0, noise, s - h)) / (2 * h)
    torch.testing.assert_close(fd, noise - x0, atol=1e-3, rtol=0)


def test_sigmas_are_logit_normal_and_sometimes_per_frame():
    g = torch.Generator().manual_seed(0)
    s = FlowMatching(0.0, 1.0, p_independent=0.25).sample_sigmas(4000, 3, g)
    assert s.shape == (4000, 3) and torch.all((s > 0) & (s < 1))
    z = torch.logit(s[:, 0].double())
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    independent = (s != s[:, :1]).any(1).float().mean()
    assert 0.22 < independent < 0.28
    assert torch.all(FlowMatching(p_independent=0.0).sample_sigmas(50, 3, g).std(1) == 0)


def test_clean_context_is_unchanged_by_the_training_noise():
    batch = dummy_world_batch(2, 2, 2, 2, 32)
    codec = IdentityCodec()
    inp = FlowMatching().prepare(codec, batch, generator=torch.Generator().manual_seed(0))
    for name in ("context", "keyframes"):
        frames = getattr(inp, name)
        src = getattr(batch, name)
        assert torch.all(frames.sigma == 0)
        torch.testing.assert_close(frames.x, codec.encode(src.rgb, src.depth), atol=0, rtol=0)
    x0 = codec.encode(batch.target.rgb, batch.target.depth)
    torch.testing.assert_close(inp.x0, x0)
    assert torch.all(inp.target.sigma > 0)
    assert (inp.target.x - x0).abs().amin(dim=(2, 3, 4)).min() > 0  # every target is noised


def test_memory_dropout():
    batch = dummy_world_batch(3, 2, 2, 2, 32)
    g = torch.Generator().manual_seed(0)
    all_dropped = drop_memories(batch, dict(working=1.0, episodic=1.0, spatial=1.0, text=1.0), g)
    assert not all_dropped.context.valid.any() and not all_dropped.keyframes.valid.any()
    assert batch.memory_observed.any()
    dropped = all_dropped.memory_rgb, all_dropped.memory_depth, all_dropped.memory_mask
    for t in (*dropped, all_dropped.memory_observed):
        assert torch.count_nonzero(t) == 0
    assert all_dropped.caption == ["", "", ""]
    assert batch.context.valid.all() and batch.caption[0]  # the input is untouched
    kept = drop_memories(batch, dict(working=0.0, text=0.0), g)
    assert kept.context.valid.all() and kept.caption == batch.caption
    some = drop_memories(dummy_world_batch(400, 1, 1, 0, 8), dict(spatial=0.3), g)
    frac = (some.memory_mask.flatten(1).amax(1) == 0).float().mean()
    assert 0.22 < frac < 0.38
    with pytest.raises(ValueError, match="unknown keys"):
        drop_memories(batch, dict(workng=0.5))
    with pytest.raises(ValueError, match="probability"):
        drop_memories(batch, dict(text=1.5))


def test_side_dropout_empties_one_side_of_every_target():
    B, S = 200, 16
    batch = dummy_world_batch(B, 2, 1, 1, S)
    batch = replace(batch, memory_mask=torch.ones_like(batch.memory_mask))
    g = torch.Generator().manual_seed(0)
    out = drop_memories(batch, dict(spatial_part=0.5), g)
    mask = out.memory_mask[:, :, 0]  # (B, T, S, S)
    assert torch.equal(mask[:, 0], mask[:, 1])  # the same side at every target
    hit = mask.flatten(1).amin(1) == 0
    assert 0.38 < hit.float().mean() < 0.62
    empty = 1 - mask[hit, 0]  # (n, S, S)
    frac = empty.mean((1, 2))
    assert float(frac.min()) >= 0.3 - 1 / S and float(frac.max()) <= 0.9 + 1 / S
    # a band along one edge: whole rows or whole columns, touching the border
    rows, cols = empty.amax(2), empty.amax(1)  # (n, S): which rows / columns are touched
    whole_cols = (empty.amin(1) == cols).all(1)  # every column all empty or all kept
    whole_rows = (empty.amin(2) == rows).all(1)
    assert bool((whole_cols | whole_rows).all())
    edge = (cols[:, 0] + cols[:, -1] + rows[:, 0] + rows[:, -1]) > 0
    assert bool(edge.all())
    sides = (
        torch.stack([cols[:, 0], cols[:, -1], rows[:, 0], rows[:, -1]], 1)
        * ~torch.stack([cols[:, -1], cols[:, 0], rows[:, -1], rows[:, 0]], 1).bool()
    )
    assert bool((sides.sum(0) > 5).all())  # all four sides are drawn
    # rgb, depth and provenance are emptied with the mask; other memories are kept
    for t in (out.memory_rgb, out.memory_depth, out.memory_observed):
        assert torch.count_nonzero(t * (1 - out.memory_mask)) == 0
    assert out.context.valid.all() and out.keyframes.valid.all()
    assert torch.equal(
        drop_memories(batch, dict(spatial_part=0.0), g).memory_mask, batch.memory_mask
    )


def test_depthless_start_keeps_the_context_rgb_and_forgets_its_depth():
    batch = dummy_world_batch(300, 2, 2, 2, 16)
    g = torch.Generator().manual_seed(0)
    out = drop_memories(batch, dict(depthless_start=1.0), g)
    assert torch.count_nonzero(out.context.depth) == 0 and torch.count_nonzero(batch.context.depth)
    assert torch.equal(out.context.rgb, batch.context.rgb) and out.context.valid.all()
    assert not out.keyframes.valid.any()
    for t in (out.memory_rgb, out.memory_depth, out.memory_mask, out.memory_observed):
        assert torch.count_nonzero(t) == 0
    assert out.caption == batch.caption and torch.equal(out.target.depth, batch.target.depth)
    # about the asked share, never on top of a cold start (which has no context at all)
    some = drop_memories(batch, dict(depthless_start=0.3, cold=0.5), g)
    forgot = some.context.depth.flatten(1).amax(1) == 0
    cold = ~some.context.valid.any(1)
    assert not bool((forgot & cold).any())
    assert 0.09 < float(forgot.float().mean()) < 0.22  # 0.3 of the half that is not cold
    # asked for at 0, it draws nothing: every other dropout draws as before
    a = drop_memories(batch, dict(spatial=0.5, spatial_part=0.5), torch.Generator().manual_seed(1))
    b = drop_memories(
        batch,
        dict(spatial=0.5, spatial_part=0.5, depthless_start=0.0),
        torch.Generator().manual_seed(1),
    )
    assert torch.equal(a.memory_mask, b.memory_mask)
    assert torch.equal(a.context.depth, batch.context.depth)


class _ZeroModel(torch.nn.Module):
    """Predicts zero velocity: the loss is then the mean square of the target velocity."""

    def forward(self, target, **kw):
        return WorldDiTOutput(sample=torch.zeros_like(target.x))


def test_loss_is_masked_mse_on_rgb_and_known_depth():
    batch = dummy_world_batch(2, 2, 1, 1, 16)
    batch.target.valid[1, 1] = False
    codec = IdentityCodec()
    fm = FlowMatching()
    out = fm.training_losses(
        _ZeroModel(), codec, batch, depth_loss_weight=0.7, generator=torch.Generator()
    )
    inp = fm.prepare(codec, batch, generator=torch.Generator())  # same draws
    v = inp.velocity
    valid = batch.target.valid
    rgb = torch.stack([v[b, t, :3] for b in range(2) for t in range(2) if valid[b, t]])
    d = torch.cat(
        [v[b, t, 3][batch.target.depth[b, t, 0] > 0] for b in range(2) for t in range(2)
         if valid[b, t]]
    )  # fmt: skip
    torch.testing.assert_close(out["loss_rgb"], rgb.square().mean())
    torch.testing.assert_close(out["loss_depth"], d.square().mean())
    torch.testing.assert_close(out["loss"], out["loss_rgb"] + 0.7 * out["loss_depth"])


class _ConstantModel(torch.nn.Module):
    """One learned value per channel as the clean-frame estimate, whatever the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.value = torch.nn.Parameter(torch.zeros(channels))

    def forward(self, target, **kw):
        x0 = self.value[:, None, None].expand(target.x.shape[2:]).expand_as(target.x)
        return WorldDiTOutput(sample=torch.zeros_like(target.x), x0=x0)


@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_depth_loss_l1_makes_an_unknowable_depth_the_median_not_the_mean(kind):
    # the model sees nothing of the depth: the best constant under each loss is the mean or
    # the median of the targets' inverse depths, skewed here so the two are far apart
    batch = dummy_world_batch(2, 2, 1, 1, 16)
    g = torch.Generator().manual_seed(0)
    depth = torch.exp(torch.randn(batch.target.depth.shape, generator=g))  # log-normal metres
    batch = replace(batch, target=replace(batch.target, depth=depth))
    codec, fm = IdentityCodec(), FlowMatching()
    inv = fm.prepare(codec, batch, generator=torch.Generator()).x0[:, :, 3]  # encoded targets
    model = _ConstantModel(4)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 400)
    for _ in range(400):
        out = fm.training_losses(model, codec, batch, depth_loss=kind, generator=torch.Generator())
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        sched.step()
    mean, median = float(inv.mean()), float(inv.median())
    assert mean - median > 0.1  # inverse depth of a log-normal depth: the mean is nearer
    want = median if kind == "l1" else mean
    assert abs(model.value[3].item() - want) < 0.01, (model.value[3].item(), mean, median)
    l1 = fm.training_losses(model, codec, batch, depth_loss="l1", generator=torch.Generator())
    d = fm.prepare(codec, batch, generator=torch.Generator()).x0[:, :, 3] - model.value[3]
    torch.testing.assert_close(l1["loss_depth"], d.abs().mean())
    with pytest.raises(ValueError, match="depth_loss"):
        fm.training_losses(model, codec, batch, depth_loss="l3", generator=torch.Generator())


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = WorldDiT.from_model_config(tiny_model_config())
    codec = IdentityCodec()
    batch = dummy_world_batch(2, 2, 1, 1, 32)
    # no memory render: random frames have nothing a fill could predict, the network must draw
    batch = replace(batch, memory_mask=torch.zeros_like(batch.memory_mask))
    fm = FlowMatching()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        out = fm.training_losses(
            model, codec, batch, drop=dict(text=0.5), generator=torch.Generator().manual_seed(1)
        )
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_a_batchs_room_is_what_the_models_holes_tend_to_in_training():
    """A batch carrying a room (``hole_rgb``/``hole_depth``) trains the model on it as the
    sampler gives it: at init (zero output layer) the estimate is the render's push-pull fill
    towards the encoded room, not towards the model's own default; dropping the spatial
    memory keeps the room with the batch and empties the render."""
    from worldmem.models.dit import memory_prior

    torch.manual_seed(0)
    model = WorldDiT.from_model_config(tiny_model_config())
    codec = IdentityCodec()
    batch = dummy_world_batch(2, 2, 2, 2, 32, seed=5)
    g = torch.Generator().manual_seed(6)
    room = replace(
        batch,
        hole_rgb=torch.rand(2, 2, 3, 32, 32, generator=g),
        hole_depth=1.0 + 3.0 * torch.rand(2, 2, 1, 32, 32, generator=g),
    )
    fm = FlowMatching()
    out = fm.training_losses(model, codec, room, return_outputs=True)
    inp = out["inputs"]
    torch.testing.assert_close(inp.hole, codec.encode(room.hole_rgb, room.hole_depth))
    want, _ = memory_prior(inp.memory, inp.hole)
    torch.testing.assert_close(out["x0"], want, atol=0, rtol=0)
    plain = fm.training_losses(model, codec, batch, return_outputs=True)
    assert plain["inputs"].hole is None
    assert (plain["x0"] - out["x0"]).abs().max() > 1e-2
    dropped = drop_memories(room, {"spatial": 1.0})
    assert torch.equal(dropped.hole_rgb, room.hole_rgb) and not dropped.memory_mask.any()
