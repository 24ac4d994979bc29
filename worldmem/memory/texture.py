"""Texture for what memory never saw, copied from what it did.

A generated frame is sharp where its memory render passes observed pixels through, and smooth
where the model had to invent: regressed from one step, what it draws there is the mean of
everything that could be there, a field without texture. ``ExemplarTexture`` gives such a
frame the texture of the world's own observed frames, fixed to the world's surfaces:

- From the observed frames (rgb, depth, camera) it keeps, for each kind of surface (ceiling,
  wall, floor: the world's y axis points down, as the cameras' do), the largest square of that
  surface with no edge in it (an outline, a fold, a surface seen too obliquely) and in its
  light (no shadow across it), resampled square-on onto the surface's plane in the walls' own
  axes, and the heights of the floor and ceiling planes.
- A generated pixel takes the high band (a frame minus its Gaussian blur) of its surface's
  patch, tiled in mirror image over the surface in metres: a floor or ceiling pixel at the
  point where its ray meets that plane (so not at the model's uncertain depth), a wall pixel
  at its own point, along the wall and up. Its surface is the one its points' normals say,
  or, given the room's (``band``'s ``expected``), a floor or ceiling where the room shows one
  and a wall only where both say wall.
- The band is the one a frame shows at that distance (levels of detail, as a GPU's mipmaps):
  where one frame pixel spans many patch pixels, it averages them, so a distant floor's
  checker greys out as in a real frame instead of aliasing into noise that changes with
  every step of the camera.

- Where a floor's, ceiling's or wall's pattern is known in the world's phase (one period of
  it, ``periodic.PeriodicPattern``; each wall plane the frames show, ``wall_planes``, has its
  own), that plane takes the pattern's band, continued where it is, in place of a square;
  laid ``whole``, the pattern itself less its mean (a band of one frame pixel keeps only the
  edges of a checker's squares, which a gain brightens into outlines).
  Where memory gives back observed pixels of it nearer than they were observed from, the
  render shows each observed pixel's average over its footprint, blown up. ``detail`` gives
  such pixels the pattern's finer detail: the pattern as the new frame's pixel averages it
  less the pattern as the observed pixel did.

The same point of a surface is given the same texture from every camera, so a view seen again
shows the texture it showed before. The band is a real texture of this world: tiles where the
observed floor is tiled, a checker where it is checkered. Where the invented surface is
another material, it is still the observed one's texture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmem.geometry import project_points, unproject_depth
from worldmem.memory.fill import gaussian_blur
from worldmem.memory.periodic import (
    MIN_SAMPLES,
    SEARCHES,
    PeriodicPattern,
    find_period,
    fold_tile,
    sharpen_tile,
)

__all__ = [
    "BAND_SIGMA_PX",
    "CEILING",
    "FLOOR",
    "SURFACE_KINDS",
    "WALL",
    "ExemplarTexture",
    "across_creases",
    "bilinear_keeps",
    "edges",
    "footprints",
    "horizontal_plane",
    "in_light",
    "largest_clean_square",
    "mirror_tile",
    "observed_surfaces",
    "plane_pattern",
    "periodic_blur",
    "point_normals",
    "sees",
    "surface_footprint",
    "surface_kinds",
    "turn_about_y",
    "wall_coordinates",
    "wall_yaw",
    "without_cracks",
    "without_gradient",
    "wrap_sample",
]

BAND_SIGMA_PX = 1.0  # the band: a frame minus its Gaussian blur of this sigma
CEILING, WALL, FLOOR = 0, 1, 2
SURFACE_KINDS = (CEILING, WALL, FLOOR)
HORIZONTAL_NORMAL_Y = 0.7  # |normal . y| above this: a floor or a ceiling
STEEP = 0.05  # neighbours whose depth differs by more than 5% (in log depth): an edge
FOLD_COS = 0.87  # neighbours whose normals part by more than 30 degrees: a fold
MIN_PATCH_PX = 6  # a surface with no clean square this large gives no texture
CRACK_PX = 3  # holes narrower than this are cracks in an observed surface: left untextured
ORTHO_OVERSAMPLE = 2
MAX_ORTHO_TEXELS = 128  # a surface is resampled onto a grid of at most this many texels a side
LOD_LEVELS = 5  # levels of detail: a frame pixel spanning 1, 2, 4, 8, 16 patch pixels
# a pixel stretched along a surface seen obliquely is read as up to this many taps spread along
# its longer axis, each at the level of its shorter one (anisotropic filtering)
MAX_TAPS = 8
# a pixel whose brightness (blurred by LIT_BLUR_PX within its surface: wide enough to take a
# pattern's thin dark lines for the texture they are) is under SHADOW_RATIO of the surface's
# lit level (the LIT_QUANTILE of that brightness) is in shadow: no square of texture there
SHADOW_RATIO, LIT_QUANTILE, LIT_BLUR_PX = 0.75, 0.5, 2.0
MIN_LIT_SIDE = 0.5  # ... unless the square in the light is under half as wide as the whole's
LUMA = (0.299, 0.587, 0.114)
# a frame's point this near a floor's, ceiling's or wall's plane (times its range) lies on it
# (``ExemplarTexture.detail``, and a wall's plane in ``_reads``): a splatted sample's depth is
# its own across its footprint, and the model's is a guess, a few % off a plane seen
# obliquely; a table top, a box before a wall, is farther off
DETAIL_PLANE_TOL_REL = 0.05
# a width of surface a memory render shows over this many times a neighbour's is a crease's
# (``across_creases``)
CREASE_RATIO = 1.5


def across_creases(shown: Tensor, ratio: float = CREASE_RATIO) -> Tensor:
    """The widths of surface ``shown (N, H, W)`` (metres; inf: no observed sample), each over
    ``ratio`` times its 3x3 neighbourhood's finest finite width replaced by that finest one,
    inf kept. The spatial memory's width of a sample is its footprint over the incidence of
    a normal estimated by central differences, which across a crease or an outline straddle
    two surfaces and make a pixel look seen many times more obliquely than a neighbour on the
    same surface, seen from the same camera at nearly the same range, was; a width that varies
    smoothly across a surface is kept as it is."""
    finest = -F.max_pool2d(-shown[:, None], 3, stride=1, padding=1)[:, 0]  # inf never wins
    return torch.where(shown.isfinite() & (shown > ratio * finest), finest, shown)


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


def mirror_tile(patch: Tensor) -> Tensor:
    """One period of ``patch (C, h, w)`` tiled in mirror image (mirrored about its border
    pixels, so with no seam): ``(C, 2(h - 1), 2(w - 1))``, an axis of one pixel staying one."""
    if patch.shape[-2] > 1:
        patch = torch.cat([patch, patch.flip(-2)[..., 1:-1, :]], -2)
    if patch.shape[-1] > 1:
        patch = torch.cat([patch, patch.flip(-1)[..., 1:-1]], -1)
    return patch


def wrap_sample(tile: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """``tile (C, h, w)`` repeated over the plane, read bilinearly at pixel coordinates ``u``
    (across) and ``v`` (down), both ``(M,)`` -> ``(M, C)``. Coordinate 0 is the centre of the
    tile's first pixel."""
    h, w = tile.shape[-2:]
    x, y = u.double(), v.double()
    x0, y0 = x.floor(), y.floor()
    fx, fy = (x - x0).to(tile.dtype), (y - y0).to(tile.dtype)
    x0, y0 = torch.remainder(x0.long(), w), torch.remainder(y0.long(), h)
    x1, y1 = torch.remainder(x0 + 1, w), torch.remainder(y0 + 1, h)
    p = tile.reshape(tile.shape[0], -1)
    top = p[:, y0 * w + x0] * (1 - fx) + p[:, y0 * w + x1] * fx
    bottom = p[:, y1 * w + x0] * (1 - fx) + p[:, y1 * w + x1] * fx
    return (top * (1 - fy) + bottom * fy).T


