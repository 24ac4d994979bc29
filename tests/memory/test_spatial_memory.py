"""SpatialMemory against analytic geometry and a brute-force z-buffer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from memory_scenes import (
    box_room,
    intrinsics,
    one_thread,  # noqa: F401 (autouse fixture)
    rect_scene,
    yaw_camera,
)

from worldmem.config import MemoryConfig
from worldmem.geometry import project_points, unproject_depth
from worldmem.interactive.topdown import topdown_map
from worldmem.memory import MemoryRender, SpatialMemory
from worldmem.memory.render import splat_points
from worldmem.memory.spatial import keys_to_voxels, voxel_keys


def state_equal(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        if isinstance(a[k], torch.Tensor):
            if a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k]):
                return False
        elif a[k] != b[k]:
            return False
    return True


def room_frames(n: int, size: int, seed: int = 0):
    """n random level cameras inside the box room, with their analytic rgb and depth."""
    g = torch.Generator().manual_seed(seed)
    pos = (torch.rand(n, 3, generator=g) * 2 - 1) * torch.tensor([2.0, 0.8, 2.0])
    yaw = torch.rand(n, generator=g) * 360
    c2w = torch.stack([yaw_camera(p, float(y)) for p, y in zip(pos, yaw)])
    K = intrinsics(n, size)
    rgb, depth = box_room(c2w, K, size, size)
    return rgb, depth, c2w, K


# ---------------------------------------------------------------- geometry of fusion and render


def test_voxel_keys_round_trip_and_sort_block_major():
    g = torch.Generator().manual_seed(0)
    vox = torch.randint(-(1 << 20) + 1, (1 << 20) - 1, (1000, 3), generator=g)
    keys = voxel_keys(vox)
    assert bool((keys >= 0).all())
    assert torch.equal(keys_to_voxels(keys), vox)
    # keys of one 8^3 block are contiguous: sorting by key groups blocks together
    blocks = torch.div(vox + (1 << 20), 8, rounding_mode="floor")
    order = torch.argsort(keys)
    b = blocks[order]
    changes = (b[1:] != b[:-1]).any(1).sum().item()
    assert changes == torch.unique(blocks, dim=0).shape[0] - 1


def test_bright_texel_reprojects_to_analytic_position():
    """A bright 4x4-pixel texel on a plane seen by camera A lands, in camera B, where the
    analytic projection of its centre says (brightness centroid within 0.5 px)."""
    H = W = 96
    K = intrinsics(1, W, fov_deg=60.0)
    c2w_a = torch.eye(4)[None]
    z_plane = 2.0
    depth = torch.full((1, 1, H, W), z_plane)
    rgb = torch.full((1, 3, H, W), 0.1)
    i0, j0 = 37, 52  # rows, cols of the texel in A
    rgb[:, :, i0 : i0 + 4, j0 : j0 + 4] = 1.0
    # centre of the texel's pixel centres, back-projected (exact: the plane is fronto-parallel)
    u, v = j0 + 2.0, i0 + 2.0
    fx, cx = K[0, 0, 0].item(), K[0, 0, 2].item()
    fy, cy = K[0, 1, 1].item(), K[0, 1, 2].item()
    centre = torch.tensor([(u - cx) / fx * z_plane, (v - cy) / fy * z_plane, z_plane])

    sm = SpatialMemory(MemoryConfig(voxel_size_m=0.01))
    assert sm.insert(rgb, depth, c2w_a, K) == H * W  # one voxel per pixel
    c2w_b = yaw_camera([0.35, -0.12, 0.25], -9.0)[None]
    out = sm.render(c2w_b, K, H, W)
    uv, _ = project_points(centre[None], c2w_b, K)
    w = (out.rgb[0, 0] - 0.1).clamp(min=0) * out.mask[0, 0]
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    got = torch.stack([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])
    assert w.sum() > 8  # the texel is visible
    err = (got - uv[0]).norm().item()
    assert err < 0.5, f"texel centroid {got.tolist()} vs analytic {uv[0].tolist()}: {err:.3f} px"
    # depth of the render matches the analytic plane depth seen from B
    _, d_true = rect_scene(c2w_b, K, H, W, [(z_plane, -5, 5, -5, 5, (1, 1, 1))])
    m = out.mask[0, 0] > 0
    rel = ((out.depth[0, 0] - d_true[0, 0]).abs() / d_true[0, 0])[m]
    assert rel.median() < 0.01 and rel.max() < 0.03


def test_nearer_surface_wins():
    """A near green square in front of a far red wall, seen from a second camera: pixels whose
    analytic ray hits the square are green, pixels hitting only the wall are red."""
    H = W = 64
    K = intrinsics(1, W)
    scene = [(1.5, -0.3, 0.3, -0.3, 0.3, (0.1, 0.9, 0.1)), (3.0, -4, 4, -4, 4, (0.9, 0.1, 0.1))]
    c2w_a = torch.eye(4)[None]
    rgb, depth = rect_scene(c2w_a, K, H, W, scene)
    sm = SpatialMemory(MemoryConfig(voxel_size_m=0.02))
    sm.insert(rgb, depth, c2w_a, K)
    c2w_b = yaw_camera([0.25, 0.0, 0.1], -6.0)[None]
    out = sm.render(c2w_b, K, H, W)
    # truth in B, shrunk by a pixel on both sides of every edge
    want, want_depth = rect_scene(c2w_b, K, H, W, scene)
    # wall pixels of B whose surface point A saw (inside A's image, not behind the square)
    hit = unproject_depth(want_depth[0, 0], c2w_b[0], K[0]).reshape(-1, 3)
    uv, _ = project_points(hit, c2w_a[0], K[0])
    iu, iv = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    inside = (iu >= 0) & (iu < W) & (iv >= 0) & (iv < H)
    a_depth = depth[0, 0][iv.clamp(0, H - 1), iu.clamp(0, W - 1)]
    seen_by_a = (inside & (a_depth > 2.5)).reshape(H, W)

    def erode(m):
        return -torch.nn.functional.max_pool2d(-m[None, None].float(), 3, 1, 1)[0, 0] > 0

    sure_green = erode(want[0, 1] > 0.5)
    sure_red = erode((want[0, 0] > 0.5) & seen_by_a)
    got_green = (out.rgb[0, 1] > 0.5) & (out.mask[0, 0] > 0)
    got_red = (out.rgb[0, 0] > 0.5) & (out.mask[0, 0] > 0)
    assert sure_green.sum() > 50
    assert bool(got_green[sure_green].all())
    # every rendered pixel that should be wall is wall (the square never leaks onto it)
    assert not bool(got_green[sure_red].any())
    assert sure_red.sum() > 500
    assert got_red[sure_red].float().mean() > 0.97  # the wall A saw (up to splat holes)


def brute_force_splat(xyz, rgb, c2w, K, H, W, radius_px, ref, min_r, max_r, near):
    """A per-point, per-pixel loop in float64: the reference z-buffer. Pass 1 draws each
    point's own pixel and footprint; pass 2 fills pixels still empty from points within
    ``min_r`` (points whose footprint was smaller)."""
    V = c2w.shape[0]
    depth = np.full((V, H, W), np.inf)
    index = np.full((V, H, W), -1)
    uv, z = project_points(xyz.double()[None].expand(V, -1, 3), c2w.double(), K.double())
    for v in range(V):
        pts = []
        for i in range(xyz.shape[0]):
            zi = z[v, i].item()
            if zi > near:
                u_, v_ = uv[v, i].tolist()
                pts.append((i, zi, u_, v_, min(max(radius_px * ref / zi, 0.5), max_r)))
        for fill in (False, True):
            empty = index[v] < 0
            fill_depth = np.full((H, W), np.inf)
            fill_index = np.full((H, W), -1)
            for i, zi, u_, v_, r in pts:
                if fill and r >= min_r:
                    continue
                rad = min_r if fill else r
                pu, pv = math.floor(u_), math.floor(v_)
                for py in range(max(0, pv - max_r - 1), min(H, pv + max_r + 2)):
                    for px in range(max(0, pu - max_r - 1), min(W, pu + max_r + 2)):
                        own = px == pu and py == pv
                        d2 = (px + 0.5 - u_) ** 2 + (py + 0.5 - v_) ** 2
                        if not own and d2 >= rad * rad:
                            continue
                        if fill and not empty[py, px]:
                            continue
                        dd, ii = (fill_depth, fill_index) if fill else (depth[v], index[v])
                        if zi < dd[py, px]:  # strict: an equal depth keeps the lower index
                            dd[py, px], ii[py, px] = zi, i
            if fill:
                depth[v] = np.where(fill_index >= 0, fill_depth, depth[v])
                index[v] = np.where(fill_index >= 0, fill_index, index[v])
    return depth, index


@pytest.mark.parametrize("min_r", [0.5, 0.75, 1.6])
def test_splat_matches_brute_force_zbuffer_with_ties(min_r):
    g = torch.Generator().manual_seed(3)
    n, H, W = 150, 20, 24
    xyz = torch.rand(n, 3, generator=g) * torch.tensor([3.0, 3.0, 3.5]) - torch.tensor(
        [1.5, 1.5, 0.3]
    )
    xyz[40:50] = xyz[10:20]  # exact duplicates: the lower index must win
    rgb = torch.rand(n, 3, generator=g)
    c2w = torch.stack([torch.eye(4), yaw_camera([0.2, 0.1, -0.3], 12.0)])
    K = torch.stack([intrinsics(1, W)[0], intrinsics(1, W, fov_deg=60)[0]])
    K[:, 1, 2] = H / 2
    out = splat_points(
        xyz, rgb, c2w, K, H, W, radius_px=1.5, ref_depth_m=1.0, max_radius_px=3, min_radius_px=min_r
    )
    depth, index = brute_force_splat(xyz, rgb, c2w, K, H, W, 1.5, 1.0, min_r, 3, 0.1)
    hit = index >= 0
    got_hit = out.mask[:, 0].numpy() > 0
    # float32 vs float64 can only disagree for pixel centres exactly on a footprint edge
    assert (hit != got_hit).sum() <= 2
    both = hit & got_hit
    want_rgb = rgb.numpy()[index[both]]
    got_rgb = out.rgb.permute(0, 2, 3, 1).numpy()[both]
    assert (np.abs(want_rgb - got_rgb).max(1) > 0).sum() <= 2
    np.testing.assert_allclose(out.depth[:, 0].numpy()[both], depth[both], rtol=1e-5)
    assert index[both].max() < 40 or not np.isin(index[both], np.arange(40, 50)).any()


def layered_cloud(n_per_layer: int, depths: tuple[float, ...], seed: int) -> torch.Tensor:
    """Points jittered over fronto-parallel layers at ``depths``, each wider than the view
    and denser than its pixels, so most points are hidden behind a nearer layer; the
    nearest layer has a gap in its middle, through which the others show. ``(n, 3)``"""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for z in depths:
        xy = (torch.rand(n_per_layer, 2, generator=g) * 2 - 1) * z * 0.9
        zz = z * (1 + 0.01 * torch.randn(n_per_layer, generator=g))
        layers.append(torch.cat([xy, zz[:, None]], 1))
    near = layers[0]
    layers[0] = near[(near[:, 0].abs() > 0.25 * depths[0]) | (near[:, 1].abs() > 0.2 * depths[0])]
    return torch.cat(layers)


@pytest.mark.parametrize("min_r", [0.75, 1.6])
def test_splat_of_hidden_layers_matches_brute_force(min_r):
    """Several layers, each denser than the pixels, most of their points hidden: the splat
    (which skips the footprints of points deeper than every winner they could reach) draws
    what the per-pixel loop draws, occlusion edges and the gap included."""
    xyz = layered_cloud(500, (1.0, 1.6, 2.5), seed=5)
    g = torch.Generator().manual_seed(6)
    rgb = torch.rand(xyz.shape[0], 3, generator=g)
    H = W = 16
    c2w = torch.stack([torch.eye(4), yaw_camera([0.05, -0.03, 0.1], 4.0)])
    K = intrinsics(2, W, fov_deg=60)
    out = splat_points(
        xyz, rgb, c2w, K, H, W, radius_px=1.3, ref_depth_m=1.0, max_radius_px=3, min_radius_px=min_r
    )
    depth, index = brute_force_splat(xyz, rgb, c2w, K, H, W, 1.3, 1.0, min_r, 3, 0.1)
    hit = index >= 0
    got_hit = out.mask[:, 0].numpy() > 0
    assert hit.mean() > 0.95 and (hit != got_hit).sum() <= 2
    both = hit & got_hit
    got_rgb = out.rgb.permute(0, 2, 3, 1).numpy()[both]
    assert (np.abs(rgb.numpy()[index[both]] - got_rgb).max(1) > 0).sum() <= 2
    np.testing.assert_allclose(out.depth[:, 0].numpy()[both], depth[both], rtol=1e-5)
    # every layer shows somewhere: the gap and the edges are drawn
    for z in (1.0, 1.6, 2.5):
        assert (np.abs(depth[both] / z - 1) < 0.05).sum() > 5


def test_splat_of_points_none_of_which_is_in_view_is_empty():
    """Points behind the camera or outside its view draw nothing (and raise nothing)."""
    K = intrinsics(1, 16)
    behind = torch.tensor([[0.0, 0.0, -2.0], [0.5, 0.1, -1.0], [40.0, 0.0, 1.0]])
    out = splat_points(behind, torch.rand(3, 3), torch.eye(4)[None], K, 16, 16, max_radius_px=3)
    assert float(out.mask.sum()) == 0 and float(out.depth.abs().sum()) == 0


def centre_scene(S: int, back_offset_px: float, on_centre: list[tuple[int, int]]):
    """A fronto-parallel back plane at 2 m seen by a camera at the origin, one point per pixel
    at ``back_offset_px`` from its centre (0: the frame this camera saw), but on the centre of
    the pixels ``on_centre`` (u, v); plus three red front points: inside pixel (5, 5) half as
    far, inside pixel (10, 10) 5% nearer, and on pixel (3, 12)'s centre half as far, with a
    footprint over its neighbours. Returns the splat with the surface pass."""
    K = intrinsics(1, S)
    fx, cx = float(K[0, 0, 0]), float(K[0, 0, 2])

    def at(u: float, v: float, z: float) -> list[float]:  # the point seen at pixel (u, v)
        return [(u - cx) / fx * z, (v - cx) / fx * z, z]

    back = [
        at(u + 0.5 + (0 if (u, v) in on_centre else back_offset_px), v + 0.5, 2.0)
        for v in range(S)
        for u in range(S)
    ]
    front = [at(5.8, 5.2, 1.0), at(10.8, 10.2, 1.9), at(3.5, 12.5, 1.0)]
    xyz = torch.tensor(back + front)
    radius = torch.cat([torch.full((S * S,), 1.0 / fx), torch.tensor([0, 0, 2.5 / fx])])
    rgb = torch.zeros(xyz.shape[0], 3)
    rgb[S * S :, 0] = 1.0  # the front points are red
    return splat_points(
        xyz, rgb, torch.eye(4)[None], K, S, S, max_radius_px=3, min_radius_px=0.75,
        near_m=0.1, radius_m=radius, surface_tol_rel=0.03,
    )  # fmt: skip


def test_camera_a_frame_was_seen_from_gets_that_frame_back():
    """Each back point on its pixel centre (the frame this camera saw) wins its pixel over a
    nearer point inside it, over another point's footprint and over a point of the same
    surface: the camera sees its frame and none of the red front points."""
    out = centre_scene(16, 0.0, [])
    assert float(out.depth[0, 0, 5, 5]) == pytest.approx(2.0)
    assert int((out.rgb[0, 0] > 0.5).sum()) == 0


def test_hidden_point_landing_on_a_pixel_centre_does_not_show_through():
    """At a camera no frame was seen from (the back points off their centres), a few back
    points that happen to land on a centre win their pixel only against points of their own
    surface or footprints, not against a surface inside the pixel more than the tolerance
    nearer."""
    S = 16
    out = centre_scene(S, 0.3, [(5, 5), (10, 10), (2, 12), (4, 11)])
    red = out.rgb[0, 0] > 0.5
    assert bool(red[5, 5]) and float(out.depth[0, 0, 5, 5]) == pytest.approx(1.0)
    assert not bool(red[10, 10])  # on the centre, within the tolerance of the front point
    assert not bool(red[12, 2]) and not bool(red[11, 4])  # on centres under the footprint
    assert bool(red[12, 3])
    assert bool(red[13, 3])  # a back point off its centre, under the footprint


def test_render_batches_views_and_handles_empty():
    rgb, depth, c2w, K = room_frames(3, 24)
    sm = SpatialMemory()
    empty = sm.render(c2w, K, 24, 24)
    assert isinstance(empty, MemoryRender)
    assert empty.rgb.shape == (3, 3, 24, 24) and empty.mask.sum() == 0
    sm.insert(rgb, depth, c2w, K)
    away = yaw_camera([0.0, 0.0, 50.0], 0.0)[None]  # outside the room, looking away from it
    assert sm.render(away, K[:1], 24, 24).mask.sum() == 0
    both = sm.render(c2w, K, 24, 24)
    for v in range(3):
        one = sm.render(c2w[v : v + 1], K[v : v + 1], 24, 24)
        assert torch.equal(one.rgb[0], both.rgb[v]) and torch.equal(one.depth[0], both.depth[v])
    assert both.mask.dtype == torch.float32 and set(both.mask.unique().tolist()) <= {0.0, 1.0}
    # seen from where they were taken, the frames come back (z-buffer of their own points)
    m = both.mask > 0
    assert m.float().mean() > 0.95
    assert ((both.depth - depth).abs()[m] / depth[m]).median() < 0.01


def random_cloud_memory(n: int, extent_m: float, cfg: MemoryConfig, seed: int = 0):
    """A memory holding n random observed samples (one per voxel, splat radius 6 cm) via
    load_state_dict."""
    g = torch.Generator().manual_seed(seed)
    xyz = (torch.rand(n, 3, generator=g) * 2 - 1) * extent_m
    keys = voxel_keys(torch.floor(xyz / cfg.voxel_size_m).long())
    keys, first = np.unique(keys.numpy(), return_index=True)
    first = torch.from_numpy(first)
    m = len(first)
    sm = SpatialMemory(cfg)
    sm.load_state_dict(
        {
            "xyz": xyz[first],
            "rgb": torch.rand(m, 3, generator=g),
            "confidence": torch.ones(m),
            "last_seen": torch.zeros(m, dtype=torch.int64),
            "voxel_keys": torch.from_numpy(keys),
            "footprint": torch.full((m,), 0.08),
            "quality": torch.full((m,), 0.08),
            "observed": torch.ones(m, dtype=torch.bool),
            "splat_radius": torch.full((m,), 0.06),
            "next_step": 1,
        }
    )
    return sm


def test_frustum_culling_changes_nothing_in_the_render():
    """render() splats only points in blocks near the view frusta; the picture must equal the
    splat of the whole cloud, and the candidates must include every point in the frusta."""
    cfg = MemoryConfig(voxel_size_m=0.05, max_splat_radius_px=3)
    sm = random_cloud_memory(30_000, 6.0, cfg)
    g = torch.Generator().manual_seed(1)
    c2w = torch.stack(
        [yaw_camera((torch.rand(3, generator=g) - 0.5) * 4, float(y)) for y in (0, 100, 200)]
    )
    K = intrinsics(3, 40)
    culled = sm.render(c2w, K, 40, 40)
    full = splat_points(
        sm.xyz,
        sm.rgb,
        c2w,
        K,
        40,
        40,
        max_radius_px=3,
        min_radius_px=0.75,
        radius_m=sm.state_dict()["splat_radius"],
        observed=sm.observed,
        surface_tol_rel=cfg.surface_tol_rel,
        interpolate=True,
    )
    assert torch.equal(culled.mask, full.mask)
    assert torch.equal(culled.depth, full.depth) and torch.equal(culled.rgb, full.rgb)
    far = torch.full((3,), 5.0)
    cand = sm._frustum_candidates(c2w, K, 40, 40, far)
    assert cand.numel() < 0.8 * sm.num_points  # the culling does cull
    uv, z = project_points(sm.xyz[None].expand(3, -1, 3), c2w, K)
    inside = (uv >= 0).all(-1) & (uv < 40).all(-1) & (z > cfg.near_m) & (z < 5.0)
    want = set(inside.any(0).nonzero().squeeze(1).tolist())
    assert want <= set(cand.tolist())


# ---------------------------------------------------------------- fusion, carving, cap


def test_same_view_many_times_does_not_grow():
    rgb, depth, c2w, K = room_frames(1, 32, seed=1)
    sm = SpatialMemory()
    first = sm.insert(rgb, depth, c2w, K)
    xyz0 = sm.xyz.clone()
    for _ in range(99):
        assert sm.insert(rgb, depth, c2w, K) == 0
    assert sm.num_points == first
    assert torch.allclose(sm.xyz, xyz0, atol=1e-6)
    assert float(sm.confidence.max()) == sm.cfg.max_confidence
    assert int(sm.last_seen.min()) == 99


def test_samples_are_pixels_as_seen_not_averages():
    """Two overlapping frames: every stored sample is one pixel of one frame, its colour and
    back-projected position exactly as that frame saw them (nothing averaged), and the first
    frame is stored whole."""
    rgb, depth, c2w, K = room_frames(2, 16, seed=2)
    c2w[1] = c2w[0] @ yaw_camera([0.05, 0.0, 0.02], 4.0)
    rgb, depth = box_room(c2w, K, 16, 16)
    sm = SpatialMemory()
    sm.insert(rgb, depth, c2w, K)
    pts = unproject_depth(depth[:, 0], c2w, K).reshape(-1, 3)
    cols = rgb.permute(0, 2, 3, 1).reshape(-1, 3)
    d = torch.cdist(sm.xyz.double(), pts.double())  # (N, 512)
    j = d.argmin(1)
    assert float(d.min(1).values.max()) < 1e-5
    assert torch.equal(sm.rgb, cols[j])
    assert set(range(256)) <= set(j.tolist())  # frame 0 whole
    assert 256 < sm.num_points < 512  # frame 1 added only what frame 0 lacked
    assert bool(sm.observed.all()) and torch.allclose(sm.footprint, depth.flatten()[j] / K[0, 0, 0])


def test_moved_box_is_carved_and_wall_survives():
    H = W = 48
    K = intrinsics(1, W)
    wall = (4.0, -6, 6, -6, 6, (0.2, 0.3, 0.9))
    box = (2.0, -0.4, 0.4, -0.4, 0.4, (0.9, 0.5, 0.1))
    sm = SpatialMemory()
    g = torch.Generator().manual_seed(0)

    def cam():
        return yaw_camera((torch.rand(3, generator=g) - 0.5) * 0.04, 0.0)[None]

    for _ in range(3):
        c = cam()
        sm.insert(*rect_scene(c, K, H, W, [box, wall]), c, K)
    box_keys = set(sm.voxel_keys[sm.xyz[:, 2] < 3].tolist())
    n_wall = int((sm.xyz[:, 2] > 3).sum())
    assert len(box_keys) > 50
    for _ in range(3):  # the box still there: nothing is carved
        c = cam()
        sm.insert(*rect_scene(c, K, H, W, [box, wall]), c, K)
    assert box_keys <= set(sm.voxel_keys.tolist())
    left = []
    for _ in range(8):  # the box is gone: the wall behind it is seen through its points
        c = cam()
        sm.insert(*rect_scene(c, K, H, W, [wall]), c, K)
        left.append(int((sm.xyz[:, 2] < 3).sum()))
    assert left[0] > 0  # not at once: a few frames are needed
    assert left[-1] == 0, f"box points left after each frame: {left}"
    assert int((sm.xyz[:, 2] > 3).sum()) >= n_wall  # the wall is untouched (and grew)
    out = sm.render(torch.eye(4)[None], K, H, W)
    centre = out.rgb[0, :, H // 2 - 3 : H // 2 + 3, W // 2 - 3 : W // 2 + 3]
    assert torch.allclose(centre.mean((1, 2)), torch.tensor([0.2, 0.3, 0.9]), atol=0.02)


def single_point_frame(direction, dist: float, colour):
    """A 1x1 frame whose only pixel sees a point at ``dist`` along ``direction``."""
    d = torch.nn.functional.normalize(torch.tensor(direction, dtype=torch.float32), dim=0)
    up = torch.tensor([0.0, 1.0, 0.0]) if abs(d[1]) < 0.9 else torch.tensor([1.0, 0.0, 0.0])
    x = torch.nn.functional.normalize(torch.cross(up, d, dim=0), dim=0)
    y = torch.cross(d, x, dim=0)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2] = x, y, d
    K = torch.tensor([[100.0, 0, 0.5], [0, 100.0, 0.5], [0, 0, 1]])
    rgb = torch.tensor(colour, dtype=torch.float32).view(1, 3, 1, 1)
    return rgb, torch.full((1, 1, 1, 1), dist), c2w[None], K[None]


def test_eviction_generated_then_oldest_then_coarsest():
    sm = SpatialMemory(MemoryConfig(max_points=3))
    dirs = [(1, 0, 1), (-1, 0, 1), (0, 1, 1), (0, -1, 1), (1, 1, -1), (-1, -1, -1)]

    def frame(i, dist=2.0):
        return single_point_frame(dirs[i], dist, (i / 10, 0, 0))

    def ids():
        return sorted((sm.rgb[:, 0] * 10).round().long().tolist())

    sm.insert(*frame(1), step=0)
    sm.insert(*frame(2), step=1)
    sm.insert(*frame(0), step=2, observed=False)  # generated, newer than 1 and 2
    sm.insert(*frame(3), step=3)  # over the cap: the generated sample goes first
    assert ids() == [1, 2, 3]
    sm.insert(*frame(4), step=4)  # then the least recently seen
    assert ids() == [2, 3, 4]
    sm.insert(*frame(2), step=5)  # 2 seen again: now the newest
    sm.insert(*frame(5, dist=4.0), step=6)  # 3 is now the least recently seen
    assert ids() == [2, 4, 5]
    # same last_seen: the coarser sample (farther view, bigger footprint) goes
    sm2 = SpatialMemory(MemoryConfig(max_points=1))
    near, far = frame(0, dist=1.0), frame(1, dist=5.0)
    both = [torch.cat([a, b]) for a, b in zip(near, far)]
    sm2.insert(*both, step=7)
    assert sm2.num_points == 1 and float(sm2.xyz.norm()) < 1.5


def test_generated_samples_have_their_own_budget_and_observed_ones_keep_the_rest():
    """With ``max_generated_points``, generated samples beyond it go (the least recently seen
    first) however much room ``max_points`` leaves, observed samples are never taken for
    them, and ``max_points`` still caps the whole; a state loaded is cut the same way."""
    cfg = MemoryConfig(max_points=5, max_generated_points=2)
    sm = SpatialMemory(cfg)
    dirs = [(1, 0, 1), (-1, 0, 1), (0, 1, 1), (0, -1, 1), (1, 1, -1), (-1, -1, -1), (1, -1, 1)]

    def frame(i):
        return single_point_frame(dirs[i], 2.0, (i / 10, 0, 0))

    def ids():
        return sorted((sm.rgb[:, 0] * 10).round().long().tolist())

    sm.insert(*frame(0), step=0)  # observed
    for i, step in ((1, 1), (2, 2), (3, 3)):  # three guesses: the oldest goes
        sm.insert(*frame(i), step=step, observed=False)
    assert ids() == [0, 2, 3]
    for i in (4, 5, 6):  # observed: up to max_points, then the oldest goes (a guess first)
        sm.insert(*frame(i), step=3 + i)
    assert ids() == [0, 3, 4, 5, 6]
    assert int((~sm.observed).sum()) == 1

    unbudgeted = SpatialMemory(MemoryConfig(max_points=5))
    for i, step in ((1, 1), (2, 2), (3, 3)):
        unbudgeted.insert(*frame(i), step=step, observed=False)
    assert unbudgeted.num_points == 3  # without a budget the cap alone holds them
    budgeted = SpatialMemory(cfg)
    budgeted.load_state_dict(unbudgeted.state_dict())
    assert budgeted.num_points == 2 and int((~budgeted.observed).sum()) == 2
    with pytest.raises(ValueError, match="max_generated_points"):
        MemoryConfig(max_generated_points=-1)


def test_cap_holds_over_long_random_walk():
    cfg = MemoryConfig(max_points=1500, voxel_size_m=0.05)
    sm = SpatialMemory(cfg)
    g = torch.Generator().manual_seed(5)
    K = intrinsics(1, 16)
    pos = torch.zeros(3)
    yaw = 0.0
    cams, sizes = [], []
    for _ in range(2000):
        pos = (pos + (torch.rand(3, generator=g) - 0.5) * 0.2).clamp(-2.5, 2.5) * torch.tensor(
            [1.0, 0.5, 1.0]
        )
        yaw += float(torch.randn(1, generator=g)) * 15
        cams.append(yaw_camera(pos, yaw))
    c2w_all = torch.stack(cams)
    rgb_all, depth_all = box_room(c2w_all, intrinsics(2000, 16), 16, 16)
    K = K.expand(4, 3, 3)
    for i in range(0, 2000, 4):  # chunks of four frames
        sm.insert(rgb_all[i : i + 4], depth_all[i : i + 4], c2w_all[i : i + 4], K)
        sizes.append(sm.num_points)
    assert max(sizes) <= cfg.max_points
    assert sizes[-1] == cfg.max_points
    # the index is consistent: each sample lies in its cell, the sorted index is its keys
    vox = torch.floor(sm.xyz / cfg.voxel_size_m).long()
    assert torch.equal(keys_to_voxels(sm.voxel_keys), vox)
    assert torch.equal(sm._skeys, sm.voxel_keys[sm._sidx])
    assert bool((sm._skeys[1:] >= sm._skeys[:-1]).all())
    n = sm.num_points
    # the last chunk was kept whole: its cameras get it back, inserting it again adds little
    out = sm.render(c2w_all[-4:], K, 16, 16)
    assert float((out.rgb - rgb_all[-4:]).square().mean()) < 10 ** (-30 / 10)
    assert sm.insert(rgb_all[-4:], depth_all[-4:], c2w_all[-4:], K) <= 0.01 * 4 * 16 * 16
    assert sm.num_points == n


# ---------------------------------------------------------------- persistence


def test_save_load_round_trip_is_exact_and_resumes(tmp_path):
    rgb, depth, c2w, K = room_frames(6, 24, seed=4)
    cfg = MemoryConfig(max_points=2000)
    sm = SpatialMemory(cfg)
    for i in range(5):
        sm.insert(rgb[i : i + 1], depth[i : i + 1], c2w[i : i + 1], K[i : i + 1], step=10 * i)
    path = sm.save(tmp_path / "memory.safetensors")
    back = SpatialMemory.load(path)  # config from the file
    assert back.cfg == cfg
    assert state_equal(sm.state_dict(), back.state_dict())
    a = sm.insert(rgb[5:], depth[5:], c2w[5:], K[5:])
    b = back.insert(rgb[5:], depth[5:], c2w[5:], K[5:])
    assert a == b and state_equal(sm.state_dict(), back.state_dict())
    r1, r2 = sm.render(c2w, K, 24, 24), back.render(c2w, K, 24, 24)
    assert torch.equal(r1.rgb, r2.rgb) and torch.equal(r1.depth, r2.depth)
    with pytest.raises(ValueError, match="voxel_size_m"):
        SpatialMemory.load(path, MemoryConfig(voxel_size_m=0.1))
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="junk"):
        SpatialMemory.load(tmp_path / "junk.safetensors")


def test_export_ply_reads_back_with_plyfile(tmp_path):
    plyfile = pytest.importorskip("plyfile")
    rgb, depth, c2w, K = room_frames(2, 16, seed=6)
    sm = SpatialMemory()
    sm.insert(rgb, depth, c2w, K)
    ply = plyfile.PlyData.read(str(sm.export_ply(tmp_path / "cloud.ply")))
    assert ply.elements[0].name == "vertex" and not ply.text and ply.byte_order == "<"
    v = ply["vertex"]
    assert [p.name for p in v.properties] == [
        "x",
        "y",
        "z",
        "red",
        "green",
        "blue",
        "confidence",
        "footprint",
        "observed",
    ]
    xyz = np.stack([v["x"], v["y"], v["z"]], 1)
    np.testing.assert_array_equal(xyz, sm.xyz.numpy())
    cols = np.stack([v["red"], v["green"], v["blue"]], 1)
    assert cols.dtype == np.uint8
    np.testing.assert_array_equal(cols, np.round(sm.rgb.numpy() * 255).astype(np.uint8))
    np.testing.assert_array_equal(v["confidence"], sm.confidence.numpy())
    np.testing.assert_array_equal(v["footprint"], sm.footprint.numpy())
    np.testing.assert_array_equal(v["observed"], sm.observed.numpy().astype(np.uint8))


def test_topdown_map_shows_highest_point_and_cameras():
    sm = SpatialMemory(MemoryConfig(voxel_size_m=0.01))
    low = single_point_frame((0, 1, 1), 1.0, (1.0, 0.0, 0.0))  # below the camera (y > 0)
    sm.insert(*low)
    p_low = sm.xyz[0].clone()
    # a second point straight above the first (smaller y), blue
    c2w = torch.eye(4)[None]
    c2w[0, :3, 3] = torch.tensor([p_low[0], p_low[1] - 0.5, p_low[2] - 1.0])
    K = torch.tensor([[[100.0, 0, 0.5], [0, 100.0, 0.5], [0, 0, 1]]])
    sm.insert(torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1), torch.ones(1, 1, 1, 1), c2w, K)
    assert sm.num_points == 2
    img = topdown_map(sm, 64)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    colours = {tuple(c) for c in img.reshape(-1, 3).tolist()}
    assert (0, 0, 255) in colours and (255, 0, 0) not in colours  # the higher point shows
    with_cams = topdown_map(sm, 64, torch.stack([torch.eye(4), yaw_camera([0.5, 0, 0], 90)]))
    assert (with_cams != img).any(axis=-1).sum() > 10
    assert topdown_map(SpatialMemory(), 32).shape == (32, 32, 3)


# ---------------------------------------------------------------- bad input


def test_invalid_depth_pixels_are_masked():
    rgb, depth, c2w, K = room_frames(1, 16, seed=7)
    bad = depth.clone()
    bad[0, 0, 0, :4] = float("nan")
    bad[0, 0, 1, :4] = 0.0
    bad[0, 0, 2, :4] = -1.0
    bad[0, 0, 3, :4] = float("inf")
    bad[0, 0, 4, :4] = 1000.0  # beyond max_depth_m
    a, b = SpatialMemory(), SpatialMemory()
    a.insert(rgb, bad, c2w, K)
    mask = torch.ones_like(depth, dtype=torch.bool)
    mask[0, 0, :5, :4] = False
    b.insert(rgb, depth, c2w, K, mask=mask)
    assert a.num_points > 0
    assert torch.equal(a.xyz, b.xyz) and torch.equal(a.rgb, b.rgb)
    assert bool(torch.isfinite(a.xyz).all())


@pytest.mark.parametrize(
    "case",
    [
        "depth_shape",
        "rgb_rank",
        "no_frames",
        "c2w_scaled",
        "c2w_singular",
        "c2w_nan",
        "K_zero_focal",
        "K_last_row",
        "K_count",
        "mask_dtype",
        "rgb_uint8",
        "step_negative",
        "too_far",
    ],
)
def test_bad_input_raises_and_leaves_cloud_unchanged(case):
    rgb, depth, c2w, K = room_frames(2, 16, seed=8)
    sm = SpatialMemory()
    sm.insert(rgb[:1], depth[:1], c2w[:1], K[:1])
    before = sm.state_dict()
    args = dict(rgb=rgb, depth=depth, c2w=c2w.clone(), K=K.clone())
    if case == "depth_shape":
        args["depth"] = depth[..., :-1]
    elif case == "rgb_rank":
        args["rgb"] = rgb[0]
    elif case == "no_frames":
        args = dict(rgb=rgb[:0], depth=depth[:0], c2w=c2w[:0], K=K[:0])
    elif case == "c2w_scaled":
        args["c2w"][1, :3, :3] *= 2
    elif case == "c2w_singular":
        args["c2w"][1, :3, :3] = 0
    elif case == "c2w_nan":
        args["c2w"][1, 0, 3] = float("nan")
    elif case == "K_zero_focal":
        args["K"][1, 0, 0] = 0
    elif case == "K_last_row":
        args["K"][1, 2, 2] = 2
    elif case == "K_count":
        args["K"] = K[:1]
    elif case == "mask_dtype":
        args["mask"] = torch.ones_like(depth)
    elif case == "rgb_uint8":
        args["rgb"] = (rgb * 255).to(torch.uint8)
    elif case == "step_negative":
        args["step"] = -1
    elif case == "too_far":
        args["c2w"][1, 0, 3] = 1e5
    with pytest.raises(ValueError) as err:
        sm.insert(**args)
    assert len(str(err.value)) > 10
    assert state_equal(before, sm.state_dict())


def test_bad_render_and_config_input():
    sm = SpatialMemory()
    with pytest.raises(ValueError, match="c2w"):
        sm.render(torch.eye(4), intrinsics(1, 8)[0], 8, 8)
    with pytest.raises(ValueError, match="height"):
        sm.render(torch.eye(4)[None], intrinsics(1, 8), 0, 8)
    with pytest.raises(ValueError, match="views"):
        sm.render(torch.eye(4)[None].repeat(2, 1, 1), intrinsics(1, 8), 8, 8)
    with pytest.raises(ValueError, match="voxel_size_m"):
        SpatialMemory(MemoryConfig(voxel_size_m=0.0))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="gsplat"):
            SpatialMemory(MemoryConfig(render_backend="gsplat"))


# ---------------------------------------------------------------- devices


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rgb, depth, c2w, K = room_frames(3, 32, seed=9)
    cpu, gpu = SpatialMemory(), SpatialMemory(device="cuda")
    cpu.insert(rgb, depth, c2w, K)
    gpu.insert(rgb.cuda(), depth.cuda(), c2w.cuda(), K.cuda())
    assert cpu.num_points == gpu.num_points
    a, b = cpu.render(c2w, K, 32, 32), gpu.render(c2w, K, 32, 32).to("cpu")
    assert (a.mask != b.mask).float().mean() < 0.01


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gsplat_backend_agrees_with_torch_splat():
    pytest.importorskip("gsplat")
    rgb, depth, c2w, K = room_frames(2, 48, seed=10)
    cfg = MemoryConfig(voxel_size_m=0.02, splat_footprint_scale=2.0)
    a = SpatialMemory(cfg, device="cuda")
    b = SpatialMemory(MemoryConfig(voxel_size_m=0.02, render_backend="gsplat"), device="cuda")
    for m in (a, b):
        m.insert(rgb, depth, c2w, K)
    ra, rb = a.render(c2w, K, 48, 48), b.render(c2w, K, 48, 48)
    both = (ra.mask > 0) & (rb.mask > 0)
    assert both.float().mean() > 0.8
    rel = ((ra.depth - rb.depth).abs() / ra.depth.clamp(min=1e-3))[both]
    assert rel.median() < 0.05
