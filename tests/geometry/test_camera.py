"""Camera geometry against analytic truth and against kornia's camera functions."""

import pytest
import torch
from einops import rearrange

from worldmem.geometry import (
    check_c2w,
    check_K,
    fov_from_intrinsics,
    intrinsics_from_fov,
    look_at,
    pixel_grid,
    plucker_patches,
    plucker_rays,
    project_points,
    ray_directions,
    relative_poses,
    scale_intrinsics,
    se3_inverse,
    unproject_depth,
)


def random_c2w(shape, generator, dtype=torch.float64) -> torch.Tensor:
    """Random rigid poses ``(*shape, 4, 4)``: rotation from a QR decomposition (det +1)."""
    A = torch.randn(*shape, 3, 3, generator=generator, dtype=dtype)
    Q, R = torch.linalg.qr(A)
    Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))[..., None, :]
    Q = Q * torch.sign(torch.linalg.det(Q))[..., None, None]  # a proper rotation
    c2w = torch.eye(4, dtype=dtype).repeat(*shape, 1, 1)
    c2w[..., :3, :3] = Q
    c2w[..., :3, 3] = torch.randn(*shape, 3, generator=generator, dtype=dtype) * 3
    return c2w


def random_K(n, width, height, generator, dtype=torch.float64) -> torch.Tensor:
    """Random pinhole intrinsics ``(n, 3, 3)`` with the principal point near the centre."""
    r = torch.rand(n, 4, generator=generator, dtype=dtype)
    K = torch.zeros(n, 3, 3, dtype=dtype)
    K[:, 0, 0] = width * (0.6 + r[:, 0])
    K[:, 1, 1] = height * (0.6 + r[:, 1])
    K[:, 0, 2] = width * (0.4 + 0.2 * r[:, 2])
    K[:, 1, 2] = height * (0.4 + 0.2 * r[:, 3])
    K[:, 2, 2] = 1
    return K


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_unproject_then_project_returns_pixel_centres_and_depth(gen):
    B, H, W = 3, 12, 16
    c2w = random_c2w((B,), gen)
    K = random_K(B, W, H, gen)
    depth = 0.5 + 5 * torch.rand(B, H, W, generator=gen, dtype=torch.float64)
    pts = unproject_depth(depth, c2w, K)  # (B, H, W, 3)
    uv, z = project_points(pts.reshape(B, -1, 3), c2w, K)
    expected = pixel_grid(H, W, dtype=torch.float64).reshape(1, -1, 2).expand(B, -1, -1)
    torch.testing.assert_close(uv, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(z, depth.reshape(B, -1), atol=1e-9, rtol=1e-9)


def test_unproject_plane_at_known_depth_is_analytic():
    # camera translated to (1, -2, 0.5), axes aligned with the world; the plane z = 4.5
    # is 4 m in front of it, so pixel (u, v) lands at x = 1 + (u - cx) / fx * 4
    H, W, fx, fy, cx, cy = 6, 8, 10.0, 12.0, 4.0, 3.0
    K = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 3] = torch.tensor([1.0, -2.0, 0.5])
    pts = unproject_depth(torch.full((H, W), 4.0, dtype=torch.float64), c2w, K)
    for row, col in [(0, 0), (2, 5), (5, 7)]:
        u, v = col + 0.5, row + 0.5  # pixel centres at +0.5
        want = torch.tensor([1 + (u - cx) / fx * 4, -2 + (v - cy) / fy * 4, 4.5])
        torch.testing.assert_close(pts[row, col], want.double())


def test_camera_turned_90_degrees_about_y_maps_known_points_to_known_pixels():
    # looking along world +x; the camera's right is world -z, its down world +y
    c2w = torch.tensor(
        [[0.0, 0, 1, 0], [0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1]], dtype=torch.float64
    )
    K = torch.tensor([[50.0, 0, 32], [0, 40, 24], [0, 0, 1]], dtype=torch.float64)
    pts = torch.tensor([[5.0, 0, 0], [5, 0, 1], [5, 1, 0], [-5, 0, 0]], dtype=torch.float64)
    uv, z = project_points(pts, c2w, K)
    torch.testing.assert_close(
        uv[:3], torch.tensor([[32, 24], [32 - 10, 24], [32, 24 + 8.0]]).double()
    )
    torch.testing.assert_close(z, torch.tensor([5.0, 5, 5, -5]).double())  # last one is behind


