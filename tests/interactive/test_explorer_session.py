"""Session without any UI: keys move the camera as the keymap says; video, map and PLY."""

from __future__ import annotations

import io
import math

import av
import numpy as np
import pytest
import torch
from conftest import make_tiny_pipeline
from plyfile import PlyData

from worldmem.config import ActionConfig
from worldmem.interactive.session import Session, fork_pipeline

MOVE = ActionConfig().move_m
TURN = ActionConfig().turn_deg


@pytest.fixture(scope="module")
def template():
    return make_tiny_pipeline()


@pytest.fixture
def session(template):
    s = Session(template)
    s.start("a brick corridor", seed=1)
    return s


def assert_pose(frame, position, yaw_deg, pitch_deg=0.0):
    assert np.allclose(frame.pose.position, position, atol=1e-4), frame.pose
    assert math.isclose(frame.pose.yaw_deg, yaw_deg, abs_tol=1e-3), frame.pose
    assert math.isclose(frame.pose.pitch_deg, pitch_deg, abs_tol=1e-3), frame.pose


def test_w_moves_forward_along_the_heading_after_turning_right(session):
    frames = session.step(["right", "right", "right", "w", "w"])
    yaw = 3 * TURN  # yaw > 0 is a right turn: the heading moves from +z toward +x
    assert [f.key for f in frames] == ["right", "right", "right", "w", "w"]
    assert_pose(frames[2], (0, 0, 0), yaw)
    heading = np.array([math.sin(math.radians(yaw)), 0.0, math.cos(math.radians(yaw))])
    assert_pose(frames[3], MOVE * heading, yaw)
    assert_pose(frames[4], 2 * MOVE * heading, yaw)
    assert session.pose == frames[-1].pose


def test_left_arrow_yaws_left_and_strafe_and_vertical_keys_move_as_the_keymap_says(session):
    keys = ["left", "d", "a", "q", "shift", "up", "down", "s", "idle"]
    f = session.step(keys)
    assert [x.key for x in f] == keys
    yaw = math.radians(-TURN)  # the left arrow turns left: yaw < 0
    right_axis = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])  # ground-plane right
    back = -MOVE * np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    assert_pose(f[0], (0, 0, 0), -TURN)
    assert_pose(f[1], MOVE * right_axis, -TURN)  # d strafes right
    assert_pose(f[2], (0, 0, 0), -TURN)  # a strafes left
    assert_pose(f[3], (0, -MOVE, 0), -TURN)  # q moves up: -y (world y points down)
    assert_pose(f[4], (0, 0, 0), -TURN)  # shift moves down
    assert_pose(f[5], (0, 0, 0), -TURN, TURN)  # the up arrow looks up: pitch > 0
    assert_pose(f[6], (0, 0, 0), -TURN, 0.0)
    assert_pose(f[7], back, -TURN)  # s moves back along the heading
    assert_pose(f[8], back, -TURN)  # idle holds the pose


def test_frames_are_images_with_consecutive_indices(session):
    frames = session.step(["w", "w", "w"])
    assert [f.index for f in frames] == [1, 2, 3]  # frame 0 came from start
    S = session.image_size
    for f in frames:
        assert f.rgb.dtype == np.uint8 and f.rgb.shape == (S, S, 3)
        assert f.depth.shape == (S, S) and np.isfinite(f.depth).all()
        assert f.memory_rgb.shape == (S, S, 3) and f.memory_mask.shape == (S, S)
    # the second frame looks at a place the first one already put into the spatial memory
    assert frames[-1].memory_mask.any()


def test_reset_returns_to_the_start_pose_and_keeps_the_memories(session):
    session.step(["w", "w", "left", "w"])
    points = session.world.spatial.num_points
    frame = session.reset()[0]
    assert frame.key == "reset"
    assert_pose(frame, (0, 0, 0), 0.0)
    assert frame.index == 5 and session.frame_count == 6
    assert session.world.spatial.num_points >= points > 0
    assert frame.memory_mask.mean() > 0.5  # the start view was remembered


