"""Keyboard actions -> camera motion (FPS style).

Conventions (see ``camera.py``): OpenCV camera frame, world y axis points DOWN, so "up" is -y
and the ground plane is x-z. A camera pose is (position (3,), yaw_deg, pitch_deg):

* yaw turns about the world vertical axis; yaw > 0 turns RIGHT (the heading moves from +z
  toward +x). Yaw 0 looks along +z.
* pitch tilts about the camera's horizontal right axis; pitch > 0 looks UP (toward -y).
* ``c2w = [R | position]`` with ``R = R_y(yaw) @ R_x(pitch)``: yaw 0, pitch 0 is the identity.

A camera that comes from data may also carry a roll about its optical axis
(``R = R_y(yaw) @ R_x(pitch) @ R_z(roll)``). The pose has no roll, but the actions keep
whatever roll a camera has, so pressing a key never makes the view jump.

Keys (the names used by the trajectory language, the web page and the interactive session):

=============  ============================================================================
``w`` / ``s``  forward / back along the heading projected on the ground plane
``a`` / ``d``  strafe left / right along the ground plane
``q``, ``space``  up (-y);  ``e``, ``shift``  down (+y)
``left`` / ``right``  yaw left / right by ``ActionConfig.turn_deg``
``up`` / ``down``     pitch up / down by ``turn_deg``, clamped to +-``max_pitch_deg``
``idle``       no motion
=============  ============================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from worldmem.config import ActionConfig
from worldmem.geometry.camera import check_c2w

__all__ = [
    "KEYS",
    "pose_to_c2w",
    "c2w_to_pose",
    "ground_axes",
    "forward_axis",
    "apply_action",
    "apply_actions",
    "wrap_deg",
]

KEYS: tuple[str, ...] = (
    "w",
    "s",
    "a",
    "d",
    "q",
    "e",
    "space",
    "shift",
    "left",
    "right",
    "up",
    "down",
    "idle",
)
"""Every valid action key."""

# per key: (forward, right, down) displacement in units of move_m, in the ground-plane frame
_MOVES: dict[str, tuple[int, int, int]] = {
    "w": (1, 0, 0),
    "s": (-1, 0, 0),
    "a": (0, -1, 0),
    "d": (0, 1, 0),
    "q": (0, 0, -1),
    "space": (0, 0, -1),
    "e": (0, 0, 1),
    "shift": (0, 0, 1),
}
# per key: (yaw, pitch) change in units of turn_deg
_TURNS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, 1),
    "down": (0, -1),
}

_VERTICAL_EPS = 1e-9  # |horizontal part of the forward axis| below this: looking straight up/down


def _check_key(key: str) -> None:
    if key not in KEYS:
        raise ValueError(f"unknown action key {key!r}; valid keys: {', '.join(KEYS)}")


def _check_cfg(cfg: ActionConfig) -> None:
    if not isinstance(cfg, ActionConfig):
        raise ValueError(f"cfg: expected an ActionConfig, got {type(cfg).__name__}")
    if cfg.move_m < 0 or cfg.turn_deg < 0:
        raise ValueError(
            f"ActionConfig: move_m and turn_deg must be >= 0, got {cfg.move_m}, {cfg.turn_deg}"
        )
    if not 0 <= cfg.max_pitch_deg < 90:
        raise ValueError(f"ActionConfig.max_pitch_deg must be in [0, 90), got {cfg.max_pitch_deg}")


def _rotation(yaw_deg: Tensor, pitch_deg: Tensor, roll_deg: Tensor) -> Tensor:
    """``R_y(yaw) @ R_x(pitch) @ R_z(roll)`` in float64: angles ``(...)`` -> ``(..., 3, 3)``."""
    y, p, r = (torch.deg2rad(a.double()) for a in (yaw_deg, pitch_deg, roll_deg))
    cy, sy, cp, sp, cr, sr = y.cos(), y.sin(), p.cos(), p.sin(), r.cos(), r.sin()
    o, z = torch.ones_like(y), torch.zeros_like(y)
    Ry = torch.stack([cy, z, sy, z, o, z, -sy, z, cy], -1).unflatten(-1, (3, 3))
    # R_x(pitch) with pitch > 0 turning +z toward -y (looking up)
    Rx = torch.stack([o, z, z, z, cp, -sp, z, sp, cp], -1).unflatten(-1, (3, 3))
    Rz = torch.stack([cr, -sr, z, sr, cr, z, z, z, o], -1).unflatten(-1, (3, 3))
    return Ry @ Rx @ Rz


def _compose(position: Tensor, yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    """Float64 c2w ``(..., 4, 4)`` from position ``(..., 3)`` and angles ``(...)`` in degrees."""
    R = _rotation(yaw, pitch, roll)
    c2w = torch.zeros(*R.shape[:-2], 4, 4, dtype=torch.float64, device=R.device)
    c2w[..., :3, :3] = R
    c2w[..., :3, 3] = position.double()
    c2w[..., 3, 3] = 1
    return c2w


def _decompose(c2w: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """c2w ``(..., 4, 4)`` -> float64 (position ``(..., 3)``, yaw, pitch, roll ``(...)`` degrees).

    Inverse of ``_compose`` for pitch in (-90, 90). Looking straight up or down, yaw and roll
    are not separable; roll is then 0 and the yaw comes from the right axis.
    """
    c2w = c2w.double()
    R = c2w[..., :3, :3]
    f, r = R[..., :, 2], R[..., :, 0]  # forward and right axes in the world
    horiz = torch.hypot(f[..., 0], f[..., 2])
    pitch = torch.atan2(-f[..., 1], horiz)
    yaw = torch.where(
        horiz > _VERTICAL_EPS, torch.atan2(f[..., 0], f[..., 2]), torch.atan2(-r[..., 2], r[..., 0])
    )
    yaw, pitch = torch.rad2deg(yaw), torch.rad2deg(pitch)
    M = _rotation(yaw, pitch, torch.zeros_like(yaw)).transpose(-1, -2) @ R  # = R_z(roll)
    roll = torch.rad2deg(torch.atan2(M[..., 1, 0], M[..., 0, 0]))
    return c2w[..., :3, 3], yaw, pitch, roll


def pose_to_c2w(
    position: Tensor | Sequence[float], yaw_deg: Tensor | float, pitch_deg: Tensor | float
) -> Tensor:
    """Camera-to-world matrices from poses.

    position ``(..., 3)``, yaw_deg ``(...)``, pitch_deg ``(...)`` (broadcast together) ->
    c2w ``(..., 4, 4)`` float32, with no roll. yaw > 0 turns right (+z toward +x), pitch > 0
    looks up (toward -y); pitch must be in [-90, 90].
    """
    position = torch.as_tensor(position, dtype=torch.float64)
    yaw = torch.as_tensor(yaw_deg, dtype=torch.float64, device=position.device)
    pitch = torch.as_tensor(pitch_deg, dtype=torch.float64, device=position.device)
    if position.ndim < 1 or position.shape[-1] != 3:
        raise ValueError(f"position: expected shape (..., 3), got {tuple(position.shape)}")
    for name, t in (("position", position), ("yaw_deg", yaw), ("pitch_deg", pitch)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name}: expected finite values, got {t.tolist()}")
    if bool((pitch.abs() > 90).any()):
        raise ValueError(f"pitch_deg: expected values in [-90, 90], got {pitch.tolist()}")
    shape = torch.broadcast_shapes(position.shape[:-1], yaw.shape, pitch.shape)
    yaw, pitch = yaw.expand(shape), pitch.expand(shape)
    position = position.expand(*shape, 3)
    return _compose(position, yaw, pitch, torch.zeros_like(yaw)).float()


def c2w_to_pose(c2w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Poses from camera-to-world matrices (the inverse of ``pose_to_c2w``).

    c2w ``(..., 4, 4)`` -> (position ``(..., 3)``, yaw_deg ``(...)`` in (-180, 180],
    pitch_deg ``(...)`` in [-90, 90]), in the dtype of ``c2w``. Yaw and pitch describe where
    the optical axis points; a roll about it, if any, is not part of the pose.
    """
    check_c2w(c2w)
    position, yaw, pitch, _ = _decompose(c2w)
    return position.to(c2w.dtype), yaw.to(c2w.dtype), pitch.to(c2w.dtype)


