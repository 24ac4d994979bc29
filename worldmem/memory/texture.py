"""Texture for what memory never saw, copied from what it did.

A generated frame is sharp where its memory render passes observed pixels through, and smooth
where the model had to invent: regressed from one step, what it draws there is the mean of
everything that could be there, a field without texture. ``ExemplarTexture`` gives such a
frame the texture of the world's own observed frames, fixed to the world's surfaces:

- From the observed frames (rgb, depth, camera) it keeps, for each kind of surface (ceiling,
  wall, floor: the world's y axis points down, as the cameras' do), the largest square of that
  surface with no edge in it (an outline, a fold, a surface seen too obliquely), as its high
  band (the frame minus its Gaussian blur), and the heights of the floor and ceiling planes.
- A generated pixel takes the band of its surface's patch, tiled in mirror image over the
  surface in metres: a floor or ceiling pixel at the point where its ray meets that plane (so
  not at the model's uncertain depth), a wall pixel at its own point, along the wall and up.

The same point of a surface is given the same texture from every camera, so a view seen again
shows the texture it showed before. The band is a real texture of this world: tiles where the
observed floor is tiled, a checker where it is checkered. Where the invented surface is
another material, it is still the observed one's texture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmem.geometry import unproject_depth
from worldmem.memory.fill import gaussian_blur

__all__ = [
    "BAND_SIGMA_PX",
    "ExemplarTexture",
    "largest_clean_square",
    "mirror_sample",
    "point_normals",
    "surface_kinds",
    "without_cracks",
]

BAND_SIGMA_PX = 1.5  # the band: a frame minus its Gaussian blur of this sigma
CEILING, WALL, FLOOR = 0, 1, 2
HORIZONTAL_NORMAL_Y = 0.7  # |normal . y| above this: a floor or a ceiling
STEEP = 0.05  # neighbours whose depth differs by more than 5% (in log depth): an edge
FOLD_COS = 0.87  # neighbours whose normals part by more than 30 degrees: a fold
MIN_PATCH_PX = 6  # a surface with no clean square this large gives no texture
CRACK_PX = 3  # holes narrower than this are cracks in an observed surface: left untextured
# A bilinear read at a uniform random offset f keeps E[(1 - f)^2 + f^2] = 2/3 of a white
# band's energy along each axis, (2/3)^2 over both, so 2/3 of its amplitude: laid bands are
# divided by 2/3, and a surface keeps the energy of the patch it is laid from
BILINEAR_KEEPS = 2 / 3


def without_cracks(holes: Tensor, px: int = CRACK_PX) -> Tensor:
    """``holes (N, 1, H, W)`` 0/1 less every part narrower than ``px`` (a morphological
    opening with a ``px`` square): the pinholes and cracks of a magnified observed surface,
    which the model fills from around them and a laid texture would only speckle."""
    r = px // 2
    inner = 1 - F.max_pool2d(1 - holes, px, stride=1, padding=r)  # eroded
    return F.max_pool2d(inner, px, stride=1, padding=r)  # and dilated back


def point_normals(points: Tensor) -> Tensor:
    """Unit normals ``(N, H, W, 3)`` of point maps ``(N, H, W, 3)``, from central differences
    (one-sided at the border); their sign is arbitrary."""
    p = points.permute(0, 3, 1, 2)
    q = F.pad(p, (1, 1, 1, 1), mode="replicate")
    dx = q[:, :, 1:-1, 2:] - q[:, :, 1:-1, :-2]
    dy = q[:, :, 2:, 1:-1] - q[:, :, :-2, 1:-1]
    n = torch.linalg.cross(dx, dy, dim=1).permute(0, 2, 3, 1)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def surface_kinds(points: Tensor, camera_y: Tensor) -> tuple[Tensor, Tensor]:
    """Point maps ``(N, H, W, 3)`` seen from cameras at heights ``camera_y (N,)`` -> (kind
    ``(N, H, W)`` long: ``CEILING`` / ``WALL`` / ``FLOOR``, normals ``(N, H, W, 3)``). A
    surface whose normal is near the y axis is a floor below the camera, a ceiling above it."""
    n = point_normals(points)
    horizontal = n[..., 1].abs() > HORIZONTAL_NORMAL_Y
    below = points[..., 1] > camera_y[:, None, None]  # y points down
    kind = torch.full(points.shape[:-1], WALL, dtype=torch.long, device=points.device)
    kind[horizontal & below] = FLOOR
    kind[horizontal & ~below] = CEILING
    return kind, n


def largest_clean_square(ok: Tensor) -> tuple[int, int, int]:
    """The largest square of True in ``ok (H, W)`` bool -> (row, col, side) of its top-left
    corner and its side (the first in row-major order among the largest; side 0 if none)."""
    H, W = ok.shape
    bad = F.pad((~ok).double(), (1, 0, 1, 0)).cumsum(0).cumsum(1)  # summed-area table

    def corners(k: int) -> Tensor:  # (H-k+1, W-k+1) True where the k x k square is clean
        s = bad[k:, k:] - bad[:-k, k:] - bad[k:, :-k] + bad[:-k, :-k]
        return s == 0

    lo, hi = 0, min(H, W)  # a clean square of side lo exists; none larger than hi
    while lo < hi:
        k = (lo + hi + 1) // 2
        if corners(k).any():
            lo = k
        else:
            hi = k - 1
    if lo == 0:
        return 0, 0, 0
    r, c = divmod(int(torch.nonzero(corners(lo).flatten())[0]), W - lo + 1)
    return r, c, lo


def mirror_sample(patch: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """``patch (C, h, w)`` tiled in mirror image over the plane (mirrored about its border
    pixels, so with no seam: period 2(w - 1) across, 2(h - 1) down), read bilinearly at pixel
    coordinates ``u`` (across) and ``v`` (down), both ``(M,)`` -> ``(M, C)``. Coordinate 0 is
    the centre of the patch's first pixel."""
    h, w = patch.shape[-2:]

    def fold(t: Tensor, n: int) -> Tensor:  # onto [0, n - 1], mirrored each period
        if n == 1:
            return torch.zeros_like(t)
        t = torch.remainder(t, 2 * (n - 1))
        return torch.where(t > n - 1, 2 * (n - 1) - t, t)

    x, y = fold(u.double(), w), fold(v.double(), h)
    x0, y0 = x.floor().long().clamp(0, max(w - 2, 0)), y.floor().long().clamp(0, max(h - 2, 0))
    fx, fy = (x - x0).to(patch.dtype), (y - y0).to(patch.dtype)  # 0 along a side of 1 pixel
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    p = patch.reshape(patch.shape[0], -1)
    top = p[:, y0 * w + x0] * (1 - fx) + p[:, y0 * w + x1] * fx
    bottom = p[:, y1 * w + x0] * (1 - fx) + p[:, y1 * w + x1] * fx
    return (top * (1 - fy) + bottom * fy).T


