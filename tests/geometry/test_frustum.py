"""Frustum overlap: identical, opposite, turning-away and occluded cameras."""

import math

import pytest
import torch

from worldmem.geometry import (
    frustum_overlap,
    intrinsics_from_fov,
    pose_to_c2w,
    sample_frustum_points,
    visible_fraction,
)

H, W = 24, 32


def K_of(n: int) -> torch.Tensor:
    return intrinsics_from_fov(70.0, W, H).expand(n, 3, 3)  # 70 degrees wide


def test_identical_cameras_overlap_fully():
    c2w = pose_to_c2w(torch.tensor([[0.0, 0, 0], [1, -1, 2]]), [0.0, 130.0], [0.0, -20.0])
    ov = frustum_overlap(c2w, K_of(2), c2w, K_of(2), H, W, num_samples=400)
    assert ov.shape == (2, 2)
    torch.testing.assert_close(ov.diagonal(), torch.ones(2))


def test_opposite_facing_cameras_do_not_overlap():
    # same centre looking +z and -z; and back to back, one metre apart
    target = pose_to_c2w([0.0, 0, 0], 0.0, 0.0)[None]
    cands = pose_to_c2w(torch.tensor([[0.0, 0, 0], [0, 0, -1]]), [180.0, 180.0], [0.0, 0.0])
    ov = frustum_overlap(target, K_of(1), cands, K_of(2), H, W, num_samples=1000)
    assert float(ov.max()) < 0.01


def test_overlap_never_grows_as_a_camera_turns_away():
    target = pose_to_c2w([0.0, 0, 0], 0.0, 0.0)[None]
    yaws = torch.arange(0.0, 190.0, 10.0)  # 0, 10, ..., 180 degrees to the right
    cands = pose_to_c2w(torch.zeros(len(yaws), 3), yaws, torch.zeros(len(yaws)))
    ov = frustum_overlap(target, K_of(1), cands, K_of(len(yaws)), H, W, num_samples=2000, seed=3)[0]
    assert float(ov[0]) == pytest.approx(1.0)
    assert bool((ov[1:] <= ov[:-1]).all()), ov.tolist()
    assert float(ov[1]) < 0.99 and float(ov[-1]) == 0.0  # it does drop, down to nothing
    # turned 30 degrees: the shared azimuths are [-5, 35] degrees of the target's [-35, 35];
    # pixels are uniform in tan(azimuth), so about (tan 35 + tan 5) / (2 tan 35) is shared
    # (a little less: the vertical field of view cuts the oblique part)
    t35, t5 = math.tan(math.radians(35)), math.tan(math.radians(5))
    assert float(ov[3]) == pytest.approx((t35 + t5) / (2 * t35), abs=0.05)


def test_a_wall_between_the_cameras_hides_the_target_surface():
    # target at the origin looking +z at a surface 4 m away; the candidate stands at z = 8
    # looking back (-z). With no depth it sees the surface; with its own depth map showing a
    # wall 2 m in front of it (z = 6) the surface is hidden; with its depth map showing the
    # surface itself (4 m away) it is seen again.
    target = pose_to_c2w([0.0, 0, 0], 0.0, 0.0)[None]
    cand = pose_to_c2w([0.0, 0, 8], 180.0, 0.0)[None]
    t_depth = torch.full((1, H, W), 4.0)
    kw = dict(num_samples=500, target_depth=t_depth)
    free = frustum_overlap(target, K_of(1), cand, K_of(1), H, W, **kw)
    wall = frustum_overlap(
        target, K_of(1), cand, K_of(1), H, W, cand_depth=torch.full((1, H, W), 2.0), **kw
    )
    same = frustum_overlap(
        target, K_of(1), cand, K_of(1), H, W, cand_depth=torch.full((1, H, W), 4.0), **kw
    )
    assert float(free) > 0.95
    assert float(wall) < 0.01
    assert float(same) > 0.95


def test_depth_aware_samples_lie_on_the_surface():
    c2w = pose_to_c2w([1.0, 0, 0], 90.0, 0.0)[None]  # looking along +x
    pts = sample_frustum_points(c2w, K_of(1), H, W, 300, depth=torch.full((1, H, W), 3.0))
    torch.testing.assert_close(pts[0, :, 0], torch.full((300,), 4.0))


def test_points_behind_or_outside_are_not_visible():
    c2w = pose_to_c2w([0.0, 0, 0], 0.0, 0.0)[None]
    pts = torch.tensor([[[0.0, 0, 2], [0, 0, -2], [5, 0, 1], [0, 0, 0.01]]])
    vis = visible_fraction(pts, c2w, K_of(1), H, W, near=0.05)
    assert vis.tolist() == [[[True, False, False, False]]]


def test_overlap_is_deterministic_for_a_seed():
    target = pose_to_c2w([0.0, 0, 0], 0.0, 0.0)[None]
    cand = pose_to_c2w([0.3, 0, 0.5], 35.0, 5.0)[None]
    a = frustum_overlap(target, K_of(1), cand, K_of(1), H, W, num_samples=300, seed=7)
    b = frustum_overlap(target, K_of(1), cand, K_of(1), H, W, num_samples=300, seed=7)
    c = frustum_overlap(target, K_of(1), cand, K_of(1), H, W, num_samples=300, seed=8)
    assert torch.equal(a, b)
    assert 0.05 < float(a) < 0.95
    assert not torch.equal(a, c)
