"""Free space that observed views prove empty, and the test of points against it.

A depth map proves the space between its camera and the surface it saw empty. ``see_through``
counts the views that see through each point (the point is in front of every depth in the
``CARVE_WINDOW_PX`` window around its pixel, by more than a relative margin, so an edge never
carves). The spatial memory uses it twice: to carve stored samples a new frame sees through,
and, with ``FreeSpace`` (the depth maps of the latest observed views), to refuse generated
samples that an observation contradicts. Without that test a generated surface guessed too
near floats in front of what was observed and hides it from every later view, though the
observation says nothing is there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmem.geometry.camera import se3_inverse
from worldmem.memory._checks import parse_views

__all__ = ["CARVE_WINDOW_PX", "FreeSpace", "min_depth_window", "see_through"]

CARVE_WINDOW_PX = 3  # a point is seen through only if every pixel around it is behind it


def min_depth_window(depth: Tensor) -> Tensor:
    """The smallest depth in the ``CARVE_WINDOW_PX`` window of each pixel: ``(F, H, W)`` ->
    ``(F, H, W)``. 0 (unknown) wins, so an unknown neighbour never carves."""
    pad = CARVE_WINDOW_PX // 2
    return -F.max_pool2d(-depth[:, None], CARVE_WINDOW_PX, 1, pad)[:, 0]


def see_through(
    pos: Tensor, c2w: Tensor, K: Tensor, dmin: Tensor, margin_rel: float, near_m: float
) -> Tensor:
    """How many of F views see through each of C points: ``pos (3, C)``, ``c2w (F, 4, 4)``,
    ``K (F, 3, 3)``, ``dmin (F, H, W)`` from ``min_depth_window`` -> ``(C,)`` int64. A view
    sees through a point that lies beyond ``near_m``, inside its image, with the window depth
    there more than ``margin_rel`` (relative) behind the point."""
    F_, H, W = dmin.shape
    w2c = se3_inverse(c2w)
    cam = torch.baddbmm(w2c[:, :3, 3:], w2c[:, :3, :3], pos.expand(F_, 3, -1))
    z = cam[:, 2]  # (F, C)
    zs = z.clamp(min=near_m)
    u = K[:, 0, 0, None] * cam[:, 0] / zs + K[:, 0, 2, None]
    v = K[:, 1, 1, None] * cam[:, 1] / zs + K[:, 1, 2, None]
    inside = (z > near_m) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    iu = u.clamp(0, W - 1).long()
    iv = v.clamp(0, H - 1).long()
    d = dmin.flatten(1).gather(1, iv * W + iu)  # (F, C)
    return (inside & (d > z * (1 + margin_rel))).sum(0)


class FreeSpace:
    """The window depth (``min_depth_window``) of the latest ``capacity`` observed views, each
    with its camera; ``contradicts(points)`` marks points one of them sees through."""

    def __init__(self, capacity: int, margin_rel: float, near_m: float, device: torch.device):
        self.capacity = capacity
        self.margin_rel = margin_rel
        self.near_m = near_m
        self.device = device
        self.views: list[tuple[Tensor, Tensor, Tensor]] = []  # (c2w (4, 4), K (3, 3), dmin)

    def __len__(self) -> int:
        return len(self.views)

    def add(self, dmin: Tensor, c2w: Tensor, K: Tensor) -> None:
        """Views' window depths ``dmin (F, H, W)`` (``min_depth_window``; 0 where unknown),
        ``c2w (F, 4, 4)``, ``K (F, 3, 3)``; the oldest views go past ``capacity``."""
        if self.capacity == 0:
            return
        for f in range(dmin.shape[0]):
            self.views.append((c2w[f].clone(), K[f].clone(), dmin[f].clone()))
        del self.views[: max(0, len(self.views) - self.capacity)]

    def contradicts(self, pts: Tensor) -> Tensor:
        """``pts (M, 3)`` -> ``(M,)`` bool: some stored view sees through the point."""
        out = torch.zeros(pts.shape[0], dtype=torch.bool, device=pts.device)
        if not self.views or pts.shape[0] == 0:
            return out
        pos = pts.T.contiguous()
        by_size: dict[tuple[int, ...], list[tuple[Tensor, Tensor, Tensor]]] = {}
        for view in self.views:  # one batched test per depth-map size (usually one)
            by_size.setdefault(tuple(view[2].shape), []).append(view)
        for views in by_size.values():
            c2w, K, dmin = (torch.stack(x) for x in zip(*views))
            out |= see_through(pos, c2w, K, dmin, self.margin_rel, self.near_m) > 0
        return out

    def state_dict(self) -> dict:
        """``free_space_c2w (F, 4, 4)``, ``free_space_K (F, 3, 3)``, ``free_space_size (F, 2)``
        (H, W) and ``free_space_depth`` (the window depths, flattened and concatenated)."""
        v = self.views
        return {
            "free_space_c2w": torch.stack([c for c, _, _ in v]) if v else torch.zeros(0, 4, 4),
            "free_space_K": torch.stack([k for _, k, _ in v]) if v else torch.zeros(0, 3, 3),
            "free_space_size": torch.tensor([list(d.shape) for _, _, d in v], dtype=torch.int64)
            if v
            else torch.zeros(0, 2, dtype=torch.int64),
            "free_space_depth": torch.cat([d.flatten() for _, _, d in v]) if v else torch.zeros(0),
        }

    def parse_state(self, state: dict) -> list[tuple[Tensor, Tensor, Tensor]]:
        """The views of a ``state_dict`` (checked; nothing changes): a state without these
        entries (saved before free space was kept) has none."""
        return parse_views(
            state, "free_space", "free-space", {"depth": 1}, self.device, self.capacity
        )
