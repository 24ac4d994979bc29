"""The voxel index of the spatial memory: packed voxel keys, sorted block-major, so that the
samples near a set of view frusta are found without looking at the others.

Voxel keys are integer voxel coordinates offset by 2**20 (21 bits per axis, +-2**20 voxels,
+-42 km at 4 cm voxels), packed block-major: the 18 high bits of each axis (the 8^3-voxel
block) first, then the 3 low bits of each axis. Keys sort by block, so the samples of one
block are one contiguous range of the sorted index (``skeys (N,)`` the sorted keys, ``sidx
(N,)`` the sample each belongs to), and frustum culling tests blocks, not samples.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from worldmem.geometry.camera import se3_inverse
from worldmem.memory._tensor_ops import flat_nonzero

__all__ = [
    "GRID_HALF_VOXELS",
    "block_table",
    "frustum_candidates",
    "insert_sorted",
    "keys_to_voxels",
    "remove_sorted",
    "voxel_keys",
]

_AXIS_BITS = 21
GRID_HALF_VOXELS = 1 << (_AXIS_BITS - 1)  # voxels from the origin to the grid edge (key offset)
_BLOCK_BITS = 3  # blocks of 2**3 = 8 voxels per axis
_LOCAL_BITS = 3 * _BLOCK_BITS
_BLOCK_AXIS_BITS = _AXIS_BITS - _BLOCK_BITS
_BLOCK_AXIS_MASK = (1 << _BLOCK_AXIS_BITS) - 1
_LOCAL_AXIS_MASK = (1 << _BLOCK_BITS) - 1


def voxel_keys(voxels: Tensor) -> Tensor:
    """Integer voxel coordinates ``(M, 3)`` int64 in [-2**20, 2**20) -> keys ``(M,)`` int64 >= 0."""
    v = voxels + GRID_HALF_VOXELS
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
    return ((b << _BLOCK_BITS) | loc) - GRID_HALF_VOXELS


def insert_sorted(skeys: Tensor, sidx: Tensor, keys: Tensor, first: int) -> tuple[Tensor, Tensor]:
    """Merge the keys ``(M,)`` of new samples ``first .. first + M - 1`` into the sorted index
    ``skeys, sidx (N,)`` (equal keys keep their order, old ones first): one O(N) copy.
    Returns the new ``skeys, sidx (N + M,)``."""
    n, m, dev = skeys.shape[0], keys.shape[0], skeys.device
    keys, order = torch.sort(keys, stable=True)
    if dev.type == "cpu":  # numpy's insert does the merge about twice as fast
        k, old = keys.numpy(), skeys.numpy()
        at = np.searchsorted(old, k, side="right")  # equal keys: after the old ones, in order
        sk = np.insert(old, at, k)
        si = np.insert(sidx.numpy(), at, (first + order).numpy())
        return torch.from_numpy(sk), torch.from_numpy(si)
    at = torch.searchsorted(skeys, keys, right=True) + torch.arange(m, device=dev)
    old_slot = torch.ones(n + m, dtype=torch.bool, device=dev)
    old_slot[at] = False
    old_at = flat_nonzero(old_slot)
    sk = torch.empty(n + m, dtype=torch.int64, device=dev)
    si = torch.empty(n + m, dtype=torch.int64, device=dev)
    sk.index_copy_(0, old_at, skeys).index_copy_(0, at, keys)
    si.index_copy_(0, old_at, sidx).index_copy_(0, at, first + order)
    return sk, si


def remove_sorted(skeys: Tensor, sidx: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """The sorted index ``skeys, sidx (N,)`` without the samples where ``keep (N,)`` bool is
    False, the others renumbered in order (sample i becomes the count of kept samples before
    it): ``skeys, sidx (M,)``."""
    if keep.device.type == "cpu":  # numpy: the same steps, faster on these random gathers
        k, s = keep.numpy(), sidx.numpy()
        remap = np.cumsum(k, dtype=np.int64) - 1
        slots = k[s]
        return torch.from_numpy(skeys.numpy()[slots]), torch.from_numpy(remap[s[slots]])
    remap = torch.cumsum(keep, 0) - 1
    slots = flat_nonzero(keep.index_select(0, sidx))
    return skeys.index_select(0, slots), remap.index_select(0, sidx.index_select(0, slots))


def block_table(skeys: Tensor, voxel_size_m: float) -> tuple[Tensor, Tensor, Tensor]:
    """Occupied 8^3-voxel blocks of the sorted keys ``skeys (N,)``: centres ``(B, 3)`` in
    metres, first slot in the sorted index ``(B,)`` and sample counts ``(B,)``."""
    blocks, counts = torch.unique_consecutive(skeys >> _LOCAL_BITS, return_counts=True)
    b = keys_to_voxels(blocks << _LOCAL_BITS)  # the block's lowest voxel
    centre = (b.float() + 0.5 * (1 << _BLOCK_BITS)) * voxel_size_m
    return centre, torch.cumsum(counts, 0) - counts, counts


def frustum_candidates(
    blocks: tuple[Tensor, Tensor, Tensor],
    sidx: Tensor,
    c2w: Tensor,
    K: Tensor,
    H: int,
    W: int,
    far: Tensor,
    near_m: float,
    voxel_size_m: float,
    pad_px: float = 0.0,
) -> Tensor:
    """Samples in the blocks (``block_table``) that intersect any of the F frusta (c2w ``(F,
    4, 4)``, K ``(F, 3, 3)``, H x W pixels, from ``near_m`` to ``far (F,)``, widened by
    ``pad_px`` pixels on every side): a superset of the samples inside them, as indices
    ``(M,)`` in sorted-key order. Cost O(blocks + returned samples)."""
    centre, starts, counts = blocks
    radius = math.sqrt(3) * 0.5 * (1 << _BLOCK_BITS) * voxel_size_m
    w2c = se3_inverse(c2w)
    cam = centre @ w2c[:, :3, :3].transpose(-1, -2) + w2c[:, None, :3, 3]  # (F, B, 3)
    x, y, z = cam.unbind(-1)
    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
    cx, cy = K[:, 0, 2, None], K[:, 1, 2, None]
    hit = (z > near_m - radius) & (z < far[:, None] + radius)
    # four side planes through the camera centre (x/z >= (-pad - cx)/fx, ...): a block is
    # out only when its bounding sphere is entirely on the outer side of one of them
    a = torch.stack(
        [(-pad_px - cx) / fx, (W + pad_px - cx) / fx, (-pad_px - cy) / fy, (H + pad_px - cy) / fy]
    )  # (4, F, 1)
    coord = torch.stack([x, x, y, y])  # (4, F, B)
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0], device=a.device, dtype=a.dtype)[:, None, None]
    hit &= (sign * (coord - a * z) / torch.sqrt(1 + a * a) >= -radius).all(0)
    hit = flat_nonzero(hit.any(0))  # (B,) -> blocks in view
    if hit.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=sidx.device)
    if hit.numel() == counts.numel():
        return sidx
    s, c = starts.index_select(0, hit), counts.index_select(0, hit)
    ends = torch.cumsum(c, 0)
    total = int(ends[-1])
    shift = torch.repeat_interleave(s - (ends - c), c)
    return sidx.index_select(0, torch.arange(total, device=sidx.device) + shift)
