"""Keyboard actions: analytic motion per key, the pitch clamp, roll kept, bad keys."""

import math

import pytest
import torch

from worldmem.config import ActionConfig
from worldmem.geometry import (
    KEYS,
    apply_action,
    apply_actions,
    c2w_to_pose,
    check_c2w,
    pose_to_c2w,
    rotation_y,
    rotation_z,
)

CFG = ActionConfig(move_m=0.5, turn_deg=10.0, max_pitch_deg=60.0)
EYE = torch.eye(4)


def position(c2w):
    return c2w[..., :3, 3]


def forward(c2w):
    return c2w[..., :3, 2]


def vec(*xs):
    return torch.tensor(xs, dtype=torch.float32)


def test_pose_zero_is_the_identity_and_angles_point_as_documented():
    torch.testing.assert_close(pose_to_c2w([0.0, 0, 0], 0.0, 0.0), EYE)
    # yaw +90: looking along +x, the camera's right is -z (y still down)
    want = torch.tensor([[0.0, 0, 1, 2], [0, 1, 0, 3], [-1, 0, 0, 4], [0, 0, 0, 1]])
    torch.testing.assert_close(pose_to_c2w([2.0, 3, 4], 90.0, 0.0), want)
    # pitch +30 looks up (toward -y)
    s, c = math.sin(math.radians(30)), math.cos(math.radians(30))
    torch.testing.assert_close(forward(pose_to_c2w([0.0, 0, 0], 0.0, 30.0)), vec(0, -s, c))
    # yaw +30 heads right of +z (toward +x)
    torch.testing.assert_close(forward(pose_to_c2w([0.0, 0, 0], 30.0, 0.0)), vec(s, 0, c))


def test_pose_round_trip_on_random_batches():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(6, 3, generator=g)
    yaw = torch.rand(6, generator=g) * 359.0 - 179.0
    pitch = torch.rand(6, generator=g) * 170.0 - 85.0
    c2w = pose_to_c2w(pos, yaw, pitch)
    check_c2w(c2w)
    p2, y2, t2 = c2w_to_pose(c2w)
    torch.testing.assert_close(p2, pos)
    torch.testing.assert_close(y2, yaw, atol=1e-3, rtol=0)
    torch.testing.assert_close(t2, pitch, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="pitch_deg"):
        pose_to_c2w([0.0, 0, 0], 0.0, 95.0)
    with pytest.raises(ValueError, match=r"position: expected shape \(\.\.\., 3\)"):
        pose_to_c2w([0.0, 0], 0.0, 0.0)


@pytest.mark.parametrize(
    "key,delta",
    [
        ("w", (0, 0, 0.5)),
        ("s", (0, 0, -0.5)),
        ("a", (-0.5, 0, 0)),
        ("d", (0.5, 0, 0)),
        ("q", (0, -0.5, 0)),
        ("space", (0, -0.5, 0)),
        ("e", (0, 0.5, 0)),
        ("shift", (0, 0.5, 0)),
        ("idle", (0, 0, 0)),
        ("left", (0, 0, 0)),
        ("up", (0, 0, 0)),
    ],
)
def test_each_key_moves_along_its_axis_from_the_identity(key, delta):
    out = apply_action(EYE, key, CFG)
    torch.testing.assert_close(position(out), vec(*delta))


def test_turn_keys_rotate_the_optical_axis_as_documented():
    s, c = math.sin(math.radians(10)), math.cos(math.radians(10))
    torch.testing.assert_close(forward(apply_action(EYE, "right", CFG)), vec(s, 0, c))
    torch.testing.assert_close(forward(apply_action(EYE, "left", CFG)), vec(-s, 0, c))
    torch.testing.assert_close(forward(apply_action(EYE, "up", CFG)), vec(0, -s, c))
    torch.testing.assert_close(forward(apply_action(EYE, "down", CFG)), vec(0, s, c))


def test_forward_after_a_right_quarter_turn_moves_plus_x_and_strafe_right_minus_z():
    path = apply_actions(EYE, ["right"] * 9 + ["w", "d"], CFG)
    torch.testing.assert_close(forward(path[8]), vec(1, 0, 0))
    torch.testing.assert_close(position(path[9]), vec(0.5, 0, 0))
    torch.testing.assert_close(position(path[10]), vec(0.5, 0, -0.5))


