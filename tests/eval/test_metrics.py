"""Metrics against hand-computed values and a second implementation (scikit-image)."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from worldmem.eval.metrics import (
    LPIPS,
    MAX_PSNR_DB,
    depth_abs_rel,
    depth_delta,
    depth_scale,
    load_lpips,
    mean_ci,
    psnr,
    ssim,
    t_quantile,
)


def test_psnr_of_constant_offset_is_10_log10_of_inverse_mse():
    gt = torch.full((2, 3, 16, 16), 0.5)
    pred = gt.clone()
    pred[0] += 0.1  # mse 0.01 -> 20 dB
    pred[1] -= 0.25  # mse 0.0625 -> 12.0412 dB
    got = psnr(pred, gt)
    assert got[0].item() == pytest.approx(20.0, abs=1e-4)
    assert got[1].item() == pytest.approx(10 * math.log10(1 / 0.0625), abs=1e-4)


def test_psnr_of_identical_frames_is_capped():
    x = torch.rand(1, 3, 8, 8)
    assert psnr(x, x).item() == pytest.approx(MAX_PSNR_DB)


def test_psnr_does_not_rank_frames_that_agree_to_8_bit_precision():
    from worldmem.eval.walk import masked_psnr

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g)
    # rounding to 8-bit levels is the floor: uniform noise of +-half a level, 58.9 dB
    assert MAX_PSNR_DB == pytest.approx(10 * math.log10(12 * 255**2))
    assert MAX_PSNR_DB == pytest.approx(58.92, abs=0.01)
    tiny = x.clone()
    tiny[0] += 1e-4  # 80 dB uncapped: invisible, and scored as identical
    tiny[1] = torch.round(x[1] * 255) / 255  # rounded to 8 bits: at the floor, not above it
    got = psnr(tiny, x)
    assert got[0].item() == pytest.approx(MAX_PSNR_DB)
    assert got[1].item() == pytest.approx(MAX_PSNR_DB, abs=0.3)
    one_level = x + 1 / 255  # an error of one 8-bit level everywhere: 48.13 dB
    assert psnr(one_level, x)[0].item() == pytest.approx(20 * math.log10(255), abs=1e-3)
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[:8] = True
    assert masked_psnr(tiny[0], x[0], mask) == pytest.approx(MAX_PSNR_DB)
    assert masked_psnr(one_level[0], x[0], mask) == pytest.approx(20 * math.log10(255), abs=1e-3)


def test_psnr_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="pred and target shapes differ"):
        psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 8))


def test_ssim_matches_scikit_image():
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 3, 32, 40, generator=g)
    pred = (gt + 0.2 * torch.randn(3, 3, 32, 40, generator=g)).clamp(0, 1)
    pred[2] = torch.rand(3, 32, 40, generator=g)  # an unrelated image: SSIM near 0
    got = ssim(pred, gt)
    for i in range(3):
        want = structural_similarity(
            pred[i].permute(1, 2, 0).double().numpy(),
            gt[i].permute(1, 2, 0).double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=2,
        )
        assert got[i].item() == pytest.approx(want, abs=1e-5)
    assert ssim(gt, gt).tolist() == pytest.approx([1.0] * 3, abs=1e-6)


def test_depth_abs_rel_and_delta_on_a_hand_case():
    gt = torch.tensor([[2.0, 4.0], [1.0, 0.0]]).reshape(1, 1, 2, 2)  # one unknown pixel
    pred = torch.tensor([[2.5, 4.0], [2.0, 7.0]]).reshape(1, 1, 2, 2)
    # valid: |2.5-2|/2 = 0.25, 0, |2-1|/1 = 1 -> mean 1.25 / 3
    assert depth_abs_rel(pred, gt).item() == pytest.approx(1.25 / 3)
    # ratios 1.25 (not < 1.25), 1.0, 2.0 -> 1 of 3
    assert depth_delta(pred, gt).item() == pytest.approx(1 / 3)
    assert depth_delta(pred, gt, threshold=2.5).item() == pytest.approx(1.0)
    # a non-positive prediction is wrong, a frame without depth is NaN
    assert depth_delta(torch.zeros(1, 1, 2, 2), gt).item() == 0.0
    assert math.isnan(depth_abs_rel(pred, torch.zeros_like(gt)).item())


def test_depth_scale_is_the_median_ratio_over_pixels_with_both_depths():
    gt = torch.tensor([[2.0, 4.0, 1.0], [1.0, 0.0, 3.0]]).reshape(1, 1, 2, 3)  # one unknown
    pred = torch.tensor([[3.0, 4.0, 3.0], [0.0, 7.0, 12.0]]).reshape(1, 1, 2, 3)  # one <= 0
    # ratios over the 4 pixels with both: 1.5, 1.0, 3.0, 4.0 -> torch's lower median, 1.5
    assert depth_scale(pred, gt).item() == pytest.approx(1.5)
    frames = torch.stack([gt[0], 2 * gt[0]])  # a second frame twice as far
    assert depth_scale(2 * frames, frames).tolist() == pytest.approx([2.0, 2.0])
    assert math.isnan(depth_scale(pred, torch.zeros_like(gt)).item())


def test_t_quantile_matches_tables_and_scipy():
    from scipy.stats import t

    assert t_quantile(0.975, 4) == pytest.approx(2.776445, abs=1e-5)  # textbook table
    assert t_quantile(0.975, 1) == pytest.approx(12.706205, abs=1e-4)
    for dof in (2, 7, 19, 120, 2.5):
        for p in (0.9, 0.975, 0.995, 0.2):
            assert t_quantile(p, dof) == pytest.approx(t.ppf(p, dof), rel=1e-6, abs=1e-6)


def test_mean_ci_on_a_known_sample():
    # 1..5: mean 3, s = sqrt(2.5), se = sqrt(0.5), t(0.975, 4) = 2.776445
    mean, lo, hi, n = mean_ci([1, 2, 3, 4, 5, float("nan")])
    half = 2.776445 * math.sqrt(0.5)
    assert (mean, n) == (3.0, 5)
    assert lo == pytest.approx(3 - half, abs=1e-5) and hi == pytest.approx(3 + half, abs=1e-5)
    mean, lo, hi, n = mean_ci([4.0])
    assert mean == 4.0 and n == 1 and math.isnan(lo) and math.isnan(hi)


def test_lpips_loads_a_state_dict_in_the_lpips_layout(tmp_path):
    torch.manual_seed(0)
    model = LPIPS()
    for m in model.modules():  # LPIPS lin weights are non-negative
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1):
            m.weight.data.abs_()
    state = model.state_dict()
    assert {"scaling_layer.shift", "net.slice1.0.weight", "net.slice5.10.weight"} <= set(state)
    assert "lin4.model.1.weight" in state
    path = tmp_path / "lpips_alex.pth"
    torch.save(state, path)
    loaded = load_lpips(path)
    x = torch.rand(2, 3, 32, 32)
    y = torch.rand(2, 3, 32, 32)
    assert loaded(x, x).abs().max().item() < 1e-6
    assert (loaded(x, y) > 0).all()
    assert torch.allclose(loaded(x, y), model(x, y))
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not an LPIPS"):
        load_lpips(tmp_path / "other.pth")


def test_lpips_without_weights_is_skipped_with_a_message(capsys, tmp_path):
    assert load_lpips(None) is None
    assert load_lpips(tmp_path / "missing.pth") is None
    out = capsys.readouterr().out
    assert "LPIPS skipped" in out and "cannot be downloaded" in out


def test_ssim_rejects_tiny_frames():
    with pytest.raises(ValueError, match="at least 11 px"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_metrics_are_per_frame():
    a, b = torch.rand(5, 3, 16, 16), torch.rand(5, 3, 16, 16)
    assert psnr(a, b).shape == (5,) and ssim(a, b).shape == (5,)
    assert np.isfinite(psnr(a, b).numpy()).all()
