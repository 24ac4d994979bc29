"""The walk protocol cannot be fooled: every metric against an independent computation, the
warp baseline against a brute-force numpy reprojection, and stand-in models (pure noise; the
warp baseline itself) that score where they must."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from worldmem.config import MemoryConfig
from worldmem.data.synthetic import make_world
from worldmem.eval.baselines import backward_warp, fill_holes, forward_warp
from worldmem.eval.metrics import (
    SHARPNESS_BOUNDS,
    fid,
    hf_energy,
    image_features,
    kid,
    kid_paired_test,
    masked_sharpness_ratio,
    psnr,
    sharpness_ratio,
)
from worldmem.eval.studies import (
    fit_start_depth_scale,
    layout_prior,
    memory_fidelity,
    start_depth_rows,
    start_depths,
)
from worldmem.eval.walk import ROWS, WALK_KINDS, run_walk, walk_case, walk_path
from worldmem.eval.walk_report import depth_markdown, summarize_walk, verdict, walk_markdown
from worldmem.geometry import intrinsics_from_fov, look_at
from worldmem.pipeline import Chunk

S = 32
K = intrinsics_from_fov(75.0, S, S)
SEED = 100_000


# -- metrics ----------------------------------------------------------------------------------


def test_psnr_matches_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 3, 8, 8, generator=g), torch.rand(3, 3, 8, 8, generator=g)
    for i in range(3):
        mse = sum(
            (float(a[i, c, y, x]) - float(b[i, c, y, x])) ** 2
            for c in range(3)
            for y in range(8)
            for x in range(8)
        ) / (3 * 64)
        assert psnr(a, b)[i].item() == pytest.approx(10 * math.log10(1 / mse), abs=1e-4)


def _sinusoid(k: float, n: int = 64) -> torch.Tensor:
    x = torch.arange(n, dtype=torch.float64)
    return (0.5 + 0.4 * torch.sin(k * x)).expand(1, 3, n, n).clone()


def test_high_frequency_energy_of_a_sinusoid_is_analytic():
    for k in (0.3, 0.9, 1.7):
        img = _sinusoid(k)
        # discrete Laplacian of A sin(kx): -(2 - 2 cos k) A sin(kx); mean of sin^2 ~ 1/2
        want = (0.4 * (2 - 2 * math.cos(k))) ** 2 / 2
        assert hf_energy(img).item() == pytest.approx(want, rel=0.05)


def test_sharpness_ratio_is_one_for_the_truth_below_for_blur_above_for_noise():
    k = 1.2
    truth = _sinusoid(k).float()
    blur = torch.nn.functional.avg_pool2d(truth, 3, stride=1, padding=1, count_include_pad=False)
    noisy = truth + 0.1 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(0))
    assert sharpness_ratio(truth, truth).item() == pytest.approx(1.0)
    # a 3-tap box blur scales sin(kx) by (1 + 2 cos k) / 3, its energy by the square
    want = ((1 + 2 * math.cos(k)) / 3) ** 2
    assert sharpness_ratio(blur, truth).item() == pytest.approx(want, rel=0.05)
    assert sharpness_ratio(blur, truth).item() < SHARPNESS_BOUNDS[0]
    assert sharpness_ratio(noisy, truth).item() > SHARPNESS_BOUNDS[1]


def test_masked_sharpness_is_the_ratio_inside_each_region_and_blind_to_its_edge():
    """Left half: the truth's sinusoid at amplitude 2 (energy ratio 4); right half: flat grey
    (ratio 0). Over each half the ratio is exact, because the Laplacian is counted only where
    its whole 3 x 3 stencil lies inside the region; over the whole frame it equals
    ``sharpness_ratio``; an empty region or a flat truth gives NaN."""
    k = 1.1
    truth = _sinusoid(k).float()  # (1, 3, H, W), the sinusoid along x
    H, W = truth.shape[-2:]
    left = torch.zeros(1, 1, H, W, dtype=torch.bool)
    left[..., : W // 2] = True
    pred = torch.where(left, 0.5 + 2 * (truth - 0.5), torch.full_like(truth, 0.5))
    assert masked_sharpness_ratio(pred, truth, left).item() == pytest.approx(4.0, rel=1e-4)
    assert masked_sharpness_ratio(pred, truth, ~left).item() == 0.0
    everywhere = torch.ones_like(left)
    assert masked_sharpness_ratio(pred, truth, everywhere).item() == pytest.approx(
        sharpness_ratio(pred, truth).item(), rel=1e-5
    )
    strip = torch.zeros_like(left)
    strip[..., :2] = True  # two columns: no 3 x 3 stencil fits
    assert math.isnan(masked_sharpness_ratio(pred, truth, strip).item())
    assert math.isnan(masked_sharpness_ratio(pred, torch.full_like(truth, 0.3), left).item())
    with pytest.raises(ValueError, match="mask"):
        masked_sharpness_ratio(pred, truth, left[0])


class _TinyFeatures(nn.Module):
    """A fixed random conv net: a fast stand-in for EfficientNet in tests."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 16, 3, 2), nn.ReLU(), nn.Conv2d(16, 32, 3, 2))

    def forward(self, x):
        return self.net(x.float()).mean(dim=(2, 3))


