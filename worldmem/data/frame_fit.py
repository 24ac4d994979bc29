"""Fitting frames of any size to the episode format, for the importers in ``datasets/``:
a frame size from the command line, a centre crop and resize that keeps the intrinsics
right, and poses read from text snapped to exactly rigid ones."""

from __future__ import annotations

import numpy as np

__all__ = ["fit_frame", "nearest_rigid", "parse_size"]


MAX_FRAME_SIZE = 8192  # pixels a side: one 8192 x 8192 RGB frame is 200 MB


def parse_size(text: str) -> tuple[int, int]:
    """Frame size from the command line: ``"128"`` -> (128, 128), ``"160x96"`` -> (160, 96)
    as (width, height). Both must be even, positive and at most ``MAX_FRAME_SIZE``."""
    parts = str(text).lower().split("x")
    try:
        w, h = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except (ValueError, IndexError):
        raise ValueError(
            f"size: expected 'S' or 'WxH' (e.g. 128 or 160x96), got {text!r}"
        ) from None
    if len(parts) > 2 or w <= 0 or h <= 0 or w % 2 or h % 2:
        raise ValueError(f"size: expected positive even numbers ('S' or 'WxH'), got {text!r}")
    if max(w, h) > MAX_FRAME_SIZE:
        raise ValueError(f"size: at most {MAX_FRAME_SIZE} pixels a side, got {text!r}")
    return w, h


def fit_frame(
    image: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int] | None,
    depth: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Centre-crop one frame to the aspect of ``size`` = (width, height), resize it, and
    adjust its intrinsics to match.

    image uint8 ``(H, W, 3)``, K ``(3, 3)`` pixel intrinsics, depth ``(H, W)`` or None ->
    (image ``(h, w, 3)``, K ``(3, 3)`` float64, depth ``(h, w)`` float32 or None). With
    ``size=None`` the frame keeps its size, less a last row / column when odd (yuv420p needs
    even sizes; cropping at the far edge leaves K unchanged). Depth is resized by nearest
    neighbour so no depth is invented across edges.
    """
    from PIL import Image

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
    H, W = image.shape[:2]
    if depth is not None and depth.shape != (H, W):
        raise ValueError(f"depth: expected shape {(H, W)}, got {depth.shape}")
    K = np.array(K, dtype=np.float64)
    if size is None:
        h, w = H - H % 2, W - W % 2
        d = None if depth is None else np.asarray(depth[:h, :w], np.float32)
        return np.ascontiguousarray(image[:h, :w]), K, d
    tw, th = size
    # centre crop to the target aspect
    if W * th > H * tw:
        cw, ch = round(H * tw / th), H
    else:
        cw, ch = W, round(W * th / tw)
    x0, y0 = (W - cw) // 2, (H - ch) // 2
    crop = image[y0 : y0 + ch, x0 : x0 + cw]
    K[0, 2] -= x0
    K[1, 2] -= y0
    sx, sy = tw / cw, th / ch
    K[0] *= sx  # fx, cx (pixel centres at +0.5 make a resize a pure scale)
    K[1] *= sy  # fy, cy
    out = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((tw, th), Image.BICUBIC))
    d = None
    if depth is not None:
        dc = np.ascontiguousarray(depth[y0 : y0 + ch, x0 : x0 + cw], dtype=np.float32)
        d = np.asarray(Image.fromarray(dc).resize((tw, th), Image.NEAREST))
    return out, K, d


def nearest_rigid(c2w: np.ndarray, name: str = "c2w", tol: float = 1e-2) -> np.ndarray:
    """Snap nearly rigid poses ``(N, 4, 4)`` to exactly rigid ones (rotation via SVD).

    Poses read from text files carry rounding; a rotation further than ``tol`` from
    orthonormal (or with a reflection, or non-finite values) is a ``ValueError`` naming the
    pose index, since no amount of rounding explains it.
    """
    c2w = np.array(c2w, dtype=np.float64)
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"{name}: expected shape (N, 4, 4), got {c2w.shape}")
    bad = ~np.isfinite(c2w).reshape(len(c2w), -1).all(1)
    if bad.any():
        raise ValueError(f"{name}: pose {int(np.argmax(bad))} has NaN or infinite values")
    R = c2w[:, :3, :3]
    U, _, Vt = np.linalg.svd(R)
    Rn = U @ Vt
    err = np.abs(R - Rn).reshape(len(R), -1).max(1)
    det = np.linalg.det(Rn)
    bad = (err > tol) | (det < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{name}: pose {i} is not a rotation plus translation (distance to the nearest "
            f"rotation {err[i]:.3g}, det {np.linalg.det(R[i]):.3g})"
        )
    out = np.zeros_like(c2w)
    out[:, :3, :3] = Rn
    out[:, :3, 3] = c2w[:, :3, 3]
    out[:, 3, 3] = 1
    return out
