"""Camera geometry. The one convention used everywhere in worldmem:

* OpenCV camera frame: x right, y down, z forward (the camera looks along +z).
* ``c2w`` is a 4x4 camera-to-world rigid transform; ``w2c`` its inverse.
* ``K`` is a 3x3 pixel intrinsics matrix; pixel (u, v) has its centre at (u + 0.5, v + 0.5),
  so the image spans [0, W] x [0, H] in continuous pixel coordinates.
* Depth is z-depth (distance along the optical axis) in world units, not ray length.

All functions accept arbitrary leading batch dimensions ``(...)`` and are differentiable.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "check_c2w",
    "check_K",
    "se3_inverse",
    "c2w_to_w2c",
    "w2c_to_c2w",
    "DEFAULT_FOV_DEG",
    "intrinsics_from_fov",
    "fov_from_intrinsics",
    "scale_intrinsics",
    "pixel_grid",
    "unproject_depth",
    "project_points",
    "transform_points",
    "relative_poses",
    "look_at",
    "rotation_x",
    "rotation_y",
    "rotation_z",
]


def _expect(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def check_c2w(c2w: Tensor, name: str = "c2w", atol: float = 1e-3) -> None:
    """Validate a batch of rigid 4x4 poses ``(..., 4, 4)``.

    Raises ``ValueError`` naming the first bad index for non-finite values, a wrong last row,
    or a rotation block that is not orthonormal with determinant +1.
    """
    _expect(isinstance(c2w, Tensor), f"{name}: expected a torch.Tensor, got {type(c2w).__name__}")
    _expect(
        c2w.ndim >= 2 and tuple(c2w.shape[-2:]) == (4, 4),
        f"{name}: expected shape (..., 4, 4), got {tuple(c2w.shape)}",
    )
    _expect(c2w.is_floating_point(), f"{name}: expected a float tensor, got {c2w.dtype}")
    a = _host_float64(c2w, 4)
    finite = np.isfinite(a).reshape(len(a), -1).all(1)
    if not finite.all():
        raise ValueError(f"{name}: pose {int(np.argmin(finite))} has NaN or infinite values")
    R = a[:, :3, :3]
    orth_err = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).reshape(len(a), -1).max(1, initial=0)
    det = np.linalg.det(R)
    last = np.abs(a[:, 3] - (0.0, 0.0, 0.0, 1.0)).max(1, initial=0)
    bad = (orth_err > atol) | (np.abs(det - 1) > atol) | (last > atol)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{name}: pose {i} is not a rigid transform (|R^T R - I| = {orth_err[i]:.2e}, "
            f"det R = {det[i]:.4f}, last row = {a[i, 3].tolist()})"
        )


def _host_float64(x: Tensor, n: int) -> np.ndarray:
    """A stack of small ``(..., n, n)`` matrices as a float64 numpy array ``(B, n, n)``: the
    checks test a handful of values, cheaper in numpy than in a few dozen torch calls."""
    return x.detach().reshape(-1, n, n).to("cpu", torch.float64).numpy()


def check_K(K: Tensor, name: str = "K", pinhole: bool = False) -> None:
    """Validate pixel intrinsics ``(..., 3, 3)``: finite, positive focal lengths, and with
    ``pinhole`` a last row of [0, 0, 1] (what projecting with them assumes)."""
    _expect(isinstance(K, Tensor), f"{name}: expected a torch.Tensor, got {type(K).__name__}")
    _expect(
        K.ndim >= 2 and tuple(K.shape[-2:]) == (3, 3),
        f"{name}: expected shape (..., 3, 3), got {tuple(K.shape)}",
    )
    _expect(K.is_floating_point(), f"{name}: expected a float tensor, got {K.dtype}")
    a = _host_float64(K, 3)
    _expect(bool(np.isfinite(a).all()), f"{name}: has NaN or infinite values")
    f = np.stack([a[:, 0, 0], a[:, 1, 1]], -1)
    if not (f > 0).all():
        i = int(np.argmax((f <= 0).any(-1)))
        raise ValueError(f"{name}: intrinsics {i} has non-positive focal length {f[i].tolist()}")
    if pinhole:
        bad = np.abs(a[:, 2] - (0.0, 0.0, 1.0)).max(-1, initial=0.0) > 1e-6
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"{name}: intrinsics {i} has last row {a[i, 2].tolist()}, wanted [0, 0, 1]"
            )


def se3_inverse(T: Tensor) -> Tensor:
    """Closed-form inverse of rigid transforms ``(..., 4, 4) -> (..., 4, 4)``: [R^T | -R^T t]."""
    _expect(T.shape[-2:] == (4, 4), f"se3_inverse: expected (..., 4, 4), got {tuple(T.shape)}")
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    out = torch.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1
    return out


def c2w_to_w2c(c2w: Tensor) -> Tensor:
    """``(..., 4, 4)`` camera-to-world -> world-to-camera."""
    return se3_inverse(c2w)


def w2c_to_c2w(w2c: Tensor) -> Tensor:
    """``(..., 4, 4)`` world-to-camera -> camera-to-world."""
    return se3_inverse(w2c)


DEFAULT_FOV_DEG = 75.0  # horizontal field of view of the synthetic worlds and ready-made paths


def intrinsics_from_fov(
    fov_x_deg: float | Tensor,
    width: int,
    height: int,
    fov_y_deg: float | Tensor | None = None,
) -> Tensor:
    """Pinhole intrinsics ``(..., 3, 3)`` from a horizontal field of view in degrees.

    Square pixels unless ``fov_y_deg`` is given. Principal point at the image centre.
    """
    fx_fov = torch.as_tensor(fov_x_deg, dtype=torch.float32)
    _expect(
        bool(((fx_fov > 0) & (fx_fov < 180)).all()),
        f"fov_x_deg must be in (0, 180), got {fov_x_deg}",
    )
    _expect(width > 0 and height > 0, f"image size must be positive, got {width}x{height}")
    fx = 0.5 * width / torch.tan(torch.deg2rad(fx_fov) / 2)
    if fov_y_deg is None:
        fy = fx
    else:
        fy = 0.5 * height / torch.tan(torch.deg2rad(torch.as_tensor(fov_y_deg).float()) / 2)
    K = torch.zeros(*fx.shape, 3, 3)
    K[..., 0, 0] = fx
    K[..., 1, 1] = fy
    K[..., 0, 2] = width / 2
    K[..., 1, 2] = height / 2
    K[..., 2, 2] = 1
    return K


def fov_from_intrinsics(K: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """``K (..., 3, 3)`` -> (fov_x_deg, fov_y_deg), each ``(...)``; assumes a centred principal
    point (the field of view spanned by the image width and height)."""
    fov_x = 2 * torch.rad2deg(torch.atan(0.5 * width / K[..., 0, 0]))
    fov_y = 2 * torch.rad2deg(torch.atan(0.5 * height / K[..., 1, 1]))
    return fov_x, fov_y


def scale_intrinsics(K: Tensor, sx: float, sy: float | None = None) -> Tensor:
    """Intrinsics for an image resized by factors (sx, sy): ``(..., 3, 3)``.

    With pixel centres at +0.5 a resize maps continuous coordinates by a pure scale, so
    fx, cx scale by sx and fy, cy by sy.
    """
    sy = sx if sy is None else sy
    S = torch.diag(torch.tensor([sx, sy, 1.0], dtype=K.dtype, device=K.device))
    return S @ K


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> Tensor:
    """Pixel centres ``(H, W, 2)`` as (u, v) = (x + 0.5, y + 0.5)."""
    v, u = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype) + 0.5,
        torch.arange(width, device=device, dtype=dtype) + 0.5,
        indexing="ij",
    )
    return torch.stack([u, v], -1)


def transform_points(T: Tensor, points: Tensor) -> Tensor:
    """Apply ``T (..., 4, 4)`` to ``points (..., N, 3)`` -> ``(..., N, 3)``."""
    return points @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]


def unproject_depth(depth: Tensor, c2w: Tensor, K: Tensor) -> Tensor:
    """Back-project z-depth maps to world points.

    depth ``(..., H, W)``, c2w ``(..., 4, 4)``, K ``(..., 3, 3)`` -> points ``(..., H, W, 3)``.
    """
    H, W = depth.shape[-2:]
    uv = pixel_grid(H, W, device=depth.device, dtype=depth.dtype)  # (H, W, 2)
    fx, fy = K[..., 0, 0, None, None], K[..., 1, 1, None, None]
    cx, cy = K[..., 0, 2, None, None], K[..., 1, 2, None, None]
    x = (uv[..., 0] - cx) / fx * depth
    y = (uv[..., 1] - cy) / fy * depth
    R = c2w[..., None, None, :3, :3]
    t = c2w[..., None, None, :3, 3]
    # R @ (x, y, depth) + t written out row by row and summed in the order of a 3x3 matmul
    # (the same numbers; a batched matmul of one 3-vector per pixel costs twice as much)
    rows = [
        R[..., i, 0] * x + R[..., i, 1] * y + R[..., i, 2] * depth + t[..., i] for i in (0, 1, 2)
    ]
    return torch.stack(rows, -1)  # (..., H, W, 3)


def project_points(points: Tensor, c2w: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """Project world points into a camera.

    points ``(..., N, 3)``, c2w ``(..., 4, 4)``, K ``(..., 3, 3)`` ->
    (uv ``(..., N, 2)`` continuous pixel coordinates, depth ``(..., N)`` z in the camera).
    Points behind the camera get depth <= 0; their uv is computed with a clamped depth and is
    meaningless: callers mask with ``depth > near``.
    """
    cam = transform_points(se3_inverse(c2w), points)
    z = cam[..., 2]
    zs = z.clamp(min=1e-6)
    u = K[..., 0, 0, None] * cam[..., 0] / zs + K[..., 0, 2, None]
    v = K[..., 1, 1, None] * cam[..., 1] / zs + K[..., 1, 2, None]
    return torch.stack([u, v], -1), z


def relative_poses(c2w: Tensor, reference: Tensor) -> Tensor:
    """Poses expressed in the frame of a reference camera: ``ref^-1 @ c2w``.

    c2w ``(..., T, 4, 4)``, reference ``(..., 4, 4)`` -> ``(..., T, 4, 4)``; the reference
    itself maps to the identity.
    """
    return se3_inverse(reference)[..., None, :, :] @ c2w


def rotation_x(angle_rad: Tensor | float) -> Tensor:
    """Rotation about +x ``(..., 3, 3)``."""
    a = torch.as_tensor(angle_rad, dtype=torch.float32)
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*a.shape, 3, 3)


def rotation_y(angle_rad: Tensor | float) -> Tensor:
    """Rotation about +y ``(..., 3, 3)``."""
    a = torch.as_tensor(angle_rad, dtype=torch.float32)
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*a.shape, 3, 3)


def rotation_z(angle_rad: Tensor | float) -> Tensor:
    """Rotation about +z ``(..., 3, 3)``."""
    a = torch.as_tensor(angle_rad, dtype=torch.float32)
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*a.shape, 3, 3)


def look_at(eye: Tensor, target: Tensor, up: Tensor | None = None) -> Tensor:
    """OpenCV c2w ``(..., 4, 4)`` for a camera at ``eye (..., 3)`` looking at ``target (..., 3)``.

    ``up`` is the world up direction (default -y, since OpenCV's y points down and the world
    in worldmem is y-down as well: the ground is at larger y).
    """
    eye = torch.as_tensor(eye, dtype=torch.float32)
    target = torch.as_tensor(target, dtype=torch.float32)
    if up is None:
        up = torch.tensor([0.0, -1.0, 0.0]).expand_as(eye)
    z = torch.nn.functional.normalize(target - eye, dim=-1)
    # OpenCV frame is right-handed with x = y cross z; y points down (along -up)
    x = torch.nn.functional.normalize(torch.cross(-up, z, dim=-1), dim=-1)
    y = torch.cross(z, x, dim=-1)
    c2w = torch.zeros(*eye.shape[:-1], 4, 4)
    c2w[..., :3, 0] = x
    c2w[..., :3, 1] = y
    c2w[..., :3, 2] = z
    c2w[..., :3, 3] = eye
    c2w[..., 3, 3] = 1
    return c2w


DEG = math.pi / 180
