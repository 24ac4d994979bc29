"""Procedural 3D worlds, rendered by vectorised ray casting, with revisiting camera paths.

A world is one closed axis-aligned enclosure (the room, the corridor, or the plaza with its
building facades and a sky ceiling) plus obstacles inside it: axis-aligned boxes (pillars,
crates, tables, doors, paintings, kiosks), vertical capped cylinders (pillars, tree trunks,
fountains, lamp posts) and spheres. Every ray meets the enclosure, so every pixel gets a finite
depth. Rendering intersects all pixels of a chunk of frames with all primitives at once
(analytic ray-primitive tests), textures are procedural functions of the world-space hit point
(bricks, checkers, stripes, value noise, wood grain, tiles, windows, sky), box-filtered by the
pixel footprint so distant patterns do not alias, and shading is Lambert with a key light that
casts shadows from the obstacles (the enclosure casts none), a fill light and ambient.

Conventions are those of ``worldmem.geometry``: OpenCV cameras (x right, y down, z forward),
the world y axis points DOWN. The floor is the plane y = +``EYE_HEIGHT_M`` and cameras walk at
y = 0, so "up" is -y. Depth is z-depth in metres. Everything is deterministic per seed.

``make_world(seed, kind)`` builds a world, ``make_trajectory(world, kind, num_frames, seed)``
a camera path that stays in free space (and, for every kind, comes back to where it began),
``generate_episode(seed, num_frames, ...)`` both, rendered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from worldmem.geometry import check_c2w, check_K, intrinsics_from_fov, look_at, ray_directions

__all__ = [
    "WORLD_KINDS",
    "TRAJECTORY_KINDS",
    "TEXTURES",
    "PALETTE",
    "EYE_HEIGHT_M",
    "Material",
    "SceneObject",
    "World",
    "SyntheticEpisode",
    "make_world",
    "make_trajectory",
    "generate_episode",
]

WORLD_KINDS = ("room", "corridor", "plaza")
TRAJECTORY_KINDS = ("out_and_back", "loop", "look_around", "orbit", "random_return")

EYE_HEIGHT_M = 1.6  # camera height above the floor; the floor is the plane y = +EYE_HEIGHT_M
CLEARANCE_M = 0.35  # trajectories keep the camera at least this far from every surface
MAX_SPEED_M = 0.15  # walking speed range per frame: 0.05-0.15 m
LOOK_AHEAD_M = 1.0  # open space kept in front of the camera where a walk turns around
MAX_TURN_DEG = 8.0  # largest yaw change per frame of turns (when num_frames >= ~92)
RAYS_PER_CHUNK = 1 << 16  # rays intersected at once (bounds memory: ~100 B per ray-primitive)

# Named colours (linear-ish RGB in [0, 1]); the names are what captions say.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.78, 0.16, 0.14),
    "orange": (0.92, 0.52, 0.14),
    "yellow": (0.93, 0.82, 0.22),
    "green": (0.22, 0.62, 0.25),
    "teal": (0.12, 0.58, 0.58),
    "blue": (0.18, 0.35, 0.82),
    "purple": (0.50, 0.25, 0.68),
    "pink": (0.92, 0.50, 0.66),
    "brown": (0.50, 0.32, 0.17),
    "beige": (0.86, 0.78, 0.62),
    "white": (0.92, 0.92, 0.90),
    "grey": (0.55, 0.55, 0.57),
    "black": (0.12, 0.12, 0.13),
    "navy": (0.10, 0.14, 0.40),
    "olive": (0.50, 0.52, 0.18),
    "maroon": (0.45, 0.10, 0.14),
}
_WALL_COLOURS = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "beige")
_OBJECT_COLOURS = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "white")
_FLOOR_COLOURS = ("grey", "beige", "brown", "white", "navy", "olive", "maroon")
_CEILING_COLOURS = ("white", "beige", "grey")

# Texture kinds (index = code used by the renderer) and the word a caption uses for each.
TEXTURES = ("plain", "brick", "checkered", "striped", "mottled", "wooden", "tiled", "windowed")
_SKY = len(TEXTURES)  # the plaza's sky: unlit, never named in captions
_TEXTURE_WORDS = {
    "plain": "painted",
    "brick": "brick",
    "checkered": "checkered",
    "striped": "striped",
    "mottled": "mottled",
    "wooden": "wooden",
    "tiled": "tiled",
    "windowed": "windowed",
}
# Faces of the enclosure, in the renderer's order: index = 2 * axis + (exit through the + side).
_FACES = ("x-", "x+", "ceiling", "floor", "z-", "z+")
_BOX, _CYL, _SPHERE = 0, 1, 2
_NUMBERS = ("no", "a", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


@dataclass(frozen=True)
class Material:
    """A procedural texture: ``colour`` is the main colour, ``colour2`` the pattern's second
    colour (mortar, grout, the other checker, glass), ``scale_m`` the pattern period in metres,
    ``variant`` a per-texture switch (stripe direction). ``texture`` is one of ``TEXTURES``, or
    "sky" (unlit clouds, for the plaza's ceiling); colours are ``PALETTE`` names."""

    texture: str
    colour: str
    colour2: str
    scale_m: float
    variant: int = 0

    def phrase(self) -> str:
        """Caption words, e.g. ``"red brick"`` or ``"black and white checkered"``."""
        word = _TEXTURE_WORDS[self.texture]
        if self.texture == "checkered":
            return f"{self.colour} and {self.colour2} {word}"
        if self.texture == "plain":
            return self.colour
        return f"{self.colour} {word}"


@dataclass
class SceneObject:
    """One named object (what a caption counts) made of primitives.

    ``boxes`` rows are (x0, y0, z0, x1, y1, z1); ``cylinders`` rows (cx, cz, radius, y_top,
    y_bottom) with y_top < y_bottom (y points down); ``spheres`` rows (cx, cy, cz, radius).
    ``materials`` holds one Material per primitive, in the order boxes, cylinders, spheres."""

    name: str
    colour: str
    boxes: list[tuple[float, ...]] = field(default_factory=list)
    cylinders: list[tuple[float, ...]] = field(default_factory=list)
    spheres: list[tuple[float, ...]] = field(default_factory=list)
    materials: list[Material] = field(default_factory=list)


@dataclass
class SyntheticEpisode:
    """A rendered walk: rgb uint8 ``(N, H, W, 3)``, depth float32 ``(N, H, W)`` z-depth in
    metres, c2w float32 ``(N, 4, 4)``, K float32 ``(N, 3, 3)``, the world's caption, and what
    made it (world and trajectory kind, seed)."""

    rgb: Tensor
    depth: Tensor
    c2w: Tensor
    K: Tensor
    caption: str
    world_kind: str
    traj_kind: str
    seed: int


# --------------------------------------------------------------------------------------------
# Procedural textures: every function maps world-space surface coordinates (metres) to values.
# --------------------------------------------------------------------------------------------


def _hash2(ix: Tensor, iy: Tensor, salt: Tensor | int) -> Tensor:
    """Integer lattice hash -> float in [0, 1); ix, iy (and salt, if a tensor) int64 of one
    shape."""
    h = ix * 374761393 + iy * 668265263 + salt * 982451653
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).float() * (1.0 / 16777216)


def _value_noise(x: Tensor, y: Tensor, salt: Tensor | int) -> Tensor:
    """Smooth value noise in [0, 1] with unit lattice spacing."""
    fx, fy = torch.floor(x), torch.floor(y)
    tx, ty = x - fx, y - fy
    tx = tx * tx * (3 - 2 * tx)
    ty = ty * ty * (3 - 2 * ty)
    ix, iy = fx.long(), fy.long()
    a = _hash2(ix, iy, salt)
    b = _hash2(ix + 1, iy, salt)
    c = _hash2(ix, iy + 1, salt)
    d = _hash2(ix + 1, iy + 1, salt)
    return torch.lerp(torch.lerp(a, b, tx), torch.lerp(c, d, tx), ty)


def _fbm(x: Tensor, y: Tensor, salt: Tensor | int, fw: Tensor, octaves: int = 3) -> Tensor:
    """Fractal value noise in [0, 1]; octaves finer than the footprint ``fw`` (in lattice
    units) fade to their mean, which is what a box filter of that width would give."""
    total = torch.zeros_like(x)
    amp, norm, freq = 0.5, 0.0, 1.0
    for k in range(octaves):
        keep = (1.5 - fw * freq * 2).clamp(0, 1)
        total = total + amp * (0.5 + (_value_noise(x * freq, y * freq, salt + k) - 0.5) * keep)
        norm += amp
        amp *= 0.5
        freq *= 2.0
    return total / norm


