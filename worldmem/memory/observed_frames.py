"""The latest observed frames as they were given, and a render's observed pixels resampled
from them.

A sample of the spatial memory is one pixel of the frame it came from. Seen from a new camera
(a little nearer, or at an angle) a pixel shows the nearest sample or a blend of the samples
around it, so the frame comes back in blocks or blurred. Resampling the frame itself is what a
warp does: each pixel whose winner is observed is carried back, through the render's own
depth, into the kept observed frames, and the frame that sees that point finest (smallest
footprint, depth / fx) and unoccluded (its depth at the nearest pixel agrees within
``VISIBLE_TOL_REL``) gives its colour there: bicubic (Keys' cubic convolution, a =
``CUBIC_A``, as OpenCV's and torch's) where all sixteen taps lie on the point's surface, else
bilinear over the four nearest taps that do (the others left out and the rest renormalised),
so an edge never blends the foreground into the background, nor rings across it.

A bilinear read at a fractional offset averages neighbouring pixels, so even a view turned a
little from the observed one comes back softer than it was; the cubic kernel keeps most of that
detail. Read through the true depth at the cameras of 32 held-out walks, the start frame scores
29.29 dB bilinearly and 29.63 bicubically over the pixels it saw (higher on 26 walks of 32),
at sharpness 0.50 and 0.75 there (``python benchmarks/resample_kernel.py``).

A render shows each sample as a disc at one depth, so a surface seen nearer and at a slant
than it was observed comes back as steps, and a read at a step's point lands beside the
pixel's true point (a wall beside the camera came back as vertical bands). Before it is read,
each pixel's point is moved along its ray onto the surface the frame observed (``on_surface``:
two secant steps on the gap between the point's depth in the frame and the frame's depth
there), and the render shows that depth too. A tap, and the nearest pixel that decides whether
the frame sees the point at all, counts as on the point's surface within ``VISIBLE_TOL_REL``
plus the surface's own change of inverse depth across the distance (the smaller of the steps
to either side of the nearest pixel, so an outline does not widen it). The frame's depth
between its pixels, and these tolerances, are taken in inverse depth, which is affine across
the image on a plane: an oblique floor comes back exactly between its pixels. Through the
true depth with the start frame alone in memory, over the pixels the start saw (worlds 100002,
100005 and 100012, three kinds of walk), the render gave back 25.86 dB with the bicubic read
alone and 26.96 with the move and the slope-aware taps (in depth, as first written); world
100012's out-and-back, along a checkered wall, 21.79 -> 23.59.

A pixel whose own sample lands on its centre (within ``render.KEEP_PX``) keeps that sample's
colour, so a view the memory was filled from comes back exactly.

The discs leave gaps where a surface is seen nearer or more obliquely than it was observed.
``SpatialMemory`` gives such a pixel a guess of depth (``spread_depth``: the nearest of the
resampled pixels around it) and ``resample(..., strict=True)`` shows the observed surface there
only when the point lands on it with all four nearest pixels of the frame on it, so never
across an outline.

Measured with the shipped weights (``python -m worldmem.eval walk``, against the same weights
with ``render_colour="bilinear"``): over the pixels the start saw at start revisits 29.94 ->
30.17 dB, KID 0.138 -> 0.132, level over all frames; ``gt`` revisits 46.68 / 42.47 -> 46.90 /
42.85 dB.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmem.geometry.camera import project_points, unproject_depth
from worldmem.memory._checks import parse_views
from worldmem.memory._tensor_ops import flat_nonzero

__all__ = ["VISIBLE_TOL_REL", "ObservedFrames", "spread_depth"]

VISIBLE_TOL_REL = 0.05  # a frame sees a point when its depth there agrees within this fraction
# a frame whose pixels are finer than this fraction of the target's is not resampled: a
# bilinear read of a finer image aliases, the render's blend of the samples in a pixel does not
MIN_SCALE = 0.75
# a read's point is moved along its ray onto the observed surface by at most this fraction of
# its range (``on_surface``), from a first step of this fraction
REFINE_MAX_REL = 0.25
REFINE_STEP_REL = 0.02
REFINE_GAP_M = 0.005  # ... and kept only when it ends this near the surface
# Keys' cubic convolution parameter of the read (as OpenCV's and torch's bicubic)
CUBIC_A = -0.75


def _keys(x: Tensor) -> Tensor:
    """Keys' cubic convolution kernel at offsets ``x`` (pixels), with a = ``CUBIC_A``."""
    a, x = CUBIC_A, x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, 0.0))