def _truth_frames(n: int, seed: int = SEED) -> torch.Tensor:
    world = make_world(seed)
    c2w = walk_path(world, "turn", n, seed)
    return world.render(c2w, K.expand(n, 3, 3), S, S)[0]


def test_kid_is_zero_for_identical_sets_and_large_for_noise():
    f = _TinyFeatures()
    truth = _truth_frames(24)
    ft = image_features(f, truth)
    noise = image_features(f, torch.rand(truth.shape, generator=torch.Generator().manual_seed(1)))
    same, _ = kid(ft, ft)
    far, _ = kid(noise, ft)
    # the unbiased estimate of a set against itself is ~0 (slightly negative: the cross term
    # keeps the diagonal k(x, x) that the within-set terms drop)
    assert abs(same) < 0.01 * far
    assert far > 20 * max(abs(kid(ft[::2], ft[1::2])[0]), 1e-6)
    assert fid(ft, ft) == pytest.approx(0.0, abs=1e-6)
    assert fid(noise, ft) > 10 * fid(ft[::2], ft[1::2])


def test_kid_and_fid_match_torchmetrics_with_the_same_features():
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    f = _TinyFeatures()
    g = torch.Generator().manual_seed(2)
    real, fake = torch.rand(20, 3, S, S, generator=g), torch.rand(20, 3, S, S, generator=g) ** 2
    fr, ff = image_features(f, real), image_features(f, fake)
    # one subset of all samples: torchmetrics' random subset is then a permutation of the set
    tm = KernelInceptionDistance(feature=f, subsets=1, subset_size=20).double()
    tm.update(real.double(), real=True)
    tm.update(fake.double(), real=False)
    assert kid(ff, fr, subset_size=20, subsets=1)[0] == pytest.approx(
        float(tm.compute()[0]), rel=1e-4
    )
    tf = FrechetInceptionDistance(feature=f).double()
    tf.update(real.double(), real=True)
    tf.update(fake.double(), real=False)
    assert fid(ff, fr) == pytest.approx(float(tf.compute()), rel=1e-4)


def test_paired_kid_difference_matches_torchmetrics_and_tells_a_nearer_set_from_chance():
    from torchmetrics.image.kid import KernelInceptionDistance

    f = _TinyFeatures()
    truth = _truth_frames(24)
    g = torch.Generator().manual_seed(4)

    def noisy(amount: float) -> torch.Tensor:  # the same views as the truth, degraded
        return (truth + amount * torch.randn(truth.shape, generator=g)).clamp(0, 1)

    near, far, near2 = noisy(0.05), noisy(0.3), noisy(0.05)
    fr, fn, ff, fn2 = (image_features(f, x) for x in (truth, near, far, near2))

    def torchmetrics_kid(x: torch.Tensor) -> float:  # a second implementation (float32)
        tm = KernelInceptionDistance(feature=f, subsets=1, subset_size=24).double()
        tm.update(truth.double(), real=True)
        tm.update(x.double(), real=False)
        return float(tm.compute()[0])

    delta, p = kid_paired_test(fn, ff, fr, permutations=200)
    k_near, k_far = torchmetrics_kid(near), torchmetrics_kid(far)
    assert delta == pytest.approx(k_near - k_far, abs=1e-3 * max(abs(k_near), abs(k_far)))
    assert delta < 0 and p <= 0.01  # the less degraded set is nearer, beyond chance
    back, p_back = kid_paired_test(ff, fn, fr, permutations=200)
    assert back == pytest.approx(-delta) and p_back == p  # the same swaps: a symmetric test
    # two sets degraded alike: the difference is within what swapping the pairs gives
    _, p_same = kid_paired_test(fn, fn2, fr, permutations=200)
    assert p_same > 0.05
    with pytest.raises(ValueError, match="kid_paired_test"):
        kid_paired_test(fn[:-1], ff, fr)  # not paired


