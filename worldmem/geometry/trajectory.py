"""Camera trajectories: the ``Trajectory`` container, its files, a compact text language, and
ready-made trajectories that come back to where they started (revisits).

Files
-----
* JSON (``Trajectory.save_json`` / ``Trajectory.load_json``)::

    {"width": W, "height": H,
     "frames": [{"c2w": 4x4 rows, "K": 3x3 rows, "timestamp": seconds (optional)}, ...]}

  Either every frame has a ``timestamp`` or none does.
* RealEstate10K camera files (``load_realestate10k`` / ``save_realestate10k``), the published
  layout: the first line is the video URL, then one line per frame with 19 numbers::

    timestamp_us fx fy cx cy 0 0 r00 r01 r02 t0 r10 r11 r12 t1 r20 r21 r22 t2

  where fx, cy, ... are divided by the image width (fx, cx) or height (fy, cy) and the last 12
  numbers are the 3x4 world-to-camera matrix, row-major, OpenCV convention.

Trajectory language
-------------------
Steps separated by whitespace; each step is a name with an optional frame count::

    trajectory := WS* ( step ( WS+ step )* )? WS*
    step       := name ( "*" count )?
    name       := key | "pause" | "back-to-start"
    key        := "w" | "s" | "a" | "d" | "q" | "e" | "space" | "shift"
                | "left" | "right" | "up" | "down" | "idle"          (see ``actions.py``)
    count      := digit+                      (an integer in [1, MAX_STEP_FRAMES])

A trajectory has at most ``MAX_TRAJECTORY_FRAMES`` frames after the start pose; a longer one
is refused before any camera is computed.

* ``key*N``: N frames, each one press of the key (``ActionConfig`` speeds); ``key`` is 1 frame.
* ``pause*N``: N frames holding the pose (the same as ``idle*N``).
* ``back-to-start*N``: N frames moving uniformly from the current pose to the first pose of
  the trajectory (position in a straight line, yaw the short way round, pitch linearly); the
  last frame is the first pose. Without ``*N`` it takes as many frames as the configured
  speeds need (no frame moves farther than ``move_m`` or turns more than ``turn_deg``).

Example: ``"w*20 left*15 w*10 back-to-start"``. Names are lower case. A malformed step is a
``ValueError`` that quotes it and gives its column (1-based) in the text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from worldmem.config import ActionConfig
from worldmem.geometry.actions import (
    KEYS,
    _check_cfg,
    _compose,
    _decompose,
    _step,
    wrap_deg,
)
from worldmem.geometry.camera import (
    DEFAULT_FOV_DEG,
    check_c2w,
    check_K,
    intrinsics_from_fov,
    se3_inverse,
)

__all__ = [
    "Trajectory",
    "load_realestate10k",
    "realestate10k_camera_lines",
    "save_realestate10k",
    "TrajectoryStep",
    "STEP_NAMES",
    "MAX_STEP_FRAMES",
    "MAX_TRAJECTORY_FRAMES",
    "parse_trajectory",
    "format_trajectory",
    "trajectory_from_text",
    "out_and_back",
    "loop",
    "look_around_and_return",
    "orbit",
    "REVISIT_TRAJECTORIES",
]

STEP_NAMES: tuple[str, ...] = (*KEYS, "pause", "back-to-start")
"""Every step name of the trajectory language."""
MAX_STEP_FRAMES = 100_000  # largest count one step may ask for (guards against typos)
MAX_TRAJECTORY_FRAMES = 100_000  # most frames one trajectory may have (language, files, steps)

_RE10K_FIELDS = 19  # timestamp_us, fx, fy, cx, cy, 0, 0, 3x4 world-to-camera


# --------------------------------------------------------------------------------------------
# The container and its files


@dataclass(eq=False)
class Trajectory:
    """A sequence of cameras.

    c2w ``(N, 4, 4)`` float32 rigid camera-to-world; K ``(N, 3, 3)`` float32 pixel intrinsics
    (a single ``(3, 3)`` is repeated for every frame); width, height in pixels; timestamps
    ``(N,)`` float64 seconds or None. Validated on construction: a non-finite or non-rigid
    pose (checked in float32, so values that overflow it are refused) is a ``ValueError``
    naming its index.
    """

    c2w: Tensor
    K: Tensor
    width: int
    height: int
    timestamps: Tensor | None = None

    def __post_init__(self):
        c2w = torch.as_tensor(self.c2w)
        if c2w.ndim != 3 or tuple(c2w.shape[1:]) != (4, 4) or c2w.shape[0] == 0:
            raise ValueError(f"Trajectory.c2w: expected shape (N>0, 4, 4), got {tuple(c2w.shape)}")
        if not c2w.is_floating_point():
            c2w = c2w.double()
        c2w = c2w.float()  # checked as stored: values beyond float32's range become inf
        check_c2w(c2w, "Trajectory.c2w")
        n = c2w.shape[0]
        K = torch.as_tensor(self.K)
        if not K.is_floating_point():
            K = K.double()
        K = K.float()
        if K.shape == (3, 3):
            K = K.expand(n, 3, 3)
        if tuple(K.shape) != (n, 3, 3):
            raise ValueError(
                f"Trajectory.K: expected shape ({n}, 3, 3) or (3, 3), got {tuple(K.shape)}"
            )
        check_K(K, "Trajectory.K")
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v <= 0:
                raise ValueError(f"Trajectory.{name}: expected a positive integer, got {v!r}")
        if self.timestamps is not None:
            ts = torch.as_tensor(self.timestamps, dtype=torch.float64)
            if tuple(ts.shape) != (n,):
                raise ValueError(
                    f"Trajectory.timestamps: expected shape ({n},), got {tuple(ts.shape)}"
                )
            if not bool(torch.isfinite(ts).all()):
                i = int((~torch.isfinite(ts)).nonzero()[0])
                raise ValueError(f"Trajectory.timestamps: frame {i} is not finite ({ts[i]})")
            self.timestamps = ts.cpu()
        self.c2w = c2w.float().contiguous()
        self.K = K.float().contiguous()
        self.width, self.height = int(self.width), int(self.height)

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def save_json(self, path: str | Path) -> Path:
        """Write the trajectory as JSON (the layout in the module docstring); returns the path."""
        path = Path(path)
        frames = []
        for i in range(len(self)):
            frame = {"c2w": self.c2w[i].tolist(), "K": self.K[i].tolist()}
            if self.timestamps is not None:
                frame["timestamp"] = float(self.timestamps[i])
            frames.append(frame)
        data = {"width": self.width, "height": self.height, "frames": frames}
        path.write_text(json.dumps(data, indent=1) + "\n")
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> Trajectory:
        """Read a trajectory written by ``save_json``. A malformed file or frame is a
        ``ValueError`` naming the file and the frame index."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        except RecursionError:
            raise ValueError(f"{path}: not valid JSON (nested too deeply)") from None
        except ValueError as e:  # e.g. an integer too long to convert
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
        missing = [k for k in ("width", "height", "frames") if k not in data]
        if missing:
            raise ValueError(f"{path}: missing key(s) {', '.join(missing)}")
        frames = data["frames"]
        if not isinstance(frames, list) or not frames:
            raise ValueError(f"{path}: 'frames' must be a non-empty list")
        if len(frames) > MAX_TRAJECTORY_FRAMES:
            raise ValueError(
                f"{path}: {len(frames)} frames, more than MAX_TRAJECTORY_FRAMES "
                f"({MAX_TRAJECTORY_FRAMES})"
            )
        c2w, K, ts = [], [], []
        for i, frame in enumerate(frames):
            if not isinstance(frame, dict):
                raise ValueError(f"{path}: frame {i}: expected an object, got {frame!r}")
            c2w.append(_matrix(frame, "c2w", (4, 4), path, i))
            K.append(_matrix(frame, "K", (3, 3), path, i))
            ts.append(frame.get("timestamp"))
        has_ts = [t is not None for t in ts]
        if any(has_ts) and not all(has_ts):
            i = has_ts.index(False)
            raise ValueError(f"{path}: frame {i} has no 'timestamp' but other frames do")
        try:
            return cls(
                c2w=torch.stack(c2w),
                K=torch.stack(K),
                width=data["width"],
                height=data["height"],
                timestamps=torch.tensor(ts, dtype=torch.float64) if all(has_ts) else None,
            )
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from None


