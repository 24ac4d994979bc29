"""Ready-made revisit trajectories: paths that come back to where they started. Each starts
at ``start_c2w`` (default: the origin looking along +z) and keeps its roll; those that return
end exactly at the start pose."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from worldmem.geometry.actions import _compose, _decompose
from worldmem.geometry.camera import DEFAULT_FOV_DEG, check_c2w, intrinsics_from_fov
from worldmem.geometry.trajectory.container import Trajectory

__all__ = ["REVISIT_TRAJECTORIES", "look_around_and_return", "loop", "orbit", "out_and_back"]


def _builder_setup(
    num_frames: int, start_c2w: Tensor | None, fov_deg: float, width: int, height: int, **lengths
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 2:
        raise ValueError(f"num_frames: expected an integer >= 2, got {num_frames!r}")
    for name, v in lengths.items():
        least = 0 if name == "tilt_deg" else 1e-9  # tilting is optional; the rest must move
        if not (isinstance(v, int | float) and math.isfinite(v) and v >= least):
            kind = "a non-negative" if least == 0 else "a positive"
            raise ValueError(f"{name}: expected {kind} number, got {v!r}")
    if start_c2w is None:
        start_c2w = torch.eye(4)
    check_c2w(start_c2w, "start_c2w")
    if start_c2w.shape != (4, 4):
        raise ValueError(f"start_c2w: expected shape (4, 4), got {tuple(start_c2w.shape)}")
    K = intrinsics_from_fov(fov_deg, width, height)
    t = torch.linspace(0, 1, num_frames, dtype=torch.float64)  # (N,) progress along the path
    return (*_decompose(start_c2w), K, t)


def _finish(pos: Tensor, yaw: Tensor, pitch: Tensor, roll: Tensor, K, width, height) -> Trajectory:
    c2w = _compose(pos, yaw, pitch, roll.expand_as(yaw))
    return Trajectory(c2w=c2w, K=K, width=width, height=height)


def _ground_axes(yaw_deg: Tensor) -> tuple[Tensor, Tensor]:
    """Heading and right unit vectors ``(..., 3)`` on the ground plane for yaw ``(...)``."""
    y = torch.deg2rad(yaw_deg)
    z = torch.zeros_like(y)
    return torch.stack([y.sin(), z, y.cos()], -1), torch.stack([y.cos(), z, -y.sin()], -1)


def _interp(t: Tensor, knots: Sequence[tuple[float, float]]) -> Tensor:
    xs, ys = zip(*knots)
    return torch.from_numpy(np.interp(t.numpy(), xs, ys))


def out_and_back(
    num_frames: int,
    *,
    distance_m: float = 2.0,
    start_c2w: Tensor | None = None,
    fov_deg: float = DEFAULT_FOV_DEG,
    width: int = 64,
    height: int = 64,
) -> Trajectory:
    """Walk ``distance_m`` forward, turn right 180 degrees, walk back, turn right 180 degrees
    again: ends at the start pose. Phases take 40/10/40/10 % of ``num_frames``.

    -> Trajectory of ``num_frames`` cameras ``(N, 4, 4)``, intrinsics from ``fov_deg``.
    """
    pos0, yaw0, pitch0, roll, K, t = _builder_setup(
        num_frames, start_c2w, fov_deg, width, height, distance_m=distance_m
    )
    s = _interp(t, [(0, 0), (0.4, distance_m), (0.5, distance_m), (0.9, 0), (1, 0)])
    turn = _interp(t, [(0, 0), (0.4, 0), (0.5, 180), (0.9, 180), (1, 360)])
    heading0, _ = _ground_axes(yaw0)
    pos = pos0 + s[:, None] * heading0
    return _finish(pos, yaw0 + turn, pitch0.expand_as(t), roll, K, width, height)


def loop(
    num_frames: int,
    *,
    radius_m: float = 1.5,
    start_c2w: Tensor | None = None,
    fov_deg: float = DEFAULT_FOV_DEG,
    width: int = 64,
    height: int = 64,
) -> Trajectory:
    """Walk a full circle of ``radius_m`` turning right (heading along the circle): ends at the
    start pose. -> Trajectory of ``num_frames`` cameras."""
    pos0, yaw0, pitch0, roll, K, t = _builder_setup(
        num_frames, start_c2w, fov_deg, width, height, radius_m=radius_m
    )
    yaw = yaw0 + 360.0 * t
    _, right0 = _ground_axes(yaw0)
    centre = pos0 + radius_m * right0
    _, right = _ground_axes(yaw)
    pos = centre - radius_m * right  # (N, 3); moves along the heading
    return _finish(pos, yaw, pitch0.expand_as(t), roll, K, width, height)


def look_around_and_return(
    num_frames: int,
    *,
    sweep_deg: float = 90.0,
    tilt_deg: float = 15.0,
    start_c2w: Tensor | None = None,
    fov_deg: float = DEFAULT_FOV_DEG,
    width: int = 64,
    height: int = 64,
) -> Trajectory:
    """Stand still and look around: yaw swings right by ``sweep_deg``, back through the start
    to ``sweep_deg`` left and back again, while pitch rises by up to ``tilt_deg`` and comes
    back; ends at the start pose. -> Trajectory of ``num_frames`` cameras."""
    pos0, yaw0, pitch0, roll, K, t = _builder_setup(
        num_frames, start_c2w, fov_deg, width, height, sweep_deg=sweep_deg, tilt_deg=tilt_deg
    )
    yaw = yaw0 + sweep_deg * torch.sin(2 * math.pi * t)
    pitch = (pitch0 + tilt_deg * torch.sin(math.pi * t)).clamp(-89.0, 89.0)
    pitch[-1] = pitch0
    return _finish(pos0.expand(num_frames, 3), yaw, pitch, roll, K, width, height)


def orbit(
    num_frames: int,
    *,
    radius_m: float = 2.0,
    arc_deg: float = 360.0,
    start_c2w: Tensor | None = None,
    fov_deg: float = DEFAULT_FOV_DEG,
    width: int = 64,
    height: int = 64,
) -> Trajectory:
    """Circle around the point ``radius_m`` ahead of the start camera (along its optical
    axis), always looking at it: the camera moves to its left while turning right by
    ``arc_deg`` degrees in all, at the start pitch. With the default full circle it ends at
    the start pose. -> Trajectory of ``num_frames`` cameras."""
    pos0, yaw0, pitch0, roll, K, t = _builder_setup(
        num_frames, start_c2w, fov_deg, width, height, radius_m=radius_m, arc_deg=arc_deg
    )
    centre = pos0 + radius_m * _forward_axis(yaw0, pitch0)
    yaw = yaw0 + arc_deg * t
    pitch = pitch0.expand_as(t)
    pos = centre - radius_m * _forward_axis(yaw, pitch)  # (N, 3)
    return _finish(pos, yaw, pitch, roll, K, width, height)


def _forward_axis(yaw_deg: Tensor, pitch_deg: Tensor) -> Tensor:
    """The optical axis ``(..., 3)`` of a camera with yaw and pitch ``(...)`` in degrees."""
    y, p = torch.deg2rad(yaw_deg), torch.deg2rad(pitch_deg)
    return torch.stack([p.cos() * y.sin(), -p.sin(), p.cos() * y.cos()], -1)


REVISIT_TRAJECTORIES: dict[str, Callable[..., Trajectory]] = {
    "out_and_back": out_and_back,
    "loop": loop,
    "look_around_and_return": look_around_and_return,
    "orbit": orbit,
}
"""Name -> builder ``(num_frames, *, start_c2w=None, fov_deg=75, width=64, height=64, ...)``."""