def test_walk_report_tests_each_rows_kid_against_the_warps(tmp_path):
    from worldmem.eval.walk_cli import _dist, _kid_against_warp

    f = _TinyFeatures()
    truth = _truth_frames(12)
    g = torch.Generator().manual_seed(5)
    rows = {
        "model": (truth + 0.02 * torch.randn(truth.shape, generator=g)).clamp(0, 1),
        "warp": torch.rand(truth.shape, generator=g),
    }
    dist = _dist(f, rows, truth, paired_with="warp", save=tmp_path / "features.pt")
    ft, fm, fw = (image_features(f, x) for x in (truth, rows["model"], rows["warp"]))
    saved = torch.load(tmp_path / "features.pt", weights_only=True)  # what compare reads
    assert torch.allclose(saved["truth"], ft.float()) and set(saved["rows"]) == {"model", "warp"}
    assert torch.allclose(saved["rows"]["model"], fm.float())
    delta, p = kid_paired_test(fm, fw, ft)
    assert dist["model"]["kid_delta"] == pytest.approx(delta) and dist["model"]["kid_p"] == p
    assert "kid_delta" not in dist["warp"]  # the warp is not tested against itself
    assert delta < 0 and p < 0.01  # frames near the truth against noise
    text = _kid_against_warp(dist)
    assert f"`model` {delta:+.4f} (p = {p:.3f})" in text and "`warp`" not in text
    assert _kid_against_warp(None) == ""


def test_efficientnet_features_separate_true_frames_from_noise():
    from worldmem.eval.metrics import EfficientNetFeatures

    f = EfficientNetFeatures()
    truth = _truth_frames(8)
    ft = image_features(f, truth)
    assert ft.shape == (8, 1280)
    fn = image_features(f, torch.rand(4, 3, S, S, generator=torch.Generator().manual_seed(3)))
    assert kid(fn, ft)[0] > 5 * abs(kid(ft[::2], ft[1::2])[0])


# -- baselines --------------------------------------------------------------------------------


def _brute_force_warp(rgb, depth, c2w, K, tc2w, tK, s):
    """Per-pixel numpy loops: every sub-pixel point of every source frame, nearest wins."""
    M, _, H, W = rgb.shape
    out = np.zeros((3, H, W))
    zbuf = np.full((H, W), np.inf)
    w2c = np.linalg.inv(tc2w.double().numpy())
    Kt = tK.double().numpy()
    for m in range(M):
        Km = K[m].double().numpy()
        cm = c2w[m].double().numpy()
        for py in range(H * s):
            for px in range(W * s):
                u, v = (px + 0.5) / s, (py + 0.5) / s
                z = float(depth[m, 0, int(v), int(u)])
                cam = np.array([(u - Km[0, 2]) / Km[0, 0] * z, (v - Km[1, 2]) / Km[1, 1] * z, z, 1])
                q = w2c @ (cm @ cam)
                if q[2] <= 0.05:
                    continue
                x = int(np.floor(Kt[0, 0] * q[0] / q[2] + Kt[0, 2]))
                y = int(np.floor(Kt[1, 1] * q[1] / q[2] + Kt[1, 2]))
                if 0 <= x < W and 0 <= y < H and q[2] < zbuf[y, x]:
                    zbuf[y, x] = q[2]
                    out[:, y, x] = rgb[m, :, int(v), int(u)].double().numpy()
    return out, zbuf


def test_forward_warp_matches_a_brute_force_numpy_reprojection():
    # a tiny analytic scene: a fronto-parallel wall at 3 m with a box face at 1.5 m in front
    H = W = 10
    Kt = intrinsics_from_fov(70.0, H, W)
    depth = torch.full((1, 1, H, W), 3.0)
    depth[..., 3:7, 2:6] = 1.5
    rgb = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(4))
    src = torch.eye(4)[None]
    tgt = look_at(torch.tensor([0.4, -0.1, 0.3]), torch.tensor([0.0, 0.0, 3.0]))[None]
    for s in (1, 2):
        got, gdepth, mask = forward_warp(rgb, depth, src, Kt[None], tgt, Kt[None], supersample=s)
        want, zbuf = _brute_force_warp(rgb, depth, src, Kt[None], tgt[0], Kt, s)
        hit = np.isfinite(zbuf)
        assert np.array_equal(mask[0, 0].numpy(), hit)
        assert np.allclose(got[0].double().numpy(), want, atol=1e-6)
        assert np.allclose(gdepth[0, 0].numpy()[hit], zbuf[hit], rtol=1e-5)
    assert 0 < mask.float().mean() < 1  # the move opens holes: the test sees both cases
    filled = fill_holes(got, mask, torch.tensor([0.1, 0.2, 0.3]))
    assert torch.allclose(filled[0, :, ~mask[0, 0]].T, torch.tensor([0.1, 0.2, 0.3]))