def _depth_at(uv: Tensor, depth: Tensor) -> Tensor:
    """``depth (H, W)`` read at pixel coordinates ``uv (m, 2)`` (centres at +0.5), its inverse
    bilinearly (a plane's inverse depth is affine across the image, so a plane comes back
    exactly between its pixels); NaN where a tap is outside or unknown (0)."""
    H, W = depth.shape
    uv = torch.where(uv.isfinite(), uv, -2.0)  # outside
    u, v = uv[:, 0] - 0.5, uv[:, 1] - 0.5
    x0, y0 = u.floor(), v.floor()
    au, av = u - x0, v - y0
    flat = depth.reshape(-1)
    out = torch.zeros_like(u)
    for dx in (0, 1):
        for dy in (0, 1):
            tx, ty = x0 + dx, y0 + dy
            d = flat[(ty.clamp(0, H - 1) * W + tx.clamp(0, W - 1)).long()]
            ok = (tx >= 0) & (tx < W) & (ty >= 0) & (ty < H) & (d > 0)
            w = (au if dx else 1 - au) * (av if dy else 1 - av)
            out = out + torch.where(ok, w / d, torch.nan)
    return 1 / out


def on_surface(
    pts: Tensor, origin: Tensor, c2w: Tensor, K: Tensor, depth: Tensor, near_m: float
) -> tuple[Tensor, Tensor]:
    """Points ``pts (m, 3)`` on the rays from ``origin (m, 3)`` moved along them onto the
    surface a frame (``c2w``, ``K``, ``depth (H, W)``) observed: two secant steps on the gap
    between a point's depth in the frame and the frame's depth where it projects. A render
    shows each sample as a disc at one depth, so a surface seen nearer and at a slant than it
    was observed comes back as steps, and a read at a step's point lands beside the pixel's
    true point. A point stays where it was when a step fails: it leaves the frame or its
    known depth, moves over ``REFINE_MAX_REL`` of its range, or ends more than
    ``REFINE_GAP_M`` off the surface (across an outline). -> (the scale ``s (m,)`` of each
    point's offset from its origin, ``on (m,)`` bool: the step ended on the surface)."""

    def gap(s: Tensor) -> Tensor:
        at = origin + s.nan_to_num(1.0)[:, None] * (pts - origin)
        uv, z = project_points(at, c2w.float(), K.float())
        return torch.where((z > near_m) & s.isfinite(), z - _depth_at(uv, depth), torch.nan)

    s0, s1 = (
        torch.ones(pts.shape[0], device=pts.device),
        torch.full((pts.shape[0],), 1 + REFINE_STEP_REL, device=pts.device),
    )
    g0, g1 = gap(s0), gap(s1)
    for _ in range(2):
        s2 = s1 - g1 * (s1 - s0) / (g1 - g0)
        s0, g0, s1 = s1, g1, s2
        g1 = gap(s1)
    ok = s1.isfinite() & ((s1 - 1).abs() <= REFINE_MAX_REL) & (g1.abs() <= REFINE_GAP_M)
    return torch.where(ok, s1, 1.0), ok


def spread_depth(depth: Tensor, known: Tensor, px: int) -> Tensor:
    """Depths ``(V, H, W)`` known at ``known (V, H, W)`` spread to the pixels within ``px``
    of them: at each unknown pixel the nearest known depth in the smallest square window
    (sides 3, 5, ... 2 px + 1) that holds any, so beside an outline it is the front surface's;
    0 elsewhere and at the known pixels."""
    near = torch.where(known, 1 / depth.clamp(min=1e-6), 0.0)[:, None]
    out = torch.zeros_like(near)
    for _ in range(px):  # the largest inverse depth within r pixels, r = 1 .. px
        near = F.max_pool2d(near, 3, 1, 1)
        out = torch.where((out == 0) & (near > 0), near, out)
    out = torch.where(known[:, None], 0.0, out)
    return torch.where(out > 0, 1 / out.clamp(min=1e-12), 0.0)[:, 0]


