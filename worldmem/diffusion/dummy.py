"""Seeded random ``WorldBatch``es for tests and benchmarks (cameras on a circle, random frames)."""

from __future__ import annotations

import math

import torch

from worldmem.data.batch import FrameSet, WorldBatch
from worldmem.geometry import DEFAULT_FOV_DEG, intrinsics_from_fov, look_at

__all__ = ["dummy_world_batch"]


def _frames(B: int, N: int, size: int, start: int, g: torch.Generator) -> FrameSet:
    angles = (torch.arange(N, dtype=torch.float32) + start) * (2 * math.pi / 24)  # 15 deg apart
    eye = torch.stack([2 * angles.sin(), torch.zeros(N), -2 * angles.cos()], -1)  # (N, 3)
    c2w = look_at(eye, torch.zeros(N, 3)).expand(B, N, 4, 4).clone()
    K = intrinsics_from_fov(DEFAULT_FOV_DEG, size, size).expand(B, N, 3, 3).clone()
    depth = 1.0 + 3.0 * torch.rand(B, N, 1, size, size, generator=g)
    depth[..., : size // 8, :] = 0.0  # a band of unknown depth (sky)
    return FrameSet(
        rgb=torch.rand(B, N, 3, size, size, generator=g),
        depth=depth,
        c2w=c2w,
        K=K,
        valid=torch.ones(B, N, dtype=torch.bool),
    )


def dummy_world_batch(
    batch_size: int = 2,
    targets: int = 2,
    context: int = 2,
    keyframes: int = 2,
    image_size: int = 64,
    captions: list[str] | None = None,
    seed: int = 0,
) -> WorldBatch:
    """A ``WorldBatch`` of random frames with valid cameras; memory covers the left half, its
    left quarter observed and the next generated (``.conditioning`` is what the sampler takes).

    Shapes as ``WorldBatch`` with B = batch_size, T = targets, Tc = context, Tk = keyframes,
    H = W = image_size.
    """
    if min(batch_size, targets) < 1 or min(context, keyframes) < 0:
        raise ValueError(
            f"dummy_world_batch: want batch_size, targets >= 1 and context, keyframes >= 0, got "
            f"{batch_size}, {targets}, {context}, {keyframes}"
        )
    g = torch.Generator().manual_seed(seed)
    B, T, S = batch_size, targets, image_size
    target = _frames(B, T, S, context, g)
    ctx = _frames(B, context, S, 0, g)
    kf = _frames(B, keyframes, S, context + T + 6, g)
    mask = torch.zeros(B, T, 1, S, S)
    mask[..., : S // 2] = 1.0
    observed = torch.zeros_like(mask)
    observed[..., : S // 4] = 1.0
    if captions is None:
        captions = ["a corridor with red brick walls", "a sunny plaza with blue pillars"]
        captions = [captions[i % 2] for i in range(B)]
    return WorldBatch(
        target=target,
        context=ctx,
        keyframes=kf,
        memory_rgb=target.rgb * mask,
        memory_depth=target.depth * mask,
        memory_mask=mask,
        caption=list(captions),
        is_revisit=torch.zeros(B, dtype=torch.bool),
        memory_observed=observed,
    )