def periodic_blur(tile: Tensor, sigma_px: float) -> Tensor:
    """``tile (C, h, w)``, one period of a periodic image, blurred by the sampled Gaussian of
    ``sigma_px`` (radius 4 sigma, normalised; as ``fill.gaussian_blur`` on the endless
    repetition), wrapped round each period; 0: unchanged."""
    if sigma_px <= 0:
        return tile
    out = torch.fft.rfft2(tile.double())
    h, w = tile.shape[-2:]
    r = max(1, math.ceil(4 * sigma_px))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / sigma_px) ** 2)
    g = g / g.sum()
    for n, dim in ((h, -2), (w, -1)):
        kernel = torch.zeros(n, dtype=torch.float64).index_add_(0, torch.remainder(t.long(), n), g)
        gain = torch.fft.fft(kernel) if dim == -2 else torch.fft.rfft(kernel)
        out = out * (gain[:, None] if dim == -2 else gain[None, :])
    return torch.fft.irfft2(out, s=(h, w)).to(tile.dtype)


def bilinear_keeps(tile: Tensor) -> float:
    """The fraction of ``tile``'s (periodic, zero-mean) amplitude that bilinear reads at
    uniformly random sub-pixel offsets keep: the root of their expected energy over the
    tile's. A read mixes neighbours with weights (1 - f, f), f uniform in each axis, so
    E[w_i w_j] is 1/3 + 1/3 for the same pixel and 1/6 for each neighbour, against the tile's
    autocorrelation: 2/3 of a white tile's amplitude, all of a smooth one's."""
    weight = {-1: 1 / 6, 0: 2 / 3, 1: 1 / 6}
    t = tile.double()
    e0 = float(t.pow(2).sum())
    if e0 <= 0:
        return 1.0
    e = sum(
        weight[dy] * weight[dx] * float((t * torch.roll(t, (dy, dx), (-2, -1))).sum())
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )
    return math.sqrt(max(e, 0.0) / e0)


def footprints(u: Tensor, v: Tensor, inside: Tensor) -> tuple[Tensor, Tensor]:
    """Texture coordinates ``u, v (N, H, W)`` (texture pixels) of the pixels where ``inside``
    -> how far each frame pixel reaches in the texture: ``short (N, H, W)``, the length of the
    shorter of its steps to the next pixel down and across (its extent across its ray), and
    ``long (N, H, W, 2)``, the longer step as a vector (du, dv) (a surface seen obliquely is
    stretched along it). Each step is the shorter of the steps forward and back within
    ``inside``, so a pixel beside an edge takes its step from its own side. A pixel with a
    neighbour inside along one axis only spans that step both ways (``long`` 0); with none,
    ``short`` is 1."""
    lengths, vectors = [], []
    for dim in (1, 2):  # down, across
        n = u.shape[dim]
        step = torch.stack(
            [
                u.narrow(dim, 1, n - 1) - u.narrow(dim, 0, n - 1),
                v.narrow(dim, 1, n - 1) - v.narrow(dim, 0, n - 1),
            ],
            -1,
        ).double()
        both = inside.narrow(dim, 1, n - 1) & inside.narrow(dim, 0, n - 1)
        length = torch.where(both, step.norm(dim=-1), math.inf)
        none = torch.full_like(length.narrow(dim, 0, 1), math.inf)
        fwd, back = torch.cat([length, none], dim), torch.cat([none, length], dim)
        zero = torch.zeros_like(step.narrow(dim, 0, 1))
        take_fwd = fwd <= back
        lengths.append(torch.where(take_fwd, fwd, back))
        vectors.append(
            torch.where(
                take_fwd[..., None], torch.cat([step, zero], dim), torch.cat([zero, step], dim)
            )
        )
    (down, across), (v_down, v_across) = lengths, vectors
    both = down.isfinite() & across.isfinite()
    short = torch.minimum(down, across)
    short = torch.where(short.isfinite(), short, torch.ones_like(short))
    long = torch.where((down >= across)[..., None], v_down, v_across)
    return short, torch.where(both[..., None], long, torch.zeros_like(long))


def turn_about_y(points: Tensor, angle: float) -> Tensor:
    """Points ``(..., 3)`` turned by ``angle`` radians about the y axis (x towards z)."""
    c, s = math.cos(angle), math.sin(angle)
    x, y, z = points.unbind(-1)
    return torch.stack([c * x - s * z, y, s * x + c * z], -1)


def wall_yaw(normals: Tensor) -> float:
    """The turn of a world's walls about y (radians in [-pi/4, pi/4)), from the normals ``(M,
    3)`` of wall points: walls meet at right angles, so each normal's heading is taken four
    times over (a wall and its neighbours at 90 and 180 degrees agree) and averaged, weighted
    by how horizontal it is. 0 when no wall is seen."""
    n = normals.double()
    if not len(n):
        return 0.0
    heading = torch.atan2(n[:, 2], n[:, 0])
    weight = n[:, 0].hypot(n[:, 2])
    c, s = float((weight * (4 * heading).cos()).sum()), float((weight * (4 * heading).sin()).sum())
    return math.atan2(s, c) / 4 if (c, s) != (0.0, 0.0) else 0.0