@dataclass
class _Patch:
    band: Tensor  # (3, k, k), its mean removed
    px_per_m: float  # the patch's pixels per metre of surface at its median depth


@dataclass
class ExemplarTexture:
    """The texture of observed frames by kind of surface (``from_frames``); ``band`` lays it
    on generated frames' surfaces."""

    patches: dict[int, _Patch]  # by kind; a kind the frames did not show has none
    plane_y: dict[int, float]  # the y of the floor and ceiling planes, where the frames saw them

    @classmethod
    def from_frames(
        cls, frames: list[tuple[Tensor, Tensor, Tensor, Tensor]], sigma_px: float = BAND_SIGMA_PX
    ) -> ExemplarTexture:
        """Observed frames (c2w ``(4, 4)``, K ``(3, 3)``, rgb ``(3, H, W)`` in [0, 1], z-depth
        ``(H, W)`` metres with 0 where unknown), as ``SpatialMemory.observed_frames`` gives
        them -> their texture: for each kind of surface, the largest clean square any of them
        shows (the first frame's on a tie), and the floor and ceiling heights of the frame
        that shows the most of each."""
        patches: dict[int, _Patch] = {}
        plane_y: dict[int, float] = {}
        plane_px: dict[int, int] = {}
        for c2w, K, rgb, depth in frames:
            squares, planes = _frame_texture(rgb, depth, c2w, K, sigma_px)
            for k, patch in squares.items():
                if k not in patches or patch.band.shape[-1] > patches[k].band.shape[-1]:
                    patches[k] = patch
            for k, (y, n) in planes.items():
                if n > plane_px.get(k, 0):
                    plane_y[k], plane_px[k] = y, n
        return cls(patches, plane_y)

    def band(self, points: Tensor, c2w: Tensor) -> Tensor:
        """Generated frames' world points ``(N, H, W, 3)`` (their depth unprojected) seen from
        cameras ``c2w (N, 4, 4)`` -> the band ``(N, 3, H, W)`` their surfaces take (0 on a kind
        of surface the observed frames did not show)."""
        N, H, W, _ = points.shape
        points = points.double()
        origin = c2w[:, None, None, :3, 3].double()
        kind, normal = surface_kinds(points, origin[:, 0, 0, 1])
        out = torch.zeros((N, H, W, 3), dtype=torch.float32, device=points.device)
        for k, patch in self.patches.items():
            m = kind == k
            if not m.any():
                continue
            p = points[m]
            if k == WALL:  # along the wall (its run in x or in z) and up
                n = normal[m]
                along = torch.where(n[:, 0].abs() > n[:, 2].abs(), p[:, 2], p[:, 0])
                u, v = along, p[:, 1]
            else:
                if k in self.plane_y:  # where the ray meets the plane
                    o = origin.expand(N, H, W, 3)[m]
                    rise = p[:, 1] - o[:, 1]
                    scale = (self.plane_y[k] - o[:, 1]) / rise
                    ok = (rise.abs() > 1e-9) & (scale > 0)
                    p = torch.where(ok[:, None], o + (p - o) * scale[:, None], p)
                u, v = p[:, 0], p[:, 2]
            s = patch.px_per_m
            read = mirror_sample(patch.band.to(points.device), u * s, v * s)
            out[m] = (read / BILINEAR_KEEPS).float()
        return out.permute(0, 3, 1, 2)


