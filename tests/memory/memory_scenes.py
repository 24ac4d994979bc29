"""Analytic scenes for the memory tests: exact depth and colour by ray casting."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from worldmem.geometry import intrinsics_from_fov, pixel_grid


@pytest.fixture(autouse=True)
def one_thread():
    """The memory tests use tiny tensors: one thread avoids contention on shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FACE_COLOURS = torch.tensor(
    [
        [0.9, 0.2, 0.2],  # -x wall
        [0.2, 0.9, 0.2],  # +x wall
        [0.9, 0.9, 0.3],  # ceiling (-y)
        [0.5, 0.4, 0.3],  # floor (+y)
        [0.2, 0.3, 0.9],  # -z wall
        [0.8, 0.3, 0.8],  # +z wall
    ]
)


def camera_rays(c2w: Tensor, K: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """World origins ``(N, H, W, 3)`` and directions ``(N, H, W, 3)`` scaled so that a ray
    parameter t is the z-depth (the direction has unit z in the camera frame)."""
    uv = pixel_grid(height, width)  # (H, W, 2)
    x = (uv[..., 0] - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None]
    y = (uv[..., 1] - K[:, 1, 2, None, None]) / K[:, 1, 1, None, None]
    d_cam = torch.stack([x, y, torch.ones_like(x)], -1)  # (N, H, W, 3)
    d = torch.einsum("nij,nhwj->nhwi", c2w[:, :3, :3], d_cam)
    o = c2w[:, None, None, :3, 3].expand_as(d)
    return o, d


def box_room(
    c2w: Tensor, K: Tensor, height: int, width: int, half=(3.0, 1.5, 3.0), tile_m: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Render the inside of an axis-aligned box room centred at the origin with half extents
    ``half`` (cameras must be inside): (rgb ``(N, 3, H, W)``, depth ``(N, 1, H, W)``)."""
    o, d = camera_rays(c2w.double(), K.double(), height, width)
    h = torch.tensor(half, dtype=torch.float64)
    safe = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t_axis = (torch.sign(safe) * h - o) / safe  # exit distance along each axis
    t, axis = t_axis.min(-1)  # (N, H, W)
    hit = o + d * t[..., None]
    positive = torch.gather(d, -1, axis[..., None])[..., 0] > 0
    face = axis * 2 + positive.long()
    checker = (torch.floor(hit / tile_m).long().sum(-1) % 2).double()
    rgb = FACE_COLOURS.double()[face] * (0.55 + 0.45 * checker[..., None])
    return rgb.permute(0, 3, 1, 2).float(), t[:, None].float()


def yaw_camera(position, yaw_deg: float) -> Tensor:
    """c2w ``(4, 4)`` at ``position`` looking along +z turned by yaw (toward +x), level."""
    a = math.radians(yaw_deg)
    c, s = math.cos(a), math.sin(a)
    c2w = torch.eye(4)
    c2w[:3, :3] = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    c2w[:3, 3] = torch.as_tensor(position, dtype=torch.float32)
    return c2w


def intrinsics(n: int, size: int, fov_deg: float = 75.0) -> Tensor:
    return intrinsics_from_fov(fov_deg, size, size)[None].expand(n, 3, 3).clone()


def rect_scene(
    c2w: Tensor, K: Tensor, height: int, width: int, rects: list[tuple]
) -> tuple[Tensor, Tensor]:
    """Ray-cast fronto-parallel rectangles ``(z0, x0, x1, y0, y1, (r, g, b))`` (world z = z0,
    x in [x0, x1], y in [y0, y1]); the nearest hit wins. Returns rgb ``(N, 3, H, W)`` and
    depth ``(N, 1, H, W)`` (0 where nothing is hit)."""
    o, d = camera_rays(c2w.double(), K.double(), height, width)
    best = torch.full(o.shape[:-1], float("inf"), dtype=torch.float64)
    rgb = torch.zeros(*o.shape[:-1], 3, dtype=torch.float64)
    for z0, x0, x1, y0, y1, colour in rects:
        t = (z0 - o[..., 2]) / d[..., 2]
        hit = o + d * t[..., None]
        inside = (hit[..., 0] >= x0) & (hit[..., 0] <= x1) & (hit[..., 1] >= y0)
        inside &= (hit[..., 1] <= y1) & (t > 0) & (t < best)
        best = torch.where(inside, t, best)
        rgb[inside] = torch.tensor(colour, dtype=torch.float64)
    depth = torch.where(torch.isfinite(best), best, 0.0)
    return rgb.permute(0, 3, 1, 2).float(), depth[:, None].float()