def _pulse(x: Tensor, duty: float | Tensor, fw: Tensor) -> Tensor:
    """Box-filtered periodic pulse: the fraction of [x - fw/2, x + fw/2] where frac(x) < duty.

    x and fw in units of the period; exact for any filter width (integral of the step)."""
    w = fw.clamp(min=1e-4)

    def integral(t: Tensor) -> Tensor:
        f = torch.floor(t)
        return f * duty + torch.minimum(t - f, torch.as_tensor(duty, dtype=t.dtype))

    return ((integral(x + 0.5 * w) - integral(x - 0.5 * w)) / w).clamp(0, 1)


def _texture(
    code: int, u: Tensor, v: Tensor, scale: Tensor, variant: Tensor, fw: Tensor, salt: Tensor
) -> tuple[Tensor, Tensor]:
    """One texture kind over n points: u, v surface coordinates (n,) in metres (v vertical on
    walls), scale (n,) pattern period in metres, variant (n,), fw (n,) pixel footprint in
    metres, salt (n,) int64 per material. Returns (mix (n,) in [0, 1]: weight of colour2,
    tint (n,) brightness factor)."""
    one = torch.ones_like(u)
    if code == 0:  # plain: paint with a faint mottle
        return torch.zeros_like(u), 0.92 + 0.16 * _fbm(u / 0.7, v / 0.7, salt, fw / 0.7, 2)
    if code == 1:  # brick: running bond, mortar lines, per-brick tint
        bw, bh = scale, scale * 0.42
        row = torch.floor(v / bh)
        uu = u / bw + 0.5 * torch.remainder(row, 2)
        brick = _pulse(uu + 0.04, 0.92, fw / bw) * _pulse(v / bh + 0.07, 0.86, fw / bh)
        fade = (1.5 - fw / bh * 2).clamp(0, 1)
        tint = 1 + (_hash2(torch.floor(uu).long(), row.long(), salt) - 0.5) * 0.35 * fade
        return 1 - brick, tint
    if code == 2:  # checkered
        su = 2 * _pulse(u / scale, 0.5, fw / scale) - 1
        sv = 2 * _pulse(v / scale, 0.5, fw / scale) - 1
        return 0.5 - 0.5 * su * sv, one
    if code == 3:  # striped: variant 0 horizontal bands, 1 vertical
        x = torch.where(variant > 0, u, v)
        return 1 - _pulse(x / scale, 0.5, fw / scale), one
    if code == 4:  # mottled
        n = _fbm(u / scale, v / scale, salt, fw / scale, 3)
        return ((n - 0.3) * 2.5).clamp(0, 1), one
    if code == 5:  # wooden planks along u, grain rings distorted by noise
        plank = torch.floor(v / scale)
        seam = 1 - _pulse(v / scale + 0.02, 0.96, fw / scale)
        off = _hash2(plank.long(), plank.long() * 7 + 3, salt) * 10
        warp = _value_noise(u * 0.8 + off, v / scale * 2, salt + 1) * 3
        rings = 0.5 + 0.5 * torch.sin(2 * math.pi * (u * 0.35 + warp + off))
        fade = (1.5 - fw * 6).clamp(0, 1)
        grain = 0.5 + (rings - 0.5) * fade
        tint = 0.9 + 0.2 * _hash2(plank.long(), plank.long() + 11, salt + 2) * fade.clamp(min=0.3)
        return (0.55 * grain + seam).clamp(0, 1), tint
    if code == 6:  # tiled: square tiles with grout, per-tile tint
        tile = _pulse(u / scale + 0.03, 0.94, fw / scale) * _pulse(
            v / scale + 0.03, 0.94, fw / scale
        )
        fade = (1.5 - fw / scale * 2).clamp(0, 1)
        h = _hash2(torch.floor(u / scale).long(), torch.floor(v / scale).long(), salt)
        return 1 - tile, 1 + (h - 0.5) * 0.25 * fade
    if code == 7:  # windowed facade: storeys of scale metres, window bays of 0.8 * scale
        bay = scale * 0.8
        win = _pulse(u / bay + 0.25, 0.5, fw / bay) * _pulse(v / scale + 0.2, 0.5, fw / scale)
        return win, one
    # sky: clouds of fractal noise on the ceiling plane
    n = _fbm(u / scale, v / scale, salt, fw / scale, 3)
    return ((n - 0.45) * 3).clamp(0, 1), one


# --------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------


class _Primitives:
    """Obstacle tables laid out for the intersection tests: boxes (B, 6) (x0, y0, z0, x1, y1,
    z1), cylinders (C, 5) (cx, cz, radius, y_top, y_bottom), spheres (S, 4) (cx, cy, cz,
    radius), and ``index`` (B + C + S,) their rows in the world's packed table."""

    def __init__(self, boxes: Tensor, cyls: Tensor, sphs: Tensor, index: Tensor):
        self.boxes, self.cyls, self.sphs, self.index = boxes, cyls, sphs, index
        self.box_lo_t = boxes[:, :3].T.contiguous()  # (3, B)
        self.box_hi_t = boxes[:, 3:].T.contiguous()
        self.cyl_c_t = cyls[:, :2].T.contiguous()  # (2, C): cx, cz
        self.cyl_k = ((cyls[:, :2] ** 2).sum(1) - cyls[:, 2] ** 2)[None]  # (1, C)
        self.cyl_top, self.cyl_bot = cyls[None, :, 3], cyls[None, :, 4]  # (1, C)
        self.sph_c_t = sphs[:, :3].T.contiguous()  # (3, S)
        self.sph_k = ((sphs[:, :3] ** 2).sum(1) - sphs[:, 3] ** 2)[None]  # (1, S)
        # bounding spheres (P, 3) and (P,), for culling
        half = 0.5 * (cyls[:, 4] - cyls[:, 3])
        self.centre = torch.cat(
            [
                0.5 * (boxes[:, :3] + boxes[:, 3:]),
                torch.stack([cyls[:, 0], cyls[:, 3] + half, cyls[:, 1]], 1),
                sphs[:, :3],
            ]
        )
        self.radius = torch.cat(
            [
                0.5 * (boxes[:, 3:] - boxes[:, :3]).norm(dim=1),
                torch.sqrt(cyls[:, 2] ** 2 + half**2),
                sphs[:, 3],
            ]
        )

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def subset(self, keep: Tensor) -> _Primitives:
        """The primitives where ``keep (P,)`` is True."""
        nb, nc = len(self.boxes), len(self.cyls)
        return _Primitives(
            self.boxes[keep[:nb]],
            self.cyls[keep[nb : nb + nc]],
            self.sphs[keep[nb + nc :]],
            self.index[keep],
        )

    def in_view(self, c2w: Tensor, K: Tensor, height: int, width: int) -> Tensor:
        """(P,) bool: the bounding sphere meets the view frustum of at least one camera;
        c2w (n, 4, 4), K (n, 3, 3)."""
        fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
        one, zero = torch.ones_like(fx), torch.zeros_like(fx)
        # inward normals of the left, right, top, bottom and near planes, camera frame
        n_cam = torch.stack(
            [
                torch.stack([one, zero, cx / fx], -1),
                torch.stack([-one, zero, (width - cx) / fx], -1),
                torch.stack([zero, one, cy / fy], -1),
                torch.stack([zero, -one, (height - cy) / fy], -1),
                torch.stack([zero, zero, one], -1),
            ],
            1,
        )  # (n, 5, 3)
        n_world = torch.nn.functional.normalize(n_cam, dim=-1) @ c2w[:, :3, :3].transpose(1, 2)
        rel = self.centre[None] - c2w[:, None, :3, 3]  # (n, P, 3)
        dist = n_world @ rel.transpose(1, 2)  # (n, 5, P)
        return (dist >= -self.radius).all(1).any(0)