def _matrix(frame: dict, key: str, shape: tuple[int, int], path: Path, i: int) -> Tensor:
    if key not in frame:
        raise ValueError(f"{path}: frame {i} has no '{key}'")
    try:
        m = torch.tensor(frame[key], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        m = None
    if m is None or tuple(m.shape) != shape:
        raise ValueError(
            f"{path}: frame {i}: '{key}' must be a {shape[0]}x{shape[1]} list of numbers, "
            f"got {frame[key]!r}"
        )
    if not bool(torch.isfinite(m).all()):
        raise ValueError(f"{path}: frame {i}: '{key}' has NaN or infinite values")
    return m


def realestate10k_camera_lines(path: str | Path) -> list[tuple[int, list[str]]]:
    """The camera lines of a RealEstate10K file as ``(line number, 19 fields)``: blank lines
    and a first line that is not a camera line (the video URL, which may be missing) are
    skipped. Every reader of these files goes through here, so camera i is the same line for
    all of them. A line with the wrong number of fields is a ``ValueError`` naming it."""
    path = Path(path)
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if lineno == 1 and len(fields) != _RE10K_FIELDS:
            continue  # the video URL
        if len(fields) != _RE10K_FIELDS:
            raise ValueError(
                f"{path}:{lineno}: expected {_RE10K_FIELDS} numbers (timestamp_us fx fy cx cy "
                f"0 0 and a row-major 3x4 world-to-camera matrix), got {len(fields)}"
            )
        out.append((lineno, fields))
        if len(out) > MAX_TRAJECTORY_FRAMES:
            raise ValueError(
                f"{path}:{lineno}: more than MAX_TRAJECTORY_FRAMES "
                f"({MAX_TRAJECTORY_FRAMES}) cameras"
            )
    return out


def load_realestate10k(path: str | Path, width: int, height: int) -> Trajectory:
    """Read a RealEstate10K camera file (layout in the module docstring).

    Intrinsics are scaled to pixels for an image of ``width`` x ``height``; the world-to-camera
    matrices are inverted to c2w; timestamps become seconds. Returns a ``Trajectory`` of N
    frames. The URL line may be missing. A malformed line is a ``ValueError`` naming the file
    and the line number.
    """
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    path = Path(path)
    rows, line_numbers = [], []
    for lineno, fields in realestate10k_camera_lines(path):
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            raise ValueError(
                f"{path}:{lineno}: not a list of numbers: {' '.join(fields)!r}"
            ) from None
        line_numbers.append(lineno)
    if not rows:
        raise ValueError(f"{path}: no camera lines found")
    data = torch.tensor(rows, dtype=torch.float64)  # (N, 19)
    n = data.shape[0]
    bad = ~torch.isfinite(data).all(1)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"{path}:{line_numbers[i]}: frame {i} has NaN or infinite values")
    K = torch.zeros(n, 3, 3, dtype=torch.float64)
    K[:, 0, 0] = data[:, 1] * width
    K[:, 1, 1] = data[:, 2] * height
    K[:, 0, 2] = data[:, 3] * width
    K[:, 1, 2] = data[:, 4] * height
    K[:, 2, 2] = 1
    w2c = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    w2c[:, :3, :] = data[:, 7:].reshape(n, 3, 4)
    try:
        return Trajectory(
            c2w=se3_inverse(w2c), K=K, width=width, height=height, timestamps=data[:, 0] / 1e6
        )
    except ValueError as e:
        raise ValueError(f"{path}: {e} (pose i is the camera line i, counting from 0)") from None