def test_moves_stay_on_the_ground_plane_when_looking_up_or_down():
    for pitch in (45.0, -45.0):
        start = pose_to_c2w([1.0, 2, 3], 90.0, pitch)
        torch.testing.assert_close(position(apply_action(start, "w", CFG)), vec(1.5, 2, 3))
        torch.testing.assert_close(position(apply_action(start, "a", CFG)), vec(1, 2, 3.5))


def test_pitch_is_clamped_and_never_moves_against_the_key():
    ups = apply_actions(EYE, ["up"] * 10, CFG)
    pitch = c2w_to_pose(ups)[2]
    torch.testing.assert_close(pitch, torch.tensor([10.0, 20, 30, 40, 50, 60, 60, 60, 60, 60]))
    downs = c2w_to_pose(apply_actions(EYE, ["down"] * 8, CFG))[2]
    assert float(downs.min()) == pytest.approx(-60.0, abs=1e-4)
    # a camera from data beyond the clamp: "up" holds, "down" comes back in by one step
    steep = pose_to_c2w([0.0, 0, 0], 0.0, 75.0)
    assert float(c2w_to_pose(apply_action(steep, "up", CFG))[2]) == pytest.approx(75.0, abs=1e-4)
    assert float(c2w_to_pose(apply_action(steep, "down", CFG))[2]) == pytest.approx(65.0, abs=1e-4)


def test_a_camera_with_roll_keeps_it_and_turns_about_the_world_vertical():
    rolled = torch.eye(4)
    rolled[:3, :3] = rotation_y(math.radians(20)) @ rotation_z(math.radians(15))
    rolled[:3, 3] = vec(1, 2, 3)
    torch.testing.assert_close(apply_action(rolled, "idle", CFG), rolled)
    turned = apply_action(rolled, "right", CFG)
    # yawing is a rotation about the world y axis through the camera centre: R -> R_y(10) R
    want = rotation_y(math.radians(10)) @ rolled[:3, :3]
    torch.testing.assert_close(turned[:3, :3], want, atol=1e-6, rtol=0)
    moved = apply_action(rolled, "w", CFG)
    torch.testing.assert_close(moved[:3, :3], rolled[:3, :3], atol=1e-6, rtol=0)
    s, c = math.sin(math.radians(20)), math.cos(math.radians(20))
    torch.testing.assert_close(position(moved), vec(1 + 0.5 * s, 2, 3 + 0.5 * c))


def test_apply_actions_is_apply_action_repeated_and_keeps_dtype():
    keys = ["w", "right", "up", "a", "e", "left", "s", "down", "idle", "space"]
    start = pose_to_c2w([0.5, -1, 2], 30.0, 10.0).double()
    path = apply_actions(start, keys, CFG)
    assert path.shape == (len(keys), 4, 4) and path.dtype == torch.float64
    c = start
    for i, key in enumerate(keys):
        c = apply_action(c, key, CFG)
        torch.testing.assert_close(path[i], c)
    assert apply_actions(start, [], CFG).shape == (0, 4, 4)


def test_a_long_random_walk_stays_rigid():
    g = torch.Generator().manual_seed(1)
    keys = [KEYS[int(i)] for i in torch.randint(len(KEYS), (1000,), generator=g)]
    path = apply_actions(pose_to_c2w([0.0, 0, 0], 10.0, 5.0), keys, ActionConfig())
    check_c2w(path, atol=1e-5)
    assert bool((c2w_to_pose(path)[2].abs() <= ActionConfig().max_pitch_deg + 1e-3).all())


def test_unknown_key_names_it_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown action key 'jump'.*valid keys: w, s, a, d"):
        apply_action(EYE, "jump", CFG)
    with pytest.raises(ValueError, match="'W'"):
        apply_actions(EYE, ["w", "W"], CFG)
    with pytest.raises(ValueError, match="expected a list of action keys"):
        apply_actions(EYE, "wasd", CFG)


def test_bad_camera_or_config_is_rejected():
    with pytest.raises(ValueError, match=r"expected shape \(4, 4\)"):
        apply_action(torch.eye(4)[None].repeat(2, 1, 1), "w", CFG)
    bad = torch.eye(4)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        apply_action(bad, "w", CFG)
    with pytest.raises(ValueError, match="max_pitch_deg"):
        apply_action(EYE, "w", ActionConfig(max_pitch_deg=95.0))
