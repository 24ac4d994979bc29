"""DetailNet: a new net is the identity, the frame outside the holes passes through bit for bit,
save and load, the critic's and generator's losses against hand-made cases, and a tiny net
learning to draw the texture a blurred frame lost, judged by the sharpness metric."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from worldmem.eval.metrics import geometric_mean, masked_sharpness_ratio
from worldmem.models.detail_net import DetailNet, DetailNetConfig, PatchCritic
from worldmem.training.detail_net import critic_loss, detail_losses

TINY = DetailNetConfig(image_size=32, widths=(8, 16))


def _holes(n: int, size: int = 32) -> torch.Tensor:
    holes = torch.zeros(n, 1, size, size)
    holes[..., size // 2 :] = 1  # the right half of each frame
    return holes


def test_a_new_net_is_the_identity():
    rgb = torch.rand(2, 3, 32, 32)
    assert torch.equal(DetailNet(TINY)(rgb, _holes(2)), rgb)


def test_the_frame_outside_the_holes_passes_through_bit_for_bit():
    torch.manual_seed(0)
    net = DetailNet(TINY).eval()
    torch.nn.init.normal_(net.head.weight, std=0.3)
    rgb, holes = torch.rand(2, 3, 32, 32), _holes(2)
    with torch.no_grad():
        out = net(rgb, holes, generator=torch.Generator().manual_seed(1))
    held = (holes < 0.5).expand_as(rgb)
    assert torch.equal(out[held], rgb[held])
    assert float((out - rgb).abs()[~held].mean()) > 0.05
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    # the noise comes from the generator: the same state, the same frame
    with torch.no_grad():
        again = net(rgb, holes, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, out)


def test_config_and_input_checks_name_what_is_wrong():
    with pytest.raises(ValueError, match="image_size 34 must divide by 2"):
        DetailNetConfig(image_size=34, widths=(8, 16, 16))
    with pytest.raises(ValueError, match="widths must be positive multiples of 8"):
        DetailNetConfig(widths=(12, 16))
    with pytest.raises(ValueError, match="noise_channels"):
        DetailNetConfig(noise_channels=-1)
    net = DetailNet(TINY)
    with pytest.raises(ValueError, match=r"expected rgb \(B, 3, 32, 32\)"):
        net(torch.rand(1, 3, 64, 64), _holes(1, 64))
    with pytest.raises(ValueError, match=r"expected holes \(1, 1, 32, 32\)"):
        net(torch.rand(1, 3, 32, 32), _holes(2))


def test_save_and_load_give_the_same_frames(tmp_path):
    torch.manual_seed(0)
    net = DetailNet(TINY).eval()
    torch.nn.init.normal_(net.head.weight, std=0.1)
    net.save_pretrained(tmp_path / "d")
    back = DetailNet.from_pretrained(tmp_path / "d")
    assert back.cfg == net.cfg
    x, holes, z = torch.rand(2, 3, 32, 32), _holes(2), torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(back(x, holes, z), net(x, holes, z))
    (tmp_path / "d" / "config.json").write_text(
        (tmp_path / "d" / "config.json").read_text().replace("16", "24")
    )
    with pytest.raises(ValueError, match=r"safetensors: not this config's weights"):
        DetailNet.from_pretrained(tmp_path / "d")
    with pytest.raises(ValueError, match=r"config.json: not a detail net config"):
        DetailNet.from_pretrained(tmp_path / "missing")


def test_losses_look_only_at_the_holes():
    """The block-mean L1 is the mean absolute difference of 4 x 4 block means over the
    holes' blocks; the critic's and generator's patch scores are weighted by the holes."""
    torch.manual_seed(0)
    truth = torch.rand(1, 3, 32, 32)
    holes = _holes(1)
    model = truth.clone()
    model[..., 16:] += 0.25  # wrong by 0.25 everywhere in the holes
    model[..., :16] = 0.0  # and anything at all outside them
    critic = PatchCritic(widths=(8, 16, 16))
    _, parts = detail_losses(model, holes, truth, critic, rec_weight=1, adv_weight=0)
    assert parts["rec"] == pytest.approx(0.25, rel=1e-5)
    # a critic whose score is +1 on the left half of patches, -1 on the right: the generator
    # is scored on the right (hole) patches only, and the critic's loss likewise
    score = torch.ones(1, 1, 4, 4)
    score[..., 2:] = -1
    critic = lambda cand, h: score  # noqa: E731
    _, parts = detail_losses(model, holes, truth, critic, rec_weight=0, adv_weight=1)
    assert parts["adv"] == pytest.approx(1.0)
    # real and fake both score -1 over the holes: hinge (1 - -1) for real + (1 + -1) for fake
    assert float(critic_loss(critic, model, holes, truth)) == pytest.approx(2.0)