def ground_axes(yaw_deg):
    """The heading and right unit vectors ``(..., 3)`` on the ground plane for yaw ``(...)``
    in degrees (yaw 0 heads along +z, 90 along +x; the right axis is the heading turned 90
    degrees right). A tensor gives tensors, a number or numpy array gives numpy arrays."""
    if isinstance(yaw_deg, Tensor):
        y = torch.deg2rad(yaw_deg)
        z = torch.zeros_like(y)
        return torch.stack([y.sin(), z, y.cos()], -1), torch.stack([y.cos(), z, -y.sin()], -1)
    y = np.radians(yaw_deg)
    z = np.zeros_like(y)
    return np.stack([np.sin(y), z, np.cos(y)], -1), np.stack([np.cos(y), z, -np.sin(y)], -1)


def forward_axis(yaw_deg, pitch_deg):
    """The optical axis ``(..., 3)`` of a camera with yaw and pitch ``(...)`` in degrees
    (pitch > 0 looks up, toward -y). Tensors give a tensor, numbers or numpy arrays a numpy
    array."""
    if isinstance(yaw_deg, Tensor):
        y, p = torch.deg2rad(yaw_deg), torch.deg2rad(pitch_deg)
        return torch.stack([p.cos() * y.sin(), -p.sin(), p.cos() * y.cos()], -1)
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    return np.stack([np.cos(p) * np.sin(y), -np.sin(p), np.cos(p) * np.cos(y)], -1)


