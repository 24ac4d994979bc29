"""Camera paths through a world's free space that come back to where they began.

The shapes of the paths are ``worldmem.geometry.trajectory.revisit_paths``; a planner here
draws their numbers from the seed and keeps them clear of the world's surfaces.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from worldmem.data.synthetic.world import World
from worldmem.geometry import ground_axes
from worldmem.geometry.trajectory.revisit_paths import (
    arc,
    ellipse_loop,
    look_along,
    orbit_circle,
    pan_and_step,
    retrace,
    retrace_budget,
)

__all__ = [
    "TRAJECTORY_KINDS",
    "CLEARANCE_M",
    "MAX_SPEED_M",
    "LOOK_AHEAD_M",
    "MAX_TURN_DEG",
    "make_trajectory",
    "free_start_camera",
]

TRAJECTORY_KINDS = ("out_and_back", "loop", "look_around", "orbit", "random_return")

CLEARANCE_M = 0.35  # trajectories keep the camera at least this far from every surface
MAX_SPEED_M = 0.15  # walking speed range per frame: 0.05-0.15 m
LOOK_AHEAD_M = 1.0  # open space kept in front of the camera where a walk turns around
MAX_TURN_DEG = 8.0  # largest yaw change per frame of turns (when num_frames >= ~92)


def _heading(yaw_deg) -> np.ndarray:
    return ground_axes(yaw_deg)[0]


def _free_start(world: World, rng: np.random.Generator, clearance_m: float = 0.7) -> np.ndarray:
    """A random camera position (3,) at y = 0, preferably ``clearance_m`` from every surface
    (else the least clearance any trajectory keeps, plus a margin)."""
    lo, hi = world.lo.numpy(), world.hi.numpy()
    for radius in (max(clearance_m, CLEARANCE_M + 0.2), CLEARANCE_M + 0.2):
        for _ in range(200):
            p = np.array([rng.uniform(lo[0], hi[0]), 0.0, rng.uniform(lo[2], hi[2])])
            if bool(world.is_free(torch.tensor(p[None], dtype=torch.float32), radius)[0]):
                return p
    raise RuntimeError(f"no free start found in {world!r}")


def _open_heading(world: World, p: np.ndarray, rng: np.random.Generator) -> float:
    """A yaw in degrees from ``p`` toward open space: the farthest-reaching of 16 random
    headings (free distance measured in 0.25 m steps up to 8 m)."""
    yaws = rng.uniform(-180, 180) + np.arange(16) * 22.5
    s = np.arange(1, 33) * 0.25
    pts = p + s[None, :, None] * _heading(yaws)[:, None, :]  # (16, 32, 3)
    free = world.is_free(torch.as_tensor(pts.reshape(-1, 3), dtype=torch.float32), CLEARANCE_M)
    free = free.reshape(16, 32).numpy()
    reach = np.where(free.all(1), len(s), free.argmin(1))
    return float(yaws[int(np.argmax(reach))])


def _path_free(world: World, pos: np.ndarray) -> bool:
    """Whether a path of positions (N, 3), and the midpoints between them, keep
    ``CLEARANCE_M`` from every surface."""
    pos = np.asarray(pos, dtype=np.float64)
    pts = np.concatenate([pos, 0.5 * (pos[1:] + pos[:-1])]) if len(pos) > 1 else pos
    return bool(world.is_free(torch.as_tensor(pts, dtype=torch.float32), CLEARANCE_M).all())


def _out_and_back(world, rng, n):
    """A gently curving walk (``arc``) out as far as the world leaves room, and back
    (``retrace``)."""
    t, walk, rest = retrace_budget(n, MAX_TURN_DEG)
    want = rng.uniform(0.05, MAX_SPEED_M) * walk  # metres out
    best = None
    for _ in range(60):
        start = _free_start(world, rng)
        yaw0, curve = rng.uniform(-180, 180), rng.uniform(-10, 10)
        # how far this gently curving walk stays free, keeping open space ahead of its end
        s = np.arange(0, want + LOOK_AHEAD_M + 0.05, 0.05)
        pos, _ = arc(start, yaw0, curve, s)
        free = world.is_free(torch.as_tensor(pos, dtype=torch.float32), CLEARANCE_M).numpy()
        first_blocked = s[np.argmin(free)] if not free.all() else s[-1] + 0.05
        length = min(want, first_blocked - LOOK_AHEAD_M - 0.05)
        if best is None or length > best[0]:
            best = (length, start, yaw0, curve)
        if length >= want:
            break
    length, start, yaw0, curve = best
    if length <= 0:
        raise RuntimeError(f"out_and_back: no free path in {world!r}")
    out, yaws = arc(start, yaw0, curve, np.arange(walk + 1) * (length / walk))
    # the way back steps through the arc's knots from its far end
    pos, yaw = retrace(out[:-1], yaws[:-1], t, t + rest, back_pos=out[1:][::-1], home=start)
    pitch = np.full(n, rng.uniform(-5, 5))
    return pos, yaw, pitch


def _loop(world, rng, n):
    """An ``ellipse_loop`` in free space, slower (smaller) with every failed attempt."""
    for attempt in range(200):
        speed = rng.uniform(0.05, 0.15) * (0.97**attempt)
        perim = speed * max(n - 1, 1)
        aspect = rng.uniform(1.0, 1.5)
        rot = rng.uniform(0, math.pi)
        centre = _free_start(world, rng)
        direction = 1 if rng.integers(2) else -1
        pos, yaw, pitch = ellipse_loop(centre, perim, aspect, rot, n, direction)
        if _path_free(world, pos):
            return pos, yaw, pitch
    raise RuntimeError(f"loop: no free path in {world!r}")


def _look_around(world, rng, n):
    """``pan_and_step`` from a start with room around it, facing open space; standing still
    when no step is free."""
    start = _free_start(world, rng, clearance_m=1.2)
    amp = rng.uniform(90, 150)
    direction = 1 if rng.integers(2) else -1
    yaw0 = _open_heading(world, start, rng)
    tilt = rng.uniform(5, 15)
    for _ in range(50):
        step = rng.uniform(0.3, 1.0)
        pos, yaw, pitch = pan_and_step(start, yaw0, amp, direction, tilt, step, n)
        if _path_free(world, pos):
            return pos, yaw, pitch
        start = _free_start(world, rng, clearance_m=1.2)
    return np.repeat(start[None], n, 0), yaw, pitch


def _orbit(world, rng, n):
    targets = []
    for o in world.objects:
        if o.name in ("door", "painting"):
            continue
        if o.boxes:
            b = np.array(o.boxes[0])
            c, r = 0.5 * (b[:3] + b[3:]), 0.5 * math.hypot(b[3] - b[0], b[5] - b[2])
        elif o.cylinders:
            cx, cz, cr, y0, y1 = o.cylinders[0]
            c, r = np.array([cx, 0.5 * (y0 + y1), cz]), cr
        else:
            s = o.spheres[0]
            c, r = np.array(s[:3]), s[3]
        if o.spheres:
            r = max(r, o.spheres[0][3])
        targets.append((c, r))
    order = rng.permutation(len(targets)) if targets else []
    direction = 1 if rng.integers(2) else -1
    for attempt in range(len(order) * 6 + 60):
        speed = rng.uniform(0.05, 0.15)
        if attempt < len(order) * 6:
            c, r = targets[order[attempt // 6]]
            radius = max(speed * max(n - 1, 1) / (2 * math.pi), r + CLEARANCE_M + 0.6)
            radius *= 1 + 0.25 * (attempt % 6)
            if radius * 2 * math.pi / max(n - 1, 1) > MAX_SPEED_M:
                continue
            centre = np.array([c[0], 0.0, c[2]])
            look_y = float(np.clip(c[1], -0.5, world.floor_y - 0.3))
        else:
            # circle empty space looking at its centre; in narrow worlds, centred on the
            # short axis, and smaller (slower) as attempts fail
            centre = _free_start(world, rng)
            lo, hi = world.lo.numpy(), world.hi.numpy()
            short = 0 if hi[0] - lo[0] < hi[2] - lo[2] else 2
            if hi[short] - lo[short] < 6:
                centre[short] = 0.5 * (lo[short] + hi[short])
            shrink = 0.97 ** (attempt - len(order) * 6)
            radius = max(speed * max(n - 1, 1) / (2 * math.pi) * shrink, 0.45)
            look_y = 0.0
        pos, yaw, pitch = orbit_circle(centre, radius, n, direction, look_y)
        if _path_free(world, pos):
            return pos, yaw, pitch
    raise RuntimeError(f"orbit: no free path in {world!r}")


def _random_return(world, rng, n):
    """A steered random walk, and back the same way (``retrace``)."""
    t, walk, rest = retrace_budget(n, MAX_TURN_DEG)
    speed = rng.uniform(0.06, 0.14)
    p = _free_start(world, rng)
    yaw = _open_heading(world, p, rng)
    rate = 0.0
    pos, yaws = [p], [yaw]
    for _ in range(walk):
        rate = float(np.clip(0.8 * rate + rng.normal(0, 1.5), -MAX_TURN_DEG / 2, MAX_TURN_DEG / 2))
        # steer away from obstacles: try the wanted turn, then sharper ones either way
        turns = np.clip([rate, rate + 4, rate - 4, rate + 8, rate - 8], -MAX_TURN_DEG, MAX_TURN_DEG)
        for dyaw in turns:
            nxt = p + speed * _heading(yaw + dyaw)
            ahead = p + LOOK_AHEAD_M * _heading(yaw + dyaw)
            if _path_free(world, np.stack([p, nxt, 0.5 * (nxt + ahead), ahead])):
                break
        else:  # boxed in: turn on the spot
            dyaw = MAX_TURN_DEG if rate >= 0 else -MAX_TURN_DEG
            nxt = p
        yaw += dyaw
        p = nxt
        pos.append(p)
        yaws.append(yaw)
    pos, yaw = retrace(np.array(pos[:-1]), np.array(yaws[:-1]), t, t + rest)
    pitch = np.full(n, rng.uniform(-5, 5))
    return pos, yaw, pitch


_TRAJECTORIES = {
    "out_and_back": _out_and_back,
    "loop": _loop,
    "look_around": _look_around,
    "orbit": _orbit,
    "random_return": _random_return,
}


def make_trajectory(world: World, kind: str, num_frames: int, seed: int) -> Tensor:
    """A camera path through free space that comes back to where it started.

    kind: "out_and_back" (walk, turn around, walk back, turn to the first view), "loop" (walk
    an ellipse), "look_around" (pan right and left with a small step, back to the first view),
    "orbit" (circle an object looking at it), "random_return" (a steered random walk, turned
    around and retraced). Walking speeds 0.05-0.15 m/frame, in-place turns of at most
    ``MAX_TURN_DEG`` per frame when num_frames leaves room (>= ~92), cameras at y = 0 and at
    least ``CLEARANCE_M`` from every surface. Returns c2w ``(num_frames, 4, 4)`` float32.
    """
    if kind not in _TRAJECTORIES:
        raise ValueError(f"make_trajectory: kind must be one of {TRAJECTORY_KINDS}, got {kind!r}")
    if not isinstance(num_frames, (int, np.integer)) or num_frames < 2:
        raise ValueError(f"make_trajectory: num_frames must be an int >= 2, got {num_frames!r}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 1 + TRAJECTORY_KINDS.index(kind), 99])
    pos, yaw, pitch = _TRAJECTORIES[kind](world, rng, int(num_frames))
    return look_along(pos, yaw, pitch)


def free_start_camera(world: World, seed: int) -> Tensor:
    """A camera c2w ``(4, 4)`` float32 at y = 0 with room around it, facing open space: the
    first camera of the ``look_around`` path of ``seed`` (8 frames)."""
    return make_trajectory(world, "look_around", 8, seed)[0]
