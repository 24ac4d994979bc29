"""Rendered walks: a world, a trajectory through it, and the frames and depth along it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from worldmem.data.synthetic.layouts import make_world
from worldmem.data.synthetic.trajectories import TRAJECTORY_KINDS, make_trajectory
from worldmem.geometry import intrinsics_from_fov


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