class World:
    """A procedural world: an enclosure box with one material per face and obstacles.

    Built by ``make_world``; ``render`` draws it from any cameras, ``is_free`` tells where a
    camera may stand. Attributes: ``kind``, ``seed``, ``caption``, ``lo``/``hi`` (3,) enclosure
    corners, ``faces`` dict face name -> Material, ``objects`` list of SceneObject,
    ``light_dir`` (3,) unit direction the key light travels in, ``ambient``.
    """

    def __init__(
        self,
        kind: str,
        seed: int,
        lo: tuple[float, float, float],
        hi: tuple[float, float, float],
        faces: dict[str, Material],
        objects: list[SceneObject],
        light_dir: tuple[float, float, float],
        ambient: float,
        caption: str,
    ):
        if set(faces) != set(_FACES):
            raise ValueError(f"World: faces must be {sorted(_FACES)}, got {sorted(faces)}")
        if not all(a < b for a, b in zip(lo, hi)):
            raise ValueError(f"World: enclosure corners must satisfy lo < hi, got {lo}, {hi}")
        for where, m in [(f"face {f}", faces[f]) for f in _FACES] + [
            (f"object {o.name!r}", m) for o in objects for m in o.materials
        ]:
            if m.texture not in TEXTURES + ("sky",):
                raise ValueError(f"World: {where}: unknown texture {m.texture!r}")
            if m.colour not in PALETTE or m.colour2 not in PALETTE:
                raise ValueError(f"World: {where}: colours must be PALETTE names, got {m}")
        for o in objects:
            if len(o.materials) != len(o.boxes) + len(o.cylinders) + len(o.spheres):
                raise ValueError(f"World: object {o.name!r} needs one material per primitive")
        self.kind = kind
        self.seed = seed
        self.lo = torch.tensor(lo, dtype=torch.float32)
        self.hi = torch.tensor(hi, dtype=torch.float32)
        self.faces = faces
        self.objects = objects
        self.ambient = ambient
        self.caption = caption
        ld = torch.tensor(light_dir, dtype=torch.float32)
        self.light_dir = ld / ld.norm()

        materials: list[Material] = []
        index: dict[Material, int] = {}

        def mat_id(m: Material) -> int:
            if m not in index:
                index[m] = len(materials)
                materials.append(m)
            return index[m]

        self._face_mat = torch.tensor([mat_id(faces[f]) for f in _FACES])
        boxes, cyls, sphs, bm, cm, sm = [], [], [], [], [], []
        for obj in objects:
            mats = iter(obj.materials)
            for b in obj.boxes:
                boxes.append(b)
                bm.append(mat_id(next(mats)))
            for c in obj.cylinders:
                cyls.append(c)
                cm.append(mat_id(next(mats)))
            for s in obj.spheres:
                sphs.append(s)
                sm.append(mat_id(next(mats)))
        self._boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 6)
        self._cyls = torch.tensor(cyls, dtype=torch.float32).reshape(-1, 5)
        self._sphs = torch.tensor(sphs, dtype=torch.float32).reshape(-1, 4)
        # Packed obstacle table (boxes, cylinders, spheres): type, 6 parameters, material.
        params = torch.zeros(len(boxes) + len(cyls) + len(sphs), 6)
        nb, nc = len(boxes), len(cyls)
        params[:nb] = self._boxes
        params[nb : nb + nc, :5] = self._cyls
        params[nb + nc :, :4] = self._sphs
        self._params = params
        self._prims = _Primitives(
            self._boxes, self._cyls, self._sphs, torch.arange(params.shape[0])
        )
        self._ptype = torch.tensor([_BOX] * nb + [_CYL] * nc + [_SPHERE] * len(sphs))
        self._pmat = torch.tensor(bm + cm + sm, dtype=torch.long)

        self.materials = materials
        self._mkind = torch.tensor(
            [_SKY if m.texture == "sky" else TEXTURES.index(m.texture) for m in materials]
        )
        self._mcol = torch.tensor([PALETTE[m.colour] for m in materials], dtype=torch.float32)
        sky = torch.tensor([(0.45, 0.65, 0.95)]).expand(len(materials), 3)
        self._mcol2 = torch.tensor([PALETTE[m.colour2] for m in materials], dtype=torch.float32)
        is_sky = (self._mkind == _SKY)[:, None]
        self._mcol = torch.where(is_sky, sky, self._mcol)
        self._mscale = torch.tensor([m.scale_m for m in materials], dtype=torch.float32)
        self._mvariant = torch.tensor([m.variant for m in materials])
        self._msalt = torch.arange(len(materials)) * 7919 + seed * 104729

    def __repr__(self) -> str:
        return f"World(kind={self.kind!r}, seed={self.seed}, caption={self.caption!r})"

    @property
    def num_primitives(self) -> int:
        """Obstacle primitives (the enclosure not counted)."""
        return int(self._params.shape[0])

    @property
    def floor_y(self) -> float:
        """y of the floor plane (y points down)."""
        return float(self.hi[1])

    # ---------------------------------------------------------------- free space

    def is_free(self, points: Tensor, radius_m: float) -> Tensor:
        """Whether a ball of ``radius_m`` around each point is clear of every surface.

        points ``(N, 3)`` world coordinates -> ``(N,)`` bool."""
        if not isinstance(points, Tensor) or points.ndim != 2 or points.shape[1] != 3:
            got = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
            raise ValueError(f"is_free: points must be a (N, 3) tensor, got {got}")
        if radius_m < 0:
            raise ValueError(f"is_free: radius_m must be >= 0, got {radius_m}")
        p = points.float()
        free = ((p > self.lo + radius_m) & (p < self.hi - radius_m)).all(-1)
        if len(self._boxes):
            lo, hi = self._boxes[:, :3], self._boxes[:, 3:]
            q = torch.maximum(lo - p[:, None], p[:, None] - hi).clamp(min=0)  # (N, B, 3)
            free &= (q.norm(dim=-1) > radius_m).all(-1)
        if len(self._cyls):
            c = self._cyls
            dx = p[:, None, 0] - c[:, 0]
            dz = p[:, None, 2] - c[:, 1]
            radial = (torch.sqrt(dx * dx + dz * dz) - c[:, 2]).clamp(min=0)
            dy = torch.maximum(c[:, 3] - p[:, None, 1], p[:, None, 1] - c[:, 4]).clamp(min=0)
            free &= (torch.sqrt(radial * radial + dy * dy) > radius_m).all(-1)
        if len(self._sphs):
            s = self._sphs
            dist = (p[:, None] - s[:, :3]).norm(dim=-1) - s[:, 3]
            free &= (dist > radius_m).all(-1)
        return free

    # ---------------------------------------------------------------- ray casting

    @staticmethod
    def _hit_obstacles(o: Tensor, d: Tensor, inv: Tensor, pr: _Primitives) -> tuple[Tensor, Tensor]:
        """Nearest hit per ray among primitives ``pr``: o, d, inv (R, 3) -> (t (R,), index
        (R,)); t = inf where nothing is hit. The index is a row of the world's packed table.

        Every test is written over contiguous (R, P) tensors, with the ray-primitive dot
        products as matrix products (the cost is a few dozen elementwise passes per type)."""
        ts = []
        eps = 1e-4
        if len(pr.boxes):
            # slab test: t = (bound - o) / d per axis, entry = max of the near planes
            t_in = t_out = None
            for ax in range(3):
                ia = inv[:, ax : ax + 1]  # (R, 1)
                oa = -(o[:, ax : ax + 1] * ia)
                t1 = torch.addcmul(oa, ia, pr.box_lo_t[ax : ax + 1])  # (R, B)
                t2 = torch.addcmul(oa, ia, pr.box_hi_t[ax : ax + 1])
                near, far = torch.minimum(t1, t2), torch.maximum(t1, t2)
                t_in = near if t_in is None else torch.maximum(t_in, near, out=t_in)
                t_out = far if t_out is None else torch.minimum(t_out, far, out=t_out)
            hit = (t_out >= t_in) & (t_in > eps)
            ts.append(torch.where(hit, t_in, torch.inf))
        if len(pr.cyls):
            # side: |o + t d - c|^2 = r^2 in the xz plane, b and c from matrix products
            dxz, oxz = d[:, 0::2], o[:, 0::2]  # (R, 2)
            a = (dxz * dxz).sum(1, keepdim=True).clamp(min=1e-12)  # (R, 1)
            b = (oxz * dxz).sum(1, keepdim=True) - dxz @ pr.cyl_c_t  # (R, C): (o - c).d
            cc = torch.addmm(pr.cyl_k, oxz, pr.cyl_c_t, alpha=-2)
            cc += (oxz * oxz).sum(1, keepdim=True)  # |o - c|^2 - r^2
            disc = b * b - a * cc
            t_side = (torch.sqrt(disc.clamp(min=0)) + b).neg_().div_(a)
            ys = torch.addcmul(o[:, 1:2], t_side, d[:, 1:2])
            side = (disc > 0) & (t_side > eps) & (ys >= pr.cyl_top) & (ys <= pr.cyl_bot)
            t_side = torch.where(side, t_side, torch.inf)
            # the cap facing the ray origin (the top cap when the origin is above it)
            ycap = torch.where(o[:, 1:2] < pr.cyl_top, pr.cyl_top, pr.cyl_bot)
            t_cap = (ycap - o[:, 1:2]) * inv[:, 1:2]
            q = (t_cap * a).add_(b, alpha=2).mul_(t_cap).add_(cc)  # |p - c|^2 - r^2 at t_cap
            t_cap = torch.where((q <= 0) & (t_cap > eps), t_cap, torch.inf)
            ts.append(torch.minimum(t_side, t_cap))
        if len(pr.sphs):
            b = (o * d).sum(1, keepdim=True) - d @ pr.sph_c_t  # (R, S): (o - c).d
            cc = torch.addmm(pr.sph_k, o, pr.sph_c_t, alpha=-2)
            cc += (o * o).sum(1, keepdim=True)  # |o - c|^2 - r^2
            disc = b * b - cc
            t = (torch.sqrt(disc.clamp(min=0)) + b).neg_()
            ts.append(torch.where((disc > 0) & (t > eps), t, torch.inf))
        if not ts:
            n = o.shape[0]
            return torch.full((n,), torch.inf), torch.zeros(n, dtype=torch.long)
        t, idx = (torch.cat(ts, 1) if len(ts) > 1 else ts[0]).min(1)
        return t, pr.index[idx]

    def _obstacle_normals(self, p: Tensor, idx: Tensor) -> Tensor:
        """Outward normals (n, 3) at hit points p (n, 3) on packed obstacles idx (n,)."""
        prm = self._params[idx]  # (n, 6)
        typ = self._ptype[idx]
        eye = torch.eye(3)
        # boxes: the face the point lies on
        dist = torch.cat([(p - prm[:, :3]).abs(), (p - prm[:, 3:]).abs()], 1)
        f = dist.argmin(1)
        n_box = eye[f % 3] * torch.where(f < 3, -1.0, 1.0)[:, None]
        # cylinders: side (radial) or cap
        rx, rz = p[:, 0] - prm[:, 0], p[:, 2] - prm[:, 1]
        rad = torch.sqrt(rx * rx + rz * rz).clamp(min=1e-9)
        d_top, d_bot = (p[:, 1] - prm[:, 3]).abs(), (p[:, 1] - prm[:, 4]).abs()
        on_side = (rad - prm[:, 2]).abs() < torch.minimum(d_top, d_bot)
        zero = torch.zeros_like(rx)
        n_side = torch.stack([rx / rad, zero, rz / rad], 1)
        n_cap = torch.stack([zero, torch.where(d_top < d_bot, -1.0, 1.0), zero], 1)
        n_cyl = torch.where(on_side[:, None], n_side, n_cap)
        # spheres
        n_sph = (p - prm[:, :3]) / prm[:, 3:4].clamp(min=1e-9)
        return torch.where(
            (typ == _BOX)[:, None], n_box, torch.where((typ == _CYL)[:, None], n_cyl, n_sph)
        )

    def _shade(
        self, p: Tensor, n: Tensor, d: Tensor, t: Tensor, mat: Tensor, pix: Tensor, shadows: bool
    ) -> Tensor:
        """Colour (R, 3) of hits: points p, normals n (facing the ray), ray dirs d, ray lengths
        t, materials mat (R,), pixel angular size pix (R,) in radians."""
        R = p.shape[0]
        axis = n.abs().argmax(1)
        u = torch.where(axis == 0, p[:, 2], p[:, 0])
        v = torch.where(axis == 1, p[:, 2], p[:, 1])
        cos = (n * d).sum(1).abs().clamp(min=0.2)
        fw = t * pix / cos  # pixel footprint on the surface, metres
        kind = self._mkind[mat]
        mix = torch.zeros(R)
        tint = torch.ones(R)
        for code in torch.unique(kind).tolist():
            sel = (kind == code).nonzero().squeeze(1)
            m = mat[sel]
            mix[sel], tint[sel] = _texture(
                code, u[sel], v[sel], self._mscale[m], self._mvariant[m], fw[sel], self._msalt[m]
            )
        albedo = torch.lerp(self._mcol[mat], self._mcol2[mat], mix[:, None]) * tint[:, None]
        to_light = -self.light_dir
        lam = (n @ to_light).clamp(min=0)
        if shadows and self.num_primitives and bool((lam > 0).any()):
            lit = (lam > 0).nonzero().squeeze(1)
            so = p[lit] + n[lit] * 2e-3
            sd = to_light.expand(len(lit), 3)
            sinv = 1 / torch.where(sd.abs() < 1e-9, 1e-9, sd)
            ts, _ = self._hit_obstacles(so, sd, sinv, self._prims)
            lam[lit] = torch.where(torch.isfinite(ts), 0.0, lam[lit])
        fill = (n @ torch.stack([self.light_dir[0], to_light[1], self.light_dir[2]])).clamp(min=0)
        light = self.ambient + (1 - self.ambient) * (0.8 * lam + 0.25 * fill)
        rgb = albedo * light[:, None]
        sky = kind == _SKY
        if bool(sky.any()):
            rgb[sky] = albedo[sky]
        return rgb.clamp(0, 1)

    def _cast(
        self, o: Tensor, d: Tensor, pix: Tensor, shadows: bool, prims: _Primitives
    ) -> tuple[Tensor, Tensor]:
        """Trace rays o, d (R, 3) (d unit) against the enclosure and the obstacles ``prims``
        (those in view) -> (rgb (R, 3), ray length t (R,))."""
        d_safe = torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
        inv = 1 / d_safe
        pos = d_safe > 0
        # the enclosure, seen from inside: the first face the ray exits through
        te = (torch.where(pos, self.hi, self.lo) - o) * inv  # (R, 3)
        t, axis = te.min(1)
        face = 2 * axis + pos.gather(1, axis[:, None]).squeeze(1).long()
        mat = self._face_mat[face]
        sign = torch.where(face % 2 == 1, -1.0, 1.0)
        n = torch.eye(3)[axis] * sign[:, None]  # inward normals
        if len(prims):
            tob, idx = self._hit_obstacles(o, d, inv, prims)
            near = tob < t
            if bool(near.any()):
                sel = near.nonzero().squeeze(1)
                t[sel] = tob[sel]
                hit = o[sel] + tob[sel, None] * d[sel]
                n[sel] = self._obstacle_normals(hit, idx[sel])
                mat[sel] = self._pmat[idx[sel]]
        p = o + t[:, None] * d
        rgb = self._shade(p, n, d, t, mat, pix, shadows)
        return rgb, t

    def render(
        self, c2w: Tensor, K: Tensor, height: int, width: int, shadows: bool = True
    ) -> tuple[Tensor, Tensor]:
        """Render views of the world.

        c2w ``(N, 4, 4)`` camera-to-world (OpenCV), K ``(N, 3, 3)`` pixel intrinsics ->
        (rgb ``(N, 3, H, W)`` float in [0, 1], depth ``(N, 1, H, W)`` float32 z-depth in metres,
        finite and positive everywhere). Frames are traced in chunks of about
        ``RAYS_PER_CHUNK`` rays. ``shadows`` casts shadow rays from the obstacles.
        """
        check_c2w(c2w)
        check_K(K)
        if c2w.ndim != 3 or K.ndim != 3 or c2w.shape[0] != K.shape[0]:
            raise ValueError(
                f"render: expected c2w (N, 4, 4) and K (N, 3, 3) with the same N, got "
                f"{tuple(c2w.shape)} and {tuple(K.shape)}"
            )
        if height <= 0 or width <= 0:
            raise ValueError(f"render: image size must be positive, got {height}x{width}")
        c2w = c2w.float().cpu()
        K = K.float().cpu()
        N = c2w.shape[0]
        rgb_out = torch.empty(N, 3, height, width)
        depth_out = torch.empty(N, 1, height, width)
        per = max(1, RAYS_PER_CHUNK // (height * width))
        for s in range(0, N, per):
            cw, kk = c2w[s : s + per], K[s : s + per]
            n = cw.shape[0]
            o, d = ray_directions(cw, kk, height, width)  # (n, H, W, 3)
            fwd = cw[:, None, None, :3, 2]
            cosz = (d * fwd).sum(-1)  # (n, H, W): z-depth = t * cosz
            pix = (1.0 / kk[:, 0, 0])[:, None, None].expand(n, height, width)
            prims = self._prims.subset(self._prims.in_view(cw, kk, height, width))
            rgb, t = self._cast(
                o.reshape(-1, 3), d.reshape(-1, 3), (pix * cosz).reshape(-1), shadows, prims
            )
            rgb_out[s : s + n] = rgb.reshape(n, height, width, 3).permute(0, 3, 1, 2)
            depth_out[s : s + n, 0] = t.reshape(n, height, width) * cosz
        return rgb_out, depth_out


# --------------------------------------------------------------------------------------------
# World generation
# --------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, options, exclude=()) -> str:
    left = [o for o in options if o not in exclude] or list(options)
    return left[int(rng.integers(len(left)))]


def _material(rng: np.random.Generator, texture: str, colour: str, colour2: str | None = None):
    """A Material with a period that suits its texture."""
    scales = {
        "plain": (1.0, 1.0),
        "brick": (0.25, 0.4),
        "checkered": (0.4, 0.9),
        "striped": (0.25, 0.6),
        "mottled": (0.3, 0.8),
        "wooden": (0.15, 0.3),
        "tiled": (0.3, 0.6),
        "windowed": (3.0, 3.6),
        "sky": (6.0, 10.0),
    }
    lo, hi = scales[texture]
    if colour2 is None:
        second = {
            "brick": "white" if colour != "white" else "grey",
            "tiled": "white" if colour in ("black", "navy", "maroon", "brown") else "black",
            "checkered": "white" if colour != "white" else "black",
            "windowed": "navy" if colour != "navy" else "black",
            "wooden": "brown",
        }
        colour2 = second.get(texture) or _pick(rng, PALETTE, exclude=(colour,))
    return Material(
        texture, colour, colour2, float(rng.uniform(lo, hi)), variant=int(rng.integers(2))
    )


def _a(phrase: str) -> str:
    """The phrase with its indefinite article."""
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def _count_phrase(count: int, colour: str, name: str) -> str:
    plural = name + ("es" if name.endswith(("ch", "sh", "s")) else "s")
    if count == 1:
        return _a(f"{colour} {name}")
    word = _NUMBERS[count] if count < len(_NUMBERS) else str(count)
    return f"{word} {colour} {plural}"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _objects_phrase(objects: list[SceneObject]) -> list[str]:
    """Counted object phrases, grouped by (name, colour), in first-appearance order."""
    counts: dict[tuple[str, str], int] = {}
    for o in objects:
        if o.name in ("door", "painting"):
            continue
        counts[(o.name, o.colour)] = counts.get((o.name, o.colour), 0) + 1
    return [_count_phrase(c, col, name) for (name, col), c in counts.items()]


def _walls_phrase(faces: dict[str, Material]) -> str:
    """E.g. "red, blue, green and yellow brick walls" (walls share a texture kind)."""
    walls = [faces[f] for f in ("z+", "x+", "z-", "x-")]
    colours = list(dict.fromkeys(w.colour for w in walls))
    return f"{_join(colours)} {_TEXTURE_WORDS[walls[0].texture]} walls"


class _Placer:
    """Rejection sampler of object footprints (discs in xz) that keep apart and off walls."""

    def __init__(self, rng, lo, hi, margin_m: float, gap_m: float):
        self.rng, self.lo, self.hi = rng, lo, hi
        self.margin, self.gap = margin_m, gap_m
        self.placed: list[tuple[float, float, float]] = []

    def place(self, radius: float, keep_clear=None, tries: int = 60):
        for _ in range(tries):
            x = self.rng.uniform(
                self.lo[0] + self.margin + radius, self.hi[0] - self.margin - radius
            )
            z = self.rng.uniform(
                self.lo[2] + self.margin + radius, self.hi[2] - self.margin - radius
            )
            if keep_clear is not None and keep_clear(x, z, radius):
                continue
            if all(math.hypot(x - a, z - b) > radius + r + self.gap for a, b, r in self.placed):
                self.placed.append((x, z, radius))
                return x, z
        return None


def _pillar(rng, x, z, top, bottom, colour, material, round_: bool) -> SceneObject:
    r = float(rng.uniform(0.18, 0.32))
    if round_:
        return SceneObject(
            "pillar", colour, cylinders=[(x, z, r, top, bottom)], materials=[material]
        )
    return SceneObject(
        "pillar", colour, boxes=[(x - r, top, z - r, x + r, bottom, z + r)], materials=[material]
    )


def _room_objects(rng, lo, hi, kind: str) -> list[SceneObject]:
    """Free-standing objects for rooms and corridors."""
    floor, ceil = hi[1], lo[1]
    objs: list[SceneObject] = []
    used: set[str] = set()
    if kind == "corridor":
        long_axis = 0 if hi[0] - lo[0] > hi[2] - lo[2] else 2
        placer = _Placer(rng, lo, hi, margin_m=0.0, gap_m=0.6)
    else:
        long_axis = None
        placer = _Placer(rng, lo, hi, margin_m=0.3, gap_m=0.9)

    def obj_colour():
        c = _pick(rng, _OBJECT_COLOURS, exclude=used)
        used.add(c)
        return c

    # pillars: one colour and shape per world
    n_pillars = int(rng.integers(0, 3)) if kind == "room" else int(rng.integers(2, 7))
    if n_pillars:
        pc = obj_colour()
        pm = _material(rng, _pick(rng, ("plain", "striped", "mottled", "tiled")), pc)
        round_ = bool(rng.integers(2))
        for i in range(n_pillars):
            if kind == "corridor":
                # along the side walls, alternating sides, leaving the middle free
                length = hi[long_axis] - lo[long_axis]
                along = lo[long_axis] + (i + 0.5 + rng.uniform(-0.2, 0.2)) * length / n_pillars
                other = 2 - long_axis
                side = (lo[other] + 0.45) if i % 2 == 0 else (hi[other] - 0.45)
                x, z = (along, side) if long_axis == 0 else (side, along)
                placer.placed.append((x, z, 0.35))
            else:
                spot = placer.place(0.35)
                if spot is None:
                    continue
                x, z = spot
            objs.append(_pillar(rng, x, z, ceil, floor, pc, pm, round_))

    def corridor_clear(x, z, r):
        if long_axis is None:
            return False
        other = 2 - long_axis
        centre = 0.5 * (lo[other] + hi[other])
        c = z if other == 2 else x
        return abs(c - centre) < r + 0.55  # keep a walking lane down the middle

    n_things = int(rng.integers(2, 5))
    for _ in range(n_things):
        what = _pick(rng, ("sphere", "crate", "table", "statue", "sphere"))
        colour = obj_colour()
        if what == "sphere":
            r = float(rng.uniform(0.25, 0.6))
            spot = placer.place(r, corridor_clear)
            if spot is None:
                continue
            tex = _pick(rng, ("plain", "striped", "checkered", "mottled"))
            cy = floor - r if rng.uniform() < 0.6 else floor - r - float(rng.uniform(0.5, 1.2))
            m = _material(rng, tex, colour)
            objs.append(
                SceneObject("sphere", colour, spheres=[(spot[0], cy, spot[1], r)], materials=[m])
            )
        elif what == "crate":
            h = float(rng.uniform(0.45, 1.0))
            spot = placer.place(h * 0.75, corridor_clear)
            if spot is None:
                continue
            x, z = spot
            m = _material(rng, _pick(rng, ("wooden", "plain", "striped")), colour)
            half = h / 2
            objs.append(
                SceneObject(
                    "crate",
                    colour,
                    boxes=[(x - half, floor - h, z - half, x + half, floor, z + half)],
                    materials=[m],
                )
            )
        elif what == "table":
            w, dpt, h = float(rng.uniform(0.8, 1.6)), float(rng.uniform(0.6, 0.9)), 0.75
            spot = placer.place(0.5 * math.hypot(w, dpt), corridor_clear)
            if spot is None:
                continue
            x, z = spot
            if rng.integers(2):
                w, dpt = dpt, w
            m = _material(rng, _pick(rng, ("wooden", "plain", "checkered")), colour)
            objs.append(
                SceneObject(
                    "table",
                    colour,
                    boxes=[(x - w / 2, floor - h, z - dpt / 2, x + w / 2, floor, z + dpt / 2)],
                    materials=[m],
                )
            )
        else:  # statue: a pedestal box with a sphere on top
            r = float(rng.uniform(0.2, 0.35))
            spot = placer.place(0.45, corridor_clear)
            if spot is None:
                continue
            x, z = spot
            ph = float(rng.uniform(0.9, 1.3))
            mp = _material(rng, "plain", "white" if colour != "white" else "grey")
            ms = _material(rng, _pick(rng, ("plain", "mottled", "striped")), colour)
            objs.append(
                SceneObject(
                    "statue",
                    colour,
                    boxes=[(x - 0.3, floor - ph, z - 0.3, x + 0.3, floor, z + 0.3)],
                    spheres=[(x, floor - ph - r, z, r)],
                    materials=[mp, ms],
                )
            )
    return objs


def _wall_decor(rng, lo, hi, name: str, count: int, colours) -> list[SceneObject]:
    """Thin panels on the walls (doors from the floor, paintings at eye height)."""
    floor = hi[1]
    objs = []
    walls = [(0, lo[0]), (0, hi[0]), (2, lo[2]), (2, hi[2])]
    for i in range(count):
        axis, pos = walls[int(rng.integers(4))]
        other = 2 - axis
        span = hi[other] - lo[other]
        if span < 2.0:
            continue
        w = 1.0 if name == "door" else float(rng.uniform(0.6, 1.2))
        c = float(rng.uniform(lo[other] + 0.5 + w / 2, hi[other] - 0.5 - w / 2))
        if name == "door":
            y0, y1 = floor - 2.1, floor
        else:
            ph = float(rng.uniform(0.5, 0.9))
            y0, y1 = -ph / 2 - 0.2, ph / 2 - 0.2
        t0, t1 = (pos, pos + 0.04) if pos == lo[axis] else (pos - 0.04, pos)
        colour = colours[i % len(colours)]
        tex = "wooden" if name == "door" else _pick(rng, ("striped", "checkered", "mottled"))
        m = _material(rng, tex, colour)
        if axis == 0:
            box = (t0, y0, c - w / 2, t1, y1, c + w / 2)
        else:
            box = (c - w / 2, y0, t0, c + w / 2, y1, t1)
        objs.append(SceneObject(name, colour, boxes=[box], materials=[m]))
    return objs


def _plaza_objects(rng, lo, hi) -> list[SceneObject]:
    floor = hi[1]
    placer = _Placer(rng, lo, hi, margin_m=2.0, gap_m=2.0)
    objs: list[SceneObject] = []
    trunk = _material(rng, "wooden", "brown")
    n_trees = int(rng.integers(2, 6))
    crown_colour = _pick(rng, ("green", "olive", "teal", "orange"))
    crown = _material(rng, "mottled", crown_colour, "green" if crown_colour != "green" else "olive")
    for _ in range(n_trees):
        spot = placer.place(1.4)
        if spot is None:
            continue
        x, z = spot
        h, r = float(rng.uniform(2.2, 3.2)), float(rng.uniform(1.0, 1.5))
        objs.append(
            SceneObject(
                "tree",
                crown_colour,
                cylinders=[(x, z, float(rng.uniform(0.14, 0.24)), floor - h - 0.5, floor)],
                spheres=[(x, floor - h - r * 0.6, z, r)],
                materials=[trunk, crown],
            )
        )
    if rng.uniform() < 0.7:
        spot = placer.place(2.0)
        if spot is not None:
            x, z = spot
            colour = _pick(rng, ("white", "grey", "beige", "blue"))
            r = float(rng.uniform(1.2, 1.9))
            basin = _material(rng, "tiled", colour)
            water = _material(rng, "mottled", "teal", "blue")
            objs.append(
                SceneObject(
                    "fountain",
                    colour,
                    cylinders=[
                        (x, z, r, floor - 0.5, floor),
                        (x, z, 0.25, floor - 1.6, floor - 0.5),
                    ],
                    spheres=[(x, floor - 1.85, z, 0.3)],
                    materials=[basin, _material(rng, "plain", colour), water],
                )
            )
    for _ in range(int(rng.integers(1, 4))):
        spot = placer.place(1.6)
        if spot is None:
            continue
        x, z = spot
        colour = _pick(rng, _OBJECT_COLOURS)
        w, dpt, h = (
            float(rng.uniform(1.6, 2.6)),
            float(rng.uniform(1.6, 2.6)),
            float(rng.uniform(2.2, 3.0)),
        )
        m = _material(rng, _pick(rng, ("striped", "plain", "brick")), colour)
        objs.append(
            SceneObject(
                "kiosk",
                colour,
                boxes=[(x - w / 2, floor - h, z - dpt / 2, x + w / 2, floor, z + dpt / 2)],
                materials=[m],
            )
        )
    n_lamps = int(rng.integers(0, 5))
    lamp_colour = _pick(rng, ("black", "grey", "navy"))
    for _ in range(n_lamps):
        spot = placer.place(0.6)
        if spot is None:
            continue
        x, z = spot
        objs.append(
            SceneObject(
                "lamp post",
                lamp_colour,
                cylinders=[(x, z, 0.08, floor - 3.6, floor)],
                spheres=[(x, floor - 3.8, z, 0.22)],
                materials=[_material(rng, "plain", lamp_colour), _material(rng, "plain", "yellow")],
            )
        )
    return objs


def make_world(seed: int, kind: str | None = None) -> World:
    """A procedural world, deterministic in (seed, kind).

    kind: "room", "corridor", "plaza", or None to pick one from the seed.
    Returns a World whose ``caption`` names the wall colours and texture, the floor, and the
    counted objects, e.g. "a large room with red, blue, green and yellow brick walls, a grey
    tiled floor, a white ceiling, two blue pillars and a red sphere".
    """
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"make_world: seed must be an int, got {type(seed).__name__}")
    if kind is not None and kind not in WORLD_KINDS:
        raise ValueError(f"make_world: kind must be one of {WORLD_KINDS} or None, got {kind!r}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 17])
    if kind is None:
        kind = WORLD_KINDS[int(rng.integers(len(WORLD_KINDS)))]
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 1 + WORLD_KINDS.index(kind)])
    floor = EYE_HEIGHT_M

    wall_tex = _pick(rng, ("brick", "striped", "plain", "tiled", "mottled", "wooden", "checkered"))
    wall_colours = list(rng.choice(_WALL_COLOURS, size=4, replace=False))
    if kind == "room":
        sx, sz, h = rng.uniform(5, 10), rng.uniform(5, 10), rng.uniform(2.8, 4.0)
    elif kind == "corridor":
        w, length, h = rng.uniform(2.4, 4.0), rng.uniform(18, 34), rng.uniform(2.6, 3.5)
        sx, sz = (length, w) if rng.integers(2) else (w, length)
    else:
        sx, sz, h = rng.uniform(24, 40), rng.uniform(24, 40), 30.0
        wall_tex = "windowed"
    cx, cz = rng.uniform(-3, 3), rng.uniform(-3, 3)
    lo = (cx - sx / 2, floor - h, cz - sz / 2)
    hi = (cx + sx / 2, floor, cz + sz / 2)
    lo, hi = tuple(float(a) for a in lo), tuple(float(a) for a in hi)

    wall_mats = {}
    for face, colour in zip(("z+", "x+", "z-", "x-"), wall_colours):
        if wall_tex == "windowed":
            wall_mats[face] = _material(rng, "windowed", colour)
        else:
            wall_mats[face] = _material(rng, wall_tex, colour)
    floor_tex = _pick(rng, ("tiled", "checkered", "wooden", "mottled", "brick"))
    floor_mat = _material(rng, floor_tex, _pick(rng, _FLOOR_COLOURS))
    if kind == "plaza":
        ceiling = Material("sky", "blue", "white", float(rng.uniform(6, 10)))
    else:
        ceiling = _material(rng, _pick(rng, ("plain", "tiled")), _pick(rng, _CEILING_COLOURS))
    faces = dict(wall_mats, floor=floor_mat, ceiling=ceiling)

    if kind == "plaza":
        objects = _plaza_objects(rng, lo, hi)
    else:
        objects = _room_objects(rng, lo, hi, kind)
        decor_colours = [c for c in _OBJECT_COLOURS if c not in wall_colours]
        rng.shuffle(decor_colours)
        if kind == "corridor":
            objects += _wall_decor(rng, lo, hi, "door", int(rng.integers(2, 6)), decor_colours)
        else:
            objects += _wall_decor(rng, lo, hi, "painting", int(rng.integers(1, 4)), decor_colours)

    az = rng.uniform(0, 2 * math.pi)
    elev = rng.uniform(math.radians(35), math.radians(65))
    light = (math.cos(elev) * math.cos(az), math.sin(elev), math.cos(elev) * math.sin(az))
    ambient = float(rng.uniform(0.35, 0.5))

    size = (
        "large "
        if kind == "room" and sx * sz > 55
        else ("small " if kind == "room" and sx * sz < 35 else "")
    )
    walls = _walls_phrase(faces)
    things = _objects_phrase(objects)
    doors = sum(o.name == "door" for o in objects)
    paintings = sum(o.name == "painting" for o in objects)
    if kind == "room":
        head = (
            f"{_a(size + 'room')} with {walls}, {_a(floor_mat.phrase())} floor, "
            f"{_a(ceiling.phrase())} ceiling"
        )
        if paintings:
            things.append(f"{_NUMBERS[paintings]} painting{'s' if paintings > 1 else ''}")
    elif kind == "corridor":
        head = f"a long corridor with {walls}, {_a(floor_mat.phrase())} floor"
        if doors:
            things.append(f"{_NUMBERS[doors]} door{'s' if doors > 1 else ''}")
    else:
        buildings = _join(list(dict.fromkeys(wall_colours)))
        head = (
            f"an open plaza surrounded by {buildings} buildings with windows, "
            f"{_a(floor_mat.phrase())} ground"
        )
    caption = head + (", " + _join(things) if things else "")
    return World(kind, int(seed), lo, hi, faces, objects, light, ambient, caption)


