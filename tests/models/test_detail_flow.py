"""DetailFlow: the band it samples against an independent Gaussian filter, the sampler's
arithmetic, pass-through outside the holes, and that a tiny flow learns a band whose phase the
frame does not tell (its samples carry the truth's energy at the truth's frequency, varied
phases; the one-step mean does not)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from worldmem.models.detail_flow import DetailFlow, DetailFlowConfig, high_band
from worldmem.training.detail_net import flow_loss

TINY = DetailFlowConfig(image_size=16, widths=(8, 16))


def test_high_band_is_the_frame_minus_its_gaussian_blur():
    x = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for sigma in (1.0, 1.5):
        r = math.ceil(3 * sigma)  # scipy's "mirror" is torch's "reflect"
        want = x.numpy() - gaussian_filter(x.numpy(), (0, 0, sigma, sigma), mode="mirror",
                                           truncate=r / sigma)  # fmt: skip
        np.testing.assert_allclose(high_band(x, sigma).numpy(), want, atol=1e-12)
    flat = torch.full((1, 3, 8, 8), 0.3)
    assert float(high_band(flat, 1.5).abs().max()) < 1e-6


def test_a_new_flow_is_the_identity_and_outside_the_holes_passes_bit_for_bit():
    g = torch.Generator().manual_seed(1)
    rgb = torch.rand(2, 3, 16, 16, generator=g)
    holes = torch.zeros(2, 1, 16, 16)
    holes[..., 8:] = 1
    assert torch.equal(DetailFlow(TINY)(rgb, holes, generator=g), rgb)
    net = DetailFlow(TINY).eval()
    torch.nn.init.normal_(net.head.weight, std=0.5)
    with torch.no_grad():
        out = net(rgb, holes, generator=g)
    assert torch.equal(out[..., :8], rgb[..., :8])
    assert float((out - rgb)[..., 8:].abs().mean()) > 0.01
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    holes[1] = 0  # a frame with nothing to draw is given back as it was
    with torch.no_grad():
        out = net(rgb, holes, generator=g)
    assert torch.equal(out[1], rgb[1]) and not torch.equal(out[0], rgb[0])


def test_the_euler_sampler_lands_on_the_predicted_band_and_follows_the_noise(monkeypatch):
    """With a net that always predicts the same band b, every step's noise estimate is
    consistent and one step or eight end exactly at b; with a net that predicts 0 the flow
    stays 0; and ``forward`` adds ``band_scale`` times the sampled band."""
    net = DetailFlow(TINY).eval()
    b = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    monkeypatch.setattr(net, "predict", lambda rgb, holes, z, t: b.expand_as(z))
    noise = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    rgb, holes = torch.full((1, 3, 16, 16), 0.5), torch.ones(1, 1, 16, 16)
    for steps in (1, 8):
        torch.testing.assert_close(net.sample_band(rgb, holes, noise, steps), b)
    want = (rgb + TINY.band_scale * b).clamp(0, 1)
    torch.testing.assert_close(net(rgb, holes, noise), want)
    seen = []

    def spy(rgb, holes, z, t):
        seen.append((z.clone(), float(t[0])))
        return torch.zeros_like(z)

    monkeypatch.setattr(net, "predict", spy)
    net.sample_band(rgb, holes, noise, 4)
    assert [t for _, t in seen] == [1.0, 0.75, 0.5, 0.25]
    assert torch.equal(seen[0][0], noise)  # it starts from the noise given
    for z, t in seen[1:]:  # predicting 0, z = t * noise at every step
        torch.testing.assert_close(z, t * noise)


def test_config_and_inputs_are_checked():
    with pytest.raises(ValueError, match="noise_channels must be 3"):
        DetailFlowConfig(noise_channels=4)
    with pytest.raises(ValueError, match="band_scale must be > 0"):
        DetailFlowConfig(band_scale=0.0)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        DetailFlowConfig(steps=0)
    net = DetailFlow(TINY)
    with pytest.raises(ValueError, match=r"DetailFlow: expected rgb and noise \(B, 3, 16, 16\)"):
        net(torch.rand(1, 3, 8, 8), torch.ones(1, 1, 8, 8))


def test_save_and_load_round_trip(tmp_path):
    net = DetailFlow(DetailFlowConfig(image_size=16, widths=(8, 16), steps=2, band_scale=0.07))
    torch.nn.init.normal_(net.head.weight, std=0.1)
    back = DetailFlow.from_pretrained(net.save_pretrained(tmp_path / "f"))
    assert back.cfg == net.cfg
    rgb, holes = torch.rand(1, 3, 16, 16), torch.ones(1, 1, 16, 16)
    noise = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(back(rgb, holes, noise), net.eval()(rgb, holes, noise))


def _stripes(g: torch.Generator, n: int, size: int = 16):
    """A flat grey frame, all holes, whose truth is grey plus vertical stripes of period 4 px
    and a random phase: the frame cannot tell where the stripes lie."""
    phase = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    x = torch.arange(size, dtype=torch.float32).view(1, 1, 1, size)
    truth = (0.5 + 0.1 * torch.sin(2 * math.pi * x / 4 + phase)).expand(n, 3, size, size)
    return torch.full((n, 3, size, size), 0.5), torch.ones(n, 1, size, size), truth


def test_a_tiny_flow_learns_to_sample_a_band_the_frame_does_not_determine():
    torch.manual_seed(0)
    net = DetailFlow(DetailFlowConfig(image_size=16, widths=(16, 32), band_scale=0.1, steps=8))
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    rng, g = np.random.default_rng(0), torch.Generator().manual_seed(0)
    for _ in range(300):
        loss = flow_loss(net, *_stripes(g, 16), rng, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    model, holes, truth = _stripes(g, 32)
    with torch.no_grad():
        drawn = net(model, holes, generator=torch.Generator().manual_seed(1)) - model
        mean = net(model, holes, generator=torch.Generator().manual_seed(1), steps=1) - model
    energy = high_band(truth, 1.5).pow(2).mean()
    assert 0.6 < float(drawn.pow(2).mean() / energy) < 1.5  # the truth's energy...
    assert float(mean.pow(2).mean() / energy) < 0.7  # ...which the one-step mean blurs away
    rows = drawn.mean((1, 2))  # (32, 16): each sample's profile across the columns
    spectrum = torch.fft.rfft(rows, dim=-1).abs().mean(0)
    assert int(spectrum.argmax()) == 4  # at the truth's period of 4 px
    unit = rows / rows.norm(dim=1, keepdim=True)
    # varied phases: |cos| of random phase differences averages 2 / pi; one phase gives 1
    assert float((unit @ unit.T).abs().mean()) < 0.8