def test_se3_inverse_matches_linalg_inv_on_batched_poses(gen):
    c2w = random_c2w((3, 5), gen)
    torch.testing.assert_close(se3_inverse(c2w), torch.linalg.inv(c2w), atol=1e-10, rtol=0)


def test_intrinsics_fov_round_trip_and_90_degree_value():
    K = intrinsics_from_fov(torch.tensor([30.0, 75.0, 120.0]), 64, 48)
    fx, fy = fov_from_intrinsics(K, 64, 48)
    torch.testing.assert_close(fx, torch.tensor([30.0, 75.0, 120.0]))
    # square pixels: tan(fov_y / 2) = (H / W) tan(fov_x / 2)
    want_fy = 2 * torch.rad2deg(torch.atan(0.75 * torch.tan(torch.deg2rad(fx) / 2)))
    torch.testing.assert_close(fy, want_fy)
    K90 = intrinsics_from_fov(90.0, 64, 48)
    torch.testing.assert_close(K90[0, 0], torch.tensor(32.0))
    torch.testing.assert_close(K90[:2, 2], torch.tensor([32.0, 24.0]))
    with pytest.raises(ValueError, match="fov_x_deg"):
        intrinsics_from_fov(180.0, 64, 48)


@pytest.mark.parametrize("sx,sy", [(2.0, 2.0), (0.5, 0.25), (1.5, 3.0)])
def test_scale_intrinsics_projection_scales_with_the_image(gen, sx, sy):
    c2w = random_c2w((1,), gen)[0]
    K = random_K(1, 32, 24, gen)[0]
    pts = unproject_depth(1 + torch.rand(4, 5, generator=gen, dtype=torch.float64), c2w, K)
    uv, _ = project_points(pts.reshape(-1, 3), c2w, K)
    uv2, _ = project_points(pts.reshape(-1, 3), c2w, scale_intrinsics(K, sx, sy))
    torch.testing.assert_close(uv2, uv * torch.tensor([sx, sy]).double())
    # a 2x upsample: the low-res pixel centre (0.5, 0.5) is the corner shared by the
    # high-res pixels 0 and 1, i.e. continuous coordinate 1.0
    if (sx, sy) == (2.0, 2.0):
        assert torch.allclose(uv2[0], torch.tensor([1.0, 1.0]).double(), atol=1e-6)


def test_plucker_rays_unit_direction_moment_orthogonal_and_through_the_pixel_point(gen):
    B, H, W = 2, 6, 10
    c2w = random_c2w((B,), gen)
    K = random_K(B, W, H, gen)
    rays = plucker_rays(c2w, K, H, W)  # (B, 6, H, W)
    assert rays.shape == (B, 6, H, W)
    d, m = rays[:, :3], rays[:, 3:]
    torch.testing.assert_close(d.norm(dim=1), torch.ones(B, H, W, dtype=torch.float64))
    torch.testing.assert_close((d * m).sum(1), torch.zeros(B, H, W, dtype=torch.float64))
    # the moment equals X x d for ANY point X on the ray, e.g. the pixel's point at depth 3.7
    X = unproject_depth(torch.full((B, H, W), 3.7, dtype=torch.float64), c2w, K)
    Xm = torch.cross(X, d.movedim(1, -1), dim=-1).movedim(-1, 1)
    torch.testing.assert_close(m, Xm)


