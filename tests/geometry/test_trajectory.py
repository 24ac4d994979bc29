"""Trajectories: files (JSON, RealEstate10K), the text language, revisit builders."""

import json
import math
import random

import pytest
import torch

from worldmem.config import ActionConfig
from worldmem.geometry import (
    REVISIT_TRAJECTORIES,
    STEP_NAMES,
    Trajectory,
    TrajectoryStep,
    c2w_to_pose,
    check_c2w,
    format_trajectory,
    intrinsics_from_fov,
    load_realestate10k,
    look_around_and_return,
    loop,
    orbit,
    out_and_back,
    parse_trajectory,
    pose_to_c2w,
    project_points,
    rotation_y,
    rotation_z,
    save_realestate10k,
    trajectory_from_text,
)

CFG = ActionConfig(move_m=0.15, turn_deg=6.0, max_pitch_deg=80.0)
K64 = intrinsics_from_fov(75.0, 64, 64)


def small_trajectory(n=4, timestamps=True) -> Trajectory:
    c2w = pose_to_c2w(torch.arange(n * 3.0).reshape(n, 3), torch.linspace(-50, 170, n), 10.0)
    ts = torch.arange(n, dtype=torch.float64) / 30 if timestamps else None
    return Trajectory(c2w=c2w, K=K64, width=64, height=64, timestamps=ts)


# ---------------------------------------------------------------------------------------------
# The container and its files


def test_trajectory_validates_and_names_the_bad_pose():
    c2w = torch.eye(4).repeat(4, 1, 1)
    c2w[2, 1, 3] = float("nan")
    with pytest.raises(ValueError, match="pose 2 has NaN"):
        Trajectory(c2w=c2w, K=K64, width=64, height=64)
    c2w = torch.eye(4).repeat(3, 1, 1)
    c2w[1, :3, :3] *= 1.1  # scaled, not a rotation
    with pytest.raises(ValueError, match="pose 1 is not a rigid transform"):
        Trajectory(c2w=c2w, K=K64, width=64, height=64)
    with pytest.raises(ValueError, match=r"Trajectory.K: expected shape \(3, 3, 3\)"):
        Trajectory(c2w=torch.eye(4).repeat(3, 1, 1), K=K64.repeat(2, 1, 1), width=64, height=64)
    with pytest.raises(ValueError, match="Trajectory.width"):
        Trajectory(c2w=torch.eye(4)[None], K=K64, width=64.0, height=64)
    with pytest.raises(ValueError, match=r"timestamps: expected shape \(1,\)"):
        Trajectory(c2w=torch.eye(4)[None], K=K64, width=64, height=64, timestamps=[0.0, 1.0])
    t = Trajectory(c2w=torch.eye(4, dtype=torch.float64)[None], K=K64, width=64, height=64)
    assert t.c2w.dtype == torch.float32 and t.K.shape == (1, 3, 3) and len(t) == 1


@pytest.mark.parametrize("timestamps", [True, False])
def test_json_round_trip(tmp_path, timestamps):
    t = small_trajectory(timestamps=timestamps)
    back = Trajectory.load_json(t.save_json(tmp_path / "t.json"))
    torch.testing.assert_close(back.c2w, t.c2w, atol=0, rtol=0)
    torch.testing.assert_close(back.K, t.K, atol=0, rtol=0)
    assert (back.width, back.height) == (64, 64)
    if timestamps:
        torch.testing.assert_close(back.timestamps, t.timestamps)
    else:
        assert back.timestamps is None


def test_json_with_a_nan_pose_names_the_file_and_frame(tmp_path):
    path = small_trajectory().save_json(tmp_path / "t.json")
    data = json.loads(path.read_text())
    data["frames"][2]["c2w"][0][3] = float("nan")  # written as the NaN literal
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"t\.json: frame 2: 'c2w' has NaN"):
        Trajectory.load_json(path)


