"""The render's colour pass against an independent bilinear resampler (``grid_sample``) and a
per-point loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from memory_scenes import intrinsics, one_thread  # noqa: F401 (autouse fixture)

from worldmem.config import ConfigError, MemoryConfig
from worldmem.geometry import project_points
from worldmem.memory.render import KEEP_PX, interpolate_colours, splat_points, zbuffer

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


def colour_pass_loop(xyz, rgb, observed, c2w, K, index, depth, H, W, tol, near):
    """The colour pass as its docstring states it, one point and one pixel at a time in
    float64: ``(V*H*W, 3)``."""
    V = c2w.shape[0]
    uv, z = project_points(xyz.double()[None].expand(V, -1, 3), c2w.double(), K.double())
    acc = np.zeros((V * H * W, 3))
    wsum = np.zeros(V * H * W)
    keep = np.zeros(V * H * W, dtype=bool)
    index, depth = index.numpy(), depth.double().numpy()
    for v in range(V):
        for i in range(xyz.shape[0]):
            u_, v_ = (uv[v, i] - 0.5).tolist()
            if z[v, i] <= near or not observed[i] or not (-1 < u_ < W and -1 < v_ < H):
                continue
            for y in (math.floor(v_), math.floor(v_) + 1):
                for x in (math.floor(u_), math.floor(u_) + 1):
                    if not (0 <= x < W and 0 <= y < H):
                        continue
                    p = (v * H + y) * W + x
                    if index[p] < 0 or abs(z[v, i] - depth[p]) > depth[p] * tol:
                        continue
                    w = (1 - abs(u_ - x)) * (1 - abs(v_ - y))
                    acc[p] += w * rgb[i].double().numpy()
                    wsum[p] += w
                    keep[p] |= index[p] == i and w >= (1 - KEEP_PX) ** 2
    out = rgb.double().numpy()[np.maximum(index, 0)]
    use = (index >= 0) & (wsum > 1e-6) & ~keep & observed.numpy()[np.maximum(index, 0)]
    out[use] = acc[use] / wsum[use, None]
    return out


def test_colour_pass_matches_a_per_point_loop_behind_edges():
    """Layers of observed and generated samples, most hidden behind a nearer layer with a gap
    in it, seen from two moved cameras: the colour pass (which skips points farther than any
    winner around them and the generated ones before projecting) equals the per-point loop,
    at the occlusion edges too."""
    g = torch.Generator().manual_seed(4)
    layers = []
    for z in (1.0, 1.7, 3.0):
        xy = (torch.rand(400, 2, generator=g) * 2 - 1) * z * 0.8
        layers.append(torch.cat([xy, torch.full((400, 1), z)], 1))
    xyz = torch.cat(layers)
    gap = (xyz[:, 2] == 1.0) & (xyz[:, 0].abs() < 0.3) & (xyz[:, 1].abs() < 0.25)
    xyz = xyz[~gap]
    n = xyz.shape[0]
    rgb = torch.rand(n, 3, generator=g)
    observed = torch.rand(n, generator=g) > 0.3
    H = W = 12
    c2w = torch.stack([torch.eye(4), shifted_camera(intrinsics(1, W)[0], (0.4, -0.3))])
    K = intrinsics(2, W)
    tol = 0.03
    xyz_t = xyz.T.contiguous()
    rank = (~observed).long()
    index, depth = zbuffer(xyz_t, c2w, K, H, W, 1.0, 1.0, 2, 0.75, 0.1, rank=rank,
                           surface_tol_rel=tol)  # fmt: skip
    assert bool((depth[index >= 0] > 1.5).any()) and bool((depth[index >= 0] < 1.5).any())
    want = colour_pass_loop(xyz, rgb, observed, c2w, K, index, depth, H, W, tol, 0.1)
    got = interpolate_colours(xyz_t, rgb, c2w, K, index, depth, H, W, tol, 0.1, rank)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    resampled = (np.abs(want - rgb.numpy()[index.clamp(min=0)]).max(1) > 1e-3).sum()
    assert resampled > 50  # the pass did resample
    # the same given a subset of the points that holds every winner (point_index)
    some = torch.unique(torch.cat([index[index >= 0], torch.arange(0, n, 2)]))
    got = interpolate_colours(xyz_t[:, some], rgb, c2w, K, index, depth, H, W, tol, 0.1, rank,
                              point_index=some)  # fmt: skip
    keep = torch.zeros(n, dtype=torch.bool)
    keep[some] = True
    want = colour_pass_loop(xyz, rgb, observed & keep, c2w, K, index, depth, H, W, tol, 0.1)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


def test_nothing_to_render():
    K = intrinsics(1, S)[0]
    out = render(torch.zeros(0, 3), torch.zeros(0, 3), None, torch.eye(4), K, True)
    assert float(out.mask.sum()) == 0 and float(out.rgb.abs().sum()) == 0


def test_render_colour_is_checked():
    with pytest.raises(ConfigError, match="render_colour"):
        MemoryConfig(render_colour="cubic")
