"""The box room fitted to observed frames (memory/layout.py), checked against the analytic box
room it was seen in: its planes, its render at views never observed, and its colours."""

from __future__ import annotations

import copy
import math

import torch
from memory_scenes import (  # noqa: F401 (one_thread: autouse fixture)
    FACE_COLOURS,
    box_room,
    camera_rays,
    intrinsics,
    one_thread,
    yaw_camera,
)

from worldmem.geometry import unproject_depth
from worldmem.memory.layout import (
    CAMERA_MARGIN_M,
    DEFAULT_EXTENT_M,
    DEFAULT_EYE_HEIGHT_M,
    HEAD_ROOM_M,
    OPEN_EXTENT_M,
    OPEN_RISE_M,
    UNSEEN_MARGIN_M,
    BoxLayout,
)
from worldmem.memory.texture import CEILING, FLOOR, WALL, ExemplarTexture, turn_about_y

S = 64
HALF = (3.0, 0.8, 3.0)  # the floor at y = +0.8, the ceiling at -0.8, walls at x, z = +-3


def _frames(cams: torch.Tensor, half=HALF) -> list[tuple]:
    K = intrinsics(len(cams), S)
    rgb, depth = box_room(cams, K, S, S, half=half)
    return [(cams[i], K[i], rgb[i], depth[i, 0]) for i in range(len(cams))]


def _add_block(cams, K, rgb, depth, lo, hi, colour) -> torch.Tensor:
    """Draws an axis-aligned block ``lo``-``hi`` (x, y, z corners) of one ``colour`` into views
    of the room (``rgb (N, 3, S, S)``, ``depth (N, 1, S, S)``, in place) where it is nearer ->
    the point each pixel sees on it ``(N, S, S, 3)`` (NaN off it)."""
    o, d = camera_rays(cams.double(), K.double(), S, S)
    lo, hi = torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)
    safe = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t0, t1 = (lo - o) / safe, (hi - o) / safe
    enter = torch.minimum(t0, t1).amax(-1)
    leave = torch.maximum(t0, t1).amin(-1)
    hit = (enter < leave) & (enter > 0) & (enter < depth[:, 0].double())
    depth[:, 0][hit] = enter[hit].float()
    rgb.permute(0, 2, 3, 1)[hit] = torch.tensor(colour)
    return torch.where(hit[..., None], o + d * enter[..., None], float("nan"))