def test_plucker_moment_invariant_to_moving_the_origin_along_the_ray(gen):
    H, W = 6, 8
    c2w = random_c2w((1,), gen)[0]
    K = random_K(1, W, H, gen)[0]
    _, dirs = ray_directions(c2w, K, H, W)
    row, col = 2, 5
    moved = c2w.clone()
    moved[:3, 3] += 2.5 * dirs[row, col]  # same orientation, centre slid along that pixel's ray
    a, b = plucker_rays(c2w, K, H, W), plucker_rays(moved, K, H, W)
    torch.testing.assert_close(a[:, row, col], b[:, row, col])
    assert not torch.allclose(a[3:, 0, 0], b[3:, 0, 0])  # other rays do change


def test_plucker_patches_is_a_space_to_depth_of_the_pixel_map(gen):
    H, W, p = 8, 12, 4
    c2w = random_c2w((2, 3), gen)
    K = random_K(6, W, H, gen).reshape(2, 3, 3, 3)
    patches = plucker_patches(c2w, K, H, W, p)
    rays = plucker_rays(c2w, K, H, W)
    want = rearrange(rays, "a b c (h p1) (w p2) -> a b (c p1 p2) h w", p1=p, p2=p)
    torch.testing.assert_close(patches, want)
    # explicitly: channel (c, i, j) of patch (Y, X) is pixel (Y p + i, X p + j) of channel c
    c, i, j, Y, X = 4, 1, 3, 1, 2
    assert patches[1, 2, c * p * p + i * p + j, Y, X] == rays[1, 2, c, Y * p + i, X * p + j]
    with pytest.raises(ValueError, match="not divisible"):
        plucker_patches(c2w, K, 10, W, p)


def test_relative_poses_reference_is_identity(gen):
    c2w = random_c2w((2, 4), gen)
    rel = relative_poses(c2w, c2w[:, 1])
    torch.testing.assert_close(rel[:, 1], torch.eye(4, dtype=torch.float64).expand(2, 4, 4))
    torch.testing.assert_close(rel, torch.linalg.inv(c2w[:, 1:2]) @ c2w)


def test_look_at_puts_the_target_at_the_centre_with_world_up_at_the_top(gen):
    eye = torch.randn(5, 3, generator=gen) * 3
    target = torch.randn(5, 3, generator=gen)
    c2w = look_at(eye, target)
    check_c2w(c2w)
    K = intrinsics_from_fov(60.0, 64, 48)
    uv, z = project_points(target[:, None], c2w, K)
    torch.testing.assert_close(uv[:, 0], torch.tensor([32.0, 24.0]).expand(5, 2), atol=1e-4, rtol=0)
    assert bool((z > 0).all())
    # a point above the target (world up is -y) appears above the image centre (smaller v)
    uv_up, _ = project_points((target - torch.tensor([0, 0.5, 0]))[:, None], c2w, K)
    assert bool((uv_up[:, 0, 1] < 24).all())
    # looking along +z from the origin is the identity camera
    torch.testing.assert_close(look_at(torch.zeros(3), torch.tensor([0, 0, 3.0])), torch.eye(4))


# ---------------------------------------------------------------------------------------------
# Agreement with kornia. kornia puts the centre of pixel (0, 0) at coordinate (0, 0) (integer
# pixel centres, cx = (W - 1) / 2 for a centred camera); worldmem puts it at (0.5, 0.5). The
# same physical camera therefore has kornia principal point = ours - 0.5, and every kornia pixel
# coordinate is ours - 0.5. We shift K by -0.5 for kornia and compare uv - 0.5, explicitly.


def kornia_K(K: torch.Tensor) -> torch.Tensor:
    Kk = K.clone()
    Kk[..., 0, 2] -= 0.5
    Kk[..., 1, 2] -= 0.5
    return Kk


