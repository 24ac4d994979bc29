"""The render's colour pass against an independent bilinear resampler (``grid_sample``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from memory_scenes import intrinsics, one_thread  # noqa: F401 (autouse fixture)

from worldmem.config import ConfigError, MemoryConfig
from worldmem.memory.render import splat_points

S = 16  # image size
Z = 2.0  # depth of the textured plane


def plane_points(K: torch.Tensor, offset_px=(0.0, 0.0), z: float = Z) -> torch.Tensor:
    """The points a camera at the origin sees at its pixel centres (shifted by ``offset_px``)
    on the fronto-parallel plane at depth z: ``(S*S, 3)``, row-major like the image."""
    v, u = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
    u, v = u + offset_px[0], v + offset_px[1]
    x = (u - K[0, 2]) / K[0, 0] * z
    y = (v - K[1, 2]) / K[1, 1] * z
    return torch.stack([x, y, torch.full_like(x, z)], -1).reshape(-1, 3)


def shifted_camera(K: torch.Tensor, shift_px) -> torch.Tensor:
    """c2w of a camera moved parallel to the plane so that its pixel centre x sees what the
    origin camera sees at x + shift_px."""
    c2w = torch.eye(4)
    c2w[0, 3] = shift_px[0] * Z / K[0, 0]
    c2w[1, 3] = shift_px[1] * Z / K[1, 1]
    return c2w


def bilinear_reference(image: torch.Tensor, shift_px) -> torch.Tensor:
    """``image (3, S, S)`` sampled at every pixel centre + shift_px by grid_sample."""
    centre = torch.arange(S, dtype=torch.float32) + 0.5
    gx = (centre + shift_px[0]) / S * 2 - 1
    gy = (centre + shift_px[1]) / S * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1)[None]
    return F.grid_sample(image[None], grid, mode="bilinear", align_corners=False)[0]


def render(xyz, rgb, observed, c2w, K, interpolate: bool):
    return splat_points(
        xyz,
        rgb,
        c2w[None],
        K[None],
        S,
        S,
        radius_px=1.0,
        ref_depth_m=1.0,
        max_radius_px=2,
        min_radius_px=0.5,
        observed=observed,
        surface_tol_rel=0.03,
        interpolate=interpolate,
    )


@pytest.mark.parametrize("shift_px", [(0.4, 0.3), (-0.35, 0.6), (0.7, -0.45)])
def test_a_moved_view_of_a_plane_is_its_bilinear_resampling(shift_px):
    """A textured plane seen by one camera, viewed from a camera moved a fraction of a pixel
    parallel to it, is the image resampled bilinearly; a wall behind it and generated
    samples of another colour on the plane itself change nothing. Showing the nearest
    sample instead is off by a large part of the texture's contrast."""
    g = torch.Generator().manual_seed(0)
    K = intrinsics(1, S)[0]
    image = torch.rand(3, S, S, generator=g)
    front = plane_points(K)
    behind = plane_points(K, (0.25, 0.5), z=2 * Z)
    guessed = plane_points(K, (0.5, 0.5))  # between the observed samples, same surface
    xyz = torch.cat([front, behind, guessed])
    rgb = torch.cat(
        [image.reshape(3, -1).T, torch.rand(S * S, 3, generator=g), torch.ones(S * S, 3)]
    )
    observed = torch.cat([torch.ones(2 * S * S, dtype=torch.bool), torch.zeros(S * S).bool()])
    c2w = shifted_camera(K, shift_px)
    want = bilinear_reference(image, shift_px)
    # pixels whose four neighbours all lie inside the source image
    inner = torch.zeros(S, S, dtype=torch.bool)
    xs = (torch.arange(S) + shift_px[0] >= 0) & (torch.arange(S) + shift_px[0] <= S - 1)
    ys = (torch.arange(S) + shift_px[1] >= 0) & (torch.arange(S) + shift_px[1] <= S - 1)
    inner[ys[:, None] & xs[None, :]] = True

    got = render(xyz, rgb, observed, c2w, K, interpolate=True)
    assert bool((got.mask[0, 0][inner] == 1).all())
    assert bool((got.observed[0, 0][inner] == 1).all())
    torch.testing.assert_close(got.rgb[0][:, inner], want[:, inner], atol=1e-5, rtol=0)
    nearest = render(xyz, rgb, observed, c2w, K, interpolate=False)
    assert float((nearest.rgb[0][:, inner] - want[:, inner]).abs().max()) > 0.1
    assert torch.equal(nearest.depth, got.depth) and torch.equal(nearest.mask, got.mask)


def test_generated_surfaces_are_not_resampled():
    """A plane the model generated is shown as stored (nearest sample): it is refitted from
    every frame made of it, and resampling it at every render would blur it again and again."""
    g = torch.Generator().manual_seed(2)
    K = intrinsics(1, S)[0]
    rgb = torch.rand(S * S, 3, generator=g)
    generated = torch.zeros(S * S, dtype=torch.bool)
    c2w = shifted_camera(K, (0.4, 0.3))
    got = render(plane_points(K), rgb, generated, c2w, K, interpolate=True)
    nearest = render(plane_points(K), rgb, generated, c2w, K, interpolate=False)
    assert torch.equal(got.rgb, nearest.rgb) and float(got.mask.mean()) > 0.9


def test_a_view_the_memory_holds_gets_its_own_frame_back():
    """A second observed view of the same plane, its samples between the first view's pixel
    centres, does not blend into the first camera's render: samples on a pixel's centre keep
    it (and samples near it, within the keep radius, too)."""
    g = torch.Generator().manual_seed(1)
    K = intrinsics(1, S)[0]
    a, b = torch.rand(3, S, S, generator=g), torch.rand(3, S, S, generator=g)
    xyz = torch.cat([plane_points(K), plane_points(K, (0.5, 0.5))])
    rgb = torch.cat([a.reshape(3, -1).T, b.reshape(3, -1).T])
    out = render(xyz, rgb, torch.ones(2 * S * S, dtype=torch.bool), torch.eye(4), K, True)
    assert torch.equal(out.rgb[0], a)
    near = plane_points(K, (0.1, -0.1))  # within the keep radius of the centres
    out = render(near, rgb[: S * S], None, torch.eye(4), K, True)
    assert torch.equal(out.rgb[0], a)


def test_nothing_to_render():
    K = intrinsics(1, S)[0]
    out = render(torch.zeros(0, 3), torch.zeros(0, 3), None, torch.eye(4), K, True)
    assert float(out.mask.sum()) == 0 and float(out.rgb.abs().sum()) == 0


def test_render_colour_is_checked():
    with pytest.raises(ConfigError, match="render_colour"):
        MemoryConfig(render_colour="cubic")