def _true_kinds(cams: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The true depth ``(N, S, S)`` and kind of surface at each pixel of views of the room."""
    K = intrinsics(len(cams), S)
    _, depth = box_room(cams, K, S, S, half=HALF)
    y = unproject_depth(depth[:, 0], cams, K)[..., 1]
    kind = torch.full(y.shape, WALL, dtype=torch.long)
    kind[(y - HALF[1]).abs() < 1e-4] = FLOOR
    kind[(y + HALF[1]).abs() < 1e-4] = CEILING
    return depth[:, 0], kind


def test_a_room_seen_into_one_corner_is_completed_behind_the_camera():
    """From the room's centre looking into the +x/+z corner, the box has the true floor,
    ceiling and seen walls, and mirrors the walls behind, which it did not see (exact here:
    the camera is at the centre); its render at views turned away from everything seen has
    the room's true depth and kinds, and ``texture_points`` moves the points of every wall
    onto the box's. The seen walls take their own mean colour; the unseen ones halfway between
    the seen walls' mean and a grey as bright as halfway between them and all that was seen."""
    frames = _frames(yaw_camera((0.0, 0.0, 0.0), 45.0)[None])
    box = BoxLayout.from_frames(frames)
    assert abs(box.yaw) < 1e-3
    assert abs(box.floor_y - HALF[1]) < 1e-3 and abs(box.ceiling_y + HALF[1]) < 1e-3
    for side, extent in box.extent.items():
        assert abs(extent - 3.0) < 0.02, (side, extent)
    assert box.seen == {(0, 1): True, (0, -1): False, (2, 1): True, (2, -1): False}

    away = torch.stack([yaw_camera((0.0, 0.0, 0.0), a) for a in (180.0, 225.0, 270.0)])
    c, s = math.cos(math.radians(30.0)), math.sin(math.radians(30.0))
    pitch = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    away[1, :3, :3] = away[1, :3, :3] @ pitch  # and one pitched down 30 degrees
    rgb, depth, kind = box.render(away, intrinsics(3, S), S)
    true_depth, true_kind = _true_kinds(away)
    rel = (depth[:, 0] - true_depth).abs() / true_depth
    assert float(rel.max()) < 0.02
    assert float((kind == true_kind).float().mean()) > 0.98
    # where the laid texture is read: on the box's walls, elsewhere at the frame's own points
    # (here the true points pushed 20% farther: a guess)
    p = unproject_depth(true_depth, away, intrinsics(3, S))
    guess = unproject_depth(true_depth * 1.2, away, intrinsics(3, S))
    at, kind_t = box.texture_points(guess, away, intrinsics(3, S))
    assert torch.equal(kind_t, kind)
    walls = true_kind == WALL
    on_box = (at - p).norm(dim=-1) < 0.02 * true_depth  # on the true walls (mirrored: exact here)
    kept = (at == guess).all(-1)
    assert walls.any() and (~walls).any()
    assert float((on_box == walls).float().mean()) > 0.98
    assert float((kept == ~walls).float().mean()) > 0.98
    # the view the box was fitted to: its seen walls are where they were seen
    seen_view = frames[0][0][None]
    seen_depth, seen_kind = _true_kinds(seen_view)
    view_guess = unproject_depth(seen_depth * 0.8, seen_view, intrinsics(1, S))
    at, _ = box.texture_points(view_guess, seen_view, intrinsics(1, S))
    truth = unproject_depth(seen_depth, seen_view, intrinsics(1, S))
    on_wall = (at - truth).norm(dim=-1) < 0.02 * seen_depth
    assert float((on_wall == (seen_kind == WALL)).float().mean()) > 0.98

    # colours: each kind's observed mean (the checker's two shades averaged over the pixels)
    obs_rgb = frames[0][2]
    obs_depth, obs_kind = _true_kinds(frames[0][0][None])
    floor_mean = obs_rgb[:, obs_kind[0] == FLOOR].mean(1)
    torch.testing.assert_close(box.floor_rgb, floor_mean, atol=0.01, rtol=0)
    x = unproject_depth(obs_depth, frames[0][0][None], intrinsics(1, S))[0, ..., 0]
    plus_x = obs_rgb[:, (obs_kind[0] == WALL) & ((x - HALF[0]).abs() < 1e-4)].mean(1)
    torch.testing.assert_close(box.wall_rgb[(0, 1)], plus_x, atol=0.01, rtol=0)
    assert float((plus_x - FACE_COLOURS[1] * 0.775).abs().max()) < 0.05  # the +x wall's hue
    seen_walls = obs_rgb[:, obs_kind[0] == WALL].mean(1)
    grey = float((0.5 * seen_walls + 0.5 * obs_rgb.reshape(3, -1).mean(1)).mean())
    for side in ((0, -1), (2, -1)):
        want = 0.5 * seen_walls + 0.5 * grey
        torch.testing.assert_close(box.wall_rgb[side], want, atol=0.01, rtol=0)
    floor_px = kind == FLOOR
    assert floor_px.any()
    torch.testing.assert_close(rgb.permute(0, 2, 3, 1)[floor_px][0], box.floor_rgb)


def test_a_wall_is_seen_only_where_its_own_points_are():
    """A wide room seen along +z, its +z wall 2 m ahead: only that wall is ``seen``. The
    floor, ceiling and +z wall points reach 1.5 m towards the +-x walls, which stand there
    (where the points reach: a guess), and the -z wall behind mirrors the +z wall; none of
    the three is seen, so their colour is the unseen walls'."""
    ahead = yaw_camera((0.0, 0.0, 0.0), 0.0)[None]
    box = BoxLayout.from_frames(_frames(ahead, half=(9.0, 0.8, 2.0)))
    assert box.seen == {(0, 1): False, (0, -1): False, (2, 1): True, (2, -1): False}
    assert abs(box.extent[(2, 1)] - 2.0) < 0.02 and abs(box.extent[(2, -1)] - 2.0) < 0.02
    reach = 2.0 * math.tan(math.radians(37.5))  # the +z wall's edge in view: 1.53 m
    for side in ((0, 1), (0, -1)):
        assert 1.0 < box.extent[side] <= reach + 0.01
    for side in ((0, 1), (0, -1), (2, -1)):
        torch.testing.assert_close(box.wall_rgb[side], box.wall_rgb[(0, 1)])
    assert float((box.wall_rgb[(2, 1)] - box.wall_rgb[(0, 1)]).abs().max()) > 0.01


def test_a_pillar_is_not_a_wall():
    """A pillar beside the view shows a face towards +x, but the room's points reach farther
    that way (a wall would hide them): the +x wall is not seen, and its colour is the unseen
    walls', not the pillar's. A true wall glimpsed in a strip at the edge of the view is."""
    cam = yaw_camera((0.0, 0.0, 0.0), 0.0)[None]
    K = intrinsics(1, S)
    rgb, depth = box_room(cam, K, S, S, half=HALF)
    # the pillar: x in [0.6, 1.1], z in [1.5, 2.0], floor to ceiling, one colour
    at = _add_block(cam, K, rgb, depth, (0.6, -HALF[1], 1.5), (1.1, HALF[1], 2.0), (0.9, 0.5, 0.1))
    face = (at[..., 0] - 0.6).abs().lt(1e-6)
    assert int(face.sum()) >= 40  # its -x face, facing back along +x, is in view
    box = BoxLayout.from_frames([(cam[0], K[0], rgb[0], depth[0, 0])])
    assert box.seen == {(0, 1): False, (0, -1): False, (2, 1): True, (2, -1): False}
    torch.testing.assert_close(box.wall_rgb[(0, 1)], box.wall_rgb[(0, -1)])
    # a room whose +x wall shows only from z = 2.6 m to its corner at 3 m, at the view's edge
    rgb, depth = box_room(cam, K, S, S, half=(2.0, HALF[1], 3.0))
    glimpse = BoxLayout.from_frames([(cam[0], K[0], rgb[0], depth[0, 0])])
    assert glimpse.seen == {(0, 1): True, (0, -1): True, (2, 1): True, (2, -1): False}
    assert abs(glimpse.extent[(0, 1)] - 2.0) < 0.05


def test_the_floor_is_under_the_crate_standing_on_it():
    """A wide low crate fills the middle of a view pitched down: its top faces up as the floor
    does and shows more pixels than the floor round it, so the median height of everything
    facing up is the crate's top. The box's floor is the room's (the lowest plane facing up
    that holds a fifth of those pixels) and takes the floor's own colour, not one mixed with
    the crate's top; so does the laid texture's floor plane."""
    cam = yaw_camera((0.0, 0.0, 0.0), 0.0)
    c, s_ = math.cos(math.radians(35.0)), math.sin(math.radians(35.0))
    cam[:3, :3] = cam[:3, :3] @ torch.tensor([[1.0, 0.0, 0.0], [0.0, c, s_], [0.0, -s_, c]])
    cam = cam[None]
    K = intrinsics(1, S)
    rgb, depth = box_room(cam, K, S, S, half=HALF)
    floor_px = unproject_depth(depth[:, 0], cam, K)[0, ..., 1].sub(HALF[1]).abs() < 1e-4
    floor_rgb = rgb[0][:, floor_px].mean(1)  # the whole floor in view, before the crate
    top_y = HALF[1] - 0.4
    at = _add_block(cam, K, rgb, depth, (-2.2, top_y, 0.5), (2.2, HALF[1], 2.9), (0.2, 0.8, 0.3))
    top = (at[0, ..., 1] - top_y).abs() < 1e-6
    floor_left = floor_px & at[0, ..., 1].isnan()  # not hidden by the crate
    assert int(top.sum()) > int(floor_left.sum()) > 100
    box = BoxLayout.from_frames([(cam[0], K[0], rgb[0], depth[0, 0])])
    assert abs(box.floor_y - HALF[1]) < 1e-3
    # the floor's colour: its own pixels' mean (the checker's two shades where the crate left
    # them), not the crate's green
    torch.testing.assert_close(box.floor_rgb, rgb[0][:, floor_left].mean(1), atol=0.01, rtol=0)
    assert float((box.floor_rgb - floor_rgb).abs().max()) < 0.05
    texture = ExemplarTexture.from_frames([(cam[0], K[0], rgb[0], depth[0, 0])])
    assert abs(texture.plane_y[FLOOR] - HALF[1]) < 1e-3


def test_the_depth_of_surfaces_seen_is_the_rooms_and_walls_not_seen_are_told_apart():
    """``seen_depth``: from views walked and turned away from the one the box was fitted to,
    the floor, the ceiling and the two walls that view showed have the true room's depth,
    and exactly the pixels of those surfaces are marked (the walls behind it are the box's
    mirrored guesses); a view pitched down shows no ceiling, so its ceiling is not one."""
    box = BoxLayout.from_frames(_frames(yaw_camera((0.0, 0.0, 0.0), 45.0)[None]))
    assert box.floor_seen and box.ceiling_seen
    views = torch.stack([yaw_camera((1.0, 0.0, -1.0), a) for a in (0.0, 100.0, 200.0, 300.0)])
    depth, seen = box.seen_depth(views, intrinsics(4, S), S)
    true_depth, true_kind = _true_kinds(views)
    points = unproject_depth(true_depth, views, intrinsics(4, S))
    on_seen_wall = ((points[..., 0] - HALF[0]).abs() < 1e-3) | (
        (points[..., 2] - HALF[2]).abs() < 1e-3
    )
    want = (true_kind != WALL) | on_seen_wall
    assert 0.2 < float(want.float().mean()) < 0.9  # both kinds in view
    assert float((seen[:, 0] != want).float().mean()) < 0.01  # the corners' pixels
    both = seen[:, 0] & want
    rel = (depth[:, 0] - true_depth).abs() / true_depth
    assert float(rel[both].max()) < 0.02

    c, s_ = math.cos(math.radians(40.0)), math.sin(math.radians(40.0))
    down = yaw_camera((0.0, 0.0, 0.0), 45.0)
    down[:3, :3] = down[:3, :3] @ torch.tensor([[1.0, 0.0, 0.0], [0.0, c, s_], [0.0, -s_, c]])
    low = BoxLayout.from_frames(_frames(down[None]))
    assert low.floor_seen and not low.ceiling_seen
    up = yaw_camera((0.0, 0.0, 0.0), 45.0)
    up[:3, :3] = up[:3, :3] @ torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s_], [0.0, s_, c]])
    _, seen_up = low.seen_depth(up[None], intrinsics(1, S), S)
    _, _, kind_up = low.render(up[None], intrinsics(1, S), S)
    assert int((kind_up == CEILING).sum()) > 100
    assert not bool(seen_up[:, 0][kind_up == CEILING].any())
    assert bool(seen_up[:, 0][kind_up == WALL].any())  # its walls were seen


