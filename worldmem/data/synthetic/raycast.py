"""Analytic ray-primitive intersection for the world's obstacles.

``_Primitives`` lays the obstacle tables out for the tests (and culls them to a view frustum);
``_hit_obstacles`` finds the nearest hit per ray among them. Obstacles are axis-aligned boxes,
vertical capped cylinders and spheres; y points down.
"""

from __future__ import annotations

import torch
from torch import Tensor


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