def save_realestate10k(
    trajectory: Trajectory,
    path: str | Path,
    url: str = "https://www.youtube.com/watch?v=none",
    fps: float = 30.0,
) -> Path:
    """Write a trajectory as a RealEstate10K camera file (layout in the module docstring).

    Timestamps are written in integer microseconds; without timestamps, frame i is at
    ``i / fps`` seconds. Returns the path.
    """
    path = Path(path)
    if any(c.isspace() for c in url) or not url:
        raise ValueError(f"url: expected a non-empty string without whitespace, got {url!r}")
    t = trajectory
    ts = t.timestamps if t.timestamps is not None else torch.arange(len(t)) / fps
    w2c = se3_inverse(t.c2w.double())
    lines = [url]
    for i in range(len(t)):
        K = t.K[i].double()
        intr = [K[0, 0] / t.width, K[1, 1] / t.height, K[0, 2] / t.width, K[1, 2] / t.height]
        nums = [f"{float(v):.9g}" for v in intr] + ["0", "0"]
        nums += [f"{float(v):.9g}" for v in w2c[i, :3, :].reshape(-1)]
        lines.append(" ".join([str(round(float(ts[i]) * 1e6)), *nums]))
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------------------------
# The trajectory language


@dataclass(frozen=True)
class TrajectoryStep:
    """One step of the trajectory language: a name from ``STEP_NAMES`` and a frame count
    (None: the default, 1 frame for a key or ``pause``, automatic for ``back-to-start``)."""

    name: str
    count: int | None = None

    def __post_init__(self):
        if self.name not in STEP_NAMES:
            raise ValueError(f"unknown step {self.name!r}; valid names: {', '.join(STEP_NAMES)}")
        if self.count is not None and (
            isinstance(self.count, bool)
            or not isinstance(self.count, int)
            or not 1 <= self.count <= MAX_STEP_FRAMES
        ):
            raise ValueError(
                f"step {self.name!r}: count must be an integer in [1, {MAX_STEP_FRAMES}], "
                f"got {self.count!r}"
            )


