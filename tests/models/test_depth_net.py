"""DepthNet: its loss against hand-computed values, its untrained output, save and load, and a
tiny net learning the depth of synthetic views against the renderer's exact depth."""

from __future__ import annotations

import math

import pytest
import torch

from worldmem.eval.metrics import depth_abs_rel
from worldmem.models.depth_net import DepthNet, DepthNetConfig, depth_net_loss
from worldmem.training.depth_net import TrainViews, start_views

TINY = DepthNetConfig(image_size=32, widths=(8, 16, 16, 16))


def test_loss_is_the_log_ratio_over_pixels_with_depth():
    depth = 1 + torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert float(depth_net_loss(depth.log(), depth)) == pytest.approx(0, abs=1e-7)
    # twice too far everywhere: |log 2| per pixel, and no error between neighbours
    assert float(depth_net_loss((2 * depth).log(), depth)) == pytest.approx(math.log(2), rel=1e-5)
    # pixels without depth (0) count for nothing, whatever is predicted there
    holed = depth.clone()
    holed[:, :, :4] = 0
    pred = depth.log().clone()
    pred[:, :, :4] = 100.0
    assert float(depth_net_loss(pred, holed)) == pytest.approx(0, abs=1e-6)
    # one wrong pixel of 64 per view: its log error over the 64, plus the error differences it
    # makes with its 4 neighbours over the 2 * 7 * 8 neighbour pairs, times the weight
    pred = depth.log().clone()
    pred[:, :, 3, 3] += 1.0
    want = 2 / 128 + 0.5 * (2 * 4) / (2 * 2 * 7 * 8)
    assert float(depth_net_loss(pred, depth)) == pytest.approx(want, rel=1e-5)


def test_untrained_net_gives_its_initial_depth_everywhere():
    net = DepthNet(DepthNetConfig(image_size=32, widths=(8, 16, 16, 16), init_depth_m=2.5))
    out = net(torch.rand(3, 3, 32, 32))
    assert out.shape == (3, 1, 32, 32)
    torch.testing.assert_close(out, torch.full_like(out, 2.5))


def test_config_and_input_checks_name_what_is_wrong():
    with pytest.raises(ValueError, match="image_size 36 must divide by 2"):
        DepthNetConfig(image_size=36)
    with pytest.raises(ValueError, match="widths must be positive multiples of 8"):
        DepthNetConfig(widths=(12, 16, 16, 16))
    with pytest.raises(ValueError, match="init_depth_m"):
        DepthNetConfig(init_depth_m=float("nan"))
    with pytest.raises(ValueError, match=r"expected rgb \(B, 3, 32, 32\)"):
        DepthNet(TINY)(torch.rand(1, 3, 64, 64))


def test_save_and_load_give_the_same_depth(tmp_path):
    torch.manual_seed(0)
    net = DepthNet(TINY)
    torch.nn.init.normal_(net.head.weight, std=0.1)  # not the constant initial depth
    net.save_pretrained(tmp_path / "d")
    back = DepthNet.from_pretrained(tmp_path / "d")
    assert back.cfg == net.cfg
    x = torch.rand(2, 3, 32, 32)
    net.eval()
    assert torch.equal(back(x), net(x))
    config = (tmp_path / "d" / "config.json").read_text()
    (tmp_path / "d" / "config.json").write_text(
        config.replace('"image_size": 32', '"image_size": 36')
    )
    with pytest.raises(ValueError, match=r"config.json: not a depth net config.*image_size 36"):
        DepthNet.from_pretrained(tmp_path / "d")
    (tmp_path / "d" / "config.json").write_text(config.replace("16", "24"))  # other widths
    with pytest.raises(ValueError, match=r"safetensors: not this config's weights"):
        DepthNet.from_pretrained(tmp_path / "d")
    with pytest.raises(ValueError, match=r"config.json"):
        DepthNet.from_pretrained(tmp_path / "missing")


def test_a_tiny_net_learns_the_depth_of_synthetic_views():
    """Trained 200 steps on renders of four synthetic worlds, a tiny net gives their start
    views' depth far better than the best constant depth (each view's own true median, which
    no net could know) does, against the renderer's exact depth."""
    torch.manual_seed(0)
    seeds = [11, 12, 13, 14]
    views = TrainViews(seeds, 32, 75.0, seed=0)
    net = DepthNet(TINY)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for _ in range(200):
        rgb, depth = views.batch(4, 4)
        loss = depth_net_loss(net.log_depth(rgb), depth)
        opt.zero_grad()
        loss.backward()
        opt.step()
    rgb, depth = start_views(seeds, 32, 75.0)
    with torch.no_grad():
        pred = net.eval()(rgb)
    medians = torch.stack([d[d > 0].median() for d in depth]).view(-1, 1, 1, 1)
    learned = float(depth_abs_rel(pred, depth).mean())
    constant = float(depth_abs_rel(medians.expand_as(depth), depth).mean())
    assert learned < 0.75 * constant, (learned, constant)
