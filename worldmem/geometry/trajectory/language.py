"""The trajectory language: a compact text for camera paths, and the cameras it describes.

Steps separated by whitespace; each step is a name with an optional frame count::

    trajectory := WS* ( step ( WS+ step )* )? WS*
    step       := name ( "*" count )?
    name       := key | "pause" | "back-to-start"
    key        := "w" | "s" | "a" | "d" | "q" | "e" | "space" | "shift"
                | "left" | "right" | "up" | "down" | "idle"          (see ``geometry/actions.py``)
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

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

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
from worldmem.geometry.camera import check_c2w
from worldmem.geometry.trajectory.container import MAX_TRAJECTORY_FRAMES, Trajectory

__all__ = [
    "MAX_STEP_FRAMES",
    "STEP_NAMES",
    "TrajectoryStep",
    "format_trajectory",
    "parse_trajectory",
    "trajectory_from_text",
]

STEP_NAMES: tuple[str, ...] = (*KEYS, "pause", "back-to-start")
"""Every step name of the trajectory language."""
MAX_STEP_FRAMES = 100_000  # largest count one step may ask for (guards against typos)


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