def test_a_ceiling_is_never_below_the_walls_seen_rising_out_of_view():
    """A hall's walls rise 8 m: a level view of one 3 m away shows wall to the top of the
    frame and no ceiling. The box's ceiling is above the wall seen, not the default
    ``DEFAULT_EYE_HEIGHT_M`` above the eye, so a view pitched up sees wall where the wall was
    seen and the ceiling only beyond it. A lamp's underside (downward-facing points 1 m above
    the eye, taken for a ceiling) does not pull the ceiling down through the walls either."""
    half = (3.0, 8.0, 3.0)
    cam = yaw_camera((0.0, 0.0, 0.0), 0.0)[None]
    K = intrinsics(1, S)
    rgb, depth = box_room(cam, K, S, S, half=half)
    top = float(unproject_depth(depth[:, 0], cam, K)[..., 1].min())  # the highest wall point
    assert -OPEN_RISE_M < top < -DEFAULT_EYE_HEIGHT_M - 0.5  # as high as a tall room's
    box = BoxLayout.from_frames([(cam[0], K[0], rgb[0], depth[0, 0])])
    assert not box.ceiling_seen and box.unseen_margin == UNSEEN_MARGIN_M
    assert top - 0.05 <= box.ceiling_y <= top + 0.05

    c, s_ = math.cos(math.radians(30.0)), math.sin(math.radians(30.0))
    up = cam.clone()
    up[0, :3, :3] = up[0, :3, :3] @ torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s_], [0.0, s_, c]])
    _, box_depth, kind = box.render(up, K, S)
    _, true_depth = box_room(up, K, S, S, half=half)
    points = unproject_depth(true_depth[:, 0], up, K)
    # the +z wall where the level view saw it: below its top, within its sides
    seen_part = (points[..., 1] > top) & (points[..., 0].abs() < 2.0)
    seen_part &= (points[..., 2] - half[2]).abs() < 1e-3
    assert int(seen_part.sum()) > 200 and int((points[..., 1] < top).sum()) > 200
    assert bool((kind[seen_part] == WALL).all())
    rel = (box_depth[:, 0][seen_part] - true_depth[:, 0][seen_part]).abs() / true_depth[:, 0][
        seen_part
    ]
    assert float(rel.max()) < 0.02

    # a lamp's flat underside 1 m above the eye, 1.5 to 2.5 m ahead: downward-facing points
    o, d = camera_rays(up.double(), K.double(), S, S)
    t = (-1.0 - o[..., 1]) / d[..., 1]
    hit = (t > 0) & ((o + d * t[..., None])[..., 2] - 2.0).abs().lt(0.5)
    hit &= ((o + d * t[..., None])[..., 0]).abs().lt(0.5)
    rgb_up, depth_up = box_room(up, K, S, S, half=half)
    assert int(hit.sum()) >= 40
    depth_up[:, 0][hit] = t[hit].float()  # t is the z-depth (``camera_rays``)
    lamp = BoxLayout.from_frames(
        [(cam[0], K[0], rgb[0], depth[0, 0]), (up[0], K[0], rgb_up[0], depth_up[0, 0])]
    )
    assert lamp.ceiling_seen  # the underside, taken for a ceiling
    assert lamp.ceiling_y <= top + 0.05