def _slopes(depth: Tensor) -> tuple[Tensor, Tensor]:
    """``depth (H, W)`` (0: unknown) -> the change of its inverse per pixel across and down
    ``(H, W)`` each: the smaller of the steps to the two neighbours (the one known step at an
    edge or beside an unknown pixel; 0 with none). A plane's inverse depth is affine across the
    image, so its steps are the same everywhere on it, however oblique."""
    inf = math.inf
    d = torch.where(depth > 0, 1 / depth.clamp(min=1e-12), 0.0)
    step_x = torch.where((d[:, 1:] > 0) & (d[:, :-1] > 0), (d[:, 1:] - d[:, :-1]).abs(), inf)
    step_y = torch.where((d[1:] > 0) & (d[:-1] > 0), (d[1:] - d[:-1]).abs(), inf)
    across = torch.minimum(F.pad(step_x, [1, 0], value=inf), F.pad(step_x, [0, 1], value=inf))
    down = torch.minimum(
        F.pad(step_y, [0, 0, 1, 0], value=inf), F.pad(step_y, [0, 0, 0, 1], value=inf)
    )
    return across.nan_to_num(posinf=0.0), down.nan_to_num(posinf=0.0)


class _Read:
    """World points ``pts (m, 3)`` in one kept frame (``c2w``, ``K``, its ``depth (H, W)`` and
    that depth's ``slopes``, ``_slopes(depth)``): ``seen (m,)`` (in front, inside, its depth at
    the nearest pixel agrees and some bilinear tap lies on the point's surface) and
    ``footprint (m,)`` in metres; ``colour`` reads it."""

    def __init__(
        self,
        pts: Tensor,
        c2w: Tensor,
        K: Tensor,
        depth: Tensor,
        slopes: tuple[Tensor, Tensor],
        near_m: float,
    ):
        self.H, self.W = depth.shape
        uv, z = project_points(pts, c2w.float(), K.float())
        self.footprint = z.clamp(min=near_m) / K[0, 0]
        u, v = uv[:, 0] - 0.5, uv[:, 1] - 0.5  # pixel-centre units: centre x at u = x
        inside = (z > near_m) & (u > -0.5) & (u < self.W - 0.5) & (v > -0.5) & (v < self.H - 0.5)
        self.flat_depth = depth.reshape(-1)
        # visible: the frame's depth at the nearest pixel agrees with the point's
        nx, ny = u.round().clamp(0, self.W - 1).long(), v.round().clamp(0, self.H - 1).long()
        d = self.flat_depth[ny * self.W + nx]
        # a surface at a slant changes depth from pixel to pixel: by the smaller of the steps
        # to either side of the nearest pixel (across an outline one side is still the surface)
        slope_x, slope_y = slopes
        self.slope = (slope_x.reshape(-1)[ny * self.W + nx], slope_y.reshape(-1)[ny * self.W + nx])
        # within a pixel's change of it: a render's point of a slanted surface is a step off it
        self.inv_z = 1 / z.clamp(min=near_m)
        inv_d = 1 / d.clamp(min=1e-12)
        tol = VISIBLE_TOL_REL * inv_d + self.slope[0] + self.slope[1]
        self.seen = inside & (d > 0) & ((inv_d - self.inv_z).abs() <= tol)
        self.x0, self.y0 = u.floor(), v.floor()
        self.au, self.av = u - self.x0, v - self.y0
        # the four bilinear taps: on the surface, and their weights there (0 off it)
        self.on = {(dx, dy): self._on(dx, dy) for dy in (0, 1) for dx in (0, 1)}
        self.w = {
            (dx, dy): torch.where(
                on, (self.au if dx else 1 - self.au) * (self.av if dy else 1 - self.av), 0.0
            )
            for (dx, dy), on in self.on.items()
        }
        self.wsum = sum(self.w.values())
        self.seen &= self.wsum > 0

    def _at(self, dx: int, dy: int) -> Tensor:
        """Flat index of pixel (x0 + dx, y0 + dy), clamped into the frame."""
        tx, ty = self.x0 + dx, self.y0 + dy
        return (ty.clamp(0, self.H - 1) * self.W + tx.clamp(0, self.W - 1)).long()

    def _on(self, dx: int, dy: int) -> Tensor:
        """Pixel (x0 + dx, y0 + dy) is inside the frame and on the point's surface."""
        tx, ty = self.x0 + dx, self.y0 + dy
        on = (tx >= 0) & (tx < self.W) & (ty >= 0) & (ty < self.H)
        dt = self.flat_depth[self._at(dx, dy)]
        inv_t = 1 / dt.clamp(min=1e-12)
        sx, sy = self.slope
        tol = VISIBLE_TOL_REL * inv_t + (dx - self.au).abs() * sx + (dy - self.av).abs() * sy
        return on & (dt > 0) & ((inv_t - self.inv_z).abs() <= tol)

    def colour(self, rgb: Tensor) -> Tensor:
        """The frame's ``rgb (3, H, W)`` at the points -> ``(m, 3)``: bicubic where all sixteen
        taps are on the point's surface, else bilinear over the four nearest that are."""
        flat = rgb.reshape(3, -1)
        m = self.inv_z.shape[0]
        acc = torch.zeros(m, 3, device=rgb.device)
        for (dx, dy), w in self.w.items():
            acc += w[:, None] * flat[:, self._at(dx, dy)].T
        bilinear = acc / self.wsum.clamp(min=1e-12)[:, None]
        cubic = torch.zeros(m, 3, device=rgb.device)
        all_on = torch.ones(m, dtype=torch.bool, device=rgb.device)
        ku = [_keys(self.au - dx) for dx in range(-1, 3)]
        kv = [_keys(self.av - dy) for dy in range(-1, 3)]
        for dy in range(-1, 3):
            for dx in range(-1, 3):
                all_on &= self.on[(dx, dy)] if (dx, dy) in self.on else self._on(dx, dy)
                cubic += (ku[dx + 1] * kv[dy + 1])[:, None] * flat[:, self._at(dx, dy)].T
        return torch.where(all_on[:, None], cubic.clamp(0, 1), bilinear)


