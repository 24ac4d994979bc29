"""A procedural world: an enclosure box plus obstacles, with free-space tests and rendering.

``World.render`` traces every pixel of a chunk of frames against the enclosure and the
obstacles in view, and shades the hits (textures from ``textures``, Lambert with a key light
that casts shadows from the obstacles, a fill light and ambient).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from worldmem.data.synthetic.raycast import _hit_obstacles, _Primitives
from worldmem.data.synthetic.textures import _SKY, PALETTE, TEXTURES, Material, _texture
from worldmem.geometry import check_c2w, check_K, ray_directions

RAYS_PER_CHUNK = 1 << 16  # rays intersected at once (bounds memory: ~100 B per ray-primitive)

# Faces of the enclosure, in the renderer's order: index = 2 * axis + (exit through the + side).
_FACES = ("x-", "x+", "ceiling", "floor", "z-", "z+")
_BOX, _CYL, _SPHERE = 0, 1, 2


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
            ts, _ = _hit_obstacles(so, sd, sinv, self._prims)
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
            tob, idx = _hit_obstacles(o, d, inv, prims)
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