def _frame_texture(
    rgb: Tensor, depth: Tensor, c2w: Tensor, K: Tensor, sigma_px: float
) -> tuple[dict[int, _Patch], dict[int, tuple[float, int]]]:
    """One observed frame -> (its patch of each kind of surface it shows clean squares of,
    {floor / ceiling: (the plane's y, how many pixels show it)})."""
    rgb, depth = rgb.double(), depth.double()
    points = unproject_depth(depth[None], c2w[None].double(), K[None].double())
    kind, normal = surface_kinds(points, c2w[None, 1, 3].double())
    kind, normal = kind[0], normal[0]
    # Kept out of the patches: unknown depth and the frame's border; both pixels beside a
    # step of more than STEEP in log depth (an outline, or a surface seen so obliquely that
    # its texture is squeezed); both pixels of a fold between two surfaces (where two walls
    # meet, a wall meets the floor: the border of two materials, though depth is continuous)
    edge = depth <= 0
    edge[[0, -1]] = True
    edge[:, [0, -1]] = True
    log_d = depth.clamp_min(1e-6).log()
    step_down = (log_d[1:] - log_d[:-1]).abs() > STEEP
    step_across = (log_d[:, 1:] - log_d[:, :-1]).abs() > STEEP
    down = step_down | ((normal[1:] * normal[:-1]).sum(-1).abs() < FOLD_COS)
    across = step_across | ((normal[:, 1:] * normal[:, :-1]).sum(-1).abs() < FOLD_COS)
    edge[1:] |= down
    edge[:-1] |= down
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    f = float(K[0, 0])
    patches, planes = {}, {}
    for k in (CEILING, WALL, FLOOR):
        clean = (kind == k) & ~edge
        r, c, side = largest_clean_square(clean)
        if side >= MIN_PATCH_PX:
            # the band of this surface alone: its blur a normalised convolution over the
            # surface's clean pixels, so no neighbour's colour bleeds into the patch's border
            m = clean.to(rgb.dtype)[None, None]
            blur = gaussian_blur(torch.cat([rgb[None] * m, m], 1), sigma_px)
            band = rgb - blur[0, :3] / blur[0, 3:].clamp_min(1e-12)
            b = band[:, r : r + side, c : c + side]
            d = float(depth[r : r + side, c : c + side].median())
            patches[k] = _Patch((b - b.mean(dim=(1, 2), keepdim=True)).float(), f / d)
        n = int(((kind == k) & (depth > 0)).sum())
        if k != WALL and n >= MIN_PATCH_PX**2:
            planes[k] = (float(points[0, ..., 1][(kind == k) & (depth > 0)].median()), n)
    return patches, planes
