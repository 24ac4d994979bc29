"""Baselines that need no learning, and the reprojections the walk protocol measures with.

* ``forward_warp``: posed RGB-D frames splatted into other cameras by a z-buffer (nearest point
  wins). Each source pixel is split into ``supersample`` x ``supersample`` sub-pixel points
  with the pixel's colour and depth, so a view a little closer than the source has no cracks;
  a target pixel no point lands in is a hole. One source frame: the ``warp`` baseline (the
  start frame warped with its true depth); every observed frame: the brute-force reference
  of the spatial memory.
* ``fill_holes``: holes take one stated colour (the walk protocol uses the start frame's mean
  colour, for the ``warp`` and ``memory`` baselines alike).
* ``backward_warp``: a frame's colours fetched at another camera's pixels through known depth
  at both ends (nearest pixel, or bilinear; occluded or outside pixels invalid): how
  self-recall compares a revisit with the model's own earlier frame (bilinear: a nearest-pixel
  read misplaces a textured surface by up to half a pixel, which costs even the true frames
  about 2.5 dB).

Cameras follow ``worldmem.geometry.camera`` (OpenCV, c2w, K in pixels, pixel centres at +0.5).
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldmem.geometry import project_points, unproject_depth

__all__ = ["forward_warp", "fill_holes", "backward_warp", "WARP_SUPERSAMPLE", "NEAR_M"]

WARP_SUPERSAMPLE = 2  # sub-pixel points per source pixel along each axis
NEAR_M = 0.05  # points closer to a camera than this are not drawn
OCCLUSION_TOL_REL = 0.05  # backward warp: source depth must agree within this fraction
READ_WEIGHT_EPS = 1e-6  # a bilinear read weighted this little need not be valid


def _check_frames(rgb: Tensor, depth: Tensor, c2w: Tensor, K: Tensor, what: str) -> None:
    M = rgb.shape[0] if isinstance(rgb, Tensor) and rgb.ndim == 4 else -1
    ok = (
        M >= 0
        and rgb.shape[1] == 3
        and tuple(depth.shape) == (M, 1, *rgb.shape[2:])
        and tuple(c2w.shape) == (M, 4, 4)
        and tuple(K.shape) == (M, 3, 3)
    )
    if not ok:
        raise ValueError(
            f"{what}: expected rgb (M, 3, H, W), depth (M, 1, H, W), c2w (M, 4, 4), K (M, 3, 3); "
            f"got {[tuple(t.shape) if isinstance(t, Tensor) else t for t in (rgb, depth, c2w, K)]}"
        )


def _subpixel_points(depth: Tensor, K: Tensor, s: int) -> tuple[Tensor, Tensor]:
    """Camera-frame points of every pixel split s x s: depth ``(M, 1, H, W)``, K ``(M, 3, 3)``
    -> points ``(M, H*s, W*s, 3)`` and the source pixel ``(H*s, W*s)`` flat index."""
    M, _, H, W = depth.shape
    dev = depth.device
    u = (torch.arange(W * s, device=dev, dtype=torch.float64) + 0.5) / s  # sub-pixel centres
    v = (torch.arange(H * s, device=dev, dtype=torch.float64) + 0.5) / s
    vv, uu = torch.meshgrid(v, u, indexing="ij")  # (H s, W s)
    src = (vv.long() * W + uu.long()).flatten()  # (H s W s,) source pixel of each point
    z = depth.double().flatten(1)[:, src].reshape(M, H * s, W * s)
    fx, fy = K[:, 0, 0, None, None].double(), K[:, 1, 1, None, None].double()
    cx, cy = K[:, 0, 2, None, None].double(), K[:, 1, 2, None, None].double()
    pts = torch.stack([(uu - cx) / fx * z, (vv - cy) / fy * z, z], -1)
    return pts, src


def forward_warp(
    rgb: Tensor,
    depth: Tensor,
    c2w: Tensor,
    K: Tensor,
    target_c2w: Tensor,
    target_K: Tensor,
    supersample: int = WARP_SUPERSAMPLE,
) -> tuple[Tensor, Tensor, Tensor]:
    """Splat M posed RGB-D frames into V cameras with a z-buffer.

    rgb ``(M, 3, H, W)`` in [0, 1], depth ``(M, 1, H, W)`` metres (<= 0 or non-finite: no
    point), c2w ``(M, 4, 4)``, K ``(M, 3, 3)``, target_c2w ``(V, 4, 4)``, target_K
    ``(V, 3, 3)`` (targets are H x W too) -> rgb ``(V, 3, H, W)``, depth ``(V, 1, H, W)``,
    mask ``(V, 1, H, W)`` bool. A target pixel shows the nearest point that falls in it
    (``floor`` of its projection; z > ``NEAR_M``); equal depths go to the lower point index
    (frame-major, then sub-pixel row-major). Holes are 0 with mask False.
    """
    _check_frames(rgb, depth, c2w, K, "forward_warp")
    if target_c2w.ndim != 3 or tuple(target_K.shape) != (target_c2w.shape[0], 3, 3):
        raise ValueError(
            f"forward_warp: expected target_c2w (V, 4, 4) and target_K (V, 3, 3), got "
            f"{tuple(target_c2w.shape)} and {tuple(target_K.shape)}"
        )
    M, _, H, W = rgb.shape
    V, s = target_c2w.shape[0], int(supersample)
    cam, src = _subpixel_points(depth, K, s)  # (M, Hs, Ws, 3)
    R, t = c2w[:, None, :3, :3].double(), c2w[:, None, :3, 3].double()
    world = (cam.reshape(M, -1, 3) @ R.squeeze(1).transpose(-1, -2)) + t  # (M, P, 3)
    d_src = depth.double().flatten(1)[:, src]  # (M, P)
    ok = torch.isfinite(d_src) & (d_src > 0)
    world = world[ok]  # (Q, 3) frame-major
    cols = rgb.permute(0, 2, 3, 1).reshape(M, H * W, 3)[:, src][ok]  # (Q, 3)
    out_rgb = torch.zeros(V, 3, H, W, dtype=rgb.dtype, device=rgb.device)
    out_depth = torch.zeros(V, 1, H, W, dtype=torch.float32, device=rgb.device)
    out_mask = torch.zeros(V, 1, H, W, dtype=torch.bool, device=rgb.device)
    order = torch.arange(len(world), device=rgb.device)
    for v in range(V):
        uv, z = project_points(world, target_c2w[v].double(), target_K[v].double())
        px, py = torch.floor(uv[:, 0]).long(), torch.floor(uv[:, 1]).long()
        keep = (z > NEAR_M) & (px >= 0) & (px < W) & (py >= 0) & (py < H)
        pix, zk, idx = py[keep] * W + px[keep], z[keep], order[keep]
        if pix.numel() == 0:
            continue
        # nearest depth per pixel, then the lowest index among points at that depth
        best = torch.full((H * W,), float("inf"), dtype=torch.float64, device=rgb.device)
        best = best.scatter_reduce(0, pix, zk, "amin")
        at_best = zk == best[pix]
        win = torch.full((H * W,), len(world), dtype=torch.long, device=rgb.device)
        win = win.scatter_reduce(0, pix[at_best], idx[at_best], "amin")
        hit = win < len(world)
        out_mask[v, 0] = hit.reshape(H, W)
        out_rgb[v] = torch.where(
            hit[:, None], cols[win.clamp(max=len(world) - 1)], torch.zeros_like(cols[:1])
        ).T.reshape(3, H, W)
        out_depth[v, 0] = torch.where(hit, best, 0.0).reshape(H, W).float()
    return out_rgb, out_depth, out_mask


def fill_holes(rgb: Tensor, mask: Tensor, colour: Tensor) -> Tensor:
    """``rgb`` where ``mask`` else ``colour``: rgb ``(V, 3, H, W)``, mask ``(V, 1, H, W)`` (bool
    or 0/1), colour ``(3,)`` -> ``(V, 3, H, W)``."""
    if rgb.ndim != 4 or tuple(mask.shape) != (rgb.shape[0], 1, *rgb.shape[2:]):
        raise ValueError(f"fill_holes: rgb {tuple(rgb.shape)} and mask {tuple(mask.shape)} differ")
    c = colour.to(rgb.device, rgb.dtype).reshape(1, 3, 1, 1)
    return torch.where(mask.bool(), rgb, c.expand_as(rgb))


def backward_warp(
    src_rgb: Tensor,
    src_depth: Tensor,
    src_c2w: Tensor,
    src_K: Tensor,
    tgt_depth: Tensor,
    tgt_c2w: Tensor,
    tgt_K: Tensor,
    tol_rel: float = OCCLUSION_TOL_REL,
    bilinear: bool = False,
) -> tuple[Tensor, Tensor]:
    """Colours of a source frame at a target camera's pixels, through known depth.

    src_rgb ``(3, H, W)``, src_depth ``(1, H, W)``, src_c2w / tgt_c2w ``(4, 4)``, src_K /
    tgt_K ``(3, 3)``, tgt_depth ``(1, H, W)`` -> rgb ``(3, H, W)``, valid ``(H, W)`` bool. Each
    target pixel's surface point (its depth) is projected into the source and read at the
    source pixel it lands in, or with ``bilinear`` interpolated between the four pixel centres
    around it. It is valid when every source pixel it reads lies inside the image, in front of
    the camera, with a depth that agrees within ``tol_rel`` (not occluded there: a bilinear
    read never mixes two surfaces across an outline). Invalid pixels are 0.
    """
    _, H, W = src_rgb.shape
    pts = unproject_depth(tgt_depth[0].double(), tgt_c2w.double(), tgt_K.double())  # (H, W, 3)
    uv, z = project_points(pts.reshape(-1, 3), src_c2w.double(), src_K.double())
    ahead = (z > NEAR_M) & torch.isfinite(tgt_depth[0].flatten())
    if bilinear:  # the four pixel centres around the point (centres at +0.5), and their weights
        x, y = uv[:, 0] - 0.5, uv[:, 1] - 0.5
        x0, y0 = torch.floor(x), torch.floor(y)
        fx, fy = x - x0, y - y0
        reads = [
            (x0 + dx, y0 + dy, (fx if dx else 1 - fx) * (fy if dy else 1 - fy))
            for dy in (0, 1)
            for dx in (0, 1)
        ]
    else:
        reads = [(torch.floor(uv[:, 0]), torch.floor(uv[:, 1]), torch.ones_like(z))]
    rgb = torch.zeros(3, H * W, dtype=src_rgb.dtype, device=src_rgb.device)
    valid = ahead
    flat_rgb, flat_depth = src_rgb.reshape(3, -1), src_depth[0].double().flatten()
    for px, py, w in reads:
        px, py = px.long(), py.long()
        flat = py.clamp(0, H - 1) * W + px.clamp(0, W - 1)
        d = flat_depth[flat]
        agrees = (px >= 0) & (px < W) & (py >= 0) & (py < H) & ((z - d).abs() <= tol_rel * d)
        valid = valid & (agrees | (w <= READ_WEIGHT_EPS))  # a read it does not weigh is no test
        rgb = rgb + flat_rgb[:, flat] * w.to(src_rgb.dtype)
    return (rgb * valid).reshape(3, H, W), valid.reshape(H, W)