def test_backward_warp_of_a_frame_onto_itself_is_the_identity():
    world = make_world(SEED)
    c2w = walk_path(world, "turn", 4, SEED)
    rgb, depth = world.render(c2w[:1], K[None], S, S)
    got, valid = backward_warp(rgb[0], depth[0], c2w[0], K, depth[0], c2w[0], K)
    assert bool(valid.all()) and torch.allclose(got, rgb[0])


def test_a_bilinear_backward_warp_reads_a_linear_ramp_exactly_and_never_across_an_outline():
    """A wall 2 m ahead painted with a ramp linear in the source's pixel coordinates, seen
    again from 0.3 px to the side: read bilinearly, the warp gives the ramp exactly (bilinear
    interpolation is exact on a linear function); at the nearest pixel it is 0.3 px of ramp
    off. With a nearer surface over the source's left half, a target pixel read between the
    two surfaces is invalid, though its nearest pixel is on the wall."""
    H = W = 16
    Kd = intrinsics_from_fov(75.0, H, W).double()
    z = 2.0
    src_c2w = torch.eye(4, dtype=torch.float64)
    tgt_c2w = src_c2w.clone()
    tgt_c2w[0, 3] = 0.3 * z / float(Kd[0, 0])  # the wall moves 0.3 px in the image
    u = torch.arange(W, dtype=torch.float64) + 0.5
    v = torch.arange(H, dtype=torch.float64) + 0.5
    ramp = torch.stack(
        [0.02 * u.expand(H, W), 0.03 * v[:, None].expand(H, W), torch.full((H, W), 0.5)]
    )  # (3, H, W): colour at each source pixel centre, linear in (u, v)
    depth = torch.full((1, H, W), z, dtype=torch.float64)
    want = ramp.clone()
    want[0] += 0.02 * 0.3  # the target pixel sees the wall 0.3 px further along
    for bilinear, off in ((True, 0.0), (False, 0.02 * 0.3)):
        got, valid = backward_warp(ramp, depth, src_c2w, Kd, depth, tgt_c2w, Kd, bilinear=bilinear)
        assert bool(valid[:, : W - 1].all())
        assert bool(valid[:, W - 1].any()) != bilinear  # bilinear reads beyond the edge there
        err = (got - want)[:, valid].abs()
        assert float(err[0].max()) == pytest.approx(off, abs=1e-9)
        assert float(err[1:].max()) < 1e-9

    # the source's left half (columns < 8) is a nearer surface; half a pixel to the side
    near = depth.clone()
    near[..., :8] = 1.0
    tgt_c2w[0, 3] = 0.5 * z / float(Kd[0, 0])
    _, nearest = backward_warp(ramp, near, src_c2w, Kd, depth, tgt_c2w, Kd)
    _, bilinear = backward_warp(ramp, near, src_c2w, Kd, depth, tgt_c2w, Kd, bilinear=True)
    assert bool(nearest[:, 7].all()) and not bool(bilinear[:, 7].any())  # reads columns 7, 8
    assert bool(bilinear[:, 8 : W - 1].all()) and not bool(bilinear[:, :8].any())


# -- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WALK_KINDS)
def test_walk_paths_stay_in_free_space_and_come_back(kind):
    world = make_world(SEED)
    c2w = walk_path(world, kind, 40, SEED)
    assert c2w.shape == (40, 4, 4)
    assert bool(world.is_free(c2w[:, :3, 3], 0.3).all())
    assert torch.allclose(c2w[-1, :3, 3], c2w[0, :3, 3], atol=0.2)


# -- stand-in models on the walk protocol -----------------------------------------------------


class _StandIn:
    """The pipeline's start/step interface; ``step`` returns ``frames(cameras, K)``."""

    def __init__(self, frames):
        self.size, self.K = S, K
        self.model_cfg = type("M", (), {"chunk_frames": 2})()
        self.memory_cfg = MemoryConfig()
        self.frames = frames

    def start(self, prompt="", image=None, depth=None, c2w=None, seed=0, memory="all"):
        self.image, self.depth, self.c2w0 = image, depth, c2w
        self.g = torch.Generator().manual_seed(seed)

    def step(self, cameras, K):
        n = len(cameras)
        rgb = self.frames(self, cameras, K)
        z = torch.zeros(n, 1, S, S)
        return Chunk(rgb, z + 1, cameras, K, torch.zeros(n, 3, S, S), z, z, torch.arange(n))


def _noise(self, cameras, K):
    return torch.rand(len(cameras), 3, S, S, generator=self.g)


