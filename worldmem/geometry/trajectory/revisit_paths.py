"""Camera paths that come back to where they began: every kind of revisit path, in one place.

Each kind is a function of explicit geometry (a start, lengths, angles, frame counts), with no
world and no randomness; whoever calls it chooses the numbers. The synthetic world generator
(``worldmem.data.synthetic.trajectories``) draws them from its seed and keeps the paths off
the walls of the world it knows; the evaluation (``worldmem.eval``) starts them from a free
camera of a held-out world; the ready-made trajectories below start them anywhere.

Poses are (position, yaw, pitch) as in ``geometry/actions.py``: yaw > 0 turns right (heading
from +z toward +x), pitch > 0 looks up (toward -y), degrees.

* Planned paths, numpy float64 arrays made into cameras by ``look_along`` (float32
  ``look_at``), as the synthetic datasets were made: ``arc`` and ``retrace`` (walk out, turn
  round on the spot, walk back, turn to the first view; ``retrace_budget`` splits the frames),
  ``ellipse_loop``, ``orbit_circle``, ``pan_and_step`` (look around).
* Paths from a start camera, torch float64 made into cameras by ``pose_to_c2w``:
  ``periodic_path`` (a circuit repeated every ``gap`` frames; turning on the spot when it
  does not step), ``turn_in_place``, ``strafe``, ``look_up_down``.
* Ready-made ``Trajectory`` s with intrinsics, keeping the start camera's roll:
  ``out_and_back``, ``loop``, ``look_around_and_return``, ``orbit`` (``REVISIT_TRAJECTORIES``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from worldmem.geometry.actions import (
    _compose,
    _decompose,
    c2w_to_pose,
    forward_axis,
    ground_axes,
    pose_to_c2w,
)
from worldmem.geometry.camera import DEFAULT_FOV_DEG, check_c2w, intrinsics_from_fov, look_at
from worldmem.geometry.trajectory.container import Trajectory

__all__ = [
    "REVISIT_TRAJECTORIES",
    "arc",
    "ellipse_loop",
    "look_along",
    "look_around_and_return",
    "look_up_down",
    "loop",
    "orbit",
    "orbit_circle",
    "out_and_back",
    "pan_and_step",
    "periodic_path",
    "retrace",
    "retrace_budget",
    "strafe",
    "turn_in_place",
]

# -- planned paths: numpy (N, 3) positions, (N,) yaw and pitch in degrees ----------------------


def look_along(pos: np.ndarray, yaw_deg: np.ndarray, pitch_deg: np.ndarray) -> Tensor:
    """c2w ``(N, 4, 4)`` float32 (no roll) from positions ``(N, 3)``, yaw and pitch ``(N,)``
    in degrees: ``look_at`` from each position one metre along its optical axis."""
    eye = torch.as_tensor(pos, dtype=torch.float32)
    fwd = torch.as_tensor(forward_axis(yaw_deg, pitch_deg), dtype=torch.float32)
    return look_at(eye, eye + fwd).float()


def retrace_budget(num_frames: int, max_turn_deg: float) -> tuple[int, int, int]:
    """Frames for a ``retrace`` of ``num_frames``: (frames per 180-degree turn, frames per
    walk, extra frames for the last turn). A turn takes at most ``max_turn_deg`` per frame when
    half the frames suffice for both turns, else a quarter of the frames."""
    turn = min(math.ceil(180 / max_turn_deg), num_frames // 4)
    walk = max(1, (num_frames - 2 * turn) // 2)
    turn = min(turn, (num_frames - 2 * walk) // 2)
    return turn, walk, num_frames - 2 * turn - 2 * walk


def arc(
    start: np.ndarray, yaw0_deg: float, curve_deg_per_m: float, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(len(s), 3)`` and yaw ``(len(s),)`` in degrees along a circular arc at
    y = 0 that leaves ``start`` ``(3,)`` heading ``yaw0_deg`` and turns ``curve_deg_per_m``
    (right when > 0); ``s`` the arc lengths in metres."""
    y0, k = math.radians(yaw0_deg), math.radians(curve_deg_per_m)
    if abs(k) < 1e-6:
        k = 1e-6
    yaw = y0 + k * s
    x = start[0] + (math.cos(y0) - np.cos(yaw)) / k  # integral of sin(yaw) ds
    z = start[2] + (np.sin(yaw) - math.sin(y0)) / k  # integral of cos(yaw) ds
    return np.stack([x, np.zeros_like(x), z], -1), np.degrees(yaw)


