"""The previous simple splat, kept as the baseline of the render benchmark (not used by the
library): the torch z-buffer splat as it was before samples had footprints, provenance and a
surface pass. Each point covers the pixels whose centres lie within ``radius_px * ref_depth_m
/ z`` (clamped to [0.5, max_radius_px]) of its projection; holes are filled from points
within ``min_radius_px``; every pixel keeps its nearest point (equal depths: the lower
index). ``benchmarks/memory.py`` times ``previous_splat`` against ``splat_points`` in the
same process and checks that the library, given the same fixed radius, draws the same image.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmem.geometry.camera import se3_inverse

_OWN_PIXEL_RADIUS_PX = 0.5
_EMPTY = torch.iinfo(torch.int64).max


@lru_cache(maxsize=16)
def _footprint_levels(max_radius_px: int) -> tuple[tuple[float, tuple[int, ...], tuple[int, ...]]]:
    """Pixel offsets around a point's own pixel, grouped by the least footprint radius that can
    reach them: ``((threshold_px, dxs, dys), ...)`` in increasing threshold.

    A point inside pixel (0, 0) is at least ``max(|d| - 0.5, 0)`` per axis from the centre of
    pixel (dx, dy), so a point of radius r can only cover offsets whose threshold is below r.
    """
    by_threshold: dict[float, list[tuple[int, int]]] = {}
    for dy in range(-max_radius_px, max_radius_px + 1):
        for dx in range(-max_radius_px, max_radius_px + 1):
            if dx == 0 and dy == 0:
                continue
            t = math.hypot(max(abs(dx) - 0.5, 0.0), max(abs(dy) - 0.5, 0.0))
            if t < max_radius_px:
                by_threshold.setdefault(round(t, 9), []).append((dx, dy))
    return tuple(
        (t, tuple(o[0] for o in by_threshold[t]), tuple(o[1] for o in by_threshold[t]))
        for t in sorted(by_threshold)
    )


def _project(xyz_t: Tensor, c2w: Tensor, K: Tensor) -> Tensor:
    """Points ``(3, N)`` into V cameras: ``(V, 3, N)`` holding (fx x + cx z, fy y + cy z, z)
    in each camera's frame. (Points as rows of a (3, N) array make this a fast GEMM.)"""
    P = K @ se3_inverse(c2w)[:, :3, :]  # (V, 3, 4)
    return torch.baddbmm(P[:, :, 3:], P[:, :, :3], xyz_t.expand(P.shape[0], 3, -1))


def _scatter_footprints(
    zbuf: Tensor,
    iu: Tensor,
    iv: Tensor,
    fu: Tensor,
    fv: Tensor,
    r: Tensor,
    key: Tensor,
    base: Tensor,
    height: int,
    width: int,
    max_radius_px: int,
    only: Tensor | None = None,
) -> None:
    """Scatter (amin) each point's key into the pixels around its own one that its footprint
    covers: centre closer than ``r`` to the point. Points are flat ``(n,)`` arrays: own pixel
    ``iu, iv``, position inside it ``fu, fv`` in [0, 1), radius ``r``, key, and ``base`` (the
    flat index of pixel (0, 0) of the point's view). ``only`` (flat bool over ``zbuf``)
    restricts the writes to those pixels."""
    dev = zbuf.device
    for threshold, dx, dy in _footprint_levels(max_radius_px):
        keep = (r > threshold).nonzero().squeeze(1)  # nested: each level a subset
        if keep.numel() == 0:
            break
        if keep.numel() < r.numel():
            iu, iv, fu, fv, r, key, base = (t[keep] for t in (iu, iv, fu, fv, r, key, base))
        # all offsets of the level at once: (L, n) for L offsets and n points
        dxt = torch.tensor(dx, device=dev)[:, None]
        dyt = torch.tensor(dy, device=dev)[:, None]
        d2 = (dxt + 0.5 - fu).square_() + (dyt + 0.5 - fv).square_()
        px, py = iu + dxt, iv + dyt
        ok = (d2 < r * r) & (px >= 0) & (px < width) & (py >= 0) & (py < height)
        hit = ok.flatten().nonzero().squeeze(1)
        if hit.numel() == 0:
            continue
        j = hit % r.numel()
        pix = base[j] + py.flatten()[hit] * width + px.flatten()[hit]
        k = key[j]
        if only is not None:
            o = only[pix]
            pix, k = pix[o], k[o]
        zbuf.scatter_reduce_(0, pix, k, "amin")


