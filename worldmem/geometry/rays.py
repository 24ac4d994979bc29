"""Camera rays and Pluecker ray maps (the per-pixel camera encoding the world model sees)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmem.geometry.camera import pixel_grid

__all__ = ["ray_directions", "plucker_rays", "plucker_patches"]


def ray_directions(c2w: Tensor, K: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """World-space ray origins and unit directions through every pixel centre.

    c2w ``(..., 4, 4)``, K ``(..., 3, 3)`` -> (origins ``(..., H, W, 3)``, dirs ``(..., H, W, 3)``).
    """
    uv = pixel_grid(height, width, device=c2w.device, dtype=c2w.dtype)
    fx, fy = K[..., 0, 0, None, None], K[..., 1, 1, None, None]
    cx, cy = K[..., 0, 2, None, None], K[..., 1, 2, None, None]
    d_cam = torch.stack(
        [(uv[..., 0] - cx) / fx, (uv[..., 1] - cy) / fy, torch.ones_like(uv[..., 0] - cx)], -1
    )  # (..., H, W, 3)
    d = (c2w[..., None, None, :3, :3] @ d_cam[..., None]).squeeze(-1)
    d = F.normalize(d, dim=-1)
    o = c2w[..., None, None, :3, 3].expand_as(d)
    return o, d


def plucker_rays(c2w: Tensor, K: Tensor, height: int, width: int) -> Tensor:
    """Pluecker ray map ``(..., 6, H, W)``: (d, o x d) per pixel, d a unit world direction.

    The moment o x d is independent of where along the ray o sits, so the map identifies each
    ray uniquely. Pass poses relative to a reference camera (``relative_poses``) for an
    encoding that is invariant to the world frame.
    """
    o, d = ray_directions(c2w, K, height, width)
    m = torch.cross(o, d, dim=-1)
    return torch.cat([d, m], -1).movedim(-1, -3)


def plucker_patches(c2w: Tensor, K: Tensor, height: int, width: int, patch: int) -> Tensor:
    """Pluecker rays per patch ``(..., 6 * patch * patch, H // patch, W // patch)``.

    Every pixel's ray inside a patch, stacked channel-wise (a space-to-depth of the per-pixel
    map), so a linear patch embedding sees the full ray bundle of the patch.
    """
    if height % patch or width % patch:
        raise ValueError(f"image {height}x{width} is not divisible by patch size {patch}")
    rays = plucker_rays(c2w, K, height, width)  # (..., 6, H, W)
    lead = rays.shape[:-3]
    r = rays.reshape(-1, 6, height, width)
    r = F.pixel_unshuffle(r, patch)  # (N, 6 * p * p, H/p, W/p)
    return r.reshape(*lead, *r.shape[1:])
