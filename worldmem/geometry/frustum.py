"""Frustum sampling and frustum overlap between cameras (used by episodic retrieval,
keyframe selection and revisit mining)."""

from __future__ import annotations

import torch
from torch import Tensor

from worldmem.geometry.camera import project_points

__all__ = [
    "sample_frustum_points",
    "visible_fraction",
    "project_to_cameras",
    "visible_from",
    "frustum_overlap",
]


def sample_frustum_points(
    c2w: Tensor,
    K: Tensor,
    height: int,
    width: int,
    num: int,
    near: float = 0.1,
    far: float = 10.0,
    depth: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """World points sampled inside camera frusta.

    c2w ``(V, 4, 4)``, K ``(V, 3, 3)`` -> points ``(V, num, 3)``.

    Pixels are uniform over the image. Without ``depth``, z is uniform in [near, far] (volume
    sampling of the frustum). With ``depth (V, H, W)`` each sample sits on the visible surface
    at its pixel (depth-aware: what the camera actually sees); pixels whose depth is not
    finite or <= 0 fall back to a uniform z.
    """
    V = c2w.shape[0]
    dev, dt = c2w.device, c2w.dtype
    u = torch.rand(V, num, generator=generator, device=dev, dtype=dt) * width
    v = torch.rand(V, num, generator=generator, device=dev, dtype=dt) * height
    z = near + (far - near) * torch.rand(V, num, generator=generator, device=dev, dtype=dt)
    if depth is not None:
        if depth.shape != (V, height, width):
            raise ValueError(
                f"depth: expected shape {(V, height, width)}, got {tuple(depth.shape)}"
            )
        iu = u.long().clamp(0, width - 1)
        iv = v.long().clamp(0, height - 1)
        dz = depth.to(dt).flatten(1).gather(1, iv * width + iu)
        ok = torch.isfinite(dz) & (dz > 0)
        z = torch.where(ok, dz, z)
    x = (u - K[:, 0, 2, None]) / K[:, 0, 0, None] * z
    y = (v - K[:, 1, 2, None]) / K[:, 1, 1, None] * z
    cam = torch.stack([x, y, z], -1)  # (V, num, 3)
    return cam @ c2w[:, :3, :3].transpose(-1, -2) + c2w[:, None, :3, 3]


def visible_fraction(
    points: Tensor,
    c2w: Tensor,
    K: Tensor,
    height: int,
    width: int,
    near: float = 0.05,
    far: float = float("inf"),
    depth: Tensor | None = None,
    depth_tolerance: float = 0.1,
) -> Tensor:
    """Per point, whether each camera sees it.

    points ``(P, N, 3)`` (P point sets), c2w ``(C, 4, 4)``, K ``(C, 3, 3)`` -> visible
    ``(P, C, N)`` bool. A point is visible when it projects inside the image with
    near < z < far and, if the camera's ``depth (C, H, W)`` is given, is not hidden behind the
    surface at that pixel: z <= depth * (1 + depth_tolerance).
    """
    uv, z = project_to_cameras(points, c2w, K)
    return visible_from(uv, z, height, width, near, far, depth, depth_tolerance)


def project_to_cameras(points: Tensor, c2w: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """points ``(P, N, 3)`` into each of C cameras (c2w ``(C, 4, 4)``, K ``(C, 3, 3)``): uv
    ``(P, C, N, 2)`` and z ``(P, C, N)`` (``project_points``)."""
    P, N, _ = points.shape
    C = c2w.shape[0]
    pts = points[:, None].expand(P, C, N, 3)
    return project_points(pts, c2w[None].expand(P, C, 4, 4), K[None].expand(P, C, 3, 3))


def visible_from(
    uv: Tensor,
    z: Tensor,
    height: int,
    width: int,
    near: float = 0.05,
    far: float = float("inf"),
    depth: Tensor | None = None,
    depth_tolerance: float = 0.1,
) -> Tensor:
    """``visible_fraction`` of points already projected (``project_to_cameras``: uv ``(P, C,
    N, 2)``, z ``(P, C, N)``) -> ``(P, C, N)`` bool."""
    P, C, N = z.shape
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < width) & (uv[..., 1] >= 0) & (uv[..., 1] < height)
    vis = inside & (z > near) & (z < far)
    if depth is not None:
        if depth.shape != (C, height, width):
            raise ValueError(
                f"depth: expected shape {(C, height, width)}, got {tuple(depth.shape)}"
            )
        iu = uv[..., 0].long().clamp(0, width - 1)
        iv = uv[..., 1].long().clamp(0, height - 1)
        flat = depth.flatten(1)[None].expand(P, C, height * width)
        d = flat.gather(2, iv * width + iu)
        occluded = torch.isfinite(d) & (d > 0) & (z > d * (1 + depth_tolerance))
        vis = vis & ~occluded
    return vis


def frustum_overlap(
    target_c2w: Tensor,
    target_K: Tensor,
    cand_c2w: Tensor,
    cand_K: Tensor,
    height: int,
    width: int,
    num_samples: int = 512,
    near: float = 0.1,
    far: float = 10.0,
    target_depth: Tensor | None = None,
    cand_depth: Tensor | None = None,
    depth_tolerance: float = 0.1,
    seed: int = 0,
) -> Tensor:
    """Fraction of each target frustum that each candidate camera sees.

    target_c2w ``(V, 4, 4)``, target_K ``(V, 3, 3)``, cand_c2w ``(C, 4, 4)``, cand_K
    ``(C, 3, 3)`` -> overlap ``(V, C)`` in [0, 1]. Samples ``num_samples`` points per target
    frustum (on the target's surface when ``target_depth (V, H, W)`` is given), and counts
    those inside each candidate's frustum (and not occluded in ``cand_depth (C, H, W)``).
    Deterministic for a given ``seed``. Not symmetric: overlap(a, b) is how much of a, b sees.
    """
    g = torch.Generator(device=target_c2w.device).manual_seed(seed)
    pts = sample_frustum_points(
        target_c2w, target_K, height, width, num_samples, near, far, target_depth, g
    )
    vis = visible_fraction(
        pts,
        cand_c2w,
        cand_K,
        height,
        width,
        near=0.0,
        far=far * 1.5,
        depth=cand_depth,
        depth_tolerance=depth_tolerance,
    )
    return vis.float().mean(-1)