def test_project_matches_kornia_pinhole_camera(gen):
    kornia_camera = pytest.importorskip("kornia.geometry.camera")
    B, N, H, W = 4, 50, 24, 32
    c2w = random_c2w((B,), gen)
    K = random_K(B, W, H, gen)
    cam_pts = torch.randn(B, N, 3, generator=gen, dtype=torch.float64)
    cam_pts[..., 2] = cam_pts[..., 2].abs() + 0.5  # in front of each camera
    world = cam_pts @ c2w[:, :3, :3].transpose(-1, -2) + c2w[:, None, :3, 3]
    uv, z = project_points(world, c2w, K)

    intr = torch.eye(4, dtype=torch.float64).repeat(B, 1, 1)
    intr[:, :3, :3] = kornia_K(K)
    w2c = torch.linalg.inv(c2w)  # kornia's extrinsics are world-to-camera
    hw = (
        torch.full((B,), float(H), dtype=torch.float64),
        torch.full((B,), float(W), dtype=torch.float64),
    )
    pinhole = kornia_camera.PinholeCamera(intr, w2c, *hw)
    uv_k = pinhole.project(world)  # (B, N, 2)
    torch.testing.assert_close(uv - 0.5, uv_k, atol=1e-8, rtol=1e-8)
    # the functional API works in the camera frame
    uv_f = kornia_camera.project_points(cam_pts, kornia_K(K)[:, None])
    torch.testing.assert_close(uv - 0.5, uv_f, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(z, cam_pts[..., 2])
    # and back: kornia unprojects our pixels (shifted) at our depths to the same world points
    back = pinhole.unproject(uv - 0.5, z[..., None])
    torch.testing.assert_close(back, world, atol=1e-8, rtol=1e-8)
    back_cam = kornia_camera.unproject_points(uv - 0.5, z[..., None], kornia_K(K)[:, None])
    torch.testing.assert_close(back_cam, cam_pts, atol=1e-8, rtol=1e-8)


def test_unproject_depth_matches_kornia_depth_to_3d(gen):
    kornia_depth = pytest.importorskip("kornia.geometry.depth")
    B, H, W = 3, 10, 14
    c2w = random_c2w((B,), gen)
    K = random_K(B, W, H, gen)
    depth = 0.5 + 4 * torch.rand(B, H, W, generator=gen, dtype=torch.float64)
    cam = kornia_depth.depth_to_3d_v2(depth, kornia_K(K))  # (B, H, W, 3) camera frame
    want = cam @ c2w[:, None, :3, :3].transpose(-1, -2) + c2w[:, None, None, :3, 3]
    torch.testing.assert_close(unproject_depth(depth, c2w, K), want, atol=1e-9, rtol=1e-9)


def test_ray_directions_match_kornia_unit_rays(gen):
    kornia_depth = pytest.importorskip("kornia.geometry.depth")
    B, H, W = 2, 6, 9
    c2w = random_c2w((B,), gen)
    K = random_K(B, W, H, gen)
    o, d = ray_directions(c2w, K, H, W)
    # with normalize_points the depth is the ray length: unit depth gives unit camera rays
    cam = kornia_depth.depth_to_3d_v2(torch.ones(B, H, W, dtype=torch.float64), kornia_K(K), True)
    want = cam @ c2w[:, None, :3, :3].transpose(-1, -2)
    torch.testing.assert_close(d, want, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(o, c2w[:, None, None, :3, 3].expand_as(o))


def test_intrinsics_checks_name_what_is_wrong():
    K = intrinsics_from_fov(60.0, 60.0, 32, 32).expand(3, 3, 3).clone()
    check_K(K, pinhole=True)
    bad = K.clone()
    bad[1, 1, 1] = -2.0
    with pytest.raises(ValueError, match=r"K: intrinsics 1 has non-positive focal length"):
        check_K(bad)
    bad = K.clone()
    bad[2, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        check_K(bad)
    skewed = K.clone()
    skewed[2, 2] = torch.tensor([0.0, 0.1, 1.0])
    check_K(skewed)  # any last row, unless a pinhole is asked for
    with pytest.raises(
        ValueError, match=r"intrinsics 2 has last row \[0.0, 0.1.*wanted \[0, 0, 1\]"
    ):
        check_K(skewed, "cams", pinhole=True)
