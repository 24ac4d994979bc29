"""RealEstate10K camera files (``load_realestate10k`` / ``save_realestate10k``), the
published layout: the first line is the video URL, then one line per frame with 19 numbers::

    timestamp_us fx fy cx cy 0 0 r00 r01 r02 t0 r10 r11 r12 t1 r20 r21 r22 t2

where fx, cy, ... are divided by the image width (fx, cx) or height (fy, cy) and the last 12
numbers are the 3x4 world-to-camera matrix, row-major, OpenCV convention.
"""

from __future__ import annotations

from pathlib import Path

import torch

from worldmem.geometry.camera import se3_inverse
from worldmem.geometry.trajectory.container import MAX_TRAJECTORY_FRAMES, Trajectory
from worldmem.text_check import read_text

__all__ = ["load_realestate10k", "realestate10k_camera_lines", "save_realestate10k"]

_RE10K_FIELDS = 19  # timestamp_us, fx, fy, cx, cy, 0, 0, 3x4 world-to-camera


def realestate10k_camera_lines(path: str | Path) -> list[tuple[int, list[str]]]:
    """The camera lines of a RealEstate10K file as ``(line number, 19 fields)``: blank lines
    and a first line that is not a camera line (the video URL, which may be missing) are
    skipped. Every reader of these files goes through here, so camera i is the same line for
    all of them. A line with the wrong number of fields is a ``ValueError`` naming it."""
    path = Path(path)
    text = read_text(path)
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
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
