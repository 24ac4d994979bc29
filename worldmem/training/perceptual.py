"""The feature term: a frame judged by what an image network sees in it, not pixel by pixel.

A squared-error loss makes the one-step model's estimate the conditional mean, which is a
blur wherever the memory holds nothing. A distance between the activations of a frozen
ImageNet network (the perceptual loss of super-resolution; LPIPS without its learned
weights) counts what a blur loses: its early layers respond to edges and texture, so a
flat guess is far from a textured truth even where their pixel means agree.

``FeatureLoss.style`` compares instead the statistics of the activations over a region (their
channel means and Gram matrices, as texture synthesis does), wherever things are in it: where
the memory holds nothing the model cannot know where the truth's blotches and edges lie, but
it can draw a texture like it.

The network is the first blocks of EfficientNet-Lite0, whose weights ship inside a registry
package (no download). Frames are upsampled 2x first (its stem halves the resolution). At
each tap the activations are unit-normalised over channels, and the distance is the squared
difference summed over channels, averaged over positions, summed over the taps.

Neither term is used by the shipped weights: fine-tunes with each are measured in
``docs/results/texture_loss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmem.eval.metrics import IMAGENET_MEAN, IMAGENET_STD, efficientnet_lite0

__all__ = ["FeatureLoss"]

TAPS = (0, 2, 4)  # blocks whose outputs are compared: 1/2, 1/4 and 1/8 of the input size


class FeatureLoss(nn.Module):
    """``(pred, target)`` ``(N, 3, H, W)`` in [0, 1] -> distance ``(N,)``; gradients flow to
    ``pred``. Frozen, always in eval mode."""

    def __init__(self, taps: tuple[int, ...] = TAPS, upsample: int = 2):
        super().__init__()
        net = efficientnet_lite0()
        if not taps or min(taps) < 0 or max(taps) >= len(net._blocks):
            raise ValueError(f"FeatureLoss: taps must be block indices < {len(net._blocks)}")
        self.taps = tuple(sorted(set(taps)))
        self.upsample = upsample
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[: self.taps[-1] + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[None, :, None, None])
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[None, :, None, None])
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureLoss:  # batch norm stays frozen
        return super().train(False)

    def features(self, x: Tensor) -> list[Tensor]:
        """The unit-normalised activations at each tap of frames ``(N, 3, H, W)`` in [0, 1]."""
        if self.upsample != 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
        x = self.stem((x - self.mean) / self.std)
        out = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                out.append(x / (x.pow(2).sum(1, keepdim=True) + 1e-10).sqrt())
        return out

    def style(self, pred: Tensor, target: Tensor, region: Tensor) -> Tensor:
        """The texture term (Gatys et al.): how far the statistics of pred's activations over
        ``region`` ``(N, 1, H, W)`` (weights in [0, 1]) are from the target's over the same
        region, whatever is where: at each tap the squared difference of the channel means and
        of the channel Gram matrices (the unit-normalised activations, weighted by the region
        pooled to that tap), summed over taps -> ``(N,)``; 0 for frames without region."""
        return self.terms(pred, target, region, aligned=False)[1]

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.terms(pred, target)[0]

    def terms(
        self, pred: Tensor, target: Tensor, region: Tensor | None = None, aligned: bool = True
    ) -> tuple[Tensor | None, Tensor | None]:
        """Both terms from one pass of the network over pred and target: (the aligned
        distance ``(N,)``, or None when not ``aligned``; the texture distance over ``region``
        ``(N,)``, or None without a region)."""
        _check(pred, target, "FeatureLoss")
        with torch.no_grad():
            want = self.features(target.float())
        got = self.features(pred.float())
        dist = None
        if aligned:
            dist = sum((a - b).pow(2).sum(1).mean((1, 2)) for a, b in zip(got, want, strict=True))
        if region is None:
            return dist, None
        total = pred.new_zeros(pred.shape[0])
        for a, b in zip(got, want, strict=True):
            w = F.adaptive_avg_pool2d(region.to(a.dtype), a.shape[-2:]).flatten(1)  # (N, P)
            n = w.sum(1).clamp(min=1e-6)
            fa, fb = a.flatten(2), b.flatten(2)  # (N, C, P)
            ma, mb = (fa * w[:, None]).sum(2) / n[:, None], (fb * w[:, None]).sum(2) / n[:, None]
            ga = torch.einsum("ncp,ndp->ncd", fa * w[:, None], fa) / n[:, None, None]
            gb = torch.einsum("ncp,ndp->ncd", fb * w[:, None], fb) / n[:, None, None]
            d = (ma - mb).pow(2).sum(1) + (ga - gb).pow(2).sum((1, 2))
            total = total + torch.where(w.sum(1) > 0, d, torch.zeros_like(d))
        return dist, total


def _check(pred: Tensor, target: Tensor, what: str) -> None:
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(
            f"{what}: want pred and target (N, 3, H, W) alike, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
