"""Writing an episode folder: ``rgb.mp4`` (H.264 with a keyframe every ``GOP_FRAMES``
frames, so the reader can seek), ``cameras.json``, ``caption.txt`` and ``depth.npz`` (layout in
``episode_format.py``)."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from worldmem.data.episode_format import CRF, EPISODE_FORMAT, EPISODE_VERSION, GOP_FRAMES
from worldmem.geometry.camera import check_c2w, check_K
from worldmem.text_check import check_text

__all__ = ["write_episode"]


def _as_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise ValueError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_episode(
    folder: str | os.PathLike,
    rgb,
    c2w,
    K,
    caption: str,
    depth=None,
    timestamps=None,
    fps: int = 10,
    *,
    crf: int = CRF,
) -> Path:
    """Write one episode folder (created if missing; existing episode files are replaced).
    Everything is checked before anything is written; each file is written to a new file
    next to it and renamed over it, so a file that is a symbolic link is replaced, never
    written through.

    rgb uint8 ``(N, H, W, 3)`` (numpy or torch; H and W even, as yuv420p H.264 needs),
    c2w ``(N, 4, 4)`` rigid camera-to-world (OpenCV), K ``(N, 3, 3)`` pixel intrinsics,
    caption text, depth ``(N, H, W)`` z-depth in metres or None (NaN, inf and values <= 0 are
    stored as 0 = unknown), timestamps ``(N,)`` seconds or None (then ``i / fps``).
    Returns the folder path.
    """
    folder = Path(folder)
    rgb = _as_numpy(rgb, "rgb")
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb: expected uint8 (N, H, W, 3), got {rgb.dtype} {rgb.shape}")
    N, H, W, _ = rgb.shape
    if N < 1:
        raise ValueError("rgb: expected at least one frame, got 0")
    if H % 2 or W % 2:
        raise ValueError(
            f"rgb: H.264 yuv420p needs even frame sizes, got {W}x{H}; crop or resize first"
        )
    c2w_t = torch.as_tensor(_as_numpy(c2w, "c2w"), dtype=torch.float64)
    K_t = torch.as_tensor(_as_numpy(K, "K"), dtype=torch.float64)
    if tuple(c2w_t.shape) != (N, 4, 4):
        raise ValueError(f"c2w: expected shape {(N, 4, 4)}, got {tuple(c2w_t.shape)}")
    if tuple(K_t.shape) != (N, 3, 3):
        raise ValueError(f"K: expected shape {(N, 3, 3)}, got {tuple(K_t.shape)}")
    check_c2w(c2w_t)
    check_K(K_t)
    check_text(caption, "caption")
    if not (isinstance(fps, int) and fps > 0):
        raise ValueError(f"fps: expected a positive int, got {fps!r}")
    if timestamps is None:
        ts = np.arange(N, dtype=np.float64) / fps
    else:
        ts = np.asarray(_as_numpy(timestamps, "timestamps"), dtype=np.float64)
        if ts.shape != (N,) or not np.isfinite(ts).all():
            raise ValueError(f"timestamps: expected finite (N={N},), got shape {ts.shape}")
    if depth is not None:
        d = np.asarray(_as_numpy(depth, "depth"), dtype=np.float32)
        if d.shape != (N, H, W):
            raise ValueError(f"depth: expected shape {(N, H, W)}, got {d.shape}")
        ok = np.isfinite(d) & (d > 0) & (d < np.finfo(np.float16).max)
        d = np.where(ok, d, 0).astype(np.float16)

    folder.mkdir(parents=True, exist_ok=True)
    _replace(folder / "rgb.mp4", lambda tmp: _encode_mp4(tmp, rgb, fps, crf))
    cameras = {
        "format": EPISODE_FORMAT,
        "version": EPISODE_VERSION,
        "fps": fps,
        "width": W,
        "height": H,
        "num_frames": N,
        "frames": [
            {
                "c2w": [[round(v, 8) for v in row] for row in c2w_t[i].tolist()],
                "K": [[round(v, 6) for v in row] for row in K_t[i].tolist()],
                "timestamp_s": float(ts[i]),
            }
            for i in range(N)
        ],
    }
    _replace(folder / "cameras.json", lambda tmp: tmp.write_text(json.dumps(cameras) + "\n"))
    _replace(folder / "caption.txt", lambda tmp: tmp.write_text(caption, encoding="utf-8"))
    depth_path = folder / "depth.npz"
    if depth is not None:
        _replace(depth_path, lambda tmp: np.savez_compressed(tmp, depth=d))
    elif depth_path.exists() or depth_path.is_symlink():
        depth_path.unlink()
    return folder


def _replace(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a new file of a name nobody chose next to ``path`` (with its
    suffix, which the writers go by), then rename it over ``path``."""
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(8)}.tmp{path.suffix}")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _encode_mp4(path: Path, rgb: np.ndarray, fps: int, crf: int) -> None:
    N, H, W, _ = rgb.shape
    options = {
        "crf": str(crf),
        "g": str(GOP_FRAMES),
        "keyint_min": str(GOP_FRAMES),
        "sc_threshold": "0",  # keyframes exactly every GOP_FRAMES frames
        "bf": "0",  # no B-frames: decode order == presentation order
    }
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(N):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[i]), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