def _stripes(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Frames of vertical stripes two pixels wide in a random colour pair each."""
    a, b = torch.rand(n, 3, 1, 1, generator=gen), torch.rand(n, 3, 1, 1, generator=gen)
    on = ((torch.arange(size) // 2) % 2).float().view(1, 1, 1, size)
    return (a * on + b * (1 - on)).expand(n, 3, size, size)


STEPS = 150


def test_a_tiny_net_learns_to_draw_the_detail_a_blurred_frame_lost():
    """The model's frame is the truth (fine stripes) blurred flat inside its holes. Trained
    ``STEPS`` steps with the block-mean L1 and the critic, a tiny net draws detail there: sharpness
    (squared Laplacian against the truth's) from about 0 to at least 0.3, while the holes'
    4 x 4 block means stay as close to the truth as the blurred frame's."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = DetailNet(DetailNetConfig(image_size=32, widths=(16, 32)))
    critic = PatchCritic(widths=(16, 32, 32))
    opt_g = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.999))

    def batch(n):
        truth = _stripes(n, 32, gen)
        holes = _holes(n)
        blurred = F.avg_pool2d(truth, 4).repeat_interleave(4, 2).repeat_interleave(4, 3)
        return truth * (1 - holes) + blurred * holes, holes, truth

    for _ in range(STEPS):
        model, holes, truth = batch(8)
        out = net(model, holes)
        loss_d = critic_loss(critic, out, holes, truth)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g, _ = detail_losses(out, holes, truth, critic, rec_weight=30, adv_weight=1)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    model, holes, truth = batch(16)
    with torch.no_grad():
        out = net.eval()(model, holes, generator=gen)
    inside = holes > 0.5
    before = masked_sharpness_ratio(model, truth, inside)  # flat: 0 in every frame
    after = geometric_mean(masked_sharpness_ratio(out, truth, inside).numpy())
    assert float(before.max()) < 0.05 and after > 0.3, (before, after)
    block = lambda x: F.avg_pool2d(x, 4)[..., 4:]  # noqa: E731  the holes' blocks
    err = float((block(out) - block(truth)).abs().mean())
    assert err < 0.05, err


def test_surface_noise_is_a_unit_field_fixed_to_space_at_its_cell_size():
    """The noise at a world point depends on that point alone (the same point from any frame
    or pixel gives the same values), has zero mean and unit variance, is nearly the same a
    tenth of a cell away and nearly independent a cell away, and changes with the seed."""
    net = DetailNet(DetailNetConfig(image_size=8, widths=(8, 16), noise_cell_m=0.05))
    g = torch.Generator().manual_seed(0)
    points = (torch.rand(4, 8, 8, 3, generator=g) - 0.5) * 20  # metres, negative ones too
    z = net.surface_noise(points, seed=3)
    assert z.shape == (4, 4, 8, 8)
    # the same points in another order (another camera's pixels): the same values, reordered
    perm = torch.randperm(4 * 64, generator=g)
    shuffled = points.reshape(-1, 3)[perm].reshape(4, 8, 8, 3)
    want = z.permute(0, 2, 3, 1).reshape(-1, 4)[perm]
    torch.testing.assert_close(net.surface_noise(shuffled, seed=3).permute(0, 2, 3, 1)
                               .reshape(-1, 4), want)  # fmt: skip
    many = (torch.rand(64, 8, 8, 3, generator=g) - 0.5) * 20
    base = net.surface_noise(many, seed=3).flatten()
    assert abs(float(base.mean())) < 0.05 and 0.9 < float(base.std()) < 1.1

    def corr(offset_m: float) -> float:
        moved = net.surface_noise(many + torch.tensor([offset_m, 0.0, 0.0]), seed=3).flatten()
        return float(torch.corrcoef(torch.stack([base, moved]))[0, 1])

    assert corr(0.005) > 0.8 and abs(corr(0.05 * 3)) < 0.1
    other = net.surface_noise(many, seed=4).flatten()
    assert abs(float(torch.corrcoef(torch.stack([base, other]))[0, 1])) < 0.1
    with pytest.raises(ValueError, match="noise_cell_m"):
        DetailNetConfig(noise_cell_m=0.0)
