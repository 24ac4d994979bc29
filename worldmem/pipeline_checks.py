"""Checks of what a ``WorldPipeline`` is given (images, depth, intrinsics) and of what its
model gives back; each failure is an error naming the argument, camera or frame."""

from __future__ import annotations

import torch

from worldmem.geometry import check_K

__all__ = [
    "MAX_FOCAL_PER_PIXEL",
    "MIN_FOCAL_PER_PIXEL",
    "MAX_PRINCIPAL_OFFSET",
    "check_chunk_frames",
    "check_flag",
    "check_intrinsics",
    "check_output",
    "check_start_depth_scale",
    "check_texture_gain",
    "describe",
    "finite_float32",
]

MAX_FOCAL_PER_PIXEL = 1000.0  # focal length at most this many times the frame size (fov > 0.06 deg)
MIN_FOCAL_PER_PIXEL = 0.01  # focal length at least this many times the frame size (fov < 178.9 deg)
MAX_PRINCIPAL_OFFSET = 10.0  # the principal point lies within this many frame sizes of the frame
START_DEPTH_SCALE_RANGE = (0.01, 100.0)  # what the depth given a start image may be scaled by
TEXTURE_GAIN_RANGE = (0.0, 4.0)  # what the observed texture's band may be multiplied by


def describe(x) -> str:
    """The shape of a tensor, else the type name of ``x``, for error messages."""
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def check_chunk_frames(frames, max_frames: int) -> int | None:
    """``chunk_frames`` (target frames generated together in one chunk; None: as many as the
    model was trained with) as an int, refused unless None or an integer from 1 to
    ``max_frames`` (the most frames of one kind the model takes)."""
    if frames is None:
        return None
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= max_frames:
        raise ValueError(f"chunk_frames: expected an integer in [1, {max_frames}], got {frames!r}")
    return frames


def check_start_depth_scale(scale) -> float:
    """``start_depth_scale`` (what multiplies the depth the model gives a start image without
    depth) as a float, refused unless a number in ``START_DEPTH_SCALE_RANGE``."""
    lo, hi = START_DEPTH_SCALE_RANGE
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not lo <= scale <= hi:
        raise ValueError(f"start_depth_scale: expected a number in [{lo}, {hi}], got {scale!r}")
    return float(scale)


def check_texture_gain(gain, name: str = "texture_gain") -> float:
    """``texture_gain`` or ``wall_texture_gain`` (``name``: how strongly the observed frames'
    texture is laid on what the model invents; 0: not at all) as a float, refused unless a
    number in ``TEXTURE_GAIN_RANGE``."""
    lo, hi = TEXTURE_GAIN_RANGE
    if isinstance(gain, bool) or not isinstance(gain, int | float) or not lo <= gain <= hi:
        raise ValueError(f"{name}: expected a number in [{lo}, {hi}], got {gain!r}")
    return float(gain)


def check_flag(on, name: str) -> bool:
    """A pipeline's on/off setting ``name`` (``pattern_detail``: a floor's or ceiling's known
    pattern gives observed samples seen nearer than observed their finer detail;
    ``pattern_whole``: such a pattern is laid whole where the model invents) as a bool,
    refused unless one."""
    if not isinstance(on, bool):
        raise ValueError(f"{name}: expected true or false, got {on!r}")
    return on


def finite_float32(x: torch.Tensor, name: str, non_negative: bool = False) -> torch.Tensor:
    """``x`` as float32, refused if any value is NaN or infinite there (values beyond float32's
    range overflow on conversion) or, with ``non_negative``, below zero."""
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor, got {x.dtype}")
    if x.is_meta:
        raise ValueError(f"{name}: a tensor on the meta device has no values")
    x = x.to(torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: has NaN or infinite values (in float32)")
    if non_negative and bool((x < 0).any()):
        raise ValueError(f"{name}: has negative values")
    return x


def check_intrinsics(K: torch.Tensor, n: int, size: int, name: str = "K") -> torch.Tensor:
    """Pinhole intrinsics ``(n, 3, 3)`` for a ``size`` x ``size`` frame, finite in float32,
    with a focal length in [MIN_FOCAL_PER_PIXEL * size, MAX_FOCAL_PER_PIXEL * size] and the
    principal point near the frame -> float32 (on the device it came on)."""
    if not isinstance(K, torch.Tensor) or tuple(K.shape) != (n, 3, 3):
        raise ValueError(f"{name}: expected ({n}, 3, 3), got {describe(K)}")
    if not K.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor, got {K.dtype}")
    K = K.to(torch.float32)
    check_K(K, name)
    S = size
    f = torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)
    c = torch.stack([K[:, 0, 2], K[:, 1, 2]], -1)
    rest = torch.stack([K[:, 1, 0], K[:, 2, 0], K[:, 2, 1], K[:, 2, 2] - 1], -1)
    bad = (
        (f > MAX_FOCAL_PER_PIXEL * S).any(-1)
        | (f < MIN_FOCAL_PER_PIXEL * S).any(-1)
        | ((c - S / 2).abs() > MAX_PRINCIPAL_OFFSET * S).any(-1)
        | (K[:, 0, 1].abs() > MAX_FOCAL_PER_PIXEL * S)
        | (rest.abs() > 1e-6).any(-1)
    )
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"{name}: intrinsics {i} are not a pinhole camera for a {S}x{S} frame "
            f"(focal in [{MIN_FOCAL_PER_PIXEL * S:g}, {MAX_FOCAL_PER_PIXEL * S:g}] px, "
            "principal point within "
            f"{MAX_PRINCIPAL_OFFSET:g} frame sizes, last row 0 0 1): {K[i].tolist()}"
        )
    return K


def check_output(rgb: torch.Tensor, depth: torch.Tensor, first: int, where: str) -> None:
    """The model's frames rgb ``(T, 3, H, W)`` and depth ``(T, 1, H, W)``, numbered from
    ``first``, are finite; else a ``RuntimeError`` beginning with ``where`` that names the
    first bad frame."""
    bad_rgb = ~torch.isfinite(rgb).flatten(1).all(1)  # (T,)
    bad_depth = ~torch.isfinite(depth).flatten(1).all(1)  # (T,)
    bad = bad_rgb | bad_depth
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        what = " and ".join(n for n, b in (("rgb", bad_rgb[i]), ("depth", bad_depth[i])) if b)
        raise RuntimeError(
            f"{where}: the model gave NaN or infinite {what} in frame {first + i} "
            f"({int(bad.sum())} of {len(bad)} frames bad); nothing was put into the memories"
        )