def test_walls_rising_higher_than_a_rooms_stand_round_an_open_space():
    """From 12 m across a plaza whose facades rise 12 m, the facade seen rises more than
    ``OPEN_RISE_M`` above the eye, higher than any room's walls: the walls not seen stand at
    least ``OPEN_EXTENT_M`` away, and stay that far ahead of a camera walking towards one
    (where a room's keep ``UNSEEN_MARGIN_M`` ahead: a flat wall in the face)."""
    half = (14.0, 12.0, 8.0)
    cam = yaw_camera((0.0, 0.0, -4.0), 0.0)[None]  # facing +z, the facade 12 m ahead
    K = intrinsics(1, S)
    rgb, depth = box_room(cam, K, S, S, half=half)
    box = BoxLayout.from_frames([(cam[0], K[0], rgb[0], depth[0, 0])])
    assert box.seen == {(0, 1): False, (0, -1): False, (2, 1): True, (2, -1): False}
    assert box.unseen_margin == OPEN_EXTENT_M
    for side, seen in box.seen.items():
        assert seen or box.extent[side] >= OPEN_EXTENT_M
    assert abs(box.extent[(2, 1)] - 12.0) < 0.05  # the facade seen stays where it is
    # walked 6 m towards -x and facing it: the guessed facade is still 10 m ahead
    walked = torch.stack([yaw_camera((x, 0.0, -4.0), -90.0) for x in (0.0, -6.0)])
    _, box_depth, kind = box.render(walked, intrinsics(2, S), S)
    centre = box_depth[:, 0, S // 2, S // 2]
    assert bool((kind[:, S // 2, S // 2] == WALL).all())
    assert float(centre[0]) >= OPEN_EXTENT_M - 0.01 and float(centre[1]) >= OPEN_EXTENT_M - 0.01


def test_a_camera_beyond_the_fitted_walls_stays_inside_its_room():
    """The walls a camera walks past move out to ``CAMERA_MARGIN_M`` beyond it, and the
    ceiling it rises through to ``HEAD_ROOM_M`` above it: every ray meets the room in front
    of the camera, the surface ahead exactly there."""
    frames = _frames(yaw_camera((0.0, 0.0, 1.0), 0.0)[None])  # sees the +z wall 2 m ahead
    box = BoxLayout.from_frames(frames)
    assert abs(box.extent[(2, 1)] - 2.0) < 0.02
    far = yaw_camera((0.0, 0.0, 4.5), 0.0)[None]  # 1.5 m beyond it, looking on
    _, depth, kind = box.render(far, intrinsics(1, S), S)
    assert bool(torch.isfinite(depth).all()) and bool((depth > 0).all())
    centre = depth[0, 0, S // 2 - 1 : S // 2 + 1, S // 2 - 1 : S // 2 + 1]
    torch.testing.assert_close(centre, torch.full_like(centre, CAMERA_MARGIN_M), atol=1e-4, rtol=0)
    assert int(kind[0, S // 2, S // 2]) == WALL
    # risen 2 m through the ceiling (0.8 m above the eye) and looking straight up
    up = yaw_camera((0.0, -2.0, 1.0), 0.0)
    up[:3, :3] = up[:3, :3] @ torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    _, depth, kind = box.render(up[None], intrinsics(1, S), S)
    assert bool(torch.isfinite(depth).all()) and bool((depth > 0).all())
    assert int(kind[0, S // 2, S // 2]) == CEILING
    centre = depth[0, 0, S // 2 - 1 : S // 2 + 1, S // 2 - 1 : S // 2 + 1]
    torch.testing.assert_close(centre, torch.full_like(centre, HEAD_ROOM_M), atol=1e-4, rtol=0)


def test_a_cast_again_at_the_same_cameras_is_the_same_and_a_moved_wall_is_cast_anew():
    """``render``, ``seen_depth`` and ``texture_points`` at one chunk's cameras share one cast;
    a copy of the box with a wall moved, at the same cameras, shows the wall where it now is."""
    box = BoxLayout.from_frames(_frames(yaw_camera((0.0, 0.0, 1.0), 0.0)[None]))
    view, K = yaw_camera((0.0, 0.0, 1.0), 0.0)[None], intrinsics(1, S)
    _, depth, kind = box.render(view, K, S)
    again, seen = box.seen_depth(view.clone(), K.clone(), S)
    assert torch.equal(again, depth) and bool(seen[0, 0, S // 2, S // 2])
    centre = (slice(None), 0, slice(S // 2 - 1, S // 2 + 1), slice(S // 2 - 1, S // 2 + 1))
    torch.testing.assert_close(depth[centre], torch.full((1, 2, 2), 2.0), atol=2e-2, rtol=0)
    moved = copy.copy(box)
    moved.extent = {**box.extent, (2, 1): 3.5}  # the +z wall 3.5 m from the anchor at z = 1
    _, depth_moved, _ = moved.render(view, K, S)
    torch.testing.assert_close(depth_moved[centre], torch.full((1, 2, 2), 3.5), atol=1e-4, rtol=0)
    _, depth_back, _ = box.render(view, K, S)
    assert torch.equal(depth_back, depth)


def test_the_box_does_not_depend_on_how_the_world_is_turned():
    """The room and its cameras turned 25 degrees about y (the frames are the same) give the
    same render at the turned cameras, and the turn is found."""
    cams = torch.stack([yaw_camera((0.5, 0.0, -0.4), 30.0)])
    frames = _frames(cams)
    turn = torch.eye(4)
    turn[:3, :3] = turn_about_y(torch.eye(3), math.radians(25.0)).T
    turned = [(turn @ c, K, rgb, d) for c, K, rgb, d in frames]
    box, box_t = BoxLayout.from_frames(frames), BoxLayout.from_frames(turned)
    assert abs(abs(box_t.yaw - box.yaw) - math.radians(25.0)) < 1e-3
    views = torch.stack([yaw_camera((0.2, 0.1, 0.3), a) for a in (150.0, 260.0)])
    K = intrinsics(2, S)
    a, da, ka = box.render(views, K, S)
    b, db, kb = box_t.render(turn @ views, K, S)
    torch.testing.assert_close(da, db, atol=1e-3, rtol=1e-3)
    assert float((ka == kb).float().mean()) > 0.995
    same_colour = (a - b).abs().amax(1) < 1e-4
    assert float(same_colour.float().mean()) > 0.99


def test_nothing_seen_towards_a_side_or_opposite_it_gives_the_default():
    """Frames without depth give no box; a side nothing reached, nor its opposite, stands
    ``DEFAULT_EXTENT_M`` away; an unseen floor and ceiling fall back around the camera."""
    c2w, K, rgb, depth = _frames(yaw_camera((0.0, 0.0, 0.0), 0.0)[None])[0]
    assert BoxLayout.from_frames([(c2w, K, rgb, torch.zeros_like(depth))]) is None
    # only a strip of the +z wall at eye height: nothing towards +-x beyond 5 cm, no floor
    strip = torch.zeros_like(depth)
    strip[24:40, 31:33] = depth[24:40, 31:33]
    box = BoxLayout.from_frames([(c2w, K, rgb, strip)])
    assert abs(box.extent[(2, 1)] - 3.0) < 0.02 and abs(box.extent[(2, -1)] - 3.0) < 0.02
    assert box.extent[(0, 1)] == box.extent[(0, -1)] == DEFAULT_EXTENT_M
    assert box.floor_y > 0 > box.ceiling_y
