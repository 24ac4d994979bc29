"""Camera geometry (OpenCV convention; see ``camera.py``), rays, frusta, actions, trajectories."""

from worldmem.geometry.camera import (
    c2w_to_w2c,
    check_c2w,
    check_K,
    fov_from_intrinsics,
    intrinsics_from_fov,
    look_at,
    pixel_grid,
    project_points,
    relative_poses,
    rotation_x,
    rotation_y,
    rotation_z,
    scale_intrinsics,
    se3_inverse,
    transform_points,
    unproject_depth,
    w2c_to_c2w,
)
from worldmem.geometry.frustum import frustum_overlap, sample_frustum_points, visible_fraction
from worldmem.geometry.rays import plucker_patches, plucker_rays, ray_directions

__all__ = [
    "c2w_to_w2c",
    "check_c2w",
    "check_K",
    "fov_from_intrinsics",
    "frustum_overlap",
    "intrinsics_from_fov",
    "look_at",
    "pixel_grid",
    "plucker_patches",
    "plucker_rays",
    "project_points",
    "ray_directions",
    "relative_poses",
    "rotation_x",
    "rotation_y",
    "rotation_z",
    "sample_frustum_points",
    "scale_intrinsics",
    "se3_inverse",
    "transform_points",
    "unproject_depth",
    "visible_fraction",
    "w2c_to_c2w",
]