# --------------------------------------------------------------------------------------------
# Trajectories
# --------------------------------------------------------------------------------------------


def _poses(pos: np.ndarray, yaw_deg: np.ndarray, pitch_deg: np.ndarray) -> Tensor:
    """c2w ``(N, 4, 4)`` float32 from positions (N, 3), yaw (N,) (> 0 turns right: heading
    from +z toward +x) and pitch (N,) (> 0 looks up, toward -y), in degrees."""
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    fwd = np.stack([np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)], -1)
    eye = torch.as_tensor(pos, dtype=torch.float32)
    return look_at(eye, eye + torch.as_tensor(fwd, dtype=torch.float32)).float()


def _heading(yaw_deg) -> np.ndarray:
    y = np.radians(yaw_deg)
    return np.stack([np.sin(y), np.zeros_like(y), np.cos(y)], -1)


def _budget(num_frames: int) -> tuple[int, int, int]:
    """Frames for a walk out, a turn around, the walk back and the turn to the first view:
    (frames per 180-degree turn, frames per walk, extra frames for the last turn). Turns take
    at most MAX_TURN_DEG per frame when half the frames suffice for both (num_frames >= ~92)."""
    turn = min(math.ceil(180 / MAX_TURN_DEG), num_frames // 4)
    walk = max(1, (num_frames - 2 * turn) // 2)
    turn = min(turn, (num_frames - 2 * walk) // 2)
    return turn, walk, num_frames - 2 * turn - 2 * walk


def _free_start(world: World, rng: np.random.Generator, clearance_m: float = 0.7) -> np.ndarray:
    """A random camera position (3,) at y = 0, preferably ``clearance_m`` from every surface
    (else the least clearance any trajectory keeps, plus a margin)."""
    lo, hi = world.lo.numpy(), world.hi.numpy()
    for radius in (max(clearance_m, CLEARANCE_M + 0.2), CLEARANCE_M + 0.2):
        for _ in range(200):
            p = np.array([rng.uniform(lo[0], hi[0]), 0.0, rng.uniform(lo[2], hi[2])])
            if bool(world.is_free(torch.tensor(p[None], dtype=torch.float32), radius)[0]):
                return p
    raise RuntimeError(f"no free start found in {world!r}")


def _open_heading(world: World, p: np.ndarray, rng: np.random.Generator) -> float:
    """A yaw in degrees from ``p`` toward open space: the farthest-reaching of 16 random
    headings (free distance measured in 0.25 m steps up to 8 m)."""
    yaws = rng.uniform(-180, 180) + np.arange(16) * 22.5
    s = np.arange(1, 33) * 0.25
    pts = p + s[None, :, None] * _heading(yaws)[:, None, :]  # (16, 32, 3)
    free = world.is_free(torch.as_tensor(pts.reshape(-1, 3), dtype=torch.float32), CLEARANCE_M)
    free = free.reshape(16, 32).numpy()
    reach = np.where(free.all(1), len(s), free.argmin(1))
    return float(yaws[int(np.argmax(reach))])


def _path_free(world: World, pos: np.ndarray) -> bool:
    """Whether a path of positions (N, 3), and the midpoints between them, keep
    ``CLEARANCE_M`` from every surface."""
    pos = np.asarray(pos, dtype=np.float64)
    pts = np.concatenate([pos, 0.5 * (pos[1:] + pos[:-1])]) if len(pos) > 1 else pos
    return bool(world.is_free(torch.as_tensor(pts, dtype=torch.float32), CLEARANCE_M).all())


def _arc(start: np.ndarray, yaw0_deg: float, curve_deg_per_m: float, s: np.ndarray):
    """Positions (len(s), 3) and yaw (len(s),) in degrees along a circular arc at y = 0 that
    leaves ``start`` with heading ``yaw0_deg`` and turns ``curve_deg_per_m``; s arc lengths."""
    y0, k = math.radians(yaw0_deg), math.radians(curve_deg_per_m)
    if abs(k) < 1e-6:
        k = 1e-6
    yaw = y0 + k * s
    x = start[0] + (math.cos(y0) - np.cos(yaw)) / k  # integral of sin(yaw) ds
    z = start[2] + (np.sin(yaw) - math.sin(y0)) / k  # integral of cos(yaw) ds
    return np.stack([x, np.zeros_like(x), z], -1), np.degrees(yaw)


def _out_and_back(world, rng, n):
    t, walk, rest = _budget(n)
    want = rng.uniform(0.05, MAX_SPEED_M) * walk  # metres out
    best = None
    for _ in range(60):
        start = _free_start(world, rng)
        yaw0, curve = rng.uniform(-180, 180), rng.uniform(-10, 10)
        # how far this gently curving walk stays free, keeping open space ahead of its end
        s = np.arange(0, want + LOOK_AHEAD_M + 0.05, 0.05)
        pos, _ = _arc(start, yaw0, curve, s)
        free = world.is_free(torch.as_tensor(pos, dtype=torch.float32), CLEARANCE_M).numpy()
        first_blocked = s[np.argmin(free)] if not free.all() else s[-1] + 0.05
        length = min(want, first_blocked - LOOK_AHEAD_M - 0.05)
        if best is None or length > best[0]:
            best = (length, start, yaw0, curve)
        if length >= want:
            break
    length, start, yaw0, curve = best
    if length <= 0:
        raise RuntimeError(f"out_and_back: no free path in {world!r}")
    out, yaws = _arc(start, yaw0, curve, np.arange(walk + 1) * (length / walk))
    end = out[-1]
    pos = [out[:-1], np.repeat(end[None], t, 0), out[1:][::-1], np.repeat(start[None], t + rest, 0)]
    turn1 = yaws[-2] + np.linspace(0, 180, t + 1)[1:]
    turn2 = yaws[0] + 180 + np.linspace(0, 180, t + rest + 1)[1:]
    yaw = np.concatenate([yaws[:-1], turn1, (yaws[:-1] + 180)[::-1], turn2])
    pitch = np.full(n, rng.uniform(-5, 5))
    return np.concatenate(pos), yaw, pitch


def _loop(world, rng, n):
    for attempt in range(200):
        speed = rng.uniform(0.05, 0.15) * (0.97**attempt)
        perim = speed * max(n - 1, 1)
        aspect = rng.uniform(1.0, 1.5)
        # ellipse with semi-axes a, b and approximately this perimeter
        b = perim / (math.pi * (3 * (aspect + 1) - math.sqrt((3 * aspect + 1) * (aspect + 3))))
        a = aspect * b
        rot = rng.uniform(0, math.pi)
        centre = _free_start(world, rng)
        # constant speed: place the frames at equal arc lengths along the ellipse
        dense = np.linspace(0, 2 * math.pi, 2049)
        arc = np.concatenate(
            [[0], np.cumsum(np.hypot(a * np.diff(np.cos(dense)), b * np.diff(np.sin(dense))))]
        )
        th = np.interp(np.linspace(0, arc[-1], n), arc, dense) * (1 if rng.integers(2) else -1)
        ex, ez = a * np.cos(th), b * np.sin(th)
        x = centre[0] + ex * math.cos(rot) - ez * math.sin(rot)
        z = centre[2] + ex * math.sin(rot) + ez * math.cos(rot)
        pos = np.stack([x, np.zeros(n), z], -1)
        if not _path_free(world, pos):
            continue
        sgn = np.sign(th[-1]) if n > 1 else 1.0
        tx, tz = -a * np.sin(th) * sgn, b * np.cos(th) * sgn  # d/d|theta| of (ex, ez)
        wx = tx * math.cos(rot) - tz * math.sin(rot)
        wz = tx * math.sin(rot) + tz * math.cos(rot)
        yaw = np.degrees(np.unwrap(np.arctan2(wx, wz)))
        pitch = 3 * np.sin(np.linspace(0, 4 * math.pi, n))
        return pos, yaw, pitch
    raise RuntimeError(f"loop: no free path in {world!r}")


def _look_around(world, rng, n):
    start = _free_start(world, rng, clearance_m=1.2)
    amp = rng.uniform(90, 150)
    s = np.linspace(0, 1, n)
    # yaw: right to +amp, left to -amp, back to 0 (piecewise linear)
    knots_s = np.array([0, 0.25, 0.75, 1.0])
    knots_y = np.array([0, amp, -amp, 0]) * (1 if rng.integers(2) else -1)
    yaw0 = _open_heading(world, start, rng)
    yaw = yaw0 + np.interp(s, knots_s, knots_y)
    pitch = rng.uniform(5, 15) * np.sin(2 * math.pi * s * 2)
    # a small step forward and back while looking
    for _ in range(50):
        step = rng.uniform(0.3, 1.0)
        hd = _heading(yaw0)
        pos = start + np.sin(math.pi * s)[:, None] * step * hd
        if _path_free(world, pos):
            return pos, yaw, pitch
        start = _free_start(world, rng, clearance_m=1.2)
    return np.repeat(start[None], n, 0), yaw, pitch


def _orbit(world, rng, n):
    targets = []
    for o in world.objects:
        if o.name in ("door", "painting"):
            continue
        if o.boxes:
            b = np.array(o.boxes[0])
            c, r = 0.5 * (b[:3] + b[3:]), 0.5 * math.hypot(b[3] - b[0], b[5] - b[2])
        elif o.cylinders:
            cx, cz, cr, y0, y1 = o.cylinders[0]
            c, r = np.array([cx, 0.5 * (y0 + y1), cz]), cr
        else:
            s = o.spheres[0]
            c, r = np.array(s[:3]), s[3]
        if o.spheres:
            r = max(r, o.spheres[0][3])
        targets.append((c, r))
    order = rng.permutation(len(targets)) if targets else []
    sign = 1 if rng.integers(2) else -1
    th = sign * np.linspace(0, 2 * math.pi, n)
    for attempt in range(len(order) * 6 + 60):
        speed = rng.uniform(0.05, 0.15)
        if attempt < len(order) * 6:
            c, r = targets[order[attempt // 6]]
            radius = max(speed * max(n - 1, 1) / (2 * math.pi), r + CLEARANCE_M + 0.6)
            radius *= 1 + 0.25 * (attempt % 6)
            if radius * 2 * math.pi / max(n - 1, 1) > MAX_SPEED_M:
                continue
            centre = np.array([c[0], 0.0, c[2]])
            look_y = float(np.clip(c[1], -0.5, world.floor_y - 0.3))
        else:
            # circle empty space looking at its centre; in narrow worlds, centred on the
            # short axis, and smaller (slower) as attempts fail
            centre = _free_start(world, rng)
            lo, hi = world.lo.numpy(), world.hi.numpy()
            short = 0 if hi[0] - lo[0] < hi[2] - lo[2] else 2
            if hi[short] - lo[short] < 6:
                centre[short] = 0.5 * (lo[short] + hi[short])
            shrink = 0.97 ** (attempt - len(order) * 6)
            radius = max(speed * max(n - 1, 1) / (2 * math.pi) * shrink, 0.45)
            look_y = 0.0
        pos = centre + radius * np.stack([np.sin(th), np.zeros(n), -np.cos(th)], -1)
        if not _path_free(world, pos):
            continue
        to_c = centre - pos
        yaw = np.degrees(np.unwrap(np.arctan2(to_c[:, 0], to_c[:, 2])))
        pitch = np.full(n, -np.degrees(np.arctan2(look_y, radius)))
        return pos, yaw, pitch
    raise RuntimeError(f"orbit: no free path in {world!r}")


def _random_return(world, rng, n):
    t, walk, rest = _budget(n)
    speed = rng.uniform(0.06, 0.14)
    p = _free_start(world, rng)
    yaw = _open_heading(world, p, rng)
    rate = 0.0
    pos, yaws = [p], [yaw]
    for _ in range(walk):
        rate = float(np.clip(0.8 * rate + rng.normal(0, 1.5), -MAX_TURN_DEG / 2, MAX_TURN_DEG / 2))
        # steer away from obstacles: try the wanted turn, then sharper ones either way
        turns = np.clip([rate, rate + 4, rate - 4, rate + 8, rate - 8], -MAX_TURN_DEG, MAX_TURN_DEG)
        for dyaw in turns:
            nxt = p + speed * _heading(yaw + dyaw)
            ahead = p + LOOK_AHEAD_M * _heading(yaw + dyaw)
            if _path_free(world, np.stack([p, nxt, 0.5 * (nxt + ahead), ahead])):
                break
        else:  # boxed in: turn on the spot
            dyaw = MAX_TURN_DEG if rate >= 0 else -MAX_TURN_DEG
            nxt = p
        yaw += dyaw
        p = nxt
        pos.append(p)
        yaws.append(yaw)
    # walk out, turn around, retrace the path, turn to the first view
    pos, yaws = np.array(pos[:-1]), np.array(yaws[:-1])
    end = pos[-1]
    turn1 = yaws[-1] + np.linspace(0, 180, t + 1)[1:]
    back_yaw = (yaws + 180)[::-1]
    turn2 = back_yaw[-1] + np.linspace(0, 180, t + rest + 1)[1:]
    all_pos = np.concatenate(
        [pos, np.repeat(end[None], t, 0), pos[::-1], np.repeat(pos[:1], t + rest, 0)]
    )
    all_yaw = np.concatenate([yaws, turn1, back_yaw, turn2])
    pitch = np.full(n, rng.uniform(-5, 5))
    return all_pos, all_yaw, pitch


_TRAJECTORIES = {
    "out_and_back": _out_and_back,
    "loop": _loop,
    "look_around": _look_around,
    "orbit": _orbit,
    "random_return": _random_return,
}


def make_trajectory(world: World, kind: str, num_frames: int, seed: int) -> Tensor:
    """A camera path through free space that comes back to where it started.

    kind: "out_and_back" (walk, turn around, walk back, turn to the first view), "loop" (walk
    an ellipse), "look_around" (pan right and left with a small step, back to the first view),
    "orbit" (circle an object looking at it), "random_return" (a steered random walk, turned
    around and retraced). Walking speeds 0.05-0.15 m/frame, in-place turns of at most
    ``MAX_TURN_DEG`` per frame when num_frames leaves room (>= ~92), cameras at y = 0 and at
    least ``CLEARANCE_M`` from every surface. Returns c2w ``(num_frames, 4, 4)`` float32.
    """
    if kind not in _TRAJECTORIES:
        raise ValueError(f"make_trajectory: kind must be one of {TRAJECTORY_KINDS}, got {kind!r}")
    if not isinstance(num_frames, (int, np.integer)) or num_frames < 2:
        raise ValueError(f"make_trajectory: num_frames must be an int >= 2, got {num_frames!r}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 1 + TRAJECTORY_KINDS.index(kind), 99])
    pos, yaw, pitch = _TRAJECTORIES[kind](world, rng, int(num_frames))
    return _poses(pos, yaw, pitch)


def generate_episode(
    seed: int,
    num_frames: int,
    image_size: int = 64,
    fov_deg: float = 75.0,
    world_kind: str | None = None,
    traj_kind: str | None = None,
    shadows: bool = True,
) -> SyntheticEpisode:
    """Build a world and a trajectory from ``seed`` and render them.

    Returns a SyntheticEpisode: rgb uint8 ``(N, S, S, 3)``, depth float32 ``(N, S, S)``, c2w
    float32 ``(N, 4, 4)``, K float32 ``(N, 3, 3)`` (square pixels, horizontal field of view
    ``fov_deg``), and the world's caption. Kinds left None are picked from the seed.
    """
    if image_size <= 0:
        raise ValueError(f"generate_episode: image_size must be positive, got {image_size}")
    if traj_kind is not None and traj_kind not in TRAJECTORY_KINDS:
        raise ValueError(
            f"generate_episode: traj_kind must be one of {TRAJECTORY_KINDS} or None, "
            f"got {traj_kind!r}"
        )
    world = make_world(seed, world_kind)
    if traj_kind is None:
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 5])
        traj_kind = TRAJECTORY_KINDS[int(rng.integers(len(TRAJECTORY_KINDS)))]
    c2w = make_trajectory(world, traj_kind, num_frames, seed)
    K = intrinsics_from_fov(fov_deg, image_size, image_size).expand(num_frames, 3, 3).contiguous()
    rgb, depth = world.render(c2w, K, image_size, image_size, shadows=shadows)
    rgb8 = (rgb * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return SyntheticEpisode(
        rgb=rgb8,
        depth=depth[:, 0].contiguous(),
        c2w=c2w,
        K=K,
        caption=world.caption,
        world_kind=world.kind,
        traj_kind=traj_kind,
        seed=int(seed),
    )