def _where(text: str, start: int) -> str:
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return f"line {line}, column {col}" if "\n" in text else f"column {col}"


@dataclass(frozen=True)
class _StepWhere:
    """A step's place in the text, formatted only for an error message (counting lines for
    every step would make parsing quadratic in the text's length)."""

    text: str
    token: str
    start: int

    def __str__(self) -> str:
        return f"trajectory step {self.token[:40]!r} at {_where(self.text, self.start)}"


def parse_trajectory(text: str) -> list[TrajectoryStep]:
    """Parse the trajectory language (grammar in the module docstring) into steps.

    A malformed step (unknown name, a count that is not a positive integer such as ``w*0``,
    ``w*x``, ``w**3``, ``w*-2``) or more than ``MAX_TRAJECTORY_FRAMES`` frames in all is a
    ``ValueError`` quoting the step and its column.
    """
    if not isinstance(text, str):
        raise ValueError(f"trajectory: expected a string, got {type(text).__name__}")
    steps = []
    total = 0  # frames so far (an automatic back-to-start counts as its least, 1)
    for m in re.finditer(r"\S+", text):
        token = m.group()
        name, star, count_text = token.partition("*")
        where = _StepWhere(text, token, m.start())
        if name not in STEP_NAMES:
            raise ValueError(
                f"{where}: unknown name {name[:40]!r}; valid names: {', '.join(STEP_NAMES)}"
            )
        count = None
        if star:
            if not count_text.isdecimal() or not count_text.isascii() or len(count_text) > 12:
                raise ValueError(
                    f"{where}: the count after '*' must be a positive integer, "
                    f"got {count_text[:40]!r}"
                )
            count = int(count_text)
            if not 1 <= count <= MAX_STEP_FRAMES:
                raise ValueError(
                    f"{where}: the count must be in [1, {MAX_STEP_FRAMES}], got {count}"
                )
        total += count or 1
        if total > MAX_TRAJECTORY_FRAMES:
            raise ValueError(
                f"{where}: the trajectory would have more than {MAX_TRAJECTORY_FRAMES} frames"
            )
        steps.append(TrajectoryStep(name, count))
    return steps