def _step(
    position: Tensor, yaw: Tensor, pitch: Tensor, key: str, cfg: ActionConfig
) -> tuple[Tensor, Tensor, Tensor]:
    """One key press on a float64 pose: position ``(3,)``, yaw and pitch ``()`` degrees."""
    if key in _MOVES:
        fwd, right, down = _MOVES[key]
        heading, right_axis = ground_axes(yaw)  # (3,) each, on the ground plane
        down_axis = torch.tensor([0.0, 1.0, 0.0], dtype=position.dtype, device=position.device)
        delta = fwd * heading + right * right_axis + down * down_axis
        return position + cfg.move_m * delta, yaw, pitch
    if key in _TURNS:
        dyaw, dpitch = _TURNS[key]
        yaw = wrap_deg(yaw + dyaw * cfg.turn_deg)
        if dpitch > 0:  # never move against the key, even when starting beyond the clamp
            pitch = torch.minimum(pitch + cfg.turn_deg, pitch.clamp(min=cfg.max_pitch_deg))
        elif dpitch < 0:
            pitch = torch.maximum(pitch - cfg.turn_deg, pitch.clamp(max=-cfg.max_pitch_deg))
        return position, yaw, pitch
    return position, yaw, pitch  # idle


def apply_action(c2w: Tensor, key: str, cfg: ActionConfig) -> Tensor:
    """The camera after one key press: c2w ``(4, 4)`` -> ``(4, 4)`` (same dtype and device).

    ``key`` is one of ``KEYS``; moves are ``cfg.move_m`` metres, turns ``cfg.turn_deg`` degrees,
    pitch is clamped to +-``cfg.max_pitch_deg``. Any roll of the camera is kept.
    """
    return apply_actions(c2w, [key], cfg)[0]


def apply_actions(c2w: Tensor, keys: Sequence[str], cfg: ActionConfig) -> Tensor:
    """The cameras after each of a sequence of key presses.

    c2w ``(4, 4)`` start camera, ``keys`` N action keys -> ``(N, 4, 4)`` (same dtype and
    device as ``c2w``): frame i is the camera after keys[0..i]; the start is not included.
    """
    check_c2w(c2w)
    if c2w.shape != (4, 4):
        raise ValueError(f"c2w: expected shape (4, 4), got {tuple(c2w.shape)}")
    if isinstance(keys, str):
        raise ValueError(f"keys: expected a list of action keys, got the string {keys!r}")
    _check_cfg(cfg)
    for key in keys:
        _check_key(key)
    position, yaw, pitch, roll = _decompose(c2w)
    poses = []
    for key in keys:
        position, yaw, pitch = _step(position, yaw, pitch, key, cfg)
        poses.append((position, yaw, pitch))
    if not poses:
        return c2w.new_zeros(0, 4, 4)
    pos, yaws, pitches = (torch.stack(t) for t in zip(*poses))
    out = _compose(pos, yaws, pitches, roll.expand_as(yaws))
    out = out.to(c2w.dtype)
    # until the first key that moves the camera, the frames are the input exactly
    first_move = next((i for i, k in enumerate(keys) if k != "idle"), len(keys))
    out[:first_move] = c2w
    return out


def wrap_deg(angle_deg: Tensor) -> Tensor:
    """Angles ``(...)`` in degrees wrapped to [-180, 180)."""
    return torch.remainder(angle_deg + 180.0, 360.0) - 180.0
