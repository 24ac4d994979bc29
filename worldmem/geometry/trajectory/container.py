"""The ``Trajectory`` container (a sequence of cameras) and its JSON file::

    {"width": W, "height": H,
     "frames": [{"c2w": 4x4 rows, "K": 3x3 rows, "timestamp": seconds (optional)}, ...]}

Either every frame has a ``timestamp`` or none does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from worldmem.geometry.camera import check_c2w, check_K

__all__ = ["MAX_TRAJECTORY_FRAMES", "Trajectory"]

MAX_TRAJECTORY_FRAMES = 100_000  # most frames one trajectory may have (language, files, steps)
MAX_IMAGE_SIDE = 1 << 16  # pixels: the widest or tallest image a trajectory's intrinsics are for


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
            if v > MAX_IMAGE_SIDE:
                raise ValueError(
                    f"Trajectory.{name}: expected at most {MAX_IMAGE_SIDE} pixels, got {v!r}"
                )
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