def wall_coordinates(points: Tensor, normals: Tensor) -> tuple[Tensor, Tensor]:
    """Wall points ``(M, 3)`` with their normals ``(M, 3)`` -> their coordinates on the wall
    in metres, each ``(M,)``: along it (its run in x, or in z where the normal is nearer x)
    and down (y)."""
    along = torch.where(normals[:, 0].abs() > normals[:, 2].abs(), points[:, 2], points[:, 0])
    return along, points[:, 1]


def observed_surfaces(
    frames: list[tuple[Tensor, Tensor, Tensor, Tensor]],
) -> tuple[list[tuple[Tensor, Tensor, Tensor]], float]:
    """Observed frames (c2w, K, rgb, depth ``(H, W)`` with 0 where unknown) -> each frame's
    points ``(H, W, 3)``, kinds ``(H, W)`` and normals ``(H, W, 3)`` (float64) in the walls'
    own axes (turned by -yaw about y, which moves no point between kinds), and that yaw
    (``wall_yaw`` of every known wall point's normal; 0 without frames)."""
    surfaces = []
    for c2w, K, _, depth in frames:
        points = unproject_depth(depth[None].double(), c2w[None].double(), K[None].double())
        kind, normal = surface_kinds(points, c2w[None, 1, 3].double())
        surfaces.append((points[0], kind[0], normal[0]))
    if not frames:
        return [], 0.0
    walls = [(kind == WALL) & (f[3] > 0) for (_, kind, _), f in zip(surfaces, frames)]
    yaw = wall_yaw(torch.cat([n[w] for (_, _, n), w in zip(surfaces, walls)]))
    turned = [(turn_about_y(p, -yaw), k, turn_about_y(n, -yaw)) for p, k, n in surfaces]
    return turned, yaw


