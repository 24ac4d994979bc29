"""The synthetic world generator: analytic depth, multi-view consistency, trajectories in free
space, captions, determinism."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from worldmem.data.synthetic import (
    CLEARANCE_M,
    EYE_HEIGHT_M,
    TRAJECTORY_KINDS,
    WORLD_KINDS,
    Material,
    SceneObject,
    World,
    generate_episode,
    make_trajectory,
    make_world,
)
from worldmem.geometry import intrinsics_from_fov, look_at, project_points, unproject_depth


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _empty_box_world(objects=()):
    """A 10 m x 4 m x 10 m box (x, z in [-5, 5], floor at y = EYE_HEIGHT_M), walls of
    different colours."""
    faces = {
        "x-": Material("plain", "red", "red", 1.0),
        "x+": Material("plain", "green", "green", 1.0),
        "z-": Material("plain", "blue", "blue", 1.0),
        "z+": Material("brick", "yellow", "white", 0.3),
        "floor": Material("checkered", "black", "white", 0.5),
        "ceiling": Material("plain", "white", "white", 1.0),
    }
    lo, hi = (-5.0, EYE_HEIGHT_M - 4.0, -5.0), (5.0, EYE_HEIGHT_M, 5.0)
    return World("room", 0, lo, hi, faces, list(objects), (0.3, 1.0, 0.2), 0.4, "a test box")


def test_camera_facing_a_wall_sees_its_distance_and_the_floor_plane():
    world = _empty_box_world()
    # camera at z = 1 looking along +z at the wall z = 5: z-depth is 4 m at every wall pixel
    c2w = look_at(torch.tensor([0.5, 0.0, 1.0]), torch.tensor([0.5, 0.0, 2.0]))[None]
    K = intrinsics_from_fov(60.0, 33, 33)[None]
    rgb, depth = world.render(c2w, K, 33, 33)
    assert rgb.shape == (1, 3, 33, 33) and depth.shape == (1, 1, 33, 33)
    d = depth[0, 0]
    # rows near the image centre see the wall (the floor is 1.6 m below, the ceiling 2.4 above)
    assert torch.allclose(d[14:19], torch.full_like(d[14:19], 4.0), atol=1e-4)
    # bottom rows see the floor: z-depth = EYE_HEIGHT_M * fy / (v - cy) (pixel centres +0.5)
    fy, cy = float(K[0, 1, 1]), float(K[0, 1, 2])
    v = torch.arange(33, dtype=torch.float32) + 0.5
    floor_z = EYE_HEIGHT_M * fy / (v - cy)
    floor_rows = floor_z < 4.0 - 1e-3
    floor_rows &= v > cy
    expect = floor_z[floor_rows][:, None].expand(-1, 33)
    assert int(floor_rows.sum()) >= 5
    assert torch.allclose(d[floor_rows], expect, rtol=1e-4)
    # the yellow brick wall is yellow-ish, the black/white floor is grey on average
    wall = rgb[0, :, 15:18].mean((1, 2))
    assert wall[0] > wall[2] + 0.1 and wall[1] > wall[2] + 0.1


def test_sphere_and_cylinder_depth_is_analytic():
    # a sphere of radius 0.5 at 3 m, a cylinder of radius 0.4 at 2 m to the side
    sph = SceneObject(
        "sphere",
        "red",
        spheres=[(0.0, 0.0, 3.0, 0.5)],
        materials=[Material("plain", "red", "red", 1)],
    )
    cyl = SceneObject(
        "pillar",
        "blue",
        cylinders=[(2.0, 0.0, 0.4, -2.4, EYE_HEIGHT_M)],
        materials=[Material("plain", "blue", "blue", 1)],
    )
    world = _empty_box_world([sph, cyl])
    eye = torch.zeros(3)
    c2w = torch.stack(
        [look_at(eye, torch.tensor([0.0, 0, 1])), look_at(eye, torch.tensor([1.0, 0, 0]))]
    )
    K = intrinsics_from_fov(20.0, 31, 31).expand(2, 3, 3)
    rgb, depth = world.render(c2w, K, 31, 31)
    # the centre pixel's ray is the optical axis: hits the sphere at z = 2.5 and the cylinder
    # (axis at x = 2, z = 0) at x = 1.6
    assert abs(float(depth[0, 0, 15, 15]) - 2.5) < 1e-4
    assert abs(float(depth[1, 0, 15, 15]) - 1.6) < 1e-4
    assert rgb[0, 0, 15, 15] > rgb[0, 2, 15, 15]  # red sphere
    assert rgb[1, 2, 15, 15] > rgb[1, 0, 15, 15]  # blue pillar
    # is_free agrees with the geometry
    pts = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 2.3], [0.0, 0.0, 2.0], [2.0, 0.0, -0.7]])
    assert world.is_free(pts, 0.25).tolist() == [False, False, True, True]
    assert not world.is_free(pts[3:], 0.35).item()  # 0.3 m from the cylinder
    assert not world.is_free(torch.tensor([[4.9, 0.0, 0.0]]), 0.2).item()  # near a wall


def _sample(img, uv):
    """Bilinear samples of img (C, H, W) at continuous pixel coordinates uv (n, 2) (pixel
    centres at +0.5) -> (C, n)."""
    H, W = img.shape[-2:]
    grid = torch.stack([2 * uv[:, 0] / W - 1, 2 * uv[:, 1] / H - 1], -1)[None, None]
    return torch.nn.functional.grid_sample(img[None], grid, align_corners=False)[0, :, 0]


@pytest.mark.parametrize("world_kind", WORLD_KINDS)
def test_depth_and_colour_reproject_between_frames(world_kind):
    ep = generate_episode(11, 40, image_size=64, world_kind=world_kind, traj_kind="loop")
    rgb = ep.rgb.permute(0, 3, 1, 2).float() / 255  # (N, 3, H, W)
    H = W = 64
    checked = 0
    for i, j in [(0, 2), (10, 12), (20, 23)]:
        pts = unproject_depth(ep.depth[i], ep.c2w[i], ep.K[i]).reshape(-1, 3)  # (HW, 3)
        uv, z = project_points(pts, ep.c2w[j], ep.K[j])
        inside = (uv[:, 0] > 1) & (uv[:, 0] < W - 1) & (uv[:, 1] > 1) & (uv[:, 1] < H - 1)
        inside &= z > 0.05
        # inverse depth is affine in the image over a plane, so it interpolates exactly
        inv_j = _sample(1 / ep.depth[j][None], uv)[0]
        keep = inside & ((inv_j * z - 1).abs() < 0.02)  # visible in j, off depth edges
        # nothing is seen through: no point of frame i lies in front of every surface that
        # frame j shows around its projection
        dmin = -torch.nn.functional.max_pool2d(-ep.depth[j][None, None], 3, 1, 1)[0, 0]
        u, v = uv[:, 0].long().clamp(0, W - 1), uv[:, 1].long().clamp(0, H - 1)
        see_through = inside & (z < dmin[v, u] * 0.97 - 0.05)
        assert see_through.sum() <= 0.005 * inside.sum()
        assert inside.sum() > 0.25 * H * W and keep.sum() > 0.6 * inside.sum()
        # the same surface point has the same colour (up to texture detail between pixels)
        ci = rgb[i].reshape(3, -1)[:, keep]
        err = (ci - _sample(rgb[j], uv[keep])).abs().amax(0)
        assert err.median() < 0.04 and (err < 0.15).float().mean() > 0.85
        # negative control: projecting with a wrong camera breaks the agreement
        uv_bad, _ = project_points(pts[keep], ep.c2w[(j + 8) % 40], ep.K[j])
        bad = (ci - _sample(rgb[j], uv_bad.clamp(0, W))).abs().amax(0)
        assert bad.mean() > 2 * err.mean() + 0.02
        checked += int(keep.sum())
    assert checked > 3000


def test_same_seed_same_episode_and_different_seeds_differ():
    a = generate_episode(5, 6, image_size=32)
    b = generate_episode(5, 6, image_size=32)
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth)
    assert torch.equal(a.c2w, b.c2w) and a.caption == b.caption
    captions = {make_world(s).caption for s in range(12)}
    assert len(captions) == 12
    c = generate_episode(6, 6, image_size=32)
    assert not torch.equal(a.rgb, c.rgb)
    assert {make_world(s).kind for s in range(12)} == set(WORLD_KINDS)


@pytest.mark.parametrize("world_kind", WORLD_KINDS)
def test_trajectories_stay_in_free_space_walk_slowly_and_return(world_kind):
    world = make_world(3, world_kind)
    for kind in TRAJECTORY_KINDS:
        c2w = make_trajectory(world, kind, 96, seed=1)
        assert c2w.shape == (96, 4, 4) and c2w.dtype == torch.float32
        pos = c2w[:, :3, 3]
        # every camera and every midpoint between consecutive cameras is clear of surfaces
        mid = 0.5 * (pos[1:] + pos[:-1])
        assert world.is_free(torch.cat([pos, mid]), CLEARANCE_M - 1e-3).all(), kind
        step = (pos[1:] - pos[:-1]).norm(dim=-1)
        assert step.max() <= 0.151, (kind, float(step.max()))
        fwd = c2w[:, :3, 2]
        turn = torch.rad2deg(torch.acos((fwd[1:] * fwd[:-1]).sum(-1).clamp(-1, 1)))
        assert turn.max() < 10.0, (kind, float(turn.max()))
        # comes back: to the start position, looking the way it first looked
        assert (pos[-1] - pos[0]).norm() < 0.2, kind
        assert math.degrees(math.acos(min(1.0, float(fwd[-1] @ fwd[0])))) < 15, kind
        # the camera stays upright (world up is -y)
        assert (c2w[:, 1, 1] > 0.5).all()


def test_caption_names_the_wall_colours_texture_and_floor():
    for seed in range(9):
        world = make_world(seed)
        walls = [world.faces[f] for f in ("x-", "x+", "z-", "z+")]
        for w in walls:
            assert w.colour in world.caption, (w.colour, world.caption)
        if world.kind != "plaza":
            assert walls[0].phrase().split()[-1] in world.caption
            assert f"{world.faces['floor'].phrase()} floor" in world.caption
        else:
            assert "buildings with windows" in world.caption
        # every counted object kind is named
        for obj in world.objects:
            assert obj.name in world.caption
        # walls differ from each other (views are distinctive)
        assert len({(w.colour, w.texture) for w in walls}) == 4


def test_128_px_episode():
    ep = generate_episode(2, 3, image_size=128, fov_deg=90)
    assert ep.rgb.shape == (3, 128, 128, 3) and ep.rgb.dtype == torch.uint8
    assert ep.depth.shape == (3, 128, 128) and ep.depth.dtype == torch.float32
    assert torch.isfinite(ep.depth).all() and (ep.depth > 0).all()
    assert ep.K.shape == (3, 3, 3) and abs(float(ep.K[0, 0, 0]) - 64.0) < 1e-3
    assert ep.rgb.float().std() > 10  # not a blank image


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="kind"):
        make_world(0, "castle")
    world = make_world(0, "room")
    with pytest.raises(ValueError, match="kind"):
        make_trajectory(world, "teleport", 10, 0)
    with pytest.raises(ValueError, match="num_frames"):
        make_trajectory(world, "loop", 1, 0)
    with pytest.raises(ValueError, match="c2w"):
        world.render(torch.eye(4)[None], intrinsics_from_fov(60.0, 8, 8).expand(2, 3, 3), 8, 8)
    with pytest.raises(ValueError, match="points"):
        world.is_free(torch.zeros(4, 2), 0.1)


def _load_cli():
    path = Path(__file__).resolve().parents[2] / "datasets" / "synthetic.py"
    spec = importlib.util.spec_from_file_location("synthetic_cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_writes_readable_episodes_and_a_split_manifest(tmp_path, capsys):
    from worldmem.data.episode import Episode, read_manifest

    cli = _load_cli()
    cli.main(["--out", str(tmp_path), "--episodes", "3", "--frames", "4", "--size", "32"])
    assert "wrote 3 episodes" in capsys.readouterr().out
    entries = read_manifest(tmp_path)
    assert [e["path"] for e in entries] == ["ep_000000", "ep_000001", "ep_000002"]
    assert [e["split"] for e in entries] == ["train", "train", "val"]
    ep = Episode.open(tmp_path / "ep_000001")
    truth = generate_episode(1, 4, image_size=32)
    assert ep.num_frames == 4 and ep.caption == truth.caption and ep.has_depth
    assert torch.allclose(ep.c2w, truth.c2w, atol=1e-5)
    depth = ep.read_depth([0, 3])[:, 0]
    assert torch.allclose(depth, truth.depth[[0, 3]], rtol=1e-2, atol=1e-2)
    assert cli.num_val(10, 0.1) == 1 and cli.num_val(1, 0.5) == 0 and cli.num_val(20, 0.0) == 0


def test_written_episode_decodes_and_its_depth_and_cameras_agree(tmp_path):
    """Frames decoded by PyAV, depth and cameras from disk: a pixel of frame 0 unprojected with
    its depth and projected into a later frame lands on the same colour (where not occluded)."""
    import av

    from worldmem.data.episode import Episode
    from worldmem.geometry import project_points, unproject_depth

    cli = _load_cli()
    cli.main(["--out", str(tmp_path), "--episodes", "1", "--frames", "12", "--size", "64"])
    folder = tmp_path / "ep_000000"
    with av.open(str(folder / "rgb.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == 12
    ep = Episode.open(folder)
    i, j = 0, 2
    rgb = ep.read_rgb([i, j])
    assert torch.allclose(rgb[0], torch.from_numpy(decoded[0]).permute(2, 0, 1) / 255, atol=1e-6)
    depth = ep.read_depth([i, j])[:, 0]
    pts = unproject_depth(depth[0], ep.c2w[i].float(), ep.K[i].float()).reshape(-1, 3)
    uv, z = project_points(pts, ep.c2w[j].float(), ep.K[j].float())
    u, v = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    inside = (u >= 1) & (u < 63) & (v >= 1) & (v < 63) & (z > 0)
    u, v, z = u[inside], v[inside], z[inside]
    visible = (depth[1][v, u] - z).abs() < 0.03 * z  # not hidden behind another surface
    assert visible.sum() > 500
    src = rgb[0].reshape(3, -1)[:, inside][:, visible]
    dst = rgb[1][:, v[visible], u[visible]]
    assert (src - dst).abs().mean(0).median() < 0.06
    # Negative control: with frame i's camera in place of frame j's, the colours disagree.
    uv_wrong, _ = project_points(pts, ep.c2w[i].float(), ep.K[j].float())
    uw, vw = uv_wrong[inside][visible].floor().long().clamp(0, 63).unbind(-1)
    moved = (uw != u[visible]) | (vw != v[visible])
    assert moved.float().mean() > 0.5
    wrong = rgb[1][:, vw[moved], uw[moved]]
    right_err = (src[:, moved] - dst[:, moved]).abs().mean(0).median()
    assert (src[:, moved] - wrong).abs().mean(0).median() > right_err
