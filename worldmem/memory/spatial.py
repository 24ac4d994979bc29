"""Spatial memory: a bounded, voxel-fused, coloured point cloud.

Each stored point is one occupied voxel of edge ``voxel_size_m``: the running mean of the
positions and colours of every pixel that landed in it, a confidence (observation weight, in
frames, capped at ``max_confidence``) and the step it was last observed.

Cost of ``insert`` for M valid new pixels and N stored points:

* fusion: sort and reduce the M pixels by voxel key (O(M log M)), look the keys up in the
  sorted key index with ``searchsorted`` (O(M log N)), and merge the new keys into the index
  (one vectorised O(N) int64 copy, no sort);
* carving: occupied blocks of 8^3 voxels (contiguous ranges of the block-major index) are
  culled against the new frusta, and only points in surviving blocks are projected. Listing
  the blocks is one O(N) integer pass over the index, cached until the index changes;
* dropping points (carved or evicted) compacts the arrays: an O(N) copy, only when points go.

So an insert does O(M log N) arithmetic, plus the carving projection of the points near the
new frusta, plus a few memory-bandwidth passes over N (well under a millisecond per 100k
points). N never exceeds ``max_points``, so the cost per insert is bounded however long the
video. ``render`` culls blocks the same way and splats only the points near the view frusta:
O(blocks + visible points) per view, not O(N).

Cameras follow ``worldmem.geometry.camera`` (OpenCV, c2w, K in pixels, z-depth in metres).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldmem.config import MemoryConfig, from_dict
from worldmem.geometry.camera import se3_inverse, unproject_depth
from worldmem.memory._checks import (
    check_cameras,
    check_size,
    check_step,
    check_tensor,
    expect,
)
from worldmem.memory.render import (
    MemoryRender,
    compose,
    empty_render,
    gsplat_available,
    gsplat_points,
    zbuffer,
)

__all__ = ["SpatialMemory", "voxel_keys", "keys_to_voxels"]

# Voxel keys: integer voxel coordinates offset by 2**20 (21 bits per axis, +-2**20 voxels,
# +-42 km at 4 cm voxels), packed block-major: the 18 high bits of each axis (the 8^3-voxel
# block) first, then the 3 low bits of each axis. Keys sort by block, so the points of one
# block are one contiguous range of the sorted index (used to cull blocks when carving).
_AXIS_BITS = 21
_OFFSET = 1 << (_AXIS_BITS - 1)
_BLOCK_BITS = 3  # blocks of 2**3 = 8 voxels per axis
_LOCAL_BITS = 3 * _BLOCK_BITS
_BLOCK_AXIS_BITS = _AXIS_BITS - _BLOCK_BITS
_BLOCK_AXIS_MASK = (1 << _BLOCK_AXIS_BITS) - 1
_LOCAL_AXIS_MASK = (1 << _BLOCK_BITS) - 1
_CARVE_WINDOW_PX = 3  # a point is seen through only if every pixel around it is behind it
_FORMAT = "worldmem.spatial_memory"
_VERSION = 1


def voxel_keys(voxels: Tensor) -> Tensor:
    """Integer voxel coordinates ``(M, 3)`` int64 in [-2**20, 2**20) -> keys ``(M,)`` int64 >= 0."""
    v = voxels + _OFFSET
    b = v >> _BLOCK_BITS
    loc = v & _LOCAL_AXIS_MASK
    block = (b[:, 0] << (2 * _BLOCK_AXIS_BITS)) | (b[:, 1] << _BLOCK_AXIS_BITS) | b[:, 2]
    local = (loc[:, 0] << (2 * _BLOCK_BITS)) | (loc[:, 1] << _BLOCK_BITS) | loc[:, 2]
    return (block << _LOCAL_BITS) | local


def keys_to_voxels(keys: Tensor) -> Tensor:
    """Inverse of ``voxel_keys``: keys ``(M,)`` -> integer voxel coordinates ``(M, 3)``."""
    block = keys >> _LOCAL_BITS
    b = torch.stack(
        [
            (block >> (2 * _BLOCK_AXIS_BITS)) & _BLOCK_AXIS_MASK,
            (block >> _BLOCK_AXIS_BITS) & _BLOCK_AXIS_MASK,
            block & _BLOCK_AXIS_MASK,
        ],
        -1,
    )
    loc = torch.stack(
        [
            (keys >> (2 * _BLOCK_BITS)) & _LOCAL_AXIS_MASK,
            (keys >> _BLOCK_BITS) & _LOCAL_AXIS_MASK,
            keys & _LOCAL_AXIS_MASK,
        ],
        -1,
    )
    return ((b << _BLOCK_BITS) | loc) - _OFFSET


def _check_config(cfg: MemoryConfig) -> None:
    expect(isinstance(cfg, MemoryConfig), f"cfg: expected MemoryConfig, got {type(cfg).__name__}")
    checks = [
        (cfg.voxel_size_m > 0, "voxel_size_m must be > 0"),
        (cfg.max_points > 0, "max_points must be > 0"),
        (cfg.carve_margin_rel >= 0, "carve_margin_rel must be >= 0"),
        (0 <= cfg.carve_factor <= 1, "carve_factor must be in [0, 1]"),
        (0 <= cfg.min_confidence < 1, "min_confidence must be in [0, 1) (a new point has 1)"),
        (cfg.max_confidence >= 1, "max_confidence must be >= 1"),
        (cfg.max_depth_m > 0, "max_depth_m must be > 0"),
        (cfg.splat_radius_px > 0, "splat_radius_px must be > 0"),
        (cfg.splat_ref_depth_m > 0, "splat_ref_depth_m must be > 0"),
        (cfg.max_splat_radius_px >= 0, "max_splat_radius_px must be >= 0"),
        (
            0.5 <= cfg.min_splat_radius_px <= max(cfg.max_splat_radius_px, 0.5),
            "min_splat_radius_px must be in [0.5, max(max_splat_radius_px, 0.5)]",
        ),
        (cfg.near_m > 0, "near_m must be > 0"),
    ]
    for ok, msg in checks:
        expect(ok, f"MemoryConfig: {msg}")


class SpatialMemory:
    """A voxel-fused point cloud: insert posed RGB-D frames, render it at any camera.

    ``SpatialMemory(cfg, device)``; the cloud lives on ``device`` (CPU or CUDA) and inputs are
    moved there. Read-only views of the stored cloud: ``xyz (N, 3)``, ``rgb (N, 3)`` in [0, 1],
    ``confidence (N,)``, ``last_seen (N,)`` int64, ``voxel_keys (N,)`` int64.
    """

    def __init__(self, cfg: MemoryConfig | None = None, device: str | torch.device = "cpu"):
        cfg = MemoryConfig() if cfg is None else cfg
        _check_config(cfg)
        self.cfg = cfg
        self.device = torch.device(device)
        if cfg.render_backend == "gsplat":
            expect(
                self.device.type == "cuda" and gsplat_available(),
                f"render_backend='gsplat' needs a CUDA device and the gsplat package "
                f"(device={self.device}, gsplat usable: {gsplat_available()}); "
                "use render_backend='torch'",
            )
        self._n = 0
        self._next_step = 0
        self._alloc(0)
        self._skeys = torch.zeros(0, dtype=torch.int64, device=self.device)  # sorted keys
        self._sidx = torch.zeros(0, dtype=torch.int64, device=self.device)  # their points
        self._blocks: tuple[Tensor, Tensor, Tensor] | None = None  # see _block_table

    # ------------------------------------------------------------------ storage
    def _alloc(self, capacity: int) -> None:
        dev = self.device
        self._pos = torch.zeros(3, capacity, device=dev)  # positions as rows x, y, z
        self._rgb = torch.zeros(capacity, 3, device=dev)
        self._conf = torch.zeros(capacity, device=dev)
        self._last = torch.zeros(capacity, dtype=torch.int64, device=dev)
        self._key = torch.zeros(capacity, dtype=torch.int64, device=dev)

    def _reserve(self, needed: int) -> None:
        """Grow the point buffers geometrically so appends are amortised O(new points)."""
        cap = self._pos.shape[1]
        if needed <= cap:
            return
        old = (self._pos, self._rgb, self._conf, self._last, self._key)
        self._alloc(max(needed, 2 * cap, 1024))
        n = self._n
        self._pos[:, :n] = old[0][:, :n]
        for dst, src in zip((self._rgb, self._conf, self._last, self._key), old[1:]):
            dst[:n] = src[:n]

    @property
    def num_points(self) -> int:
        return self._n

    @property
    def xyz(self) -> Tensor:
        """``(N, 3)`` point positions (world, metres); a transposed view of ``(3, N)`` rows."""
        return self._pos[:, : self._n].T

    @property
    def rgb(self) -> Tensor:
        """``(N, 3)`` point colours in [0, 1]."""
        return self._rgb[: self._n]

    @property
    def confidence(self) -> Tensor:
        """``(N,)`` observation weight (frames that saw the voxel, decayed by carving)."""
        return self._conf[: self._n]

    @property
    def last_seen(self) -> Tensor:
        """``(N,)`` int64 step at which each point was last observed."""
        return self._last[: self._n]

    @property
    def voxel_keys(self) -> Tensor:
        """``(N,)`` int64 voxel key of each point (see ``keys_to_voxels``)."""
        return self._key[: self._n]

    @property
    def step(self) -> int:
        """The step given to the next ``insert`` when it is called without one."""
        return self._next_step

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return (
            f"SpatialMemory(points={self._n}, max_points={self.cfg.max_points}, "
            f"voxel_size_m={self.cfg.voxel_size_m}, device={self.device})"
        )

    # ------------------------------------------------------------------ insert
    def _check_frames(self, rgb, depth, c2w, K, mask):
        """Validate a batch of posed frames; returns them on this device, float32, plus the
        pixel masks for insertion and for carving. Raises ``ValueError`` before any change."""
        check_tensor(rgb, "rgb", (None, 3, None, None))
        N, _, H, W = rgb.shape
        expect(N > 0, "rgb: expected at least one frame, got 0")
        check_tensor(depth, "depth", (N, 1, H, W))
        check_cameras(c2w, K, N)
        if mask is not None:
            check_tensor(mask, "mask", (N, 1, H, W), floating=False)
            expect(
                mask.dtype == torch.bool,
                f"mask: expected a bool tensor, got {mask.dtype}",
            )
        dev = self.device
        rgb = rgb.to(dev, torch.float32)
        depth = depth.to(dev, torch.float32)[:, 0]  # (N, H, W)
        c2w = c2w.to(dev, torch.float32)
        K = K.to(dev, torch.float32)
        seen = torch.isfinite(depth) & (depth > 0)  # pixels whose depth means something
        if mask is not None:
            seen &= mask.to(dev)[:, 0]
        ok_rgb = torch.isfinite(rgb).all(1)
        valid = seen & ok_rgb & (depth <= self.cfg.max_depth_m)
        return rgb, depth, c2w, K, valid, seen

    def insert(
        self,
        rgb: Tensor,
        depth: Tensor,
        c2w: Tensor,
        K: Tensor,
        mask: Tensor | None = None,
        step: int | None = None,
    ) -> int:
        """Fuse posed RGB-D frames into the cloud.

        rgb ``(N, 3, H, W)`` in [0, 1], depth ``(N, 1, H, W)`` z-depth in metres, c2w
        ``(N, 4, 4)`` rigid, K ``(N, 3, 3)``, mask ``(N, 1, H, W)`` bool or None (False: ignore
        the pixel), step (stored as last_seen; default: the memory's step counter).
        Returns the number of new points (voxels not in the cloud before).

        Pixels with non-finite, zero or negative depth, depth > ``max_depth_m``, non-finite
        colour or mask False are skipped. Before fusing, stored points that a new frame sees
        through (every depth in the 3x3 window around the point's pixel is more than
        ``carve_margin_rel`` behind it) have their confidence multiplied by ``carve_factor``
        per such frame; points below ``min_confidence`` are dropped; then the cloud is cut to
        ``max_points`` (lowest confidence first, then least recently seen; points this insert
        observed go last). Wrong shapes, non-rigid c2w, bad K or a negative step raise
        ``ValueError`` and leave the cloud unchanged.
        """
        rgb, depth, c2w, K, valid, seen = self._check_frames(rgb, depth, c2w, K, mask)
        step = self._next_step if step is None else check_step(step)
        vs = self.cfg.voxel_size_m

        # 1. back-project the valid pixels
        pts = unproject_depth(torch.where(valid, depth, 1.0), c2w, K)  # (N, H, W, 3)
        sel = valid.flatten().nonzero().squeeze(1)
        pts = pts.reshape(-1, 3)[sel]  # (M, 3)
        cols = rgb.permute(0, 2, 3, 1).reshape(-1, 3)[sel].clamp(0, 1)  # (M, 3)
        frame = sel // (valid.shape[1] * valid.shape[2])  # (M,) frame of each pixel
        vox = torch.floor(pts / vs)
        in_range = (vox.abs() < _OFFSET - 1).all(1)
        if not bool(in_range.all()):
            far = pts[~in_range][0].tolist()
            raise ValueError(
                f"depth/c2w: point {far} is beyond the voxel grid (+-{_OFFSET - 1} voxels of "
                f"{vs} m from the origin); recentre the world or use larger voxels"
            )
        keys = voxel_keys(vox.long())

        # 2. carve stored points the new frames see through (before any change to the index)
        free = torch.where(seen, depth, 0.0)  # 0 never carves
        self._carve(free, c2w, K)

        # 3. fuse: reduce the batch per voxel, update known voxels, append new ones
        added = self._fuse(keys, pts, cols, frame, step)

        # 4. drop carved points and enforce the cap
        self._drop_and_evict(step)
        self._next_step = max(self._next_step, step + 1)
        return added

    def _fuse(self, keys: Tensor, pts: Tensor, cols: Tensor, frame: Tensor, step: int) -> int:
        if keys.numel() == 0:
            return 0
        dev = self.device
        skeys, order = torch.sort(keys, stable=True)  # frames stay in order within a voxel
        ukeys, counts = torch.unique_consecutive(skeys, return_counts=True)  # (U,)
        U = ukeys.shape[0]
        group = torch.repeat_interleave(torch.arange(U, device=dev), counts)  # (M,)
        f = frame[order]
        first = torch.ones_like(f, dtype=torch.bool)
        first[1:] = (group[1:] != group[:-1]) | (f[1:] != f[:-1])
        n_frames = torch.zeros(U, device=dev).index_add_(0, group, first.float())  # (U,)
        cnt = counts.float()[:, None]
        mean_xyz = torch.zeros(U, 3, device=dev).index_add_(0, group, pts[order]) / cnt
        mean_rgb = torch.zeros(U, 3, device=dev).index_add_(0, group, cols[order]) / cnt

        n = self._n
        if n > 0:
            pos = torch.searchsorted(self._skeys, ukeys)
            posc = pos.clamp(max=n - 1)
            found = self._skeys[posc] == ukeys
        else:
            pos = torch.zeros(U, dtype=torch.int64, device=dev)
            posc, found = pos, torch.zeros(U, dtype=torch.bool, device=dev)

        # known voxels: running mean weighted by confidence (a moving average once capped)
        fi = found.nonzero().squeeze(1)
        if fi.numel():
            idx = self._sidx[posc[fi]]
            w_old = self._conf[idx]
            w_new = n_frames[fi]
            a = (w_new / (w_old + w_new))[:, None]
            self._pos[:, idx] += (mean_xyz[fi].T - self._pos[:, idx]) * a.T
            self._rgb[idx] += (mean_rgb[fi] - self._rgb[idx]) * a
            self._conf[idx] = (w_old + w_new).clamp(max=self.cfg.max_confidence)
            self._last[idx] = step

        # new voxels: append, then merge their (already sorted) keys into the index
        ni = (~found).nonzero().squeeze(1)
        m = ni.numel()
        if m:
            self._reserve(n + m)
            new_idx = torch.arange(n, n + m, device=dev)
            self._pos[:, n : n + m] = mean_xyz[ni].T
            self._rgb[n : n + m] = mean_rgb[ni]
            self._conf[n : n + m] = n_frames[ni].clamp(max=self.cfg.max_confidence)
            self._last[n : n + m] = step
            self._key[n : n + m] = ukeys[ni]
            at = pos[ni] + torch.arange(m, device=dev)  # final slots of the new keys
            old_slot = torch.ones(n + m, dtype=torch.bool, device=dev)
            old_slot[at] = False
            sk = torch.empty(n + m, dtype=torch.int64, device=dev)
            si = torch.empty(n + m, dtype=torch.int64, device=dev)
            sk[old_slot], si[old_slot] = self._skeys, self._sidx
            sk[at], si[at] = ukeys[ni], new_idx
            self._skeys, self._sidx = sk, si
            self._blocks = None
            self._n = n + m
        return m

    # ------------------------------------------------------------------ carving
    def _block_table(self) -> tuple[Tensor, Tensor, Tensor]:
        """Occupied 8^3-voxel blocks: centres ``(B, 3)``, first slot in the sorted index
        ``(B,)`` and point counts ``(B,)``. Cached until the index changes."""
        if self._blocks is None:
            blocks, counts = torch.unique_consecutive(
                self._skeys >> _LOCAL_BITS, return_counts=True
            )
            b = keys_to_voxels(blocks << _LOCAL_BITS)  # the block's lowest voxel
            centre = (b.float() + 0.5 * (1 << _BLOCK_BITS)) * self.cfg.voxel_size_m
            self._blocks = (centre, torch.cumsum(counts, 0) - counts, counts)
        return self._blocks

    def _frustum_candidates(
        self, c2w: Tensor, K: Tensor, H: int, W: int, far: Tensor, pad_px: float = 0.0
    ) -> Tensor:
        """Indices of stored points in blocks that intersect any of the F frusta (truncated at
        ``far (F,)``, widened by ``pad_px`` pixels on every side): a superset of the points
        inside them, in sorted-key order. Cost O(blocks + returned points)."""
        centre, starts, counts = self._block_table()
        radius = math.sqrt(3) * 0.5 * (1 << _BLOCK_BITS) * self.cfg.voxel_size_m
        w2c = se3_inverse(c2w)
        cam = centre @ w2c[:, :3, :3].transpose(-1, -2) + w2c[:, None, :3, 3]  # (F, B, 3)
        x, y, z = cam.unbind(-1)
        fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
        cx, cy = K[:, 0, 2, None], K[:, 1, 2, None]
        hit = (z > self.cfg.near_m - radius) & (z < far[:, None] + radius)
        # four side planes through the camera centre (x/z >= (-pad - cx)/fx, ...): a block is
        # out only when its bounding sphere is entirely on the outer side of one of them
        for a, coord, sign in (
            ((-pad_px - cx) / fx, x, 1.0),
            ((W + pad_px - cx) / fx, x, -1.0),
            ((-pad_px - cy) / fy, y, 1.0),
            ((H + pad_px - cy) / fy, y, -1.0),
        ):
            hit &= sign * (coord - a * z) / torch.sqrt(1 + a * a) >= -radius
        hit = hit.any(0)  # (B,)
        s, c = starts[hit], counts[hit]
        if c.numel() == 0:
            return torch.zeros(0, dtype=torch.int64, device=self.device)
        if c.numel() == counts.numel():
            return self._sidx
        total = int(c.sum())
        shift = torch.repeat_interleave(s - (torch.cumsum(c, 0) - c), c)
        return self._sidx[torch.arange(total, device=self.device) + shift]

    def _carve(self, free: Tensor, c2w: Tensor, K: Tensor) -> None:
        """Decay the confidence of stored points that the frames (free-space depth ``free
        (F, H, W)``, 0 where unknown) see through."""
        if self._n == 0 or self.cfg.carve_factor >= 1:
            return
        F_, H, W = free.shape
        pad = _CARVE_WINDOW_PX // 2
        dmin = -F.max_pool2d(-free[:, None], _CARVE_WINDOW_PX, 1, pad)[:, 0]  # (F, H, W)
        far = free.flatten(1).amax(1) / (1 + self.cfg.carve_margin_rel)  # farthest carvable z
        if not bool((far > self.cfg.near_m).any()):
            return
        idx = self._frustum_candidates(c2w, K, H, W, far)
        if idx.numel() == 0:
            return
        w2c = se3_inverse(c2w)
        cam = torch.baddbmm(w2c[:, :3, 3:], w2c[:, :3, :3], self._pos[:, idx].expand(F_, 3, -1))
        z = cam[:, 2]  # (F, C)
        zs = z.clamp(min=self.cfg.near_m)
        u = K[:, 0, 0, None] * cam[:, 0] / zs + K[:, 0, 2, None]
        v = K[:, 1, 1, None] * cam[:, 1] / zs + K[:, 1, 2, None]
        inside = (z > self.cfg.near_m) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
        iu = u.clamp(0, W - 1).long()
        iv = v.clamp(0, H - 1).long()
        d = dmin.flatten(1).gather(1, iv * W + iu)  # (F, C)
        through = inside & (d > z * (1 + self.cfg.carve_margin_rel))
        count = through.sum(0)  # (C,)
        hit = count.nonzero().squeeze(1)
        if hit.numel():
            j = idx[hit]
            self._conf[j] *= self.cfg.carve_factor ** count[hit].float()

    # ------------------------------------------------------------------ dropping
    def _drop_and_evict(self, step: int | None = None) -> None:
        n = self._n
        conf = self._conf[:n]
        drop = conf < self.cfg.min_confidence
        n_keep = n - int(drop.sum())
        excess = n_keep - self.cfg.max_points
        if excess > 0:
            drop |= self._eviction_mask(drop, excess, step)
        if bool(drop.any()):
            self._remove(drop)

    def _eviction_mask(self, dropped: Tensor, excess: int, step: int | None) -> Tensor:
        """The ``excess`` points to evict among those not already dropped, as a bool mask
        ``(N,)``: lowest confidence first, then oldest ``last_seen``, then lowest index. Points
        observed by the current insert (``last_seen >= step``) go only after all others, so
        what the camera sees now is never lost to older, more confident points."""
        n = self._n
        alive = ~dropped
        evict = torch.zeros(n, dtype=torch.bool, device=self.device)
        if step is None:
            groups = [alive]
        else:
            now = self._last[:n] >= step
            groups = [alive & ~now, alive & now]
        for cand in groups:
            if excess <= 0:
                break
            k = int(cand.sum())
            if k <= excess:
                evict |= cand
                excess -= k
                continue
            conf = torch.where(cand, self._conf[:n], float("inf"))
            thresh = torch.kthvalue(conf, excess).values
            lower = conf < thresh
            evict |= lower
            need = excess - int(lower.sum())
            ties = (conf == thresh).nonzero().squeeze(1)  # ascending index
            order = torch.sort(self._last[ties], stable=True).indices[:need]
            evict[ties[order]] = True
            excess = 0
        return evict

    def _remove(self, drop: Tensor) -> None:
        """Remove points ``drop (N,) bool``, compacting the arrays and the sorted index."""
        n = self._n
        keep = ~drop
        m = int(keep.sum())
        remap = torch.cumsum(keep.long(), 0) - 1
        self._pos[:, :m] = self._pos[:, :n][:, keep]
        for buf in (self._rgb, self._conf, self._last, self._key):
            buf[:m] = buf[:n][keep]
        k2 = keep[self._sidx]
        self._skeys = self._skeys[k2]
        self._sidx = remap[self._sidx[k2]]
        self._blocks = None
        self._n = m

    # ------------------------------------------------------------------ render
    def render(self, c2w: Tensor, K: Tensor, height: int, width: int) -> MemoryRender:
        """The cloud seen from V cameras.

        c2w ``(V, 4, 4)``, K ``(V, 3, 3)`` -> ``MemoryRender`` with rgb ``(V, 3, H, W)``,
        depth ``(V, 1, H, W)`` and mask ``(V, 1, H, W)`` (float 0/1), on this memory's device.

        Backend ``cfg.render_backend``: "torch" is the z-buffer splat of
        ``render.splat_points`` (footprint radius ``clamp(splat_radius_px *
        splat_ref_depth_m / z, 0.5, max_splat_radius_px)`` pixels, holes then filled from
        points within ``min_splat_radius_px``; nearest point wins, equal depths go to the
        lower voxel key), run only on the points of blocks near the view frusta. "gsplat"
        draws isotropic Gaussians of half a voxel (CUDA only).
        """
        height, width = check_size(height, width)
        check_cameras(c2w, K, None)
        expect(c2w.shape[0] == K.shape[0], f"c2w, K: {c2w.shape[0]} vs {K.shape[0]} views")
        c2w = c2w.to(self.device, torch.float32)
        K = K.to(self.device, torch.float32)
        cfg = self.cfg
        if cfg.render_backend == "gsplat":
            return gsplat_points(
                self.xyz, self.rgb, c2w, K, height, width, 0.5 * cfg.voxel_size_m, cfg.near_m
            )
        far = torch.full((c2w.shape[0],), float("inf"), device=self.device)
        idx = (
            self._frustum_candidates(c2w, K, height, width, far, cfg.max_splat_radius_px + 1)
            if self._n
            else self._sidx
        )
        if idx.numel() == 0:  # nothing stored, or nothing near the views
            return empty_render(c2w.shape[0], height, width, self.device)
        index, depth = zbuffer(
            self._pos[:, idx],
            c2w,
            K,
            height,
            width,
            radius_px=cfg.splat_radius_px,
            ref_depth_m=cfg.splat_ref_depth_m,
            max_radius_px=cfg.max_splat_radius_px,
            min_radius_px=cfg.min_splat_radius_px,
            near_m=cfg.near_m,
        )
        index = torch.where(index >= 0, idx[index.clamp(min=0)], -1)
        return compose(index, depth, self._rgb, c2w.shape[0], height, width)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Tensors (copies, in storage order) and plain numbers for an exact resume."""
        n = self._n
        return {
            "xyz": self._pos[:, :n].T.clone(memory_format=torch.contiguous_format),
            "rgb": self._rgb[:n].clone(),
            "confidence": self._conf[:n].clone(),
            "last_seen": self._last[:n].clone(),
            "voxel_keys": self._key[:n].clone(),
            "next_step": int(self._next_step),
            "voxel_size_m": float(self.cfg.voxel_size_m),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict``. Raises ``ValueError`` (leaving the memory unchanged) on
        missing entries, inconsistent shapes, duplicate keys or a different voxel size. A
        cloud larger than ``max_points`` is cut down by the usual eviction order."""
        need = ("xyz", "rgb", "confidence", "last_seen", "voxel_keys", "next_step")
        missing = [k for k in need if k not in state]
        expect(not missing, f"state_dict: missing entries {missing}")
        vs = float(state.get("voxel_size_m", self.cfg.voxel_size_m))
        expect(
            math.isclose(vs, self.cfg.voxel_size_m, rel_tol=1e-9),
            f"state_dict: saved with voxel_size_m={vs}, this memory has "
            f"{self.cfg.voxel_size_m}; voxel keys would not match",
        )
        n = state["xyz"].shape[0] if isinstance(state["xyz"], Tensor) else -1
        check_tensor(state["xyz"], "state_dict xyz", (n, 3))
        check_tensor(state["rgb"], "state_dict rgb", (n, 3))
        check_tensor(state["confidence"], "state_dict confidence", (n,))
        check_tensor(state["last_seen"], "state_dict last_seen", (n,), floating=False)
        check_tensor(state["voxel_keys"], "state_dict voxel_keys", (n,), floating=False)
        next_step = check_step(int(state["next_step"]), "state_dict next_step")
        keys = state["voxel_keys"].to(self.device, torch.int64)
        skeys, sidx = torch.sort(keys)
        expect(
            n < 2 or not bool((skeys[1:] == skeys[:-1]).any()),
            "state_dict: voxel_keys has duplicates",
        )
        self._alloc(max(n, 1024))
        self._pos[:, :n] = state["xyz"].to(self.device, torch.float32).T
        self._rgb[:n] = state["rgb"].to(self.device, torch.float32)
        self._conf[:n] = state["confidence"].to(self.device, torch.float32)
        self._last[:n] = state["last_seen"].to(self.device, torch.int64)
        self._key[:n] = keys
        self._skeys, self._sidx, self._n = skeys, sidx, n
        self._blocks = None
        self._next_step = next_step
        self._drop_and_evict()

    def save(self, path: str | Path) -> Path:
        """Write the memory (cloud, step and config) to a safetensors file."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        tensors = {k: v.contiguous().cpu() for k, v in state.items() if isinstance(v, Tensor)}
        meta = {
            "format": _FORMAT,
            "version": str(_VERSION),
            "next_step": str(state["next_step"]),
            "voxel_size_m": repr(state["voxel_size_m"]),
            "config": json.dumps(asdict(self.cfg)),
        }
        save_file(tensors, str(path), metadata=meta)
        return path

    @classmethod
    def load(
        cls, path: str | Path, cfg: MemoryConfig | None = None, device: str | torch.device = "cpu"
    ) -> SpatialMemory:
        """Read a file written by ``save``. ``cfg=None`` uses the config stored in the file."""
        from safetensors import safe_open

        path = Path(path)
        expect(path.is_file(), f"{path}: no such file")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except Exception as e:  # safetensors raises its own error types
            raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
        expect(
            meta.get("format") == _FORMAT,
            f"{path}: not a spatial memory file (format={meta.get('format')!r})",
        )
        if cfg is None:
            cfg = from_dict(MemoryConfig, json.loads(meta["config"]), where=str(path))
        mem = cls(cfg, device)
        state = dict(tensors)
        state["next_step"] = int(meta["next_step"])
        state["voxel_size_m"] = float(meta["voxel_size_m"])
        try:
            mem.load_state_dict(state)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        return mem

    def export_ply(self, path: str | Path) -> Path:
        """Write the cloud as a binary little-endian PLY: float x y z, uchar red green blue,
        float confidence."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        n = self._n
        data = np.empty(
            n,
            dtype=[
                ("x", "<f4"),
                ("y", "<f4"),
                ("z", "<f4"),
                ("red", "u1"),
                ("green", "u1"),
                ("blue", "u1"),
                ("confidence", "<f4"),
            ],
        )
        xyz = self.xyz.cpu().numpy()
        rgb = (self.rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        data["x"], data["y"], data["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        data["red"], data["green"], data["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        data["confidence"] = self.confidence.cpu().numpy()
        header = (
            "ply\nformat binary_little_endian 1.0\n"
            f"element vertex {n}\n"
            "property float x\nproperty float y\nproperty float z\n"
            "property uchar red\nproperty uchar green\nproperty uchar blue\n"
            "property float confidence\nend_header\n"
        )
        with open(path, "wb") as f:
            f.write(header.encode("ascii"))
            f.write(data.tobytes())
        return path

    # ------------------------------------------------------------------ map
    def topdown_map(
        self, size_px: int = 256, cameras_c2w: Tensor | None = None, margin_rel: float = 0.05
    ) -> np.ndarray:
        """A top-down picture of the cloud: ``(size_px, size_px, 3)`` uint8.

        The x-z plane seen from above (world up is -y): image right is +x, image up is +z.
        Each cell shows the colour of its highest point (smallest y). ``cameras_c2w (N, 4, 4)``
        adds a path through the camera positions, a dot per camera and its heading (the
        camera z axis on the ground plane); the last camera is drawn brighter.
        """
        expect(
            isinstance(size_px, int) and size_px >= 8, f"size_px: expected int >= 8, {size_px!r}"
        )
        S = size_px
        img = np.full((S, S, 3), 24, dtype=np.uint8)
        cams = None
        if cameras_c2w is not None:
            check_tensor(cameras_c2w, "cameras_c2w", (None, 4, 4))
            cams = cameras_c2w.detach().to("cpu", torch.float64)
        xz = [self.xyz[:, [0, 2]].double().cpu()]
        if cams is not None:
            xz.append(cams[:, [0, 2], 3])
        xz = torch.cat(xz)
        if xz.shape[0] == 0:
            return img
        lo, hi = xz.amin(0), xz.amax(0)
        centre = (lo + hi) / 2
        half = float((hi - lo).max()) / 2 * (1 + 2 * margin_rel) + 1e-3
        cell = 2 * half / S

        def to_px(x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
            col = ((x - (centre[0] - half)) / cell).floor().long()
            row = (((centre[1] + half) - z) / cell).floor().long()
            return col, row

        if self._n:
            col, row = to_px(self.xyz[:, 0].double().cpu(), self.xyz[:, 2].double().cpu())
            ok = (col >= 0) & (col < S) & (row >= 0) & (row < S)
            y = self.xyz[:, 1].float().cpu().contiguous()
            bits = y.view(torch.int32)
            ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).long()  # orders like y
            key = (ordered << 32) | torch.arange(self._n)
            buf = torch.full((S * S + 1,), torch.iinfo(torch.int64).max, dtype=torch.int64)
            buf.scatter_reduce_(0, torch.where(ok, row * S + col, S * S), key, "amin")
            win = buf[: S * S]
            hit = win != torch.iinfo(torch.int64).max
            colours = (self.rgb.float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
            flat = img.reshape(-1, 3)
            flat[hit.numpy()] = colours[(win[hit] & 0xFFFFFFFF)].numpy()
        if cams is not None and cams.shape[0]:
            self._draw_cameras(img, cams, to_px, cell)
        return img

    @staticmethod
    def _draw_cameras(img: np.ndarray, cams: Tensor, to_px, cell: float) -> None:
        S = img.shape[0]

        def paint(col: Tensor, row: Tensor, colour) -> None:
            ok = (col >= 0) & (col < S) & (row >= 0) & (row < S)
            img[row[ok].numpy(), col[ok].numpy()] = colour

        pos = cams[:, [0, 2], 3]
        fwd = torch.nn.functional.normalize(cams[:, [0, 2], 2], dim=-1, eps=1e-9)
        if pos.shape[0] > 1:  # the path
            t = torch.linspace(0, 1, 16, dtype=pos.dtype)[None, :, None]
            seg = pos[:-1, None] + (pos[1:, None] - pos[:-1, None]) * t
            paint(*to_px(seg[..., 0].flatten(), seg[..., 1].flatten()), (90, 90, 200))
        length = max(6, S // 24) * cell  # heading ticks
        t = torch.linspace(0, 1, 2 * max(6, S // 24), dtype=pos.dtype)[None, :, None]
        tick = pos[:, None] + fwd[:, None] * length * t
        paint(*to_px(tick[..., 0].flatten(), tick[..., 1].flatten()), (255, 220, 40))
        col, row = to_px(pos[:, 0], pos[:, 1])
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                paint(col + dc, row + dr, (230, 60, 60))
        paint(col[-1:], row[-1:], (255, 255, 255))