class ObservedFrames:
    """The rgb, depth and camera of the latest ``capacity`` observed frames; ``resample`` gives
    a render's observed pixels their colour from them."""

    def __init__(self, capacity: int, near_m: float, device: torch.device):
        self.capacity = capacity
        self.near_m = near_m
        self.device = device
        self.frames = []

    @property
    def frames(self) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """(c2w (4, 4), K (3, 3), rgb (3, H, W), depth (H, W) with 0 where unknown), oldest
        first."""
        return self._frames

    @frames.setter
    def frames(self, frames: list[tuple[Tensor, Tensor, Tensor, Tensor]]) -> None:
        self._frames = list(frames)
        self._slopes = [_slopes(depth) for *_, depth in self._frames]  # once per frame

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, rgb: Tensor, depth: Tensor, c2w: Tensor, K: Tensor) -> None:
        """Frames ``rgb (F, 3, H, W)``, ``depth (F, H, W)`` (0 where unknown or not inserted),
        ``c2w (F, 4, 4)``, ``K (F, 3, 3)``; the oldest go past ``capacity``."""
        if self.capacity == 0:
            return
        for f in range(rgb.shape[0]):
            self._frames.append((c2w[f].clone(), K[f].clone(), rgb[f].clone(), depth[f].clone()))
            self._slopes.append(_slopes(self._frames[-1][3]))
        drop = max(0, len(self._frames) - self.capacity)
        del self._frames[:drop], self._slopes[:drop]

    def resample(
        self,
        c2w: Tensor,
        K: Tensor,
        depth: Tensor,
        want: Tensor,
        height: int,
        width: int,
        strict: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Colours for the pixels ``want (V*H*W,)`` bool of V views (``c2w (V, 4, 4)``, ``K (V,
        3, 3)``, ``height x width``) whose surface lies at z-depth ``depth (V*H*W,)``: ->
        (rgb ``(V*H*W, 3)``, found ``(V*H*W,)`` bool, depth ``(V*H*W,)``). A pixel is found
        when some kept frame sees its point; rgb is 0 elsewhere; depth is the given one but
        where a found pixel's point was moved onto the observed surface (``on_surface``).
        ``strict``: a pixel is found only when its point ends on the surface with all four
        nearest pixels of the frame on it (the depth given is a guess, not a sample's; near an
        outline the frame's depth between its pixels is neither surface's)."""
        P = want.shape[0]
        rgb = torch.zeros(P, 3, device=depth.device)
        found = torch.zeros(P, dtype=torch.bool, device=depth.device)
        sel = flat_nonzero(want & (depth > 0))
        if not self.frames or sel.numel() == 0:
            return rgb, found, depth
        H, W = int(height), int(width)
        V = c2w.shape[0]
        maps = depth.float().view(V, H, W)
        pts = unproject_depth(maps, c2w.float(), K.float()).reshape(-1, 3).index_select(0, sel)
        fx = K[:, 0, 0].float().repeat_interleave(H * W).index_select(0, sel)
        target_footprint = depth.float().index_select(0, sel) / fx
        best = torch.full((sel.numel(),), float("inf"), device=depth.device)
        frame = torch.full((sel.numel(),), -1, dtype=torch.long, device=depth.device)
        slopes = self._slopes
        for i, (f2w, fK, _, fdepth) in enumerate(self.frames):  # later frames win ties
            read = _Read(pts, f2w, fK, fdepth, slopes[i], self.near_m)
            ok = read.seen & (read.footprint >= MIN_SCALE * target_footprint)
            better = ok & (read.footprint <= best)
            best = torch.where(better, read.footprint, best)
            frame = torch.where(better, i, frame)
        colour = torch.zeros(sel.numel(), 3, device=depth.device)
        scale = torch.ones(sel.numel(), device=depth.device)
        origin = c2w[:, :3, 3].float().repeat_interleave(H * W, 0).index_select(0, sel)
        for i in frame.unique().tolist():
            if i >= 0:  # each pixel read once, from the frame that sees its point finest
                f2w, fK, frgb, fdepth = self.frames[i]
                mine = flat_nonzero(frame == i)
                o, p = origin[mine], pts[mine]
                s, on = on_surface(p, o, f2w, fK, fdepth, self.near_m)
                read = _Read(o + s[:, None] * (p - o), f2w, fK, fdepth, slopes[i], self.near_m)
                c = read.colour(frgb)
                if strict:  # and away from an outline: all four taps on its surface
                    whole = read.seen & torch.stack(list(read.on.values())).all(0)
                    frame[mine] = torch.where(on & whole, i, -1)
                else:
                    back = flat_nonzero(~read.seen)  # moved off that frame's surface: the render's
                    if back.numel():
                        s[back] = 1.0
                        at = o[back] + (p[back] - o[back])  # s = 1, as the first read's points
                        again = _Read(at, f2w, fK, fdepth, slopes[i], self.near_m)
                        c[back] = again.colour(frgb)
                colour[mine] = c
                scale[mine] = s
        rgb[sel] = colour
        found[sel] = frame >= 0
        moved = depth.clone()
        moved[sel] = depth.index_select(0, sel) * scale
        return rgb, found, moved

    def state_dict(self) -> dict:
        """``observed_c2w (F, 4, 4)``, ``observed_K (F, 3, 3)``, ``observed_size (F, 2)`` (H,
        W), ``observed_rgb`` and ``observed_depth`` (flattened and concatenated)."""
        fr = self.frames
        if not fr:
            return {
                "observed_c2w": torch.zeros(0, 4, 4),
                "observed_K": torch.zeros(0, 3, 3),
                "observed_size": torch.zeros(0, 2, dtype=torch.int64),
                "observed_rgb": torch.zeros(0),
                "observed_depth": torch.zeros(0),
            }
        return {
            "observed_c2w": torch.stack([f[0] for f in fr]),
            "observed_K": torch.stack([f[1] for f in fr]),
            "observed_size": torch.tensor([list(f[3].shape) for f in fr], dtype=torch.int64),
            "observed_rgb": torch.cat([f[2].flatten() for f in fr]),
            "observed_depth": torch.cat([f[3].flatten() for f in fr]),
        }

    def parse_state(self, state: dict) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """The frames of a ``state_dict`` (checked; nothing changes): a state without these
        entries (saved before the frames were kept) has none."""
        maps = {"rgb": 3, "depth": 1}
        return parse_views(state, "observed", "observed-frame", maps, self.device, self.capacity)