def retrace(
    out_pos: np.ndarray,
    out_yaw: np.ndarray,
    turn_frames: int,
    last_turn_frames: int,
    back_pos: np.ndarray | None = None,
    home: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Walk out, turn round on the spot, walk back, turn on the spot to the first view.

    out_pos ``(m, 3)``, out_yaw ``(m,)`` degrees: the walk out. The walk turns 180 degrees
    right in ``turn_frames`` frames where the way back begins, walks back through
    ``back_pos`` ``(m, 3)`` (default: ``out_pos`` reversed) facing the other way, and turns
    180 degrees right again in ``last_turn_frames`` frames at ``home`` ``(3,)`` (default:
    ``out_pos[0]``). -> positions ``(2m + turn_frames + last_turn_frames, 3)`` and yaw.
    """
    back_pos = out_pos[::-1] if back_pos is None else back_pos
    home = out_pos[0] if home is None else home
    pos = [
        out_pos,
        np.repeat(back_pos[:1], turn_frames, 0),
        back_pos,
        np.repeat(home[None], last_turn_frames, 0),
    ]
    turn1 = out_yaw[-1] + np.linspace(0, 180, turn_frames + 1)[1:]
    back_yaw = (out_yaw + 180)[::-1]
    turn2 = back_yaw[-1] + np.linspace(0, 180, last_turn_frames + 1)[1:]
    return np.concatenate(pos), np.concatenate([out_yaw, turn1, back_yaw, turn2])


def ellipse_loop(
    centre: np.ndarray,
    perimeter_m: float,
    aspect: float,
    rotation_rad: float,
    num_frames: int,
    direction: int,
    nod_deg: float = 3.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Walk once round an ellipse at constant speed, heading along it, from and back to the
    end of its long axis.

    centre ``(3,)`` (its y is ignored: the walk is at y = 0); perimeter_m: the length walked;
    aspect: long / short semi-axis (>= 1); rotation_rad: the long axis's angle from +x toward
    +z; direction: +1 or -1, the way round; the pitch nods ``nod_deg`` up and down twice.
    -> positions ``(N, 3)``, yaw ``(N,)`` and pitch ``(N,)`` in degrees.
    """
    n = num_frames
    # semi-axes a >= b for this perimeter (Ramanujan's approximation)
    b = perimeter_m / (math.pi * (3 * (aspect + 1) - math.sqrt((3 * aspect + 1) * (aspect + 3))))
    a = aspect * b
    # constant speed: the frames at equal arc lengths along the ellipse
    dense = np.linspace(0, 2 * math.pi, 2049)
    length = np.concatenate(
        [[0], np.cumsum(np.hypot(a * np.diff(np.cos(dense)), b * np.diff(np.sin(dense))))]
    )
    th = np.interp(np.linspace(0, length[-1], n), length, dense) * direction
    ex, ez = a * np.cos(th), b * np.sin(th)
    x = centre[0] + ex * math.cos(rotation_rad) - ez * math.sin(rotation_rad)
    z = centre[2] + ex * math.sin(rotation_rad) + ez * math.cos(rotation_rad)
    pos = np.stack([x, np.zeros(n), z], -1)
    sgn = np.sign(th[-1]) if n > 1 else 1.0
    tx, tz = -a * np.sin(th) * sgn, b * np.cos(th) * sgn  # d/d|theta| of (ex, ez)
    wx = tx * math.cos(rotation_rad) - tz * math.sin(rotation_rad)
    wz = tx * math.sin(rotation_rad) + tz * math.cos(rotation_rad)
    yaw = np.degrees(np.unwrap(np.arctan2(wx, wz)))
    pitch = nod_deg * np.sin(np.linspace(0, 4 * math.pi, n))
    return pos, yaw, pitch


def orbit_circle(
    centre: np.ndarray, radius_m: float, num_frames: int, direction: int, look_y: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Walk once round a circle of ``radius_m`` about ``centre`` ``(3,)`` at y = 0, from its
    -z side, always facing the centre's vertical axis at height ``look_y``; direction +1 or
    -1, the way round. -> positions ``(N, 3)``, yaw ``(N,)`` and pitch ``(N,)`` in degrees.
    """
    n = num_frames
    th = direction * np.linspace(0, 2 * math.pi, n)
    pos = centre + radius_m * np.stack([np.sin(th), np.zeros(n), -np.cos(th)], -1)
    to_c = centre - pos
    yaw = np.degrees(np.unwrap(np.arctan2(to_c[:, 0], to_c[:, 2])))
    pitch = np.full(n, -np.degrees(np.arctan2(look_y, radius_m)))
    return pos, yaw, pitch


def pan_and_step(
    start: np.ndarray,
    yaw0_deg: float,
    sweep_deg: float,
    direction: int,
    tilt_deg: float,
    step_m: float,
    num_frames: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Look around: the yaw pans ``sweep_deg`` one way (``direction`` +1: right), then to
    ``sweep_deg`` the other way and back to ``yaw0_deg`` (piecewise linear over 1/4, 1/2 and
    1/4 of the frames); the pitch nods ``tilt_deg`` up and down twice; meanwhile the camera
    steps ``step_m`` forward from ``start`` ``(3,)`` along ``yaw0_deg`` and back.
    -> positions ``(N, 3)``, yaw ``(N,)`` and pitch ``(N,)`` in degrees."""
    s = np.linspace(0, 1, num_frames)
    knots_s = np.array([0, 0.25, 0.75, 1.0])
    knots_y = np.array([0, sweep_deg, -sweep_deg, 0]) * direction
    yaw = yaw0_deg + np.interp(s, knots_s, knots_y)
    pitch = tilt_deg * np.sin(2 * math.pi * s * 2)
    heading, _ = ground_axes(yaw0_deg)
    pos = start + np.sin(math.pi * s)[:, None] * step_m * heading
    return pos, yaw, pitch


# -- paths from a start camera: torch float64 poses, float32 cameras ---------------------------


def _start_pose(start_c2w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(position ``(3,)``, yaw ``()``, pitch ``()``) of a ``(4, 4)`` camera as ``c2w_to_pose``
    gives it (in the camera's dtype), then in float64."""
    pos, yaw, pitch = c2w_to_pose(start_c2w.cpu())
    return pos.double(), yaw.double(), pitch.double()


def periodic_path(
    start_c2w: Tensor, gap: int, num_frames: int, step_m: float, turn_deg: float
) -> Tensor:
    """A camera path that repeats with period ``gap``: pose k (k < gap) is ``start_c2w``
    after k steps, each a move of ``step_m`` along the heading (on the ground plane) then a
    turn of ``turn_deg`` to the right; frame t has pose ``t mod gap``.

    start_c2w ``(4, 4)`` -> c2w ``(num_frames, 4, 4)``. With ``turn_deg = 360 / gap`` the
    poses walk a closed regular polygon, so the path is continuous; with ``step_m = 0`` it
    turns on the spot.
    """
    if gap < 1 or num_frames < 1:
        raise ValueError(f"gap and num_frames must be >= 1, got {gap}, {num_frames}")
    pos, yaw, pitch = _start_pose(start_c2w)
    k = torch.arange(gap, dtype=torch.float64)
    yaws = yaw + turn_deg * k  # (gap,)
    heading, _ = ground_axes(yaws)  # (gap, 3)
    steps = torch.cat([torch.zeros(1, 3, dtype=torch.float64), step_m * heading[:-1]])
    positions = pos + steps.cumsum(0)  # (gap, 3)
    poses = pose_to_c2w(positions, yaws, pitch.expand(gap))  # (gap, 4, 4)
    return poses[torch.arange(num_frames) % gap]


def _progress(num_frames: int) -> Tensor:
    return torch.linspace(0, 1, num_frames, dtype=torch.float64)  # (N,) along the path


def turn_in_place(start_c2w: Tensor, num_frames: int, turns: float) -> Tensor:
    """Turn right on the spot by ``turns`` full turns over ``num_frames`` frames, at the start
    pitch: start_c2w ``(4, 4)`` -> c2w ``(num_frames, 4, 4)`` float32 (the last frame looks
    the way the first does when ``turns`` is whole)."""
    pos, yaw, pitch = _start_pose(start_c2w)
    s = _progress(num_frames)
    return pose_to_c2w(pos.expand(num_frames, 3), yaw + 360.0 * turns * s, pitch)


def look_up_down(start_c2w: Tensor, num_frames: int, pitch_deg: float, cycles: int) -> Tensor:
    """Stand and look up to ``pitch_deg`` and down to ``-pitch_deg`` (about the horizon),
    ``cycles`` times, at the start heading: start_c2w ``(4, 4)`` -> c2w ``(num_frames, 4, 4)``
    float32, level at both ends."""
    pos, yaw, _ = _start_pose(start_c2w)
    s = _progress(num_frames)
    p = pitch_deg * torch.sin(2 * math.pi * cycles * s)
    return pose_to_c2w(pos.expand(num_frames, 3), yaw.expand(num_frames), p)


def strafe(start_c2w: Tensor, num_frames: int, amplitude_m: float, cycles: int) -> Tensor:
    """Step sideways, facing the start view: right to ``amplitude_m``, left to
    ``-amplitude_m`` and back (a sine), ``cycles`` times, along the start camera's right axis
    on the ground plane: start_c2w ``(4, 4)`` -> c2w ``(num_frames, 4, 4)`` float32."""
    pos, yaw, pitch = _start_pose(start_c2w)
    s = _progress(num_frames)
    right = start_c2w[:3, 0].double() * torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    right = right / right.norm()
    off = amplitude_m * torch.sin(2 * math.pi * cycles * s)
    positions = pos + off[:, None] * right  # (N, 3)
    return pose_to_c2w(positions, yaw.expand(num_frames), pitch.expand(num_frames))


# -- ready-made trajectories -------------------------------------------------------------------


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
    return (*_decompose(start_c2w), K, _progress(num_frames))


def _finish(pos: Tensor, yaw: Tensor, pitch: Tensor, roll: Tensor, K, width, height) -> Trajectory:
    c2w = _compose(pos, yaw, pitch, roll.expand_as(yaw))
    return Trajectory(c2w=c2w, K=K, width=width, height=height)


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
    heading0, _ = ground_axes(yaw0)
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
    _, right0 = ground_axes(yaw0)
    centre = pos0 + radius_m * right0
    _, right = ground_axes(yaw)
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
    centre = pos0 + radius_m * forward_axis(yaw0, pitch0)
    yaw = yaw0 + arc_deg * t
    pitch = pitch0.expand_as(t)
    pos = centre - radius_m * forward_axis(yaw, pitch)  # (N, 3)
    return _finish(pos, yaw, pitch, roll, K, width, height)


REVISIT_TRAJECTORIES: dict[str, Callable[..., Trajectory]] = {
    "out_and_back": out_and_back,
    "loop": loop,
    "look_around_and_return": look_around_and_return,
    "orbit": orbit,
}
"""Name -> builder ``(num_frames, *, start_c2w=None, fov_deg=75, width=64, height=64, ...)``."""
