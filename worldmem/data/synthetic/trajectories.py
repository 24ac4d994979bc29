"""Camera paths through a world's free space that come back to where they began."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from worldmem.data.synthetic.world import World
from worldmem.geometry import look_at

TRAJECTORY_KINDS = ("out_and_back", "loop", "look_around", "orbit", "random_return")

CLEARANCE_M = 0.35  # trajectories keep the camera at least this far from every surface
MAX_SPEED_M = 0.15  # walking speed range per frame: 0.05-0.15 m
LOOK_AHEAD_M = 1.0  # open space kept in front of the camera where a walk turns around
MAX_TURN_DEG = 8.0  # largest yaw change per frame of turns (when num_frames >= ~92)


def _poses(pos: np.ndarray, yaw_deg: np.ndarray, pitch_deg: np.ndarray) -> Tensor:
    """c2w ``(N, 4, 4)`` float32 from positions (N, 3), yaw (N,) (> 0 turns right: heading
    from +z toward +x) and pitch (N,) (> 0 looks up, toward -y), in degrees."""
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    fwd = np.stack([np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)], -1)
    eye = torch.as_tensor(pos, dtype=torch.float32)
    return look_at(eye, eye + torch.as_tensor(fwd, dtype=torch.float32)).float()


def _heading(yaw_deg) -> np.ndarray:
    y = np.radians(yaw_deg)
    return np.stack([np.sin(y), np.zeros_like(y), np.cos(y)], -1)


def _budget(num_frames: int) -> tuple[int, int, int]:
    """Frames for a walk out, a turn around, the walk back and the turn to the first view:
    (frames per 180-degree turn, frames per walk, extra frames for the last turn). Turns take
    at most MAX_TURN_DEG per frame when half the frames suffice for both (num_frames >= ~92)."""
    turn = min(math.ceil(180 / MAX_TURN_DEG), num_frames // 4)
    walk = max(1, (num_frames - 2 * turn) // 2)
    turn = min(turn, (num_frames - 2 * walk) // 2)
    return turn, walk, num_frames - 2 * turn - 2 * walk


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


def _arc(start: np.ndarray, yaw0_deg: float, curve_deg_per_m: float, s: np.ndarray):
    """Positions (len(s), 3) and yaw (len(s),) in degrees along a circular arc at y = 0 that
    leaves ``start`` with heading ``yaw0_deg`` and turns ``curve_deg_per_m``; s arc lengths."""
    y0, k = math.radians(yaw0_deg), math.radians(curve_deg_per_m)
    if abs(k) < 1e-6:
        k = 1e-6
    yaw = y0 + k * s
    x = start[0] + (math.cos(y0) - np.cos(yaw)) / k  # integral of sin(yaw) ds
    z = start[2] + (np.sin(yaw) - math.sin(y0)) / k  # integral of cos(yaw) ds
    return np.stack([x, np.zeros_like(x), z], -1), np.degrees(yaw)


def _out_and_back(world, rng, n):
    t, walk, rest = _budget(n)
    want = rng.uniform(0.05, MAX_SPEED_M) * walk  # metres out
    best = None
    for _ in range(60):
        start = _free_start(world, rng)
        yaw0, curve = rng.uniform(-180, 180), rng.uniform(-10, 10)
        # how far this gently curving walk stays free, keeping open space ahead of its end
        s = np.arange(0, want + LOOK_AHEAD_M + 0.05, 0.05)
        pos, _ = _arc(start, yaw0, curve, s)
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
    out, yaws = _arc(start, yaw0, curve, np.arange(walk + 1) * (length / walk))
    end = out[-1]
    pos = [out[:-1], np.repeat(end[None], t, 0), out[1:][::-1], np.repeat(start[None], t + rest, 0)]
    turn1 = yaws[-2] + np.linspace(0, 180, t + 1)[1:]
    turn2 = yaws[0] + 180 + np.linspace(0, 180, t + rest + 1)[1:]
    yaw = np.concatenate([yaws[:-1], turn1, (yaws[:-1] + 180)[::-1], turn2])
    pitch = np.full(n, rng.uniform(-5, 5))
    return np.concatenate(pos), yaw, pitch


def _loop(world, rng, n):
    for attempt in range(200):
        speed = rng.uniform(0.05, 0.15) * (0.97**attempt)
        perim = speed * max(n - 1, 1)
        aspect = rng.uniform(1.0, 1.5)
        # ellipse with semi-axes a, b and approximately this perimeter
        b = perim / (math.pi * (3 * (aspect + 1) - math.sqrt((3 * aspect + 1) * (aspect + 3))))
        a = aspect * b
        rot = rng.uniform(0, math.pi)
        centre = _free_start(world, rng)
        # constant speed: place the frames at equal arc lengths along the ellipse
        dense = np.linspace(0, 2 * math.pi, 2049)
        arc = np.concatenate(
            [[0], np.cumsum(np.hypot(a * np.diff(np.cos(dense)), b * np.diff(np.sin(dense))))]
        )
        th = np.interp(np.linspace(0, arc[-1], n), arc, dense) * (1 if rng.integers(2) else -1)
        ex, ez = a * np.cos(th), b * np.sin(th)
        x = centre[0] + ex * math.cos(rot) - ez * math.sin(rot)
        z = centre[2] + ex * math.sin(rot) + ez * math.cos(rot)
        pos = np.stack([x, np.zeros(n), z], -1)
        if not _path_free(world, pos):
            continue
        sgn = np.sign(th[-1]) if n > 1 else 1.0
        tx, tz = -a * np.sin(th) * sgn, b * np.cos(th) * sgn  # d/d|theta| of (ex, ez)
        wx = tx * math.cos(rot) - tz * math.sin(rot)
        wz = tx * math.sin(rot) + tz * math.cos(rot)
        yaw = np.degrees(np.unwrap(np.arctan2(wx, wz)))
        pitch = 3 * np.sin(np.linspace(0, 4 * math.pi, n))
        return pos, yaw, pitch
    raise RuntimeError(f"loop: no free path in {world!r}")


def _look_around(world, rng, n):
    start = _free_start(world, rng, clearance_m=1.2)
    amp = rng.uniform(90, 150)
    s = np.linspace(0, 1, n)
    # yaw: right to +amp, left to -amp, back to 0 (piecewise linear)
    knots_s = np.array([0, 0.25, 0.75, 1.0])
    knots_y = np.array([0, amp, -amp, 0]) * (1 if rng.integers(2) else -1)
    yaw0 = _open_heading(world, start, rng)
    yaw = yaw0 + np.interp(s, knots_s, knots_y)
    pitch = rng.uniform(5, 15) * np.sin(2 * math.pi * s * 2)
    # a small step forward and back while looking
    for _ in range(50):
        step = rng.uniform(0.3, 1.0)
        hd = _heading(yaw0)
        pos = start + np.sin(math.pi * s)[:, None] * step * hd
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
    sign = 1 if rng.integers(2) else -1
    th = sign * np.linspace(0, 2 * math.pi, n)
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
        pos = centre + radius * np.stack([np.sin(th), np.zeros(n), -np.cos(th)], -1)
        if not _path_free(world, pos):
            continue
        to_c = centre - pos
        yaw = np.degrees(np.unwrap(np.arctan2(to_c[:, 0], to_c[:, 2])))
        pitch = np.full(n, -np.degrees(np.arctan2(look_y, radius)))
        return pos, yaw, pitch
    raise RuntimeError(f"orbit: no free path in {world!r}")


def _random_return(world, rng, n):
    t, walk, rest = _budget(n)
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
    # walk out, turn around, retrace the path, turn to the first view
    pos, yaws = np.array(pos[:-1]), np.array(yaws[:-1])
    end = pos[-1]
    turn1 = yaws[-1] + np.linspace(0, 180, t + 1)[1:]
    back_yaw = (yaws + 180)[::-1]
    turn2 = back_yaw[-1] + np.linspace(0, 180, t + rest + 1)[1:]
    all_pos = np.concatenate(
        [pos, np.repeat(end[None], t, 0), pos[::-1], np.repeat(pos[:1], t + rest, 0)]
    )
    all_yaw = np.concatenate([yaws, turn1, back_yaw, turn2])
    pitch = np.full(n, rng.uniform(-5, 5))
    return all_pos, all_yaw, pitch


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
    return _poses(pos, yaw, pitch)
