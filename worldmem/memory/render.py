"""Rendering a point cloud at a batch of cameras.

Two backends with the same output (``MemoryRender``):

* ``splat_points``: a pure-torch z-buffer splat that runs on CPU and CUDA. Each point covers
  the pixels whose centres lie within its footprint radius of its projection (and always the
  pixel it falls in); every pixel keeps its nearest point. Depth (as float32 bits, which order
  like the floats for positive values) and point index are packed into one int64 key, so a
  single ``scatter_reduce(amin)`` per batch of footprint offsets finds both the winning depth
  and the winner; equal depths go to the lower point index, so the result is deterministic.
  The z-buffer is padded around each view by twice the largest footprint, so no write needs
  a bounds check.
  With ``surface_tol_rel > 0`` a second pass picks, among the points that fall inside a pixel
  and lie on its front surface (depth within ``surface_tol_rel`` of the nearest), the one of
  lowest rank whose projection is closest to the pixel centre: a frame's own samples then
  win its pixels at its own camera, and a novel view takes the nearest observed sample
  instead of whichever sample of the surface happened to be a hair closer.
* ``gsplat_points``: isotropic Gaussians through ``gsplat.rasterization`` (CUDA only).

Cameras follow ``worldmem.geometry.camera``: OpenCV frame, c2w 4x4, K 3x3 in pixels, pixel
centres at +0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmem.geometry.camera import se3_inverse
from worldmem.memory._tensor_ops import flat_nonzero

__all__ = [
    "MemoryRender",
    "splat_points",
    "zbuffer",
    "compose",
    "interpolate_colours",
    "gsplat_points",
    "gsplat_available",
    "KEEP_PX",
]

_OWN_PIXEL_RADIUS_PX = 0.5  # radii up to this reach no pixel beyond the one a point falls in
_EMPTY = torch.iinfo(torch.int64).max  # z-buffer value of a pixel no point reached
# a point on a pixel centre wins it, unless the pixel holds a point this much nearer (relative)
# in a view fewer than EXACT_VIEW_SHARE of whose pixels hold a point on their centre
EXACT_TOL_REL = 0.15
EXACT_VIEW_SHARE = 0.25


@dataclass
class MemoryRender:
    """The spatial memory seen from V cameras.

    rgb ``(V, 3, H, W)`` in [0, 1], depth ``(V, 1, H, W)`` z-depth in metres, mask
    ``(V, 1, H, W)`` float 1 where a point landed and 0 elsewhere (rgb and depth are 0 there),
    observed ``(V, 1, H, W)`` float 1 where the winning point was observed (a real frame) and
    0 where it was generated or the pixel is empty.
    """

    rgb: Tensor
    depth: Tensor
    mask: Tensor
    observed: Tensor

    def to(self, device) -> MemoryRender:
        return MemoryRender(
            self.rgb.to(device),
            self.depth.to(device),
            self.mask.to(device),
            self.observed.to(device),
        )

    def without_far_guesses(self, margin_rel: float | None, min_observed: float) -> MemoryRender:
        """This render with the generated pixels that lie beyond every observed surface in
        their view emptied: in each view where observed samples win at least ``min_observed``
        of the pixels, a generated winner more than ``margin_rel`` farther than the farthest
        observed one there becomes a hole (``margin_rel`` None: every generated winner).

        A view that sees observed surfaces sees how deep the scene around it is; a guess far
        behind all of them is most often one the model drew receding into space it had not
        seen (its invented depth recedes: 2-5 times too far on the walks that turn away). Back
        at a wall the start frame saw, such guesses fill the part of the wall beyond the start
        frame's edge with a distant field of another colour; emptied, that part is a hole the
        model fills by continuing the wall. A guess given a plausible depth (the depth net's,
        ``sampler.generated_depth``) is not far, but may as well be wrong in colour beside
        what was observed; hiding every guess there has the model draw it again beside it."""
        observed = self.observed > 0.5  # 0 where the pixel is empty
        share = observed.float().mean((1, 2, 3))  # (V,)
        farthest = (self.depth * observed).amax((1, 2, 3))
        near = torch.zeros_like(farthest) if margin_rel is None else farthest * (1 + margin_rel)
        limit = torch.where(share >= min_observed, near, math.inf)
        far = (self.mask > 0.5) & ~observed & (self.depth > limit[:, None, None, None])
        keep = (~far).to(self.mask.dtype)
        return MemoryRender(self.rgb * keep, self.depth * keep, self.mask * keep, self.observed)


def empty_render(num_views: int, height: int, width: int, device, dtype=torch.float32):
    """A render with nothing in it: zeros of the ``MemoryRender`` shapes."""
    z = torch.zeros(num_views, 1, height, width, device=device, dtype=dtype)
    return MemoryRender(z.expand(-1, 3, -1, -1).clone(), z.clone(), z.clone(), z.clone())


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


_FIRST_RING = 8  # offsets of the eight neighbours: the first two levels, always tested together
_BATCH_PAIRS = 1 << 16  # later levels are tested together while (offset, point) pairs fit this


@lru_cache(maxsize=64)
def _offset_table(
    max_radius_px: int, row_stride: int, device: torch.device, radius_dtype: torch.dtype
) -> tuple:
    """``_footprint_levels`` flattened for a z-buffer of ``row_stride`` columns: (level
    thresholds ``[t0, t1, ...]``, first offset of each level and the total ``[0, ..., L]``,
    then per offset in level order: its level's threshold ``(L,)`` in ``radius_dtype`` (so it
    compares with radii as the Python float does), dx + 0.5 and dy + 0.5 ``(L, 1)`` float32,
    and the flat offset dy * row_stride + dx ``(L,)`` int64)."""
    levels = _footprint_levels(max_radius_px)
    starts, thr, dxs, dys = [0], [], [], []
    for t, dx, dy in levels:
        starts.append(starts[-1] + len(dx))
        thr += [t] * len(dx)
        dxs += dx
        dys += dy
    f32 = dict(dtype=torch.float32, device=device)
    return (
        [t for t, _, _ in levels],
        starts,
        torch.tensor(thr, dtype=radius_dtype, device=device),
        torch.tensor(dxs, **f32)[:, None] + 0.5,
        torch.tensor(dys, **f32)[:, None] + 0.5,
        torch.tensor([y * row_stride + x for x, y in zip(dxs, dys)], device=device),
    )


def _scatter_footprints(
    zbuf: Tensor,
    pix: Tensor,
    key: Tensor,
    r: Tensor,
    fu: Tensor,
    fv: Tensor,
    row_stride: int,
    max_radius_px: int,
    uniform: bool = False,
) -> None:
    """Scatter (amin) each point's key into the pixels around its own one that its footprint
    covers: centre closer than ``r`` to the point. Points are flat ``(n,)`` arrays: own pixel
    ``pix`` (flat index into ``zbuf``, a padded buffer of ``row_stride`` columns in which every
    offset up to ``max_radius_px`` stays inside the point's view), key, radius ``r`` (all above
    ``_OWN_PIXEL_RADIUS_PX``; ``uniform``: all the same) and position inside the own pixel
    ``fu, fv`` in [0, 1).

    Level by level (``_footprint_levels``), only the points whose radius exceeds the level's
    threshold are tested; consecutive levels are tested in one batch (the eight neighbours
    always, later levels while the pairs fit ``_BATCH_PAIRS``), each hit kept only if its
    point reaches its level, so the pixels written are those of a level-by-level pass. With
    one radius for all, the levels it reaches are known up front and no hit needs the test."""
    thresholds, starts, thr, dxh, dyh, offset = _offset_table(
        max_radius_px, row_stride, zbuf.device, r.dtype
    )
    levels = len(thresholds)
    if uniform:  # the levels the common radius reaches (compared as r > threshold compares)
        levels = int((thr[starts[:-1]] < r[0]).sum())
    level = 0
    while level < levels:
        if level and not uniform:  # every point reaches the first level
            keep = flat_nonzero(r > thresholds[level])  # nested: each level a subset
            if keep.numel() == 0:
                break
            if keep.numel() < r.numel():
                pix, key, r, fu, fv = (t.index_select(0, keep) for t in (pix, key, r, fu, fv))
        n = r.numel()
        end = level + 1
        while end < levels and (
            starts[end + 1] <= _FIRST_RING or (starts[end + 1] - starts[level]) * n <= _BATCH_PAIRS
        ):
            end += 1
        a, b = starts[level], starts[end]
        # all offsets of the batch at once: (L, n) for L offsets and n points
        d2 = (dxh[a:b] - fu).square_() + (dyh[a:b] - fv).square_()
        hit = flat_nonzero(d2 < r * r)
        if hit.numel() == 0:
            level = end
            continue
        row = torch.div(hit, n, rounding_mode="floor") + a  # the offset of each hit
        j = hit - (row - a) * n  # its point
        if end > level + 1 and not uniform:  # a later level counts only where it is reached
            reach = flat_nonzero(r.index_select(0, j) > thr.index_select(0, row))
            row, j = row.index_select(0, reach), j.index_select(0, reach)
        pixels = pix.index_select(0, j) + offset.index_select(0, row)
        zbuf.scatter_reduce_(0, pixels, key.index_select(0, j), "amin")
        level = end


def splat_points(
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
    radius_m: Tensor | None = None,
    observed: Tensor | None = None,
    surface_tol_rel: float = 0.0,
    interpolate: bool = False,
) -> MemoryRender:
    """Z-buffer splat of points at V cameras.

    xyz ``(N, 3)`` world points, rgb ``(N, 3)`` colours, c2w ``(V, 4, 4)``, K ``(V, 3, 3)`` ->
    ``MemoryRender`` with ``(V, C, height, width)`` images.

    1. A point at camera depth z > near_m projects to continuous pixel coordinates (u, v) and
       covers its own pixel plus every pixel whose centre is closer than its footprint radius
       ``r`` to (u, v): ``radius_m (N,)`` world metres projected (``radius_m * fx / z``) when
       given, else ``radius_px * ref_depth_m / z``; clamped to [0.5, max_radius_px]. Each
       pixel shows its nearest covering point (equal depths: the lower index).
    2. Hole filling (when ``min_radius_px`` > 0.5): pixels still empty take the nearest point
       whose centre distance is below ``min_radius_px``. Filling never covers a pixel that
       step 1 drew, so the floor does not fatten foreground edges.
    3. Surface pass (when ``surface_tol_rel`` > 0): a pixel with points inside it whose depth
       is within ``surface_tol_rel`` (relative) of its step-1 depth shows, of those, an
       observed one (``observed (N,)`` bool) before a generated one, then the one projecting
       closest to the pixel centre. A point on the pixel centre itself (within 0.02 px: the
       pixel of the view it was seen from) wins whatever its depth at a camera a frame was
       seen from; in other views, not when a point inside the pixel lies more than
       ``EXACT_TOL_REL`` nearer (``_surface_pass``).
    4. Colour pass (``interpolate``): ``interpolate_colours`` resamples the winner's surface
       bilinearly instead of showing the winner's colour alone.

    The render's ``observed`` channel is ``observed`` of the winner (0 when None). Inputs are
    assumed valid (``SpatialMemory.render`` checks them). Cost: a few passes over the N x V
    projections, then passes over only the points whose footprint reaches each ring of
    neighbours, and, for filling, only the points next to a hole. ``xyz.T`` contiguous (a
    transposed ``(3, N)`` array) saves a copy.
    """
    xyz_t = xyz.T if xyz.T.is_contiguous() else xyz.T.contiguous()
    rank = None if observed is None else (~observed.bool()).long()
    index, depth = zbuffer(
        xyz_t,
        c2w,
        K,
        height,
        width,
        radius_px,
        ref_depth_m,
        max_radius_px,
        min_radius_px,
        near_m,
        radius_m=radius_m,
        rank=rank,
        surface_tol_rel=surface_tol_rel,
    )
    colours = None
    if interpolate:
        colours = interpolate_colours(
            xyz_t, rgb, c2w, K, index, depth, height, width, surface_tol_rel, near_m, rank
        )
    return compose(index, depth, rgb, c2w.shape[0], height, width, observed, colours)


def compose(
    index: Tensor,
    depth: Tensor,
    rgb: Tensor,
    V: int,
    H: int,
    W: int,
    observed: Tensor | None = None,
    colours: Tensor | None = None,
    filled: Tensor | None = None,
) -> MemoryRender:
    """A ``MemoryRender`` from per-pixel winners ``index (V*H*W,)`` (-1: empty) into ``rgb
    (N, 3)`` and ``observed (N,)`` bool (None: nothing observed), and their depths
    ``(V*H*W,)``. ``colours (V*H*W, 3)``: the pixels' colours when they are not the winners'
    (``interpolate_colours``). ``filled (V*H*W,)`` bool: pixels given an observed surface
    no sample won (their colour in ``colours``)."""
    hit = index >= 0
    hit_idx = flat_nonzero(hit)
    win = index.index_select(0, hit_idx)
    shown = hit if filled is None else hit | filled
    if colours is None:
        out_rgb = torch.zeros(V * H * W, 3, device=index.device, dtype=torch.float32)
        out_rgb.index_copy_(0, hit_idx, rgb.index_select(0, win).float())
    else:
        out_rgb = torch.where(shown[:, None], colours.float(), 0.0)
    out_obs = torch.zeros(V * H * W, device=index.device, dtype=torch.float32)
    if observed is not None:
        out_obs.index_copy_(0, hit_idx, observed.index_select(0, win).float())
    if filled is not None:
        out_obs = torch.where(filled, 1.0, out_obs)
    return MemoryRender(
        rgb=out_rgb.view(V, H, W, 3).permute(0, 3, 1, 2).contiguous(),
        depth=depth.view(V, 1, H, W),
        mask=shown.float().view(V, 1, H, W),
        observed=out_obs.view(V, 1, H, W),
    )


_INTERP_TOL_REL = 0.03  # one surface for the colour pass when it is given no tolerance
KEEP_PX = 0.2  # a winner at most about this far (per axis) from a pixel centre keeps the pixel


def interpolate_colours(
    xyz_t: Tensor,
    rgb: Tensor,
    c2w: Tensor,
    K: Tensor,
    index: Tensor,
    depth: Tensor,
    height: int,
    width: int,
    tol_rel: float,
    near_m: float,
    rank: Tensor | None = None,
    point_index: Tensor | None = None,
    return_keep: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Bilinear colours for a splat's winners: ``(V*H*W, 3)`` float32 (with ``return_keep``
    also ``(V*H*W,)`` bool: the pixels whose winner is near enough its centre to keep its
    colour, the rule below).

    Points ``xyz_t (3, n)`` with colours ``rgb (N, 3)`` and ``rank (N,)`` (0 observed, 1
    generated; None: one rank), where ``point_index (n,)`` maps the points of ``xyz_t`` into
    ``rgb``, ``rank`` and ``index`` (None: n = N, the same points), cameras ``c2w (V, 4, 4)``,
    ``K (V, 3, 3)``, and the splat's winner per pixel ``index (V*H*W,)`` (-1: empty) with its
    depth. Each point gives each of the four pixel centres around its projection the tent weight
    (1 - |du|)(1 - |dv|); a pixel shows the weighted mean of the points on its winner's surface
    (depth within ``tol_rel`` of the winner's; ``_INTERP_TOL_REL`` when ``tol_rel`` <= 0).
    This is how a warp resamples an image: the nearest sample alone shifts the texture by up to
    half a pixel. A pixel keeps its
    winner's colour when the winner lies within about ``KEEP_PX`` of its centre (its tent
    weight is at least (1 - ``KEEP_PX``)^2: a view the memory holds gets its own frame back,
    and where many views left samples the nearest is better than a blend of samples of other
    footprints) or when no point of its surface is within a pixel of it (a magnified footprint).
    With ranks given, only pixels whose winner is observed are resampled, from observed points
    only: the model redraws a generated surface at every view of it and the memory refits it
    from those frames, so resampling it at every render would blur it once more each round.

    Measured on the held-out walks of ``python -m worldmem.eval walk`` (true frames only): with
    only the start frame in memory, start revisits over the pixels it saw 30.35 dB nearest,
    31.06 with this pass (31.43 blending always); with every other frame in memory, the frames
    between 31.36 -> 31.81 and the frames it holds 37.58 -> 37.78 (34.83 blending always)."""
    V, H, W = c2w.shape[0], int(height), int(width)
    P = V * H * W
    tol_rel = tol_rel if tol_rel > 0 else _INTERP_TOL_REL
    if xyz_t.shape[1] == 0 or P == 0:
        empty = torch.zeros(P, 3, device=index.device)
        return (
            (empty, torch.zeros(P, dtype=torch.bool, device=index.device)) if return_keep else empty
        )
    hit = index >= 0
    win = index.clamp(min=0)
    out = rgb.index_select(0, win).float()
    if rank is not None:  # only observed points take part
        ranks = rank if point_index is None else rank.index_select(0, point_index)
        obs = flat_nonzero(ranks == 0)
        if obs.numel() < xyz_t.shape[1]:
            xyz_t = xyz_t.index_select(1, obs)
            point_index = obs if point_index is None else point_index.index_select(0, obs)
    p = _project(xyz_t.float(), c2w.float(), K.float())  # (V, 3, n)
    z = p[:, 2]
    u = p[:, 0] / z - 0.5  # in pixel-centre units: centre (x, y) is at u = x, v = y
    v = p[:, 1] / z - 0.5
    sel = flat_nonzero((z > near_m) & (u > -1) & (u < W) & (v > -1) & (v < H))  # NaN-safe
    n = xyz_t.shape[1]
    z, u, v = (t.reshape(-1).index_select(0, sel) for t in (z, u, v))
    view = torch.div(sel, n, rounding_mode="floor")
    # occlusion cull: the four pixel centres around a projection lie in the 3x3 window of the
    # pixel it falls in; a point farther than that window's deepest winner (empty: 0) by more
    # than the tolerance is on no winner's surface there
    deepest = F.max_pool2d(depth.view(V, 1, H, W), 3, stride=1, padding=1).view(-1)
    px = (u + 0.5).floor().clamp(0, W - 1).long()
    py = (v + 0.5).floor().clamp(0, H - 1).long()
    near_front = z <= deepest.index_select(0, (view * H + py) * W + px) * (1 + tol_rel)
    front = flat_nonzero(near_front)
    if front.numel() < sel.numel():
        sel, z, u, v, view = (t.index_select(0, front) for t in (sel, z, u, v, view))
    point = sel - view * n
    if point_index is not None:
        point = point_index.index_select(0, point)

    # the four pixel centres around each projection: (4, m) pixels and tent weights, pixels
    # outside the image sent to a spare slot P that nothing reads
    x0, y0 = u.floor(), v.floor()
    au, av = u - x0, v - y0
    dx = torch.tensor([0.0, 1.0, 0.0, 1.0], device=u.device)[:, None]
    dy = torch.tensor([0.0, 0.0, 1.0, 1.0], device=u.device)[:, None]
    x, y = x0 + dx, y0 + dy
    w = (dx * au + (1 - dx) * (1 - au)) * (dy * av + (1 - dy) * (1 - av))
    inside = (x >= 0) & (x < W) & (y >= 0) & (y < H)
    pix = torch.where(inside, (view * H + y.long()) * W + x.long(), P)

    # a point counts at a pixel on its winner's surface (observed points only, with ranks)
    ref = torch.where(hit, depth, torch.nan)
    ref = torch.cat([ref, ref.new_full((1,), torch.nan)]).index_select(0, pix.view(-1))
    ok = (z - ref.view(4, -1)).abs() <= ref.view(4, -1) * tol_rel  # NaN: False
    w = torch.where(ok, w, 0.0).view(-1)
    pix = pix.view(-1)
    wsum = torch.bincount(pix, w, minlength=P + 1)[:P]
    colour = rgb.index_select(0, point).float()  # (m, 3)
    acc = torch.stack(
        [torch.bincount(pix, (w.view(4, -1) * colour[:, c]).view(-1), minlength=P + 1)[:P]
         for c in range(3)],
        dim=1,
    )  # fmt: skip
    # a winner this near its pixel centre keeps the pixel
    win_ext = torch.cat([win, win.new_full((1,), -1)])
    near = (win_ext.index_select(0, pix).view(4, -1) == point) & (
        w.view(4, -1) >= (1 - KEEP_PX) ** 2
    )
    keep = torch.bincount(pix, near.view(-1).to(w.dtype), minlength=P + 1)[:P] > 0
    use = hit & (wsum > 1e-6) & ~keep
    if rank is not None:  # generated surfaces as they were made (see the docstring)
        use &= rank.index_select(0, win) == 0
    colours = torch.where(use[:, None], (acc / wsum.clamp(min=1e-6)[:, None]).float(), out)
    return (colours, keep) if return_keep else colours