def _warp(self, cameras, K):
    if self.depth is None:  # the stand-in needs the start depth; without it: the start frame
        return self.image[None].expand(len(cameras), 3, S, S).clone()
    rgb, _, mask = forward_warp(
        self.image[None], self.depth[None], self.c2w0[None], K[:1], cameras, K
    )
    return fill_holes(rgb, mask, self.image.mean(dim=(1, 2)))


@pytest.fixture(scope="module")
def turn_case():
    return walk_case(make_world(SEED), "turn", 40, SEED, S, K)


def test_pure_noise_scores_below_every_baseline_and_fails_the_sharpness_bound(turn_case):
    res = run_walk(_StandIn(_noise), turn_case)
    rows = {r["row"]: r for r in summarize_walk(res.records)}
    assert set(rows) == set(ROWS)
    for b in ("warp", "warp, filled", "memory", "previous"):
        assert rows["model"]["psnr"] < rows[b]["psnr"]
    assert rows["model"]["sharpness"] > SHARPNESS_BOUNDS[1]
    mark = verdict(rows["model"], rows["warp"])
    assert "✗ below warp" in mark and "✗ noise" in mark
    assert "✗ below warp" in walk_markdown(list(rows.values()))
    assert turn_case.start_revisits().numel() > 0 and len(turn_case.recall_pairs()) > 0


def test_a_model_that_returns_the_warp_baseline_scores_exactly_the_warp_baseline(turn_case):
    res = run_walk(_StandIn(_warp), turn_case, rows=("model", "warp"))
    by = {}
    for r in res.records:
        by.setdefault(r["row"], []).append(r)
    for a, b in zip(by["model"], by["warp"]):
        for m in ("psnr", "ssim", "sharpness", "recall_psnr"):
            assert a[m] == b[m] or (math.isnan(a[m]) and math.isnan(b[m]))
    rows = {r["row"]: r for r in summarize_walk(res.records)}
    assert "✗ below warp" in verdict(rows["model"], rows["warp"])  # equal is not better


def test_generated_depth_is_scored_against_the_true_depth(turn_case):
    """A model whose depth is twice the true depth: AbsRel 1 and depth scale 2 on every frame
    of its row, NaN on the baselines', and so in the summary and the depth table."""
    case = turn_case

    class _TwiceAsFar(_StandIn):
        def step(self, cameras, K):
            n = len(cameras)  # the walk's own cameras, frames 1..n
            z = torch.zeros(n, 1, S, S)
            rgb, depth = case.rgb[1 : 1 + n], 2 * case.depth[1 : 1 + n]
            return Chunk(rgb, depth, cameras, K, rgb.clone(), z, z, torch.arange(n))

    res = run_walk(_TwiceAsFar(None), case, rows=("model", "warp"))
    model = [r for r in res.records if r["row"] == "model"]
    assert len(model) == case.num_frames - 1
    assert all(r["depth_abs_rel"] == pytest.approx(1.0) for r in model)
    assert all(r["depth_scale"] == pytest.approx(2.0) for r in model)
    warp = [r for r in res.records if r["row"] == "warp"]
    assert all(math.isnan(r["depth_abs_rel"]) and math.isnan(r["depth_scale"]) for r in warp)
    rows = {r["row"]: r for r in summarize_walk(res.records)}
    assert rows["model"]["depth_scale"] == pytest.approx(2.0)
    assert math.isnan(rows["warp"]["depth_abs_rel"])
    table = depth_markdown(res.records, ["turn"])
    assert "| model | 1.00 (2.00 -> 2.00) |" in table and "warp" not in table


def test_seen_pixel_psnr_scores_only_what_the_start_frame_saw(turn_case):
    """A model exact where the start saw and 0.1 off there in one channel, grey elsewhere:
    PSNR over seen pixels is 10 log10(1 / (0.01 / 3)) whatever the rest of the frame holds."""
    case = turn_case
    seen = torch.stack(
        [
            backward_warp(
                case.rgb[0], case.depth[0], case.c2w[0], case.K[0],
                case.depth[t], case.c2w[t], case.K[t],
            )[1]
            for t in range(case.num_frames)
        ]
    )  # fmt: skip
    shifted = case.rgb.clone()
    shifted[:, 0] = torch.where(shifted[:, 0] > 0.5, shifted[:, 0] - 0.1, shifted[:, 0] + 0.1)
    frames = torch.where(seen[:, None], shifted, torch.full_like(shifted, 0.5))

    def _seen_only(self, cameras, K):
        return frames[1 : 1 + len(cameras)]

    res = run_walk(_StandIn(_seen_only), case, rows=("model",))
    got = [r["psnr_seen"] for r in res.records if r["start_revisit"]]
    assert got and all(g == pytest.approx(10 * math.log10(300), abs=1e-3) for g in got)
    assert all(math.isnan(r["psnr_seen"]) for r in res.records if not r["start_revisit"])
    row = summarize_walk(res.records)[0]
    assert row["psnr_seen"] == pytest.approx(10 * math.log10(300), abs=1e-3)
    assert row["psnr_rev"] < row["psnr_seen"] - 3  # the grey rest costs the whole frame