def previous_splat(
    xyz: Tensor,
    rgb: Tensor,
    c2w: Tensor,
    K: Tensor,
    height: int,
    width: int,
    radius_px: float = 1.0,
    ref_depth_m: float = 1.0,
    max_radius_px: int = 4,
    min_radius_px: float = 0.5,
    near_m: float = 0.1,
) -> tuple[Tensor, Tensor, Tensor]:
    """xyz ``(N, 3)``, rgb ``(N, 3)``, c2w ``(V, 4, 4)``, K ``(V, 3, 3)`` -> rgb ``(V, 3, H,
    W)``, depth ``(V, 1, H, W)`` and mask ``(V, 1, H, W)``."""
    xyz_t = xyz.T if xyz.T.is_contiguous() else xyz.T.contiguous()
    index, depth = _zbuffer(
        xyz_t, c2w, K, height, width, radius_px, ref_depth_m, max_radius_px, min_radius_px, near_m
    )
    V, H, W = c2w.shape[0], height, width
    hit = index >= 0
    hit_idx = hit.nonzero().squeeze(1)
    out_rgb = torch.zeros(V * H * W, 3, device=index.device, dtype=torch.float32)
    out_rgb[hit_idx] = rgb[index[hit_idx]].float()
    return (
        out_rgb.view(V, H, W, 3).permute(0, 3, 1, 2).contiguous(),
        depth.view(V, 1, H, W),
        hit.float().view(V, 1, H, W),
    )


def _zbuffer(
    xyz_t: Tensor,
    c2w: Tensor,
    K: Tensor,
    height: int,
    width: int,
    radius_px: float,
    ref_depth_m: float,
    max_radius_px: int,
    min_radius_px: float,
    near_m: float,
) -> tuple[Tensor, Tensor]:
    """The splat of ``splat_points`` without colours: points ``xyz_t (3, N)`` -> (winning point
    per pixel ``(V*H*W,)`` int64, -1 where empty; its depth ``(V*H*W,)``, 0 where empty)."""
    V, N = c2w.shape[0], xyz_t.shape[1]
    dev = xyz_t.device
    H, W = int(height), int(width)
    HW = H * W
    if N == 0 or V == 0:
        return (
            torch.full((V * HW,), -1, dtype=torch.int64, device=dev),
            torch.zeros(V * HW, device=dev),
        )
    if N >= 1 << 32:
        raise ValueError(f"splat: at most 2**32 - 1 points, got {N}")
    R = int(max_radius_px)

    # project, then keep only points in front of the camera whose footprint can touch the
    # image; from here on points are flat arrays over (view, point) pairs
    p = _project(xyz_t.float(), c2w.float(), K.float())  # (V, 3, N)
    z = p[:, 2]
    u = p[:, 0] / z
    v = p[:, 1] / z
    keep = (z > near_m) & (u > -R) & (u < W + R) & (v > -R) & (v < H + R)  # NaN-safe
    sel = keep.flatten().nonzero().squeeze(1)  # (view, point) pairs as view * N + point
    z, u, v = z.flatten()[sel], u.flatten()[sel], v.flatten()[sel]
    iu, iv = u.floor(), v.floor()
    fu, fv = u - iu, v - iv  # position inside the own pixel, in [0, 1)
    iu, iv = iu.long(), iv.long()
    base = torch.div(sel, N, rounding_mode="floor") * HW  # flat index of the view's pixel 0
    key = (z.view(torch.int32).long() << 32) | (sel % N)  # depth bits, then point index

    # 1. own pixels, then the footprints that reach beyond them
    zbuf = torch.full((V * HW + 1,), _EMPTY, dtype=torch.int64, device=dev)
    dummy = V * HW  # writes from outside the image land in this extra slot
    own = (iu >= 0) & (iu < W) & (iv >= 0) & (iv < H)
    zbuf.scatter_reduce_(0, torch.where(own, base + iv * W + iu, dummy), key, "amin")
    r = (radius_px * ref_depth_m / z).clamp(_OWN_PIXEL_RADIUS_PX, float(max(R, 0.5)))
    if R >= 1:
        g = (r > _OWN_PIXEL_RADIUS_PX).nonzero().squeeze(1)
        _scatter_footprints(zbuf, iu[g], iv[g], fu[g], fv[g], r[g], key[g], base[g], H, W, R)

    # 2. fill the holes left between sparse points
    fill_r = min(float(min_radius_px), float(R))
    if fill_r > _OWN_PIXEL_RADIUS_PX:
        empty = zbuf == _EMPTY
        empty[dummy] = False
        if bool(empty.any()):
            reach = math.ceil(fill_r - 0.5)
            near_hole = F.max_pool2d(
                empty[:dummy].view(V, 1, H, W).float(), 2 * reach + 1, 1, reach
            ).view(V * HW)
            own_c = base + iv.clamp(0, H - 1) * W + iu.clamp(0, W - 1)
            g = ((r < fill_r) & (near_hole[own_c] > 0)).nonzero().squeeze(1)
            fr = torch.full_like(r[g], fill_r)
            _scatter_footprints(
                zbuf, iu[g], iv[g], fu[g], fv[g], fr, key[g], base[g], H, W, R, only=empty
            )

    win = zbuf[:dummy]
    hit = win != _EMPTY
    index = torch.where(hit, win & 0xFFFFFFFF, -1)
    depth = torch.where(hit, (win >> 32).to(torch.int32).view(torch.float32), 0.0)
    return index, depth