def _orthophoto(
    rgb: Tensor,
    depth: Tensor,
    points: Tensor,
    c2w: Tensor,
    K: Tensor,
    on_plane: Tensor,
    axis: int,
    offset: float,
    yaw: float,
) -> tuple[Tensor, Tensor] | None:
    """The frame's pixels ``on_plane (H, W)`` bool of the plane ``points[..., axis] == offset``
    (``points (H, W, 3)`` unprojected from ``depth (H, W)``) resampled onto a square grid on
    that plane, ``ORTHO_OVERSAMPLE`` texels to the pixels' median size across their rays, each
    texel the pixel it falls in (a bilinear read would cost the band a third of its
    amplitude): the largest square of the grid that the frame shows unoccluded and resolves,
    as (rgb ``(3, k, k)``, the map ``(2, 3)`` from the plane's (u, v, 1) metres to the square's
    (column, row)), or None when it is under ``MIN_PATCH_PX``. u, v: (x, z) on a floor or
    ceiling; along the wall and y on a wall; ``points`` and the plane in axes turned by
    -``yaw`` about y (``turn_about_y``)."""
    H, W = depth.shape
    iu, iv = {1: (0, 2), 0: (2, 1), 2: (0, 1)}[axis]
    p = points[on_plane]
    texel = float((depth[on_plane] / K[0, 0]).median()) / ORTHO_OVERSAMPLE
    lo_u, lo_v = float(p[:, iu].min()), float(p[:, iv].min())
    nu = min(MAX_ORTHO_TEXELS, int((float(p[:, iu].max()) - lo_u) / texel) + 1)
    nv = min(MAX_ORTHO_TEXELS, int((float(p[:, iv].max()) - lo_v) / texel) + 1)
    gv, gu = torch.meshgrid(
        lo_v + texel * torch.arange(nv, dtype=torch.float64),
        lo_u + texel * torch.arange(nu, dtype=torch.float64),
        indexing="ij",
    )
    world = torch.full((nv, nu, 3), float(offset), dtype=torch.float64)
    world[..., iu], world[..., iv] = gu, gv
    world = turn_about_y(world, yaw)  # the points in the world's own axes
    pix, z = project_points(world.reshape(-1, 3), c2w.double(), K.double())
    col, row = pix[:, 0].floor().long(), pix[:, 1].floor().long()
    inside = (z > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    col, row = col.clamp(0, W - 1), row.clamp(0, H - 1)
    seen = inside & on_plane[row, col] & ((depth[row, col] - z).abs() <= STEEP * z)
    # and where the frame resolves the texels: neighbouring texels at least a quarter of a
    # pixel apart in the frame (four texels to a pixel), not where a far or slanting part of
    # the surface gives one pixel to many texels, which would be copied into blocks
    at = pix.reshape(nv, nu, 2)
    across = (at[:, 1:] - at[:, :-1]).norm(dim=-1)
    down = (at[1:] - at[:-1]).norm(dim=-1)
    across = torch.cat([across, across[:, -1:]], 1) if nu > 1 else torch.ones(nv, 1)
    down = torch.cat([down, down[-1:]], 0) if nv > 1 else torch.ones(1, nu)
    resolved = torch.minimum(across, down) >= 1 / (2 * ORTHO_OVERSAMPLE)
    seen = seen & resolved.flatten()
    r, c, side = largest_clean_square(seen.reshape(nv, nu))
    if side < MIN_PATCH_PX:
        return None
    grid = torch.stack([pix[:, 0] / W * 2 - 1, pix[:, 1] / H * 2 - 1], -1).reshape(1, nv, nu, 2)
    colour = F.grid_sample(rgb[None], grid.to(rgb), mode="nearest", align_corners=False)[0]
    to_px = torch.tensor(
        [[1 / texel, 0.0, -lo_u / texel - c], [0.0, 1 / texel, -lo_v / texel - r]],
        dtype=torch.float64,
    )
    return colour[:, r : r + side, c : c + side].float(), to_px


def in_light(rgb: Tensor, mask: Tensor) -> Tensor:
    """The pixels of ``mask (H, W)`` bool (one surface of the frame ``rgb (3, H, W)``) that lie
    in its light: whose brightness, blurred by ``LIT_BLUR_PX`` over the mask's pixels alone, is
    at least ``SHADOW_RATIO`` of the surface's lit level (the ``LIT_QUANTILE`` of that blurred
    brightness), and not beside one that is not (the penumbra). A shadow across a surface is a
    step of brightness with no step of depth: in a square taken as the surface's texture, its
    edge would be tiled as a zigzag of stripes. The dark half of a surface's own pattern (a
    checker's squares) is dark too: ``_frame_texture`` keeps to the light only when that
    leaves a square at least ``MIN_LIT_SIDE`` as wide."""
    if not mask.any():
        return mask
    luma = (rgb.double() * rgb.new_tensor(LUMA).double()[:, None, None]).sum(0)
    m = mask.double()
    both = gaussian_blur(torch.stack([luma * m, m])[:, None], LIT_BLUR_PX)[:, 0]
    blurred = both[0] / both[1].clamp_min(1e-9)
    lit = torch.quantile(blurred[mask], LIT_QUANTILE)
    dark = (mask & (blurred < SHADOW_RATIO * lit)).double()[None, None]
    # and the penumbra: a pixel beside the shadow
    return mask & ~(F.max_pool2d(dark, 3, stride=1, padding=1)[0, 0] > 0)


def without_gradient(patch: Tensor) -> Tensor:
    """``patch (C, h, w)`` less the plane (a + b x + c y, per channel) that fits it best, plus
    its mean: the square's shading across it, which mirror tiling would repeat as a checker of
    light and dark squares the size of the square."""
    C, h, w = patch.shape
    y, x = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    design = torch.stack([torch.ones_like(x), x - x.mean(), y - y.mean()], -1).reshape(-1, 3)
    fit = torch.linalg.lstsq(design, patch.double().reshape(C, -1).T).solution  # (3, C)
    slope = (design[:, 1:] @ fit[1:]).T.reshape(C, h, w)
    return (patch.double() - slope).to(patch.dtype)


@dataclass
class _Patch:
    """A clean square of a surface, mirror-tiled, as the band a frame shows of it at each level
    of detail: ``levels[l]`` is the band when one frame pixel spans 2**l of the patch's pixels
    (the tile blurred as such a pixel averages it, less its blur by ``sigma_px`` frame pixels),
    divided by what bilinear reads keep of it. A pattern in the world's phase laid ``whole``
    keeps the tile so blurred less its mean instead: the pattern itself, its squares and
    stripes at every size, where a band of one frame pixel keeps only their edges."""

    rgb: Tensor  # (3, k, k) the square's colour
    # (2, 3): the patch pixel (column, row) of the surface point (u, v) metres is
    # to_px @ (u, v, 1) (the patch is the surface resampled square-on, so a surface seen
    # obliquely is laid at its true scale, not squeezed)
    to_px: Tensor
    sigma_px: float = BAND_SIGMA_PX
    lod_levels: int = LOD_LEVELS  # 1: the finest level everywhere (no levels of detail)
    # True: rgb is one period of the surface's pattern in the world's phase
    # (``periodic.PeriodicPattern``), repeated as it is; False: a square, tiled in mirror image
    periodic: bool = False
    # a periodic pattern's levels are the whole pattern less its mean, not its band
    whole: bool = False

    @property
    def period(self) -> tuple[float, float] | None:
        """The pattern's period (along u, along v) metres; None for a mirror-tiled square."""
        if not self.periodic:
            return None
        nv, nu = self.rgb.shape[-2:]
        return nu / float(self.to_px[0, 0]), nv / float(self.to_px[1, 1])

    def __post_init__(self):
        rgb = self.rgb.float()
        tile = rgb if self.periodic else mirror_tile(without_gradient(rgb))
        # a pattern in the world's phase keeps the tile as a frame pixel spanning 2**l of its
        # pixels shows it (``lows``), for every l up to twice the tile's side (beyond: its mean)
        top = max(1, math.ceil(math.log2(max(tile.shape[-2:])))) + 1 if self.periodic else -1
        # a frame pixel spanning 2**l patch pixels averages them: a box of that width, whose
        # variance (4**l / 12) is the Gaussian's, less the patch pixel's own box
        boxed = [
            periodic_blur(tile, math.sqrt((4.0**level - 1) / 12))
            for level in range(max(self.lod_levels, top + 1))
        ]
        if self.whole and not self.periodic:
            raise ValueError("_Patch: only a pattern in the world's phase is laid whole")
        self.levels = []
        for level in range(self.lod_levels):
            if self.whole:
                band = boxed[level] - tile.mean(dim=(-2, -1), keepdim=True)
            else:
                band = boxed[level] - periodic_blur(tile, self.sigma_px * 2.0**level)
            self.levels.append(band / bilinear_keeps(band))
        self.lows = boxed[: top + 1]


@dataclass
class ExemplarTexture:
    """The texture of observed frames by kind of surface (``from_frames``); ``band`` lays it
    on generated frames' surfaces."""

    patches: dict[int, _Patch]  # by kind; a kind the frames did not show has none
    plane_y: dict[int, float]  # the y of the floor and ceiling planes, where the frames saw them
    yaw: float = 0.0  # the walls' turn about y: surfaces are laid in axes turned by it
    # the observed frames' cameras and depth (c2w, K, z-depth (H, W)): the footprint each
    # point of a surface was observed with (``detail``)
    views: list[tuple[Tensor, Tensor, Tensor]] = field(default_factory=list)
    # the walls whose pattern is known in the world's phase: (axis, offset, periodic patch) of
    # each plane ``point[axis] == offset`` in the walls' axes (``wall_planes``)
    walls: list[tuple[int, float, _Patch]] = field(default_factory=list)

    @classmethod
    def from_frames(
        cls,
        frames: list[tuple[Tensor, Tensor, Tensor, Tensor]],
        sigma_px: float = BAND_SIGMA_PX,
        lod_levels: int = LOD_LEVELS,
        periodic: bool = True,
        sharpen: bool = True,
        whole: bool = False,
    ) -> ExemplarTexture:
        """Observed frames (c2w ``(4, 4)``, K ``(3, 3)``, rgb ``(3, H, W)`` in [0, 1], z-depth
        ``(H, W)`` metres with 0 where unknown), as ``SpatialMemory.observed_frames`` gives
        them -> their texture: for each kind of surface, the largest square any of them shows
        of it, clean and resampled square-on (``_orthophoto``; the first frame's on a tie),
        with ``lod_levels`` levels of detail (1: none), and the floor and ceiling heights of
        the frame that shows the most of each. With ``periodic``, a floor or ceiling whose
        samples show a repeating pattern (``plane_pattern``) takes one period of it, laid in
        the world's phase, in place of its square, and so does each wall plane the frames
        show (``wall_planes``) whose samples show one (``walls``); with ``sharpen`` (else the
        samples' mean fold) each period is sharpened by their footprints
        (``periodic.sharpen_tile``), and with ``whole`` each period is laid whole (``_Patch``;
        ``band`` lays it at gain 1)."""
        patches: dict[int, _Patch] = {}
        plane_y: dict[int, float] = {}
        plane_px: dict[int, int] = {}
        surfaces, yaw = observed_surfaces(frames)
        for (c2w, K, rgb, depth), (points, kind, normal) in zip(frames, surfaces):
            squares, planes = _frame_texture(
                rgb, depth, c2w, K, points, kind, normal, sigma_px, lod_levels, yaw
            )
            for k, patch in squares.items():
                if k not in patches or patch.rgb.shape[-1] > patches[k].rgb.shape[-1]:
                    patches[k] = patch
            for k, (y, n) in planes.items():
                if n > plane_px.get(k, 0):
                    plane_y[k], plane_px[k] = y, n
        if periodic:
            for k, y in plane_y.items():
                pattern = plane_pattern(frames, surfaces, k, y, sharpen=sharpen)
                if pattern is not None:
                    patches[k] = _Patch(
                        pattern.tile, pattern.to_px(), sigma_px, lod_levels, True, whole
                    )
        walls = []
        if periodic:
            for axis, offset in wall_planes(frames, surfaces):
                pattern = plane_pattern(frames, surfaces, WALL, offset, axis, sharpen)
                if pattern is not None:
                    patch = _Patch(pattern.tile, pattern.to_px(), sigma_px, lod_levels, True, whole)
                    walls.append((axis, offset, patch))
        views = [(c2w, K, depth) for c2w, K, _, depth in frames]
        return cls(patches, plane_y, yaw, views, walls)

    def _reads(
        self,
        points: Tensor,
        c2w: Tensor,
        kinds=SURFACE_KINDS,
        with_level: bool = True,
        expected: Tensor | None = None,
    ):
        """Frames' world points ``(N, H, W, 3)`` seen from cameras ``c2w (N, 4, 4)`` -> a
        ``_Read`` for each kind of ``kinds`` that has a patch and pixels, and apart from it
        each of the ``walls`` that has pixels (a wall's pixel lies on that plane when its own
        point is no farther from it than ``DETAIL_PLANE_TOL_REL`` of its range; its ``level``
        only ``with_level``). With ``expected (N, H, W)`` kinds, a pixel the room shows a
        floor or ceiling at is read as that (read where its ray meets that plane, its own
        depth does not matter), and one it shows a wall at only where its points' normals say
        wall too (an object before the wall; a wall is read at its own point)."""
        N, H, W, _ = points.shape
        points = turn_about_y(points.double(), -self.yaw)  # the walls along x and z
        origin = turn_about_y(c2w[:, None, None, :3, 3].double(), -self.yaw).expand(N, H, W, 3)
        kind, normal = surface_kinds(points, origin[:, 0, 0, 1])
        if expected is not None:
            expected = expected.to(kind.device)
            kind = torch.where(expected == WALL, torch.where(kind == WALL, WALL, -1), expected)
        reach = (points - origin).norm(dim=-1)
        for k in kinds:
            m = kind == k
            # (pixels, axis, offset, patch): a floor or ceiling on its plane (offset None when
            # no frame showed where), a wall on each plane of a known pattern, else its square
            parts = []
            if k == WALL:
                for axis, offset, patch in self.walls:
                    on = m & ((points[..., axis] - offset).abs() <= DETAIL_PLANE_TOL_REL * reach)
                    parts.append((on, axis, offset, patch))
                    m = m & ~on
                if k in self.patches:
                    parts.append((m, None, None, self.patches[k]))
            elif k in self.patches:
                parts.append((m, 1, self.plane_y.get(k), self.patches[k]))
            for on, axis, offset, patch in parts:
                if not on.any():
                    continue
                own = p = points[on]
                o = origin[on]
                if offset is not None:  # where the ray meets the plane
                    rise = p[:, axis] - o[:, axis]
                    scale = (offset - o[:, axis]) / torch.where(rise.abs() > 1e-9, rise, 1.0)
                    ok = (rise.abs() > 1e-9) & (scale > 0)
                    p = torch.where(ok[:, None], o + (p - o) * scale[:, None], p)
                if axis is None:
                    u, v = wall_coordinates(p, normal[on])
                else:
                    u, v = p[:, PLANE_UV[axis][0]], p[:, PLANE_UV[axis][1]]
                m_px = patch.to_px.to(u)
                u, v = (
                    m_px[0, 0] * u + m_px[0, 1] * v + m_px[0, 2],
                    m_px[1, 0] * u + m_px[1, 1] * v + m_px[1, 2],
                )
                level = along = None
                if with_level:  # how many patch pixels each frame pixel spans, from the steps
                    # of the coordinates between neighbours on this part of the surface
                    uu = torch.zeros((N, H, W), dtype=u.dtype, device=u.device)
                    vv = torch.zeros_like(uu)
                    uu[on], vv[on] = u, v
                    short, along = footprints(uu, vv, on)
                    short, along = short[on], along[on]
                    # the level of its shorter extent, unless its longer one needs more than
                    # MAX_TAPS taps of that size
                    level = torch.maximum(short, along.norm(dim=-1) / MAX_TAPS).clamp_min(1).log2()
                yield _Read(k, patch, on, u, v, level, along, p, o, own, axis, offset)

    def band(
        self,
        points: Tensor,
        c2w: Tensor,
        gains: dict[int, float] | None = None,
        expected: Tensor | None = None,
    ) -> Tensor:
        """Generated frames' world points ``(N, H, W, 3)`` (their depth unprojected) seen from
        cameras ``c2w (N, 4, 4)`` -> the band ``(N, 3, H, W)`` their surfaces take (0 on a kind
        of surface the observed frames did not show), times ``gains[kind]`` on each kind of
        surface when given (a kind it leaves out: 0). With ``expected (N, H, W)``, the kind
        of surface each pixel should show (the room's, ``layout.BoxLayout.texture_points``), a floor
        or ceiling there takes its band whatever the points' normals say, and a wall only
        where they say wall (``_reads``): a generated depth whose normals tilt (a ceiling
        guessed with a step in it) would lay a wall's pattern across the ceiling. A pattern
        laid whole (``_Patch.whole``) is the pattern itself, at gain 1 on any kind of surface
        that takes texture: the gains bring a band up to the detail a frame shows."""
        N, H, W, _ = points.shape
        out = torch.zeros((N, H, W, 3), dtype=torch.float32, device=points.device)
        kinds = [k for k in SURFACE_KINDS if gains is None or gains.get(k, 0.0) != 0]
        for r in self._reads(points, c2w, kinds, expected=expected):
            gain = 1.0 if gains is None or r.patch.whole else gains[r.kind]
            read = _read_along(r.patch.levels, r.u, r.v, r.level, r.along)
            out[r.pixels] = read if gain == 1 else gain * read
        return out.permute(0, 3, 1, 2)

    def planes(self) -> list[tuple[int, int, float, _Patch]]:
        """(kind, axis, offset, patch) of each plane ``point[axis] == offset`` (in the walls'
        axes) whose pattern is known in the world's phase: the floor and the ceiling (axis 1)
        with a periodic patch, and the ``walls``."""
        flat = [
            (k, 1, self.plane_y[k], self.patches[k])
            for k in (FLOOR, CEILING)
            if k in self.plane_y and k in self.patches and self.patches[k].periodic
        ]
        return flat + [(WALL, axis, offset, patch) for axis, offset, patch in self.walls]

    def detail(self, points: Tensor, c2w: Tensor, K: Tensor, shown: Tensor | None = None) -> Tensor:
        """Frames' world points ``(N, H, W, 3)`` seen from cameras ``c2w (N, 4, 4)``, ``K (N,
        3, 3)`` -> the detail ``(N, 3, H, W)`` their floor, ceiling and walls resolve and no
        observed frame did: where a plane's pattern is known in the world's phase
        (``planes``), the pattern as this frame's pixel averages it less the pattern as the
        finest observed pixel that saw that point averaged it (``surface_footprint``; 0 where
        this frame's pixel is no finer, where no observed frame saw the point, and off the
        plane: a table top, a box before a wall). The observed frames are this texture's
        ``views``, and ``shown (N, H, W)`` metres, when given, the width of surface the sample
        a memory render shows at each pixel averaged (``SpatialMemory.shown_quality``, taken
        through ``across_creases``: a frame no longer among the views may have seen it nearer).
        A render of observed samples brought nearer than they were observed from shows each
        sample's average over its footprint, blown up; adding this gives it the pattern's
        finer detail, in its phase."""
        N, H, W, _ = points.shape
        out = torch.zeros((N, H, W, 3), dtype=torch.float32, device=points.device)
        kinds = sorted({k for k, *_ in self.planes()})
        if not kinds:  # no pattern known in phase: nothing to read
            return out.permute(0, 3, 1, 2)
        fx = K[:, None, None, 0, 0].expand(N, H, W).double()
        forward = turn_about_y(c2w[:, None, None, :3, 2].double(), -self.yaw).expand(N, H, W, 3)
        shown = None if shown is None else across_creases(shown)
        for r in self._reads(points, c2w, kinds, with_level=False):
            if r.offset is None or not r.patch.periodic:
                continue  # a wall's square
            axis, offset, p, o = r.axis, r.offset, r.at, r.origin
            # off the plane: the frame's own point lies farther from it than its range allows
            reach = (r.own - o).norm(dim=-1)
            near = (r.own[:, axis] - offset).abs() <= DETAIL_PLANE_TOL_REL * reach
            texels = float(torch.linalg.det(r.patch.to_px[:, :2].double()).abs().sqrt())
            here = surface_footprint(p, o, forward[r.pixels], fx[r.pixels], offset, axis) * texels
            seen = torch.full_like(here, math.inf)
            if shown is not None:
                seen = shown.to(here)[r.pixels] * texels
            world = turn_about_y(p, self.yaw)
            for c2w_s, K_s, depth_s in self.views:
                o_s, f_s = (turn_about_y(c2w_s[:3, i].double(), -self.yaw) for i in (3, 2))
                foot = surface_footprint(p, o_s.expand_as(p), f_s, float(K_s[0, 0]), offset, axis)
                seen = torch.where(
                    sees(world, c2w_s, K_s, depth_s), seen.minimum(foot * texels), seen
                )
            want = near & seen.isfinite() & (seen > here)
            if not want.any():
                continue
            u, v, lows = r.u[want], r.v[want], r.patch.lows
            read = torch.zeros((len(r.u), 3), dtype=torch.float32, device=points.device)
            read[want] = _read_levels(lows, u, v, here[want].clamp_min(1).log2()) - _read_levels(
                lows, u, v, seen[want].clamp_min(1).log2()
            )
            out[r.pixels] = read
        return out.permute(0, 3, 1, 2)


@dataclass
class _Read:
    """One kind of surface's pixels in frames (``ExemplarTexture._reads``), in the walls' axes
    (turned by -yaw about y)."""

    kind: int
    patch: _Patch
    pixels: Tensor  # (N, H, W) bool
    u: Tensor  # (M,) patch coordinates (column, row) of each pixel's point
    v: Tensor
    level: Tensor | None  # (M,) log2 of the patch pixels each frame pixel spans across
    along: Tensor | None  # (M, 2) its longer extent in the patch, (du, dv) (``footprints``)
    at: Tensor  # (M, 3) the point laid at: on a plane, where the ray meets it
    origin: Tensor  # (M, 3) its camera's centre
    own: Tensor  # (M, 3) the frame's own point
    # the plane ``point[axis] == offset`` its pixels lie on (axis None: a wall's square;
    # offset None: a floor or ceiling whose plane no frame showed)
    axis: int | None
    offset: float | None


def _read_levels(tiles: list[Tensor], u: Tensor, v: Tensor, level: Tensor) -> Tensor:
    """``tiles[l]`` read at patch coordinates ``u, v (M,)`` (``wrap_sample``), each at its
    fractional ``level (M,)`` (clamped to the levels there are): linear between the two levels
    either side -> ``(M, 3)`` float32."""
    level = level.clamp(0, len(tiles) - 1)
    lo = level.floor()
    frac = (level - lo).float()
    read = torch.zeros((len(u), 3), dtype=torch.float32, device=u.device)
    for i, tile in enumerate(tiles):
        w = torch.where(lo == i, 1 - frac, 0.0) + torch.where(lo == i - 1, frac, 0.0)
        sel = w > 0
        if sel.any():
            tile = tile.to(u.device)
            read[sel] += w[sel, None] * wrap_sample(tile, u[sel], v[sel]).float()
    return read


def _read_along(tiles: list[Tensor], u: Tensor, v: Tensor, level: Tensor, along: Tensor) -> Tensor:
    """``tiles[l]`` read at patch coordinates ``u, v (M,)`` by pixels that reach ``along (M,
    2)`` (patch pixels, ``(du, dv)``) along the surface -> ``(M, 3)`` float32: the mean of
    ``_read_levels`` at ``level (M,)`` over taps at the centres of equal parts of that reach, as
    many as it is long in pixels of that level (at most ``MAX_TAPS``; one where it is no
    longer). A box filter along a surface seen obliquely: one read at the level of the longer
    reach would blur it across as well, one at the shorter reach alone aliases along it."""
    size = 2.0 ** level.clamp(0, len(tiles) - 1)
    taps = (along.norm(dim=-1) / size).ceil().clamp(1, MAX_TAPS).long()
    read = torch.zeros((len(u), 3), dtype=torch.float32, device=u.device)
    for n in taps.unique().tolist():
        sel = taps == n
        t = (torch.arange(n, dtype=u.dtype, device=u.device) + 0.5) / n - 0.5  # (n,)
        uu = (u[sel, None] + t * along[sel, None, 0].to(u)).flatten()
        vv = (v[sel, None] + t * along[sel, None, 1].to(u)).flatten()
        lv = level[sel, None].expand(-1, n).flatten()
        read[sel] = _read_levels(tiles, uu, vv, lv).reshape(-1, n, 3).mean(1)
    return read


MIN_COS = 0.2  # a surface seen more obliquely than this is averaged as at this angle


def surface_footprint(
    p: Tensor, origin: Tensor, forward: Tensor, fx, offset: float, axis: int = 1
) -> Tensor:
    """Points ``p (M, 3)`` of the plane ``p[:, axis] == offset`` (1: a horizontal plane at
    height ``offset``; 0 or 2: a wall, in the walls' axes) seen from cameras at ``origin (M,
    3)`` looking along ``forward (M, 3)`` (unit) with focal length ``fx`` (pixels; a number or
    ``(M,)``) -> the width in metres of the surface one pixel averages there ``(M,)``: its
    extent across the ray, the z-depth / fx, stretched by the obliquity (1 / the cosine
    between ray and normal, at most 1 / ``MIN_COS``), as a pixel integrating its area does
    along the ray's run (the synthetic renderer's box filter; the spatial memory's sample
    quality, ``frame_samples``, is the same width)."""
    d = p - origin
    r = d.norm(dim=-1)
    cos = ((origin[:, axis] - offset).abs() / r.clamp_min(1e-9)).clamp_min(MIN_COS)
    return (d * forward).sum(-1) / fx / cos


def sees(points: Tensor, c2w: Tensor, K: Tensor, depth: Tensor) -> Tensor:
    """World points ``(M, 3)`` -> ``(M,)`` bool: the view (c2w ``(4, 4)``, K ``(3, 3)``,
    z-depth ``(H, W)``, 0 unknown) shows them, in its frame with its depth at their pixel
    within ``STEEP`` of theirs (not hidden behind something nearer)."""
    H, W = depth.shape
    pix, z = project_points(points.double(), c2w.double(), K.double())
    col, row = pix[:, 0].floor().long(), pix[:, 1].floor().long()
    inside = (z > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    d = depth.double()[row.clamp(0, H - 1), col.clamp(0, W - 1)]
    return inside & (d > 0) & ((d - z).abs() <= STEEP * z)


def edges(depth: Tensor, normal: Tensor | None, steep: float = STEEP) -> Tensor:
    """``(H, W)`` bool: the pixels of a frame (z-depth ``(H, W)``, 0 unknown; normals ``(H, W,
    3)``) kept out of any texture: unknown depth and the frame's border; both pixels beside a
    step of more than ``steep`` in log depth (an outline, or a surface seen so obliquely that
    its texture is squeezed); with ``normal``, both pixels of a fold between two surfaces
    (where two walls meet, a wall meets the floor: the border of two materials, though depth
    is continuous)."""
    edge = depth <= 0
    edge[[0, -1]] = True
    edge[:, [0, -1]] = True
    log_d = depth.double().clamp_min(1e-6).log()
    down = (log_d[1:] - log_d[:-1]).abs() > steep
    across = (log_d[:, 1:] - log_d[:, :-1]).abs() > steep
    if normal is not None:
        down |= (normal[1:] * normal[:-1]).sum(-1).abs() < FOLD_COS
        across |= (normal[:, 1:] * normal[:, :-1]).sum(-1).abs() < FOLD_COS
    edge[1:] |= down
    edge[:-1] |= down
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    return edge


PLANE_TOL_REL = 0.02  # a sample of a plane lies within this (times its depth) of it
PLANE_GAP_M = 0.05  # pixels of one kind further apart than this across their planes: two planes
# the floor (ceiling) is the lowest (highest) plane its kind's pixels form that holds at least
# this share of them: a box's or a table's top faces up too, and may show more than the floor
MIN_PLANE_SHARE = 0.2


def _planes_along(values: Tensor) -> list[Tensor]:
    """Pixels' coordinates ``(M,)`` across their planes -> the planes they form, lowest
    coordinate first: the coordinates sorted and split wherever two in turn lie more than
    ``PLANE_GAP_M`` apart."""
    v = values.sort().values
    breaks = torch.nonzero(v[1:] - v[:-1] > PLANE_GAP_M).flatten() + 1
    return list(torch.tensor_split(v, breaks.tolist()))


def horizontal_plane(y: Tensor, kind: int) -> float | None:
    """The heights ``y (M,)`` (y down) of the pixels of a floor (``kind`` FLOOR) or a
    ceiling (CEILING) -> the height of the floor or ceiling itself: of the planes they form
    (``_planes_along``) holding at least ``MIN_PLANE_SHARE`` of them, the lowest (largest y)
    for a floor, the highest for a ceiling, its median; None with no pixel. The median of all
    of them lies on a box's top when boxes show more than the floor between them."""
    if len(y) == 0:
        return None
    runs = [r for r in _planes_along(y.double()) if len(r) >= MIN_PLANE_SHARE * len(y)]
    if not runs:
        return float(y.double().median())
    return float((runs[-1] if kind == FLOOR else runs[0]).median())


# a wall's pixel whose normal is this near the wall's axis faces along it (a wall plane)
WALL_NORMAL = 0.9
# (column, row) coordinates of a plane normal to each axis: (x, z) on a floor or ceiling,
# along the wall and y on a wall (``wall_coordinates``)
PLANE_UV = {1: (0, 2), 0: (2, 1), 2: (0, 1)}


def wall_planes(
    frames: list[tuple[Tensor, Tensor, Tensor, Tensor]],
    surfaces: list[tuple[Tensor, Tensor, Tensor]],
) -> list[tuple[int, float]]:
    """The walls the observed frames show, from their wall pixels (off ``edges``) that face an
    axis of the walls' axes (``surfaces`` turned as ``observed_surfaces`` gives them): (axis,
    offset) of each plane ``points[axis] == offset`` (axis 0 or 2) at least ``MIN_SAMPLES``
    pixels show, its offset their median (the planes their coordinates across one axis form,
    ``_planes_along``)."""
    across = {0: [], 2: []}
    for (_, _, _, depth), (points, k, normal) in zip(frames, surfaces):
        on = (k == WALL) & ~edges(depth.double(), normal) & (depth > 0)
        for axis in across:
            facing = on & (normal[..., axis].abs() >= WALL_NORMAL)
            across[axis].append(points[..., axis][facing])
    planes = []
    for axis, values in across.items():
        if sum(len(c) for c in values) < MIN_SAMPLES:
            continue
        for run in _planes_along(torch.cat(values)):
            if len(run) >= MIN_SAMPLES:
                planes.append((axis, float(run.median())))
    return planes


def plane_pattern(
    frames: list[tuple[Tensor, Tensor, Tensor, Tensor]],
    surfaces: list[tuple[Tensor, Tensor, Tensor]],
    kind: int,
    offset: float,
    axis: int = 1,
    sharpen: bool = True,
) -> PeriodicPattern | None:
    """The repeating pattern of the plane ``points[axis] == offset`` of surfaces of ``kind``
    (axis 1: the floor or ceiling at that height; 0 or 2: a wall), from every observed frame's
    pixels of that kind on that plane (not a table top; a wall's facing along ``axis``), off
    its ``edges``, whose footprint on it (depth / fx / the normal's component along ``axis``)
    is at most the widest of ``periodic.SEARCHES``: their coordinates (``PLANE_UV``) in the
    walls' axes and colours (``periodic.find_period`` over each search's periods, given the
    footprints of the samples it takes, in turn until one finds a period: up to 2 m among
    pixels at most 15 cm wide, then a facade's windows among coarser ones; then the fold of
    the samples at most a quarter of the period wide, with ``sharpen`` sharpened by their
    footprints: ``periodic.sharpen_tile``); None when none is found."""
    iu, iv = PLANE_UV[axis]
    u, v, colour, foot = [], [], [], []
    for (_, K, rgb, depth), (points, k, normal) in zip(frames, surfaces):
        d = depth.double()
        facing = normal[..., axis].abs()
        on = (k == kind) & ~edges(d, normal)
        on &= (points[..., axis] - offset).abs() <= PLANE_TOL_REL * d
        if axis != 1:
            on &= facing >= WALL_NORMAL
        f = d / float(K[0, 0]) / facing.clamp_min(1e-6)
        on &= f <= max(widest for _, widest in SEARCHES)
        u.append(points[..., iu][on])
        v.append(points[..., iv][on])
        colour.append(rgb.double().permute(1, 2, 0)[on])
        foot.append(f[on])
    u, v, colour, foot = (torch.cat(t) for t in (u, v, colour, foot))
    for periods, widest in SEARCHES:
        fine = foot <= widest
        found = find_period(u[fine], v[fine], colour[fine], foot[fine], periods)
        if found is not None:
            break
    if found is None:
        return None
    u, v, colour, foot = u[fine], v[fine], colour[fine], foot[fine]
    pu, pv, theta = found
    sharp = foot <= 0.25 * min(pu, pv)
    if int(sharp.sum()) < MIN_SAMPLES:
        sharp = torch.ones_like(sharp)
    u, v, colour, foot = u[sharp], v[sharp], colour[sharp], foot[sharp]
    tile = fold_tile(u, v, colour, (pu, pv))
    if sharpen:
        tile = sharpen_tile(tile, u, v, colour, foot, (pu, pv))
    return PeriodicPattern((pu, pv), tile.float(), theta)


def _frame_texture(
    rgb: Tensor,
    depth: Tensor,
    c2w: Tensor,
    K: Tensor,
    points: Tensor,
    kind: Tensor,
    normal: Tensor,
    sigma_px: float,
    lod_levels: int,
    yaw: float,
) -> tuple[dict[int, _Patch], dict[int, tuple[float, int]]]:
    """One observed frame, with its points ``(H, W, 3)`` and normals ``(H, W, 3)`` in axes
    turned by -``yaw`` about y (``wall_yaw``) and its kinds ``(H, W)`` (``surface_kinds``) ->
    (its patch of each kind of surface it shows clean squares of, {floor / ceiling: (the
    plane's y, how many pixels show it)})."""
    rgb, depth = rgb.double(), depth.double()
    edge = edges(depth, normal)
    patches, planes = {}, {}
    seen = {k: (kind == k) & (depth > 0) for k in (CEILING, FLOOR)}
    plane = {k: horizontal_plane(points[..., 1][m], k) for k, m in seen.items()}
    for k in (CEILING, WALL, FLOOR):
        clean = (kind == k) & ~edge
        if k != WALL and plane[k] is not None:  # the square on the floor, not on a box's top
            clean &= (points[..., 1] - plane[k]).abs() <= PLANE_TOL_REL * depth
        r, c, side = largest_clean_square(clean)
        if side >= MIN_PATCH_PX:
            # the plane of the largest clean square, seen square-on: the frame resampled on it
            n = normal[r : r + side, c : c + side].reshape(-1, 3).abs().median(0).values
            axis = 1 if k != WALL else (0 if n[0] > n[2] else 2)
            offset = float(points[r : r + side, c : c + side, axis].median())
            on_plane = clean & ((points[..., axis] - offset).abs() <= STEEP * depth)
            ortho = _orthophoto(rgb, depth, points, c2w, K, on_plane, axis, offset, yaw)
            # the square in the light, unless the dark leaves it too small to be a shadow
            # across the surface rather than the dark half of its own pattern (a checker's)
            in_lit = in_light(rgb, on_plane)
            lit = None
            if in_lit.any():  # (none is when every pixel lies in or beside a shadow)
                lit = _orthophoto(rgb, depth, points, c2w, K, in_lit, axis, offset, yaw)
            if lit is not None and (
                ortho is None or lit[0].shape[-1] >= MIN_LIT_SIDE * ortho[0].shape[-1]
            ):
                ortho = lit
            if ortho is not None:
                patches[k] = _Patch(ortho[0], ortho[1], sigma_px, lod_levels)
        if k != WALL and int(seen[k].sum()) >= MIN_PATCH_PX**2:
            planes[k] = (plane[k], int(seen[k].sum()))
    return patches, planes
