"""The spatial memory's fusion test: which pixels of a new frame repeat a stored sample.

The memory is rendered at the new frame's camera; each valid pixel is compared with the
sample that wins it there (see the rules in ``worldmem.memory.spatial``). Cameras follow
``worldmem.geometry.camera`` (OpenCV, c2w, K in pixels, z-depth in metres).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from worldmem.config import MemoryConfig
from worldmem.geometry.camera import se3_inverse

__all__ = ["repeat_test"]


def repeat_test(
    pix: Tensor,
    width: int,
    depth: Tensor,
    quality: Tensor,
    colour: Tensor,
    win: Tensor,
    win_depth: Tensor,
    stored: tuple[Tensor, Tensor, Tensor, Tensor],
    c2w: Tensor,
    K: Tensor,
    cfg: MemoryConfig,
    observed: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """The M valid pixels ``pix (M,)`` (flat, of a frame ``width`` pixels wide; their depth
    and quality ``(M,)`` and colour ``(M, 3)``) against the stored sample that wins each of
    them in the memory's render at the frame's camera (``c2w (4, 4)``, ``K (3, 3)``): ``win
    (M,)`` (-1 where empty) at ``win_depth (M,)``; ``stored`` = positions ``(3, N)``, colours
    ``(N, 3)``, observed ``(N,)`` and quality ``(N,)`` of the samples. Returns ``(M,)`` bool
    masks: ``same`` (the winner lies on the pixel's surface), ``replace`` (the pixel takes
    the winner's place) and ``skip`` (the pixel repeats the winner and is not added)."""
    pos, rgb, obs, qual = stored
    has = win >= 0
    wi = win.clamp(min=0)
    same = has & ((win_depth - depth).abs() <= cfg.surface_tol_rel * depth)
    # how far the stored sample projects from the new pixel's centre
    cam = se3_inverse(c2w[None])[0, :3] @ F.pad(pos.index_select(1, wi), (0, 0, 0, 1), value=1.0)
    uvz = K @ cam  # (3, M)
    du = uvz[0] / uvz[2] - (pix % width + 0.5)
    dv = uvz[1] / uvz[2] - (pix // width + 0.5)
    near = same & (du.square() + dv.square() < cfg.dedup_radius_px**2)
    alike = (colour - rgb.index_select(0, wi)).abs().amax(1) <= cfg.dedup_colour_tol
    old_obs, old_q = obs.index_select(0, wi), qual.index_select(0, wi)
    ratio = cfg.replace_quality_ratio
    if observed:
        replace = near & ((quality < ratio * old_q) | ~old_obs)
        skip = near & alike & ~replace
    else:  # refine generated samples; never touch observed ones
        replace = near & ~old_obs & (quality * ratio <= old_q)
        skip = (near & alike & ~replace) | (has & old_obs)
    return same, replace, skip