def format_trajectory(steps: Sequence[TrajectoryStep]) -> str:
    """Steps -> text of the trajectory language; ``parse_trajectory`` gives the steps back."""
    out = []
    for step in steps:
        if not isinstance(step, TrajectoryStep):
            raise ValueError(f"steps: expected TrajectoryStep items, got {step!r}")
        out.append(step.name if step.count is None else f"{step.name}*{step.count}")
    return " ".join(out)


def trajectory_from_text(
    text: str | Sequence[TrajectoryStep],
    start_c2w: Tensor,
    K: Tensor,
    width: int,
    height: int,
    cfg: ActionConfig,
) -> Trajectory:
    """Cameras for a trajectory-language program (or parsed steps).

    start_c2w ``(4, 4)``, K ``(3, 3)`` (used for every frame) -> a ``Trajectory`` of
    1 + (frames of all steps) cameras: frame 0 is ``start_c2w``, then one frame per key press.
    Motion follows ``apply_action`` with ``cfg``; any roll of ``start_c2w`` is kept.
    """
    steps = parse_trajectory(text) if isinstance(text, str) else list(text)
    for step in steps:
        if not isinstance(step, TrajectoryStep):
            raise ValueError(f"text: expected a string or TrajectoryStep items, got {step!r}")
    check_c2w(start_c2w, "start_c2w")
    if start_c2w.shape != (4, 4):
        raise ValueError(f"start_c2w: expected shape (4, 4), got {tuple(start_c2w.shape)}")
    if K.shape != (3, 3):
        raise ValueError(f"K: expected shape (3, 3), got {tuple(K.shape)}")
    _check_cfg(cfg)
    explicit = sum(step.count or 1 for step in steps)
    if explicit > MAX_TRAJECTORY_FRAMES:
        raise ValueError(
            f"trajectory: {explicit} frames, more than MAX_TRAJECTORY_FRAMES "
            f"({MAX_TRAJECTORY_FRAMES})"
        )
    pos0, yaw0, pitch0, roll = _decompose(start_c2w)
    position, yaw, pitch = pos0, yaw0, pitch0
    poses = [(position, yaw, pitch)]
    for step in steps:
        if step.name == "back-to-start":
            dpos = pos0 - position
            dyaw = wrap_deg(yaw0 - yaw)
            dpitch = pitch0 - pitch
            n = step.count or _frames_needed(dpos, dyaw, dpitch, cfg)
            explicit += n - (step.count or 1)  # an automatic count is known only now
            if explicit > MAX_TRAJECTORY_FRAMES:
                raise ValueError(
                    f"trajectory: back-to-start makes it longer than MAX_TRAJECTORY_FRAMES "
                    f"({MAX_TRAJECTORY_FRAMES})"
                )
            for j in range(1, n + 1):
                a = j / n
                poses.append((position + a * dpos, yaw + a * dyaw, pitch + a * dpitch))
            position, yaw, pitch = pos0, yaw0, pitch0
            poses[-1] = (position, yaw, pitch)
            continue
        key = "idle" if step.name == "pause" else step.name
        for _ in range(step.count or 1):
            position, yaw, pitch = _step(position, yaw, pitch, key, cfg)
            poses.append((position, yaw, pitch))
    pos, yaws, pitches = (torch.stack(t) for t in zip(*poses))
    c2w = _compose(pos, yaws, pitches, roll.expand_as(yaws))
    return Trajectory(c2w=c2w, K=K, width=width, height=height)


def _frames_needed(dpos: Tensor, dyaw: Tensor, dpitch: Tensor, cfg: ActionConfig) -> int:
    """Frames for a move at the configured speeds (at least 1)."""
    need = [1.0]
    if cfg.move_m > 0:
        need.append(float(dpos.norm()) / cfg.move_m)
    if cfg.turn_deg > 0:
        need += [abs(float(dyaw)) / cfg.turn_deg, abs(float(dpitch)) / cfg.turn_deg]
    return min(MAX_STEP_FRAMES, math.ceil(max(need) - 1e-9))


# --------------------------------------------------------------------------------------------
# Ready-made revisit trajectories. Each starts at ``start_c2w`` (default: the origin looking
# along +z) and keeps its roll; those that return end exactly at the start pose.


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
