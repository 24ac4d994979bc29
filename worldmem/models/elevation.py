"""What a view's unseen pixels tend to: the memory frames' mean along elevation.

Far from anything the memory holds, a hole fill needs a guess. One colour for the whole view
(the memory frames' mean) paints a view that has turned away as a flat field. But what a
direction shows depends mostly on how far it points above or below the horizon: ceiling
above, floor below, walls between, the same as the camera turns. So ``elevation_profile``
averages every channel of the memory frames in bins of the sine of each pixel ray's
elevation above the horizon ("up" is the memory cameras' mean up axis, ``-y`` in the OpenCV
convention), and ``elevation_default`` reads that profile at every pixel of a target view,
interpolating between bin centres. A bin no memory pixel falls in takes its nearest filled
bin (a view pitched further up than any memory frame sees the highest band the memory holds).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmem.models.interface import ModelFrames

__all__ = [
    "ELEVATION_BINS",
    "ray_elevation",
    "elevation_profile",
    "elevation_default",
    "frames_default",
]

ELEVATION_BINS = 32  # over sin(elevation) in [-1, 1]: ~3.6 degrees each near the horizon


def ray_elevation(c2w: Tensor, K: Tensor, image_size: int, h: int, up: Tensor) -> Tensor:
    """sin of the elevation above the horizon of the ray through every pixel centre.

    c2w ``(B, N, 4, 4)``, K ``(B, N, 3, 3)`` in ``image_size`` pixels, the grid ``h x h``
    (the model grid: ``image_size / downsample``), up ``(B, 3)`` unit -> ``(B, N, h, h)`` in
    [-1, 1]."""
    if c2w.dim() != 4 or c2w.shape[-2:] != (4, 4) or K.shape != (*c2w.shape[:2], 3, 3):
        raise ValueError(
            f"ray_elevation: want c2w (B, N, 4, 4) and K (B, N, 3, 3); got "
            f"{tuple(c2w.shape)} and {tuple(K.shape)}"
        )
    centres = (torch.arange(h, device=c2w.device, dtype=c2w.dtype) + 0.5) * (image_size / h)
    fx, fy = K[..., 0, 0].clamp(min=1e-6), K[..., 1, 1].clamp(min=1e-6)
    dx = (centres - K[..., 0, 2, None]) / fx[..., None]  # (B, N, h): along x
    dy = (centres - K[..., 1, 2, None]) / fy[..., None]  # (B, N, h): along y
    R = c2w[..., :3, :3]
    # world ray of pixel (y, x): R[:, 0] dx + R[:, 1] dy + R[:, 2]; only its component on up
    # and its length are needed
    ups = (R * up[:, None, :, None]).sum(2)  # (B, N, 3): up in camera axes
    along = ups[..., 0, None, None] * dx[..., None, :] + ups[..., 1, None, None] * dy[..., :, None]
    along = along + ups[..., 2, None, None]
    length = (dx[..., None, :] ** 2 + dy[..., :, None] ** 2 + 1).sqrt()
    return (along / length).clamp(-1, 1)


def _bins(sin_elev: Tensor, bins: int) -> Tensor:
    return ((sin_elev + 1) * (bins / 2)).floor().long().clamp(0, bins - 1)


def elevation_profile(
    image_size: int, *groups: ModelFrames | None, bins: int = ELEVATION_BINS
) -> tuple[Tensor, Tensor] | None:
    """The mean of every channel of the valid frames of ``groups`` (each ``(B, N, C, h, w)``
    ``ModelFrames`` or None, cameras for ``image_size`` px) along elevation -> (means
    ``(B, C, bins)``, up ``(B, 3)``), or None when no group has frames. A sample without a
    valid frame gets zeros (as ``frames_mean``)."""
    groups = [g for g in groups if g is not None and g.num > 0]
    if not groups:
        return None
    B, _, C, h, _ = groups[0].x.shape
    dtype, device = groups[0].x.dtype, groups[0].x.device
    up = sum((-g.c2w[..., :3, 1].to(dtype) * g.valid.to(dtype)[..., None]).sum(1) for g in groups)
    up = F.normalize(up, dim=-1)  # zeros for a sample without a valid frame
    sums = torch.zeros(B, C, bins, dtype=dtype, device=device)
    counts = torch.zeros(B, bins, dtype=dtype, device=device)
    for g in groups:
        b = _bins(ray_elevation(g.c2w.to(dtype), g.K.to(dtype), image_size, h, up), bins)
        w = g.valid.to(dtype)[:, :, None, None].expand(b.shape)  # (B, N, h, w)
        b = b.flatten(1)  # (B, N h w)
        x = (g.x * w[:, :, None]).transpose(1, 2).flatten(2)  # (B, C, N h w)
        sums.scatter_add_(2, b[:, None].expand(-1, C, -1), x)
        counts.scatter_add_(1, b, w.flatten(1))
    means = sums / counts.clamp(min=1e-6)[:, None]
    # an empty bin takes the nearest bin that has pixels
    i = torch.arange(bins, device=device)
    dist = (i[:, None] - i[None]).abs().to(dtype)[None] + (counts <= 0)[:, None, :] * 4.0 * bins
    nearest = dist.argmin(-1)  # (B, bins)
    return means.gather(2, nearest[:, None].expand(-1, C, -1)), up


def elevation_default(
    profile: tuple[Tensor, Tensor], c2w: Tensor, K: Tensor, image_size: int, h: int
) -> Tensor:
    """``elevation_profile``'s (means ``(B, C, bins)``, up ``(B, 3)``) read at every pixel of
    the views c2w ``(B, T, 4, 4)``, K ``(B, T, 3, 3)`` on an ``h x h`` grid -> ``(B, T, C, h,
    h)``, linear between bin centres."""
    means, up = profile
    B, C, bins = means.shape
    T = c2w.shape[1]
    e = ray_elevation(c2w.to(means.dtype), K.to(means.dtype), image_size, h, up)  # (B, T, h, h)
    pos = ((e + 1) * (bins / 2) - 0.5).clamp(0, bins - 1)  # in bin-centre units
    lo = pos.floor().long().clamp(max=bins - 1)
    hi = (lo + 1).clamp(max=bins - 1)
    a = (pos - lo).flatten(1)[:, None]  # (B, 1, T h h)

    def read(idx: Tensor) -> Tensor:
        return means.gather(2, idx.flatten(1)[:, None].expand(-1, C, -1))  # (B, C, T h h)

    out = read(lo) * (1 - a) + read(hi) * a
    return out.unflatten(2, (T, h, h)).transpose(1, 2)


def frames_default(
    frames: list[tuple[Tensor, Tensor, Tensor, Tensor]], c2w: Tensor, K: Tensor, size: int
) -> Tensor | None:
    """What ``frames`` (c2w ``(4, 4)``, K ``(3, 3)``, rgb ``(3, H, W)``, depth ``(H, W)``:
    the spatial memory's observed frames) show along elevation, read at every pixel of the
    views c2w ``(T, 4, 4)``, K ``(T, 3, 3)`` in ``size`` px -> ``(T, 3, size, size)``, or None
    without frames. A frame of another size is resized to ``size`` first (K scaled with it)."""
    if not frames:
        return None
    rgbs, Ks = [], []
    for _, fK, rgb, _ in frames:
        H, W = rgb.shape[-2:]
        if (H, W) != (size, size):
            rgb = F.interpolate(rgb[None].float(), size=(size, size), mode="area")[0]
            scale = torch.tensor([size / W, size / H, 1.0], dtype=fK.dtype, device=fK.device)
            fK = fK * scale[:, None]
        rgbs.append(rgb.float())
        Ks.append(fK.float())
    N = len(frames)
    seen = ModelFrames(
        x=torch.stack(rgbs)[None],
        sigma=torch.zeros(1, N, device=c2w.device),
        c2w=torch.stack([f[0].float() for f in frames])[None],
        K=torch.stack(Ks)[None],
        valid=torch.ones(1, N, dtype=torch.bool, device=c2w.device),
    )
    profile = elevation_profile(size, seen)
    return elevation_default(profile, c2w[None].float(), K[None].float(), size, size)[0]
