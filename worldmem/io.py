"""Video and image output (H.264 mp4 through PyAV) and the depth colouring every picture uses."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

__all__ = [
    "UNKNOWN_DEPTH_RGB",
    "depth_to_rgb",
    "inverse_depth_range",
    "write_video",
    "read_video_frames",
]

# Depth pictures: colours of inverse depth, so that near surfaces get the most colour range.
DEPTH_COLORMAP = "turbo"  # matplotlib colormap; its low end is far (blue), its high end near (red)
DEPTH_RANGE_PERCENTILES = (2, 98)  # robust range of inverse depth spread over the colormap
UNKNOWN_DEPTH_RGB = (0, 0, 0)  # depth <= 0 or not finite: black, a colour turbo never takes


def write_video(path: str | Path, frames: np.ndarray, fps: int = 8, crf: int = 18) -> Path:
    """Write ``frames`` uint8 ``(T, H, W, 3)`` to an H.264 mp4 (yuv420p); the same frames give
    the same bytes.

    Odd frame sizes are padded by one pixel (edge replicate): yuv420p needs even sizes.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames: expected uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise ValueError("frames: no frames to write")
    T, H, W, _ = frames.shape
    ph, pw = H % 2, W % 2
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = W + pw, H + ph
        stream.pix_fmt = "yuv420p"
        # mbtree off: after torch has run a matrix product in the same process, x264's
        # macroblock-tree rate control gave different bytes (and frames up to 35 levels
        # apart) for the same frames on every call; without it the output is repeatable.
        stream.options = {"crf": str(crf), "preset": "veryfast", "x264-params": "mbtree=0"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def read_video_frames(path: str | Path) -> np.ndarray:
    """Decode every frame of a video: uint8 ``(T, H, W, 3)``."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def inverse_depth_range(depth: np.ndarray) -> tuple[float, float] | None:
    """The robust (``DEPTH_RANGE_PERCENTILES``) range ``(lo, hi)`` of inverse depth over the
    known pixels (finite and > 0) of ``depth``, any shape; None when no pixel is known."""
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        return None
    lo, hi = np.percentile(1.0 / depth[valid], DEPTH_RANGE_PERCENTILES)
    return lo, hi


def depth_to_rgb(depth: np.ndarray, inv_range: tuple[float, float] | None = None) -> np.ndarray:
    """Depth ``(H, W)`` z-depth -> uint8 ``(H, W, 3)``: ``DEPTH_COLORMAP`` colours of inverse
    depth, near is red, far is blue; unknown depth (<= 0 or not finite) is
    ``UNKNOWN_DEPTH_RGB`` (black).

    ``inv_range`` ``(lo, hi)`` is the inverse depth mapped to the colormap's far and near ends
    (clipped beyond); by default ``inverse_depth_range(depth)``. Give every frame of a video
    the range of the whole video, so its colours do not flicker."""
    import matplotlib

    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected (H, W), got {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    out = np.empty((*depth.shape, 3), np.uint8)
    out[...] = UNKNOWN_DEPTH_RGB
    if inv_range is None:
        inv_range = inverse_depth_range(depth)
    if inv_range is None:
        return out
    lo, hi = inv_range
    inv = np.zeros_like(depth)
    inv[valid] = 1.0 / depth[valid]
    norm = np.clip((inv - lo) / (hi - lo + 1e-6), 0, 1)
    colours = matplotlib.colormaps[DEPTH_COLORMAP](norm)[..., :3]
    out[valid] = (colours * 255).round().astype(np.uint8)[valid]
    return out