def test_json_with_a_skewed_or_malformed_frame_names_it(tmp_path):
    data = json.loads(small_trajectory().save_json(tmp_path / "t.json").read_text())
    data["frames"][3]["c2w"][0][1] = 0.5
    (tmp_path / "skew.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"skew\.json: .*pose 3 is not a rigid transform"):
        Trajectory.load_json(tmp_path / "skew.json")
    data["frames"][1]["K"] = [[1, 0], [0, 1]]
    (tmp_path / "k.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"k\.json: frame 1: 'K' must be a 3x3 list"):
        Trajectory.load_json(tmp_path / "k.json")
    del data["frames"][0]["timestamp"]
    del data["frames"][1]["K"]
    (tmp_path / "nok.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"nok\.json: frame 1 has no 'K'"):
        Trajectory.load_json(tmp_path / "nok.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        Trajectory.load_json(tmp_path / "bad.json")
    (tmp_path / "nowidth.json").write_text(json.dumps({"height": 4, "frames": []}))
    with pytest.raises(ValueError, match="missing key.*width"):
        Trajectory.load_json(tmp_path / "nowidth.json")


# The published RealEstate10K layout: URL line, then timestamp_us fx fy cx cy 0 0 and a
# row-major 3x4 world-to-camera matrix, intrinsics normalised by the image size. Three cameras:
#  0: the identity
#  1: w2c translation (-1, -2, -3): the camera centre is at (1, 2, 3), axes aligned
#  2: w2c = [[0,0,-1,0],[0,1,0,0],[1,0,0,-2]]: centre at (2, 0, 0) looking along world +x
RE10K_FIXTURE = (
    "https://www.youtube.com/watch?v=0123456789a\n"
    "52052000 0.500000 0.888889 0.500000 0.500000 0.000000 0.000000 "
    "1.0 0.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 0.0 1.0 0.0\n"
    "52085367 0.500000 0.888889 0.500000 0.500000 0.000000 0.000000 "
    "1.0 0.0 0.0 -1.0 0.0 1.0 0.0 -2.0 0.0 0.0 1.0 -3.0\n"
    "52118733 0.500000 0.888889 0.510000 0.490000 0.000000 0.000000 "
    "0.0 0.0 -1.0 0.0 0.0 1.0 0.0 0.0 1.0 0.0 0.0 -2.0\n"
)


def test_realestate10k_fixture_reads_back_known_poses(tmp_path):
    path = tmp_path / "0123456789a.txt"
    path.write_text(RE10K_FIXTURE)
    t = load_realestate10k(path, width=640, height=360)
    assert len(t) == 3 and (t.width, t.height) == (640, 360)
    torch.testing.assert_close(t.c2w[0], torch.eye(4))
    want1 = torch.eye(4)
    want1[:3, 3] = torch.tensor([1.0, 2, 3])
    torch.testing.assert_close(t.c2w[1], want1)
    want2 = torch.tensor([[0.0, 0, 1, 2], [0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1]])
    torch.testing.assert_close(t.c2w[2], want2)
    # fx = 0.5 * 640 = 320 px, fy = 0.888889 * 360 = 320 px, cx = 0.51 * 640, cy = 0.49 * 360
    torch.testing.assert_close(
        t.K[2], torch.tensor([[320.0, 0, 326.4], [0, 320.0, 176.4], [0, 0, 1]]), atol=1e-3, rtol=0
    )
    torch.testing.assert_close(
        t.timestamps, torch.tensor([52.052, 52.085367, 52.118733], dtype=torch.float64)
    )
    # camera 2 sees the world point (5, 0, 0) at its principal point, 3 m away
    uv, z = project_points(torch.tensor([[5.0, 0, 0]]), t.c2w[2], t.K[2])
    torch.testing.assert_close(uv[0], torch.tensor([326.4, 176.4]))
    torch.testing.assert_close(z, torch.tensor([3.0]))


def test_realestate10k_round_trip_and_malformed_lines(tmp_path):
    t = small_trajectory()
    back = load_realestate10k(save_realestate10k(t, tmp_path / "cams.txt"), 64, 64)
    torch.testing.assert_close(back.c2w, t.c2w, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.K, t.K)
    torch.testing.assert_close(back.timestamps, t.timestamps, atol=1e-6, rtol=0)
    lines = (tmp_path / "cams.txt").read_text().splitlines()
    assert lines[0].startswith("https://") and all(len(x.split()) == 19 for x in lines[1:])
    (tmp_path / "short.txt").write_text(
        lines[0] + "\n" + lines[1] + "\n" + " ".join(lines[2].split()[:15])
    )
    with pytest.raises(ValueError, match=r"short\.txt:3: expected 19 numbers.*got 15"):
        load_realestate10k(tmp_path / "short.txt", 64, 64)
    (tmp_path / "empty.txt").write_text(lines[0] + "\n")
    with pytest.raises(ValueError, match="no camera lines"):
        load_realestate10k(tmp_path / "empty.txt", 64, 64)


# ---------------------------------------------------------------------------------------------
# The trajectory language


def test_parse_the_documented_example():
    steps = parse_trajectory("w*20 left*45  w*10\tback-to-start")
    assert steps == [
        TrajectoryStep("w", 20),
        TrajectoryStep("left", 45),
        TrajectoryStep("w", 10),
        TrajectoryStep("back-to-start"),
    ]
    assert format_trajectory(steps) == "w*20 left*45 w*10 back-to-start"
    assert parse_trajectory("") == [] and parse_trajectory("  \n ") == []


def test_parse_format_round_trip_on_random_programs():
    rng = random.Random(0)
    for _ in range(50):
        steps = [
            TrajectoryStep(rng.choice(STEP_NAMES), rng.choice([None, 1, 2, 17, 300]))
            for _ in range(rng.randint(1, 8))
        ]
        text = format_trajectory(steps)
        assert parse_trajectory(text) == steps
        assert format_trajectory(parse_trajectory(text)) == text


@pytest.mark.parametrize(
    "text,token,column,why",
    [
        ("w*3 jump*2", "jump*2", 5, "unknown name 'jump'"),
        ("w*0", "w*0", 1, r"count must be in \[1, 100000\], got 0"),
        ("w*2 a*x", "a*x", 5, "positive integer, got 'x'"),
        ("left w**3", "w**3", 6, r"positive integer, got '\*3'"),
        ("w*-3", "w*-3", 1, "positive integer, got '-3'"),
        ("w* 3", "w*", 1, "positive integer, got ''"),
        ("  *3", "*3", 3, "unknown name ''"),
        ("d W", "W", 3, "unknown name 'W'"),
        ("w*2.5", "w*2.5", 1, "positive integer, got '2.5'"),
        ("w*999999999", "w*999999999", 1, r"count must be in \[1, 100000\]"),
        ("w*3\nright  x", "x", 8, "unknown name 'x'"),
    ],
)
def test_malformed_steps_quote_the_token_and_its_column(text, token, column, why):
    where = f"column {column}" if "\n" not in text else f"line 2, column {column}"
    pattern = rf"trajectory step '{__import__('re').escape(token)}' at {where}: .*{why}"
    with pytest.raises(ValueError, match=pattern):
        parse_trajectory(text)


def test_unknown_name_error_lists_the_valid_names():
    with pytest.raises(ValueError, match="valid names: w, s, a, d, .*back-to-start"):
        parse_trajectory("x")
    with pytest.raises(ValueError, match="count must be an integer"):
        TrajectoryStep("w", 0)
    with pytest.raises(ValueError, match="unknown step 'fly'"):
        TrajectoryStep("fly")


def test_trajectory_from_text_moves_as_the_keys_say():
    start = pose_to_c2w([1.0, 0, 0], 90.0, 0.0)  # looking along +x
    t = trajectory_from_text("w*4 pause*2 right*15 w*2", start, K64, 64, 64, CFG)
    assert len(t) == 1 + 4 + 2 + 15 + 2
    torch.testing.assert_close(t.c2w[0], start)
    xs = t.c2w[:5, 0, 3]
    torch.testing.assert_close(xs, torch.tensor([1.0, 1.15, 1.3, 1.45, 1.6]))
    torch.testing.assert_close(t.c2w[5], t.c2w[4])  # pause holds
    torch.testing.assert_close(t.c2w[6], t.c2w[4])
    # 15 right turns of 6 degrees: from +x to -z; then two steps along -z
    torch.testing.assert_close(t.c2w[21, :3, 2], torch.tensor([0.0, 0, -1]), atol=1e-6, rtol=0)
    torch.testing.assert_close(t.c2w[-1, :3, 3], torch.tensor([1.6, 0, -0.3]), atol=1e-6, rtol=0)
    check_c2w(t.c2w)
    assert t.timestamps is None and t.K.shape == (len(t), 3, 3)


def test_back_to_start_default_frames_follow_the_configured_speed():
    t = trajectory_from_text("w*20 left*15 w*10 back-to-start", torch.eye(4), K64, 64, 64, CFG)
    # after w*20, a quarter turn left and w*10 the camera is at (-1.5, 0, 3) facing -x:
    # 3.354 m back at 0.15 m per frame needs 23 frames (90 degrees at 6 per frame needs 15)
    assert math.ceil(math.hypot(3.0, 1.5) / 0.15) == 23
    assert len(t) == 1 + 20 + 15 + 10 + 23
    torch.testing.assert_close(t.c2w[45, :3, 3], torch.tensor([-1.5, 0, 3.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(t.c2w[-1], torch.eye(4), atol=1e-6, rtol=0)
    steps = (t.c2w[46:, :3, 3] - t.c2w[45:-1, :3, 3]).norm(dim=-1)
    assert float(steps.max()) <= 0.15 + 1e-6
    torch.testing.assert_close(steps, steps.mean().expand_as(steps), atol=1e-5, rtol=0)


def test_back_to_start_with_a_count_interpolates_and_turns_the_short_way():
    start = pose_to_c2w([0.0, -1, 0], 0.0, 10.0)
    # 40 right turns of 6 degrees = 240 degrees: the short way back is 120 degrees further right
    t = trajectory_from_text("right*40 w*4 up*3 back-to-start*6", start, K64, 64, 64, CFG)
    assert len(t) == 1 + 40 + 4 + 3 + 6
    _, yaw, pitch = c2w_to_pose(t.c2w[47:])
    dyaw = torch.remainder(yaw[1:] - yaw[:-1], 360.0)
    torch.testing.assert_close(dyaw, torch.full((6,), 20.0), atol=1e-3, rtol=0)
    torch.testing.assert_close(pitch, torch.linspace(28.0, 10.0, 7), atol=1e-3, rtol=0)
    torch.testing.assert_close(t.c2w[-1], start, atol=1e-6, rtol=0)
    mid = t.c2w[50, :3, 3]
    torch.testing.assert_close(mid, (t.c2w[47, :3, 3] + start[:3, 3]) / 2, atol=1e-6, rtol=0)


def test_trajectory_from_text_keeps_the_roll_of_the_start_camera():
    start = torch.eye(4)
    start[:3, :3] = rotation_y(0.3) @ rotation_z(0.2)
    t = trajectory_from_text("a*3 left*5 back-to-start", start, K64, 64, 64, CFG)
    # the right axis keeps the same angle to the ground plane in every frame
    tilt = t.c2w[:, 1, 0]  # y component of the camera's right axis
    torch.testing.assert_close(tilt, torch.full_like(tilt, math.sin(0.2)), atol=1e-6, rtol=0)
    torch.testing.assert_close(t.c2w[-1], start, atol=1e-6, rtol=0)


def test_trajectory_from_text_reports_bad_inputs():
    with pytest.raises(ValueError, match=r"'w\*0' at column 3"):
        trajectory_from_text("s w*0", torch.eye(4), K64, 64, 64, CFG)
    with pytest.raises(ValueError, match=r"K: expected shape \(3, 3\)"):
        trajectory_from_text("w", torch.eye(4), K64[None], 64, 64, CFG)
    with pytest.raises(ValueError, match=r"start_c2w: expected shape \(4, 4\)"):
        trajectory_from_text("w", torch.eye(4)[None], K64, 64, 64, CFG)


# ---------------------------------------------------------------------------------------------
# Ready-made revisit trajectories


@pytest.mark.parametrize("name", sorted(REVISIT_TRAJECTORIES))
def test_revisit_builders_return_to_the_start(name):
    start = pose_to_c2w([0.5, -1.0, 2.0], 40.0, -15.0)
    t = REVISIT_TRAJECTORIES[name](37, start_c2w=start, fov_deg=60.0, width=48, height=32)
    assert isinstance(t, Trajectory) and len(t) == 37 and (t.width, t.height) == (48, 32)
    check_c2w(t.c2w, atol=1e-5)
    torch.testing.assert_close(t.c2w[0], start, atol=1e-5, rtol=0)
    torch.testing.assert_close(t.c2w[-1], start, atol=1e-5, rtol=0)
    assert float((t.c2w[1:] - t.c2w[:-1]).abs().amax(dim=(1, 2)).min()) > 0  # it moves
    torch.testing.assert_close(t.K, intrinsics_from_fov(60.0, 48, 32).expand(37, 3, 3))


def test_out_and_back_reaches_the_distance_and_faces_back():
    t = out_and_back(21, distance_m=3.0)
    torch.testing.assert_close(t.c2w[8, :3, 3], torch.tensor([0.0, 0, 3]), atol=1e-5, rtol=0)
    torch.testing.assert_close(t.c2w[10, :3, 2], torch.tensor([0.0, 0, -1]), atol=1e-5, rtol=0)
    assert float(t.c2w[:, 1, 3].abs().max()) == 0  # stays at the same height


def test_loop_is_a_circle_walked_forward():
    t = loop(61, radius_m=2.0)
    centre = torch.tensor([2.0, 0, 0])  # to the right of the start camera
    torch.testing.assert_close((t.c2w[:, :3, 3] - centre).norm(dim=-1), torch.full((61,), 2.0))
    step = t.c2w[1:, :3, 3] - t.c2w[:-1, :3, 3]
    assert bool(((step * t.c2w[:-1, :3, 2]).sum(-1) > 0).all())  # moves the way it looks


def test_orbit_always_looks_at_its_centre():
    start = pose_to_c2w([1.0, -0.5, 0.0], -30.0, -20.0)
    t = orbit(25, radius_m=2.5, start_c2w=start, fov_deg=60.0, width=48, height=32)
    centre = start[:3, 3] + 2.5 * start[:3, 2]
    uv, z = project_points(centre.expand(25, 1, 3), t.c2w, t.K)
    torch.testing.assert_close(
        uv[:, 0], torch.tensor([24.0, 16.0]).expand(25, 2), atol=1e-3, rtol=0
    )
    torch.testing.assert_close(z[:, 0], torch.full((25,), 2.5), atol=1e-5, rtol=0)
    half = orbit(9, arc_deg=180.0, radius_m=2.0)
    torch.testing.assert_close(half.c2w[-1, :3, 3], torch.tensor([0.0, 0, 4.0]), atol=1e-5, rtol=0)


def test_look_around_stays_in_place_and_sweeps():
    t = look_around_and_return(41, sweep_deg=60.0, tilt_deg=10.0)
    assert float(t.c2w[:, :3, 3].abs().max()) == 0
    _, yaw, pitch = c2w_to_pose(t.c2w)
    assert float(yaw.max()) == pytest.approx(60.0, abs=1e-3)
    assert float(yaw.min()) == pytest.approx(-60.0, abs=1e-3)
    assert float(pitch.max()) == pytest.approx(10.0, abs=1e-3)


def test_builders_reject_bad_arguments():
    with pytest.raises(ValueError, match="num_frames"):
        loop(1)
    with pytest.raises(ValueError, match="radius_m"):
        orbit(10, radius_m=-1.0)
    with pytest.raises(ValueError, match="distance_m"):
        out_and_back(10, distance_m=float("nan"))