def test_sharpness_is_split_where_the_memory_held_and_where_it_had_holes(turn_case):
    """A model that gives the true frame where its memory render held something and flat grey
    in the render's holes (its left half): sharpness 1 where memory held, 0 where the model had
    to invent, for every frame; the warp row is scored over the same split."""
    case = turn_case
    held = torch.zeros(case.num_frames, 1, S, S)
    held[..., S // 2 :] = 1.0
    frames = torch.where(held > 0, case.rgb, torch.full_like(case.rgb, 0.5))

    class _HalfHeld(_StandIn):
        def step(self, cameras, K):
            n = len(cameras)
            z = torch.zeros(n, 1, S, S)
            rgb, mask = frames[1 : 1 + n], held[1 : 1 + n]
            return Chunk(rgb, z + 1, cameras, K, rgb.clone(), z, mask, torch.arange(n))

    res = run_walk(_HalfHeld(None), case, rows=("model", "warp"))
    model = [r for r in res.records if r["row"] == "model"]
    assert len(model) == case.num_frames - 1
    for r in model:
        assert r["sharpness_held"] == pytest.approx(1.0) and r["sharpness_new"] == 0.0
    warp = [r for r in res.records if r["row"] == "warp"]
    assert all(not math.isnan(r["sharpness_held"]) for r in warp)
    rows = {r["row"]: r for r in summarize_walk(res.records)}
    assert rows["model"]["sharp_held"] == pytest.approx(1.0)
    table = walk_markdown(list(rows.values()))
    assert "where memory held / had holes" in table and "| 1.00 / " in table
    # without the model row there is no split
    alone = run_walk(None, case, rows=("warp",))
    assert all(math.isnan(r["sharpness_held"]) for r in alone.records)


def test_memory_fidelity_compares_the_memory_with_truth_and_brute_force(turn_case):
    rows = memory_fidelity(MemoryConfig(), turn_case)
    got = {(r["source"], r["views"]): r for r in rows}
    assert set(got) == {(s, v) for s in ("memory", "brute force") for v in ("seen", "novel")}
    # the brute-force z-buffer of true frames reproduces the frames it was made from
    assert got[("brute force", "seen")]["psnr_valid"] > 25
    assert got[("brute force", "seen")]["coverage"] == pytest.approx(1.0)


class _DepthStandIn:
    """``start`` without depth returns a chunk whose depth is ``scale`` times the true depth of
    world ``seed`` at ``c2w`` (asserting the image it was given is that world's true frame);
    ``scale`` a number, or a dict by seed. ``start_depth_scale``: what it says it applies."""

    def __init__(self, scale, start_depth_scale: float = 1.0):
        self.size, self.K, self.start_depth_scale = S, K, start_depth_scale
        self.scale = scale if isinstance(scale, dict) else None
        self.fixed = None if isinstance(scale, dict) else scale

    def start(self, prompt="", image=None, depth=None, c2w=None, seed=0, **_):
        from worldmem.data.synthetic import make_world

        rgb, true_depth = make_world(seed).render(c2w[None], K[None], S, S)
        assert depth is None and torch.equal(image, rgb[0])  # the true frame, no depth
        z = torch.zeros(1, 1, S, S)
        scale = self.fixed if self.scale is None else self.scale[seed]
        return Chunk(rgb, true_depth * scale, c2w[None], K[None], rgb, z, z, torch.arange(1))


def test_the_fitted_start_depth_scale_is_the_median_of_true_over_given_depth():
    seeds = [SEED, SEED + 1, SEED + 2]
    # given 1/2, 1/4 and the true depth: true / given is 2, 4 and 1 -> the median, 2
    scale, ratios = fit_start_depth_scale(_DepthStandIn(dict(zip(seeds, [0.5, 0.25, 1.0]))), seeds)
    torch.testing.assert_close(ratios, torch.tensor([2.0, 4.0, 1.0]))
    assert scale == pytest.approx(2.0)
    # a pipeline that already scales its depth by 3 (and gives half the truth) needs 6
    scale, _ = fit_start_depth_scale(_DepthStandIn(0.5, start_depth_scale=3.0), seeds)
    assert scale == pytest.approx(6.0)
    # a model that gives one view no depth at all (0 m everywhere) has nothing to fit
    with pytest.raises(ValueError, match=r"1 of 3 start views were given no depth .*views \[1\]"):
        fit_start_depth_scale(_DepthStandIn(dict(zip(seeds, [0.5, 0.0, 1.0]))), seeds)


def test_start_depth_scores_a_scaled_truth_analytically_and_the_layout_prior_leaves_one_out():
    seeds = [SEED, SEED + 1, SEED + 2]
    pred, truth = start_depths(_DepthStandIn(2.0), seeds)
    assert pred.shape == truth.shape == (3, 1, S, S) and bool((truth > 0).any())
    rows = {r["row"].split(" (")[0]: r for r in start_depth_rows(pred, truth)}
    # twice the depth: |2d - d| / d = 1 everywhere, no pixel within 1.25, scale 2
    assert rows["model"]["abs_rel"] == pytest.approx(1.0, abs=1e-6)
    assert rows["model"]["delta1"] == 0.0 and rows["model"]["median_scale"] == pytest.approx(2.0)
    exact = {r["row"]: r for r in start_depth_rows(*start_depths(_DepthStandIn(1.0), seeds))}
    assert exact["model (image without depth)"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert exact["model (image without depth)"]["delta1"] == 1.0
    # leave one out: with the views 1, 2 and 4 m everywhere, each pixel is the lower median of
    # the other two (torch's median), and a pixel no other view has takes their median
    flat = torch.tensor([1.0, 2.0, 4.0])[:, None, None, None].expand(3, 1, 4, 4).clone()
    flat[1, 0, 0, 0] = 0.0
    flat[2, 0, 0, 0] = 0.0
    prior = layout_prior(flat)
    torch.testing.assert_close(prior[:, 0, 1, 1], torch.tensor([2.0, 1.0, 1.0]))
    assert float(prior[0, 0, 0, 0]) == 2.0  # neither other view has it: their median, 2
    with pytest.raises(ValueError, match="at least 2"):
        layout_prior(flat[:1])


def test_walk_command_prints_an_estimate_and_writes_tables_and_figures(
    tiny_pipeline_dir, tmp_path, capsys
):
    from worldmem.eval.__main__ import main

    out = tmp_path / "walk"
    argv = ["walk", "--checkpoint", str(tiny_pipeline_dir), "--device", "cpu", "--quick",
            "--no-kid", "--kinds", "turn", "--frames", "16", "--drift-rounds", "2",
            "--drift-frames", "6", "--prompt-worlds", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "estimated time:" in text and "| warp |" in text and "## Drift" in text
    for name in ("walk.md", "walk_summary.csv", "walk_frames.csv", "memory_fidelity.csv",
                 "drift_rounds.csv", "walk_psnr.png", "drift.png", "contact_turn.png",
                 "prompts.png", "run.json", "start_depth.csv"):  # fmt: skip
        assert (out / name).is_file(), name
    assert "## Start image without depth" in text and "| layout prior" in text
    # without KID the contact sheet still shows frames spread along the walk, one column each
    from PIL import Image

    from worldmem.eval.walk_report import CONTACT_COLUMNS, image_grid

    one = tmp_path / "one.png"
    image_grid([("truth", torch.zeros(1, 3, 8, 8))], one, ["frame 1"])
    columns = Image.open(out / "contact_turn.png").width / Image.open(one).width
    assert columns == pytest.approx(CONTACT_COLUMNS, rel=0.15)


def test_elevation_fill_keeps_the_warp_and_beats_a_flat_fill_when_the_view_pitches():
    case = walk_case(make_world(SEED), "look_up_down", 40, SEED, S, K)
    res = run_walk(None, case, rows=("warp", "warp, filled", "warp, elevation fill"))
    rows = {r["row"]: r for r in summarize_walk(res.records)}
    # looking up and down shows ceiling and floor the start frame saw at other rows
    assert rows["warp, elevation fill"]["psnr"] > rows["warp, filled"]["psnr"] + 1.0
    w_rgb, _, w_mask = forward_warp(
        case.rgb[:1], case.depth[:1], case.c2w[:1], case.K[:1], case.c2w, case.K
    )
    from worldmem.eval.walk import _elevation_fill

    filled = _elevation_fill(case, w_rgb, w_mask)
    m = w_mask.expand_as(w_rgb)
    assert torch.equal(filled[m], w_rgb[m]) and (~w_mask).any()


def test_the_true_depth_reference_is_the_start_frame_rotated(turn_case):
    """Turning on the spot moves every pixel by the homography K R K^-1 whatever the depth, so
    the reference row (the start frame read bilinearly through each frame's true depth) is the
    start frame sampled at the homography's positions, wherever the start saw the surface."""
    from worldmem.eval.walk import _start_resampled, start_seen

    case = turn_case
    assert torch.allclose(case.c2w[:, :3, 3], case.c2w[:1, :3, 3].expand(case.num_frames, 3))
    fill = torch.tensor([0.1, 0.2, 0.3])
    got = _start_resampled(case, fill)
    seen = start_seen(case)
    c = torch.arange(S, dtype=torch.float64) + 0.5
    y, x = torch.meshgrid(c, c, indexing="ij")
    pix = torch.stack([x, y, torch.ones_like(x)], -1).reshape(-1, 3)  # (S*S, 3)
    Kd = case.K[0].double()
    R0 = case.c2w[0, :3, :3].double()
    frames = [t for t in range(1, case.num_frames) if int(seen[t].sum()) > S]
    assert len(frames) > 5
    for t in frames:
        Rt = case.c2w[t, :3, :3].double()
        h = (Kd @ R0.T @ Rt @ torch.linalg.inv(Kd) @ pix.T).T
        uv = h[:, :2] / h[:, 2:]
        grid = (uv / S * 2 - 1).float().reshape(1, S, S, 2)
        want = F.grid_sample(
            case.rgb[:1], grid, mode="bilinear", padding_mode="border", align_corners=False
        )[0]
        torch.testing.assert_close(got[t][:, seen[t]], want[:, seen[t]], atol=1e-4, rtol=0)
        assert torch.equal(got[t][:, ~seen[t]], fill[:, None].expand(3, int((~seen[t]).sum())))


def test_layout_psnr_sees_block_colours_not_the_detail_within_them():
    """The prompt table's layout PSNR: frames 0.1 brighter than the truth with a checker
    pattern added (zero mean in every 8x8 block) score 20 dB, 10 log10(1 / 0.1^2), whatever
    the pattern; the truth against itself has sharpness 1."""
    from worldmem.eval.walk_cli import _layout_and_sharpness

    g = torch.Generator().manual_seed(0)
    truth = 0.2 + 0.5 * torch.rand(3, 3, 32, 32, generator=g)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    checker = ((yy + xx) % 2 * 2 - 1).float() * 0.05  # +-0.05, zero mean in each block
    got = _layout_and_sharpness(truth + 0.1 + checker, truth)
    assert got["layout_psnr"] == pytest.approx(20.0, abs=1e-3)
    assert got["sharpness"] > 1.0
    assert _layout_and_sharpness(truth, truth)["sharpness"] == pytest.approx(1.0)


def test_a_model_that_returns_the_truth_scores_the_truths_own_self_recall(turn_case):
    """The true frames, read bilinearly from an earlier view, are not identical: their
    self-recall is finite. A model returning the truth scores it exactly,
    every row's records carry it, and the table states it."""
    case = turn_case

    def _truth(self, cameras, K):
        return case.rgb[1 : 1 + len(cameras)]

    res = run_walk(_StandIn(_truth), case, rows=("model", "warp"))
    recalled = [r for r in res.records if not math.isnan(r["recall_psnr"])]
    assert recalled
    for r in recalled:
        assert not math.isnan(r["recall_truth"])
        if r["row"] == "model":
            assert r["recall_psnr"] == r["recall_truth"]
    truth = [r["recall_truth"] for r in recalled if r["row"] == "model"]
    assert 15 < sum(truth) / len(truth) < 50
    rows = summarize_walk(res.records)
    assert rows[0]["recall_truth"] == pytest.approx(rows[0]["recall_psnr"])
    assert "The true frames' own self-recall" in walk_markdown(rows)


def test_box_fill_keeps_the_warp_and_beats_the_elevation_fill_turning_round(turn_case):
    """Turned round, a view shows the room's other walls, its floor and its ceiling where the
    start frame saw walls at every height: the box the start frame implies fills the warp's
    holes closer to the truth than its colours along elevation, and keeps the warp itself."""
    res = run_walk(None, turn_case, rows=("warp, elevation fill", "warp, box fill"))
    rows = {r["row"]: r for r in summarize_walk(res.records)}
    assert rows["warp, box fill"]["psnr"] > rows["warp, elevation fill"]["psnr"] + 1.0
    w_rgb, _, w_mask = forward_warp(
        turn_case.rgb[:1],
        turn_case.depth[:1],
        turn_case.c2w[:1],
        turn_case.K[:1],
        turn_case.c2w,
        turn_case.K,
    )
    from worldmem.eval.walk import _box_fill

    filled = _box_fill(turn_case, w_rgb, w_mask)
    m = w_mask.expand_as(w_rgb)
    assert torch.equal(filled[m], w_rgb[m]) and float((~w_mask).float().mean()) > 0.3
