"""Filling the holes of a render: the push-pull (masked image pyramid) interpolation; and the
separable Gaussian blur the memory and the training data share (``gaussian_blur``).

The world model's prior for a target frame (``worldmem.models.dit``): the spatial-memory render
is kept exactly where it is valid, and every hole takes a smooth continuation of the valid
pixels around it, at whatever scale the hole needs. Push: halve the image repeatedly, each
level the weighted mean of the valid pixels below it (weights are the fraction valid). Pull:
from the coarsest level back up, a pixel keeps its own mean in proportion to how valid it is
and takes the upsampled coarser level for the rest. A fully valid pixel is returned unchanged.
Without a ``default``, an image with no valid pixel is returned as it was (zeros for an empty
render), with ``filled`` False; with one, it becomes the default.

Gortler et al., "The Lumigraph" (SIGGRAPH 1996), section 3.3, describes the method.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["push_pull_fill", "gaussian_blur"]

_EPS = 1e-8


def gaussian_blur(x: Tensor, sigma_px: float, padding: str = "zeros") -> Tensor:
    """x ``(N, C, H, W)`` blurred with a separable Gaussian of ``sigma_px`` (radius
    ``ceil(3 sigma)``, at least 1). padding: "zeros" (the mass falls off at the border: blur a
    mask beside the image to normalise), "replicate" (the border pixels continue) or
    "reflect" (mirrored about the border pixels; needs H, W > the radius)."""
    r = max(1, math.ceil(3 * sigma_px))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma_px) ** 2)
    k = k / k.sum()
    C = x.shape[1]
    mode = {"zeros": "constant", "replicate": "replicate", "reflect": "reflect"}[padding]
    x = F.pad(x, (r, r, r, r), mode=mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)


def push_pull_fill(
    x: Tensor, valid: Tensor, default: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """x ``(N, C, H, W)``, valid ``(N, 1, H, W)`` (bool or weights in [0, 1]) -> the filled
    image ``(N, C, H, W)`` and ``filled`` ``(N,)`` bool (False: no valid pixel, x returned).

    Valid pixels (weight 1) are returned exactly; the fill is a convex combination of valid
    pixels (and of ``default``, when given), so it stays within their range. No gradient flows
    to ``valid``.

    ``default`` ``(N, C)``: a value the fill tends to far from any valid pixel. The coarsest
    level is then the valid mean weighted by the fraction of valid pixels and ``default`` for
    the rest (and every image counts as filled), so a small valid patch colours its
    surroundings, not the whole image: the fill of a view that has turned away from what it saw
    is mostly ``default`` (a better guess for a new surface than the colour of the last one).
    ``default`` ``(N, C, H, W)``: an image the fill tends to, pixel by pixel (the difference
    from it is filled towards 0 and added back, which for a constant image is the same)."""
    if x.ndim != 4 or valid.ndim != 4 or valid.shape[1] != 1 or valid.shape[0] != x.shape[0]:
        raise ValueError(
            f"push_pull_fill: expected x (N, C, H, W) and valid (N, 1, H, W); got "
            f"{tuple(x.shape)} and {tuple(valid.shape)}"
        )
    if valid.shape[2:] != x.shape[2:]:
        raise ValueError(f"push_pull_fill: valid {tuple(valid.shape)} != x {tuple(x.shape)}")
    w = valid.detach().to(x.dtype).clamp(0, 1)
    if default is not None and default.dim() == 4:
        if default.shape != x.shape:
            raise ValueError(f"push_pull_fill: default {tuple(default.shape)} != {tuple(x.shape)}")
        rest, filled = push_pull_fill(x - default, w, x.new_zeros(x.shape[:2]))
        return torch.where(w >= 1, x, rest + default.to(x.dtype)), filled
    filled = w.flatten(1).amax(1) > 0
    # push: weighted means at halving resolutions (an odd edge pools the pixels it has)
    levels = [(x * w, w)]
    while min(levels[-1][1].shape[2:]) > 1:
        xw, ww = levels[-1]
        levels.append(
            (
                F.avg_pool2d(xw, 2, ceil_mode=True, count_include_pad=False),
                F.avg_pool2d(ww, 2, ceil_mode=True, count_include_pad=False),
            )
        )
    # pull: coarse to fine; a level's own mean counts in proportion to its weight
    xw, ww = levels[-1]
    if default is None:
        out = xw / ww.clamp(min=_EPS)
    else:
        if tuple(default.shape) != tuple(x.shape[:2]):
            raise ValueError(
                f"push_pull_fill: default {tuple(default.shape)} != {tuple(x.shape[:2])}"
            )
        out = xw + (1 - ww) * default.to(x.dtype)[:, :, None, None]
        filled = torch.ones_like(filled)
    for xw, ww in reversed(levels[:-1]):
        up = F.interpolate(out, size=xw.shape[2:], mode="bilinear", align_corners=False)
        a = ww.clamp(max=1.0)
        out = xw / ww.clamp(min=_EPS) * a + up * (1 - a)
    return torch.where(filled[:, None, None, None], out, x), filled