def zbuffer(
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
    radius_m: Tensor | None = None,
    rank: Tensor | None = None,
    surface_tol_rel: float = 0.0,
    exact_tol_rel: float = EXACT_TOL_REL,
) -> tuple[Tensor, Tensor]:
    """The splat of ``splat_points`` without colours: points ``xyz_t (3, N)`` -> (winning point
    per pixel ``(V*H*W,)`` int64, -1 where empty; its depth ``(V*H*W,)``, 0 where empty).
    ``radius_m (N,)``: per-point world footprint radius; ``rank (N,)`` int64 in {0, 1}: the
    surface pass prefers rank 0 (see ``splat_points``).

    The z-buffer is padded by ``2 * max_radius_px`` pixels on every side of each view: a kept
    point's own pixel is at most ``max_radius_px`` outside the image and its footprint reaches
    at most ``max_radius_px`` further, so every write lands inside its view's padded buffer and
    no pass needs bounds checks; the padding is cropped at the end. After the own-pixel pass,
    only the points that can still win a pixel of their footprint draw it (``_may_win``): in
    a memory seen from inside a room most points lie behind a nearer surface, and the
    footprint pass was most of the cost."""
    V, N = c2w.shape[0], xyz_t.shape[1]
    dev = xyz_t.device
    H, W = int(height), int(width)
    if N == 0 or V == 0:
        return (
            torch.full((V * H * W,), -1, dtype=torch.int64, device=dev),
            torch.zeros(V * H * W, device=dev),
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
    sel = flat_nonzero(keep)  # (view, point) pairs as view * N + point
    z = z.reshape(-1).index_select(0, sel)
    u = u.view(-1).index_select(0, sel)
    v = v.view(-1).index_select(0, sel)
    iu, iv = u.floor(), v.floor()
    fu, fv = u - iu, v - iv  # position inside the own pixel, in [0, 1)
    view = None if V == 1 else torch.div(sel, N, rounding_mode="floor")
    point = sel if view is None else sel - view * N
    pad = 2 * R
    Wp, Hp = W + 2 * pad, H + 2 * pad
    if Hp * Wp < 1 << 23:  # whole numbers this small are exact in float32: one conversion
        own = (iv * Wp + iu).long() + (pad * Wp + pad)  # own pixel in the padded buffer
    else:
        own = (iv.long() + pad) * Wp + (iu.long() + pad)
    if view is not None:
        own += view * (Hp * Wp)
    key = (z.view(torch.int32).long() << 32) | point  # depth bits, then point index

    # 1. own pixels, then the footprints that reach beyond them
    zbuf = torch.full((V * Hp * Wp,), _EMPTY, dtype=torch.int64, device=dev)
    zbuf.scatter_reduce_(0, own, key, "amin")
    own_front = zbuf.clone() if surface_tol_rel > 0 else None  # each pixel's nearest own point
    if radius_m is None:
        r = radius_px * ref_depth_m / z
    else:
        fx = K[:, 0, 0].float()
        fx = fx.expand(z.numel()) if view is None else fx.index_select(0, view)
        r = radius_m.index_select(0, point) * fx / z
    r = r.clamp(_OWN_PIXEL_RADIUS_PX, float(max(R, 0.5)))
    if R >= 1:
        # beyond the own pixel, and not hidden at every pixel it reaches (occlusion cull)
        beyond = r > _OWN_PIXEL_RADIUS_PX
        if bool(beyond.any()):
            beyond &= _may_win(zbuf, z, own, r, V, Hp, Wp)
        g = flat_nonzero(beyond)
        _scatter_footprints(zbuf, *_take(g, own, key, r, fu, fv), Wp, R)

    # 2. fill the holes left between sparse points
    fill_r = min(float(min_radius_px), float(R))
    if fill_r > _OWN_PIXEL_RADIUS_PX:
        inner = (slice(None), slice(pad, pad + H), slice(pad, pad + W))
        empty = torch.zeros(V, Hp, Wp, dtype=torch.bool, device=dev)
        empty[inner] = zbuf.view(V, Hp, Wp)[inner] == _EMPTY
        if bool(empty.any()):
            near_hole = _dilate(empty, math.ceil(fill_r - 0.5)).view(-1)  # reach <= R
            g = flat_nonzero((r < fill_r) & near_hole.index_select(0, own))
            if g.numel():
                own_g, key_g, r_g, fu_g, fv_g = _take(g, own, key, r, fu, fv)
                filled = torch.full_like(zbuf, _EMPTY)
                fr = torch.full_like(r_g, fill_r)
                _scatter_footprints(filled, own_g, key_g, fr, fu_g, fv_g, Wp, R, uniform=True)
                zbuf = torch.where(empty.view(-1), filled, zbuf)  # filling draws only holes

    hit = zbuf != _EMPTY
    index = torch.where(hit, zbuf & 0xFFFFFFFF, -1)
    depth = torch.where(hit, (zbuf >> 32).to(torch.int32).view(torch.float32), 0.0)
    if surface_tol_rel > 0:
        _surface_pass(
            index, depth, z, fu, fv, point, own, rank, surface_tol_rel,
            (own_front, exact_tol_rel, Hp * Wp, H * W),
        )  # fmt: skip

    def crop(t: Tensor) -> Tensor:
        return t.view(V, Hp, Wp)[:, pad : pad + H, pad : pad + W].reshape(-1)

    return crop(index), crop(depth)


def _may_win(zbuf: Tensor, z: Tensor, own: Tensor, r: Tensor, V: int, Hp: int, Wp: int) -> Tensor:
    """Which points (flat ``z``, ``own``, ``r``) may still win a pixel of their footprint:
    ``(n,)`` bool. ``zbuf`` holds the own-pixel pass. A footprint of radius r reaches pixels up
    to k = floor(r + 1/2) from its own pixel (an offset d has threshold |d| - 1/2 < r), so a
    point deeper than every own-pixel winner in that (2k + 1)^2 window (no empty pixel in it)
    loses all its pixels; the hole filling, which draws only empty pixels, gives it none
    either."""
    hit = zbuf != _EMPTY
    front = torch.where(hit, (zbuf >> 32).to(torch.int32).view(torch.float32), torch.inf)
    reach = (r + 0.5).floor().clamp(min=1)  # points of radius <= 1/2 are not asked about
    deepest = [front.view(V, 1, Hp, Wp)]  # deepest[k]: the (2k + 1)^2 window's deepest
    for _ in range(int(reach.max())):
        wider = F.max_pool2d(deepest[-1], (1, 3), stride=1, padding=(0, 1))
        deepest.append(F.max_pool2d(wider, (3, 1), stride=1, padding=(1, 0)))
    if len(deepest) == 2:  # every footprint reaches one pixel: one window
        return z <= deepest[1].view(-1).index_select(0, own)
    table = torch.stack(deepest).view(-1)
    return z <= table.index_select(0, reach.long() * (V * Hp * Wp) + own)


def _dilate(mask: Tensor, reach: int) -> Tensor:
    """``(V, H, W)`` bool: any of ``mask (V, H, W)`` within ``reach`` pixels (a (2 reach + 1)^2
    window), computed on slices; the outer ring of width ``reach`` is left False (the callers'
    masks are False there and nothing reads it)."""
    H, W = mask.shape[1:]
    rows = mask[:, :, reach : W - reach].clone()  # (V, H, W - 2 reach)
    for d in range(1, reach + 1):
        rows |= mask[:, :, reach - d : W - reach - d]
        rows |= mask[:, :, reach + d : W - reach + d]
    out = torch.zeros_like(mask)
    core = out[:, reach : H - reach, reach : W - reach]
    core.copy_(rows[:, reach : H - reach])
    for d in range(1, reach + 1):
        core |= rows[:, reach - d : H - reach - d]
        core |= rows[:, reach + d : H - reach + d]
    return out


def _take(idx: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
    """``t[idx]`` of each flat tensor (the tensors themselves when ``idx`` takes them all)."""
    if idx.numel() == tensors[0].numel():
        return tensors
    return tuple(t.index_select(0, idx) for t in tensors)


_SUBPIXEL_BITS = 20  # quantisation of the squared distance to the pixel centre (in [0, 0.5])
_EXACT_PX = 0.02  # a point this close to a pixel centre is the pixel a view saw: it wins


def _surface_pass(
    index: Tensor,
    depth: Tensor,
    z: Tensor,
    fu: Tensor,
    fv: Tensor,
    point: Tensor,
    own: Tensor,
    rank: Tensor | None,
    tol_rel: float,
    exact_rule: tuple[Tensor, float, int, int],
) -> None:
    """In place on ``index, depth`` (per pixel of the padded z-buffer): each pixel with points
    inside it on its front surface (depth <= its depth * (1 + tol_rel)) takes, of those, the
    lowest rank, then the projection closest to the pixel centre, then the lowest flat
    position. A point within ``_EXACT_PX`` of the centre (a sample seen by this very camera:
    its own pixel) wins over the others whatever its depth, so a camera the memory was filled
    from gets its own frame back, even where another view's edge falls into the pixel or a
    later frame put its surface in front. A view is taken for such a camera when at least
    ``EXACT_VIEW_SHARE`` of its pixels hold a point on their centre; in any other view a
    point that happens to land on a centre is passed over when a point inside its pixel lies
    more than ``exact_tol_rel`` nearer (a hidden point would otherwise show through).
    ``exact_rule`` = (the own-pixel pass's keys per pixel, ``exact_tol_rel``, pixels per
    padded view, pixels per view). Points are the flat (view, point) pairs of ``zbuffer``:
    depth ``z``, position in the own pixel ``fu, fv``, point index ``point``, own pixel
    ``own`` (padded: points outside the image only touch the padding)."""
    n = z.numel()
    if n == 0:
        return
    if n >= 1 << 32:
        raise ValueError(f"splat: at most 2**32 - 1 (view, point) pairs, got {n}")
    d2 = (fu - 0.5).square() + (fv - 0.5).square()  # in [0, 0.5]
    exact = d2 < _EXACT_PX**2
    ex = flat_nonzero(exact)
    if ex.numel():  # rare but at a camera the memory was filled from
        own_front, exact_tol_rel, view_px, image_px = exact_rule
        at = own.index_select(0, ex)
        front = (own_front.index_select(0, at) >> 32).to(torch.int32).view(torch.float32)
        hidden = z.index_select(0, ex) > front * (1 + exact_tol_rel)
        view = torch.div(at, view_px, rounding_mode="floor")
        filled_from = torch.bincount(view, minlength=own_front.numel() // view_px)
        hidden &= (filled_from < EXACT_VIEW_SHARE * image_px).index_select(0, view)
        exact[ex[hidden]] = False
    g = flat_nonzero((z <= depth.index_select(0, own) * (1 + tol_rel)) | exact)
    if g.numel() == 0:
        return
    q = (d2.index_select(0, g) * ((1 << _SUBPIXEL_BITS) / 0.5)).long()
    q = q.clamp(max=(1 << _SUBPIXEL_BITS) - 1)
    key = (q << 32) | g | ((~exact.index_select(0, g)).long() << (33 + _SUBPIXEL_BITS))
    if rank is not None:
        key |= rank.index_select(0, point.index_select(0, g)) << (32 + _SUBPIXEL_BITS)
    buf = torch.full_like(index, _EMPTY)
    buf.scatter_reduce_(0, own.index_select(0, g), key, "amin")
    hit = flat_nonzero(buf != _EMPTY)
    pos = buf.index_select(0, hit) & 0xFFFFFFFF
    index[hit] = point.index_select(0, pos)
    depth[hit] = z.index_select(0, pos)


def gsplat_available() -> bool:
    """True when the gsplat backend can run here (CUDA and an importable gsplat)."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def gsplat_points(
    xyz: Tensor,
    rgb: Tensor,
    c2w: Tensor,
    K: Tensor,
    height: int,
    width: int,
    sigma_m: float | Tensor,
    near_m: float = 0.1,
    far_m: float = 1e10,
    alpha_threshold: float = 0.5,
    observed: Tensor | None = None,
) -> MemoryRender:
    """Points as opaque isotropic Gaussians through ``gsplat.rasterization`` (CUDA only).

    xyz ``(N, 3)``, rgb ``(N, 3)``, c2w ``(V, 4, 4)``, K ``(V, 3, 3)`` -> ``MemoryRender``
    ``(V, C, height, width)``. Each point is a Gaussian of standard deviation ``sigma_m``
    metres (a float, or ``(N,)`` per point). rgb is the alpha-normalised colour, depth
    gsplat's expected depth, mask is 1 where the accumulated alpha exceeds
    ``alpha_threshold``, and observed is 1 where the alpha-normalised share of observed
    points (``observed (N,)`` bool; None: none) is above one half.
    """
    if not gsplat_available():
        raise ValueError("render_backend='gsplat' needs CUDA and the gsplat package")
    from gsplat import rasterization

    V, N = c2w.shape[0], xyz.shape[0]
    if N == 0:
        return empty_render(V, height, width, xyz.device)
    dev = xyz.device
    quats = torch.zeros(N, 4, device=dev)
    quats[:, 0] = 1  # identity rotation (w, x, y, z)
    sigma = torch.as_tensor(sigma_m, device=dev, dtype=torch.float32).expand(N)
    obs = torch.zeros(N, device=dev) if observed is None else observed.float()
    colors, alphas, _ = rasterization(
        means=xyz.float().contiguous(),
        quats=quats,
        scales=sigma[:, None].expand(N, 3).contiguous(),
        opacities=torch.ones(N, device=dev),
        colors=torch.cat([rgb.float(), obs[:, None]], 1),
        viewmats=se3_inverse(c2w.float()),
        Ks=K.float(),
        width=width,
        height=height,
        near_plane=near_m,
        far_plane=far_m,
        render_mode="RGB+ED",
    )  # colors (V, H, W, 5): rgb, observed, depth; alphas (V, H, W, 1)
    alpha = alphas[..., 0]
    mask = alpha > alpha_threshold
    norm = colors[..., :4] / alpha.clamp(min=1e-6)[..., None]
    rgb_img = torch.where(mask[..., None], norm[..., :3].clamp(0, 1), 0.0)
    obs_img = (mask & (norm[..., 3] > 0.5)).float()
    depth = torch.where(mask, colors[..., 4], 0.0)
    return MemoryRender(
        rgb=rgb_img.permute(0, 3, 1, 2).contiguous(),
        depth=depth[:, None].contiguous(),
        mask=mask[:, None].float(),
        observed=obs_img[:, None],
    )