def test_video_is_capped_and_decodes_to_the_kept_frames():
    # a random model whose frames differ clearly from one step to the next (working memory
    # only, strong output weights), so a decoded frame can be told from its neighbours
    pipe = make_tiny_pipeline()
    with torch.no_grad():
        torch.nn.init.normal_(pipe.model.decoder.out.weight, std=1.0)
    s = Session(pipe, max_video_frames=5, memory="working")
    s.start("a plaza", seed=2)
    frames = s.step(["w"] * 7)
    video = s.video_frames()
    assert video.shape == (5, s.image_size, s.image_size, 3)
    assert np.array_equal(video, np.stack([f.rgb for f in frames[-5:]]))  # oldest dropped
    assert len(s.camera_path()) == 5
    with av.open(io.BytesIO(s.video_mp4())) as c:  # a real decoder reads it back
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert decoded.shape == video.shape

    # H.264 keeps colour at half resolution: compare 4x4-pixel block means, and check each
    # decoded frame is nearest to its own source frame (the order is kept)
    def blocks(x):
        T, H, W, C = x.shape
        return x.astype(float).reshape(T, H // 4, 4, W // 4, 4, C).mean((2, 4))

    dist = np.abs(blocks(decoded)[:, None] - blocks(video)[None]).mean((2, 3, 4))
    assert np.diag(dist).max() < 12
    assert (dist.argmin(1) == np.arange(5)).all()


def test_ply_export_holds_the_spatial_memory(session, tmp_path):
    session.step(["w", "right"])
    path = tmp_path / "memory.ply"
    path.write_bytes(session.memory_ply())
    vertex = PlyData.read(str(path))["vertex"]
    assert vertex.count == session.world.spatial.num_points > 0
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], 1)
    assert np.allclose(xyz, session.world.spatial.xyz.cpu().numpy(), atol=1e-5)


def test_insets_and_map(session):
    session.step(["w", "w"])
    insets = session.insets()
    S = session.image_size
    assert insets["depth"].shape == (S, S, 3) and insets["memory"].shape == (S, S, 3)
    assert insets["map"].shape == (session.map_size_px, session.map_size_px, 3)
    assert insets["map"].std() > 0  # points and the camera path are drawn


def test_sessions_share_the_model_but_not_the_world(template):
    a, b = Session(template), Session(template)
    assert a.pipe.model is b.pipe.model is template.model
    assert a.pipe.codec is b.pipe.codec
    assert a.world.spatial is not b.world.spatial and a.world.working is not b.world.working
    a.start("a corridor", seed=0)
    b.start("a plaza", seed=5)
    a.step(["w", "w", "w"])
    assert b.frame_count == 1 and b.pose.position == (0.0, 0.0, 0.0)
    assert a.frame_count == 4 and a.pose.position[2] > 0
    assert template.frame_count == 0  # the shared pipeline's own world is untouched


def test_a_forked_pipeline_shares_the_model_and_has_a_world_of_its_own(template):
    fork = fork_pipeline(template)
    assert fork.model is template.model and fork.sampler is template.sampler
    assert fork.state is not template.state and fork.spatial is not template.spatial
    s = Session(fork)
    s.start("a corridor", seed=0)
    assert s.frame_count == 1 and fork.frame_count == 0 == template.frame_count


def test_bad_use_is_a_clear_error(template):
    s = Session(fork_pipeline(template))
    with pytest.raises(ValueError, match="start"):
        s.step("w")
    s.start("x")
    with pytest.raises(ValueError, match="'jump'"):
        s.step(["w", "jump"])
    with pytest.raises(ValueError, match="non-empty"):
        s.step([])
    with pytest.raises(ValueError, match="max_video_frames"):
        Session(fork_pipeline(template), max_video_frames=0)
    with pytest.raises(ValueError, match="WorldPipeline"):
        fork_pipeline("not a pipeline")


def test_a_world_can_begin_from_the_start_frame():
    """from_image: the start frame and its depth enter the memory as observed, so the frame
    generated at the start pose is given that image as its memory render."""
    from worldmem.interactive.session import StartFrame

    pipe = make_tiny_pipeline()
    S = pipe.size
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, S, S, generator=g)
    depth = torch.full((1, S, S), 2.0)
    plain = Session(fork_pipeline(pipe))
    with pytest.raises(ValueError, match="no start frame"):
        plain.start("a room", from_image=True)
    s = Session(fork_pipeline(pipe), start_frame=StartFrame(image, depth, "a room"))
    [first] = s.start("a room", seed=0, from_image=True)
    assert bool(s.world.spatial.observed.all()) and len(s.world.spatial) == S * S
    assert first.memory_mask.all()
    mem = torch.from_numpy(first.memory_rgb).permute(2, 0, 1).float() / 255
    assert (mem - image).abs().max() < 1.5 / 255  # the render at the start camera is the image
    [prompt_only] = s.start("a room", seed=0)  # and without it: an empty memory
    assert not prompt_only.memory_mask.any()
