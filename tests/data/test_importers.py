"""Importers: small fixtures in each source's published layout, imported cameras checked
against the poses the fixtures were made from."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from kornia.geometry.conversions import rotation_matrix_to_quaternion
from PIL import Image

from worldmem.data.episode import Episode, read_manifest
from worldmem.geometry import project_points, rotation_x, rotation_y

REPO = Path(__file__).resolve().parents[2]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "datasets" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _known_c2w(n: int) -> np.ndarray:
    """A wandering camera: yaw, pitch and position change every frame. (n, 4, 4) float64."""
    c2w = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        R = rotation_y(torch.tensor(0.2 * i)) @ rotation_x(torch.tensor(0.05 * i - 0.1))
        c2w[i, :3, :3] = R.double().numpy()
        c2w[i, :3, 3] = [0.3 * i, -0.1 * i, 0.5 + 0.2 * i]
    return c2w


def _level(i: int) -> int:
    return 20 + 19 * i  # frame i is painted this grey level (distinct after compression)


def _frame(i: int, w: int, h: int, red_left: int = 0) -> np.ndarray:
    img = np.full((h, w, 3), _level(i), np.uint8)
    img[:, :red_left] = (255, 0, 0)
    return img


def _write_mp4(path: Path, frames: list[np.ndarray], fps: int) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps, options={"crf": "10"})
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuv420p"
        for f in frames:
            for pk in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)


def _levels(ep: Episode) -> list[int]:
    rgb = ep.read_rgb(list(range(ep.num_frames)))
    return [round(float(x) * 255) for x in rgb.mean((1, 2, 3))]


# ---- RealEstate10K --------------------------------------------------------------------------

RE_W, RE_H = 96, 64
RE_INTR = (0.6, 0.9, 0.5, 0.5)  # fx / W, fy / H, cx / W, cy / H


def _re10k_camera_file(path: Path, stamps: list[int], c2w: np.ndarray, url: bool = True) -> None:
    lines = ["https://www.youtube.com/watch?v=abcdefghijk"] if url else []
    for ts, pose in zip(stamps, c2w):
        w2c = np.linalg.inv(pose)[:3]
        nums = [*RE_INTR, 0, 0, *w2c.reshape(-1)]
        lines.append(f"{ts} " + " ".join(f"{v:.9f}" for v in nums))
    path.write_text("\n".join(lines) + "\n")


def _check_re10k_K(K: torch.Tensor) -> None:
    # 96x64 -> centre crop 64x64 (16 columns off the left) -> resize to 32x32 (scale 0.5)
    fx, fy = RE_INTR[0] * RE_W * 0.5, RE_INTR[1] * RE_H * 0.5
    cx, cy = (RE_INTR[2] * RE_W - 16) * 0.5, RE_INTR[3] * RE_H * 0.5
    want = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float32)
    torch.testing.assert_close(K, want.expand_as(K), atol=1e-4, rtol=0)


def test_realestate10k_from_timestamped_frames(tmp_path):
    n = 6
    stamps = [45045000 + 33367 * i for i in range(n)]
    c2w = _known_c2w(n)
    _re10k_camera_file(tmp_path / "clip0.txt", stamps, c2w)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, ts in enumerate(stamps):
        ext = "png" if i % 2 else "jpg"
        Image.fromarray(_frame(i, RE_W, RE_H, red_left=16)).save(frames / f"{ts}.{ext}", quality=98)
    out = tmp_path / "out"
    mod = _script("import_realestate10k")
    argv = ["--cameras", str(tmp_path / "clip0.txt"), "--frames", str(frames), "--out", str(out)]
    assert mod.main([*argv, "--size", "32", "--split", "val"]) == 0
    ep = Episode.open(out / "clip0")
    assert (ep.num_frames, ep.width, ep.height, ep.fps) == (n, 32, 32, 30)
    torch.testing.assert_close(ep.c2w.double(), torch.from_numpy(c2w), atol=1e-5, rtol=0)
    _check_re10k_K(ep.K)
    np.testing.assert_allclose(ep.timestamps, np.array(stamps) / 1e6)
    rgb = ep.read_rgb(list(range(n)))
    assert float((rgb[:, 0] - rgb[:, 1]).abs().max()) < 0.2  # the red strip was cropped away
    assert all(abs(a - _level(i)) <= 4 for i, a in enumerate(_levels(ep)))
    assert read_manifest(out) == [
        dict(path="clip0", split="val", num_frames=n, caption="", source="realestate10k")
    ]

    # every second camera line
    assert mod.main([*argv, "--size", "32", "--stride", "2", "--name", "half"]) == 0
    half = Episode.open(out / "half")
    torch.testing.assert_close(half.c2w.double(), torch.from_numpy(c2w[::2]), atol=1e-5, rtol=0)
    assert [e["path"] for e in read_manifest(out)] == ["clip0", "half"]

    # a missing frame is an error naming the timestamp, unless asked to drop it
    (frames / f"{stamps[3]}.png").unlink()
    with pytest.raises(FileNotFoundError, match=f"first: {stamps[3]}"):
        mod.main([*argv, "--name", "gap"])
    assert mod.main([*argv, "--name", "gap", "--drop-missing"]) == 0
    gap = Episode.open(out / "gap")
    assert gap.num_frames == n - 1 and gap.width == RE_W
    keep = [0, 1, 2, 4, 5]
    torch.testing.assert_close(gap.c2w.double(), torch.from_numpy(c2w[keep]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("url", [True, False])
def test_realestate10k_frames_get_their_own_poses_with_or_without_the_url_line(tmp_path, url):
    """Camera i, its timestamp (the frame file's name) and its pose come from the same line,
    whether or not the file starts with the video URL."""
    n = 4
    stamps = [1_000_000 + 33367 * i for i in range(n)]
    c2w = _known_c2w(n)
    _re10k_camera_file(tmp_path / "clip.txt", stamps, c2w, url=url)
    mod = _script("import_realestate10k")
    assert mod.camera_timestamps_us(tmp_path / "clip.txt") == stamps
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, ts in enumerate(stamps):
        Image.fromarray(_frame(i, RE_W, RE_H)).save(frames / f"{ts}.png")
    out = tmp_path / "out"
    argv = ["--cameras", str(tmp_path / "clip.txt"), "--frames", str(frames), "--out", str(out)]
    assert mod.main(argv) == 0
    ep = Episode.open(out / "clip")
    assert ep.num_frames == n
    torch.testing.assert_close(ep.c2w.double(), torch.from_numpy(c2w), atol=1e-5, rtol=0)
    np.testing.assert_allclose(ep.timestamps, np.array(stamps) / 1e6)
    assert all(abs(a - _level(i)) <= 4 for i, a in enumerate(_levels(ep)))  # frame i is image i


def test_realestate10k_from_video_picks_nearest_frames(tmp_path):
    fps, n_video = 30, 12
    _write_mp4(tmp_path / "clip1.mp4", [_frame(i, RE_W, RE_H) for i in range(n_video)], fps)
    wanted = [1, 4, 7, 10]  # stamps slightly off the frame times: the nearest frame is taken
    stamps = [round(k * 1e6 / fps) + (5000 if k % 2 else -5000) for k in wanted]
    c2w = _known_c2w(len(wanted))
    _re10k_camera_file(tmp_path / "clip1.txt", stamps, c2w)
    out = tmp_path / "out"
    mod = _script("import_realestate10k")
    argv = ["--cameras", str(tmp_path / "clip1.txt"), "--video", str(tmp_path / "clip1.mp4")]
    assert mod.main([*argv, "--out", str(out), "--size", "32"]) == 0
    ep = Episode.open(out / "clip1")
    torch.testing.assert_close(ep.c2w.double(), torch.from_numpy(c2w), atol=1e-5, rtol=0)
    _check_re10k_K(ep.K)
    assert all(abs(a - _level(k)) <= 4 for a, k in zip(_levels(ep), wanted)), _levels(ep)
    assert ep.fps == 10

    _re10k_camera_file(tmp_path / "late.txt", [*stamps, 2_000_000], _known_c2w(5))
    with pytest.raises(ValueError, match="the video ends at"):
        mod.main(
            [
                "--cameras",
                str(tmp_path / "late.txt"),
                "--video",
                str(tmp_path / "clip1.mp4"),
                "--out",
                str(out),
            ]
        )


# ---- COLMAP ---------------------------------------------------------------------------------


def test_colmap_text_model(tmp_path):
    n, w, h = 4, 48, 32
    c2w = _known_c2w(n)
    model, images = tmp_path / "sparse" / "0", tmp_path / "images"
    model.mkdir(parents=True)
    images.mkdir()
    (model / "cameras.txt").write_text(
        "# Camera list with one line of data per camera:\n"
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
        f"1 PINHOLE {w} {h} 40.0 41.0 24.5 15.5\n"
        f"2 OPENCV {w} {h} 38.0 39.0 23.0 16.0 0.01 -0.002 0.0 0.0\n"
    )
    lines = ["# Image list with two lines of data per image:", "# Number of images: 4"]
    for i in [2, 0, 3, 1]:  # not in name order
        w2c = np.linalg.inv(c2w[i])
        q = rotation_matrix_to_quaternion(torch.from_numpy(w2c[:3, :3])).tolist()  # w x y z
        cam = 1 if i < 2 else 2
        t = w2c[:3, 3]
        lines.append(
            f"{10 + i} " + " ".join(f"{v:.12f}" for v in [*q, *t]) + f" {cam} im_{i:03d}.png"
        )
        lines.append("" if i % 2 else "12.5 3.0 -1 20.0 7.5 42")  # 2D points (may be empty)
        Image.fromarray(_frame(i, w, h)).save(images / f"im_{i:03d}.png")
    (model / "images.txt").write_text("\n".join(lines) + "\n")

    out = tmp_path / "out"
    mod = _script("import_colmap")
    argv = ["--model", str(model), "--images", str(images), "--out", str(out), "--name", "scene"]
    with pytest.warns(UserWarning, match="OPENCV with distortion"):
        assert mod.main([*argv, "--caption", "a kitchen"]) == 0
    ep = Episode.open(out / "scene")
    assert (ep.num_frames, ep.width, ep.height, ep.caption) == (n, w, h, "a kitchen")
    torch.testing.assert_close(ep.c2w.double(), torch.from_numpy(c2w), atol=1e-5, rtol=0)
    K1 = torch.tensor([[40.0, 0, 24.5], [0, 41.0, 15.5], [0, 0, 1]])
    K2 = torch.tensor([[38.0, 0, 23.0], [0, 39.0, 16.0], [0, 0, 1]])
    torch.testing.assert_close(ep.K, torch.stack([K1, K1, K2, K2]))
    assert all(abs(a - _level(i)) <= 4 for i, a in enumerate(_levels(ep)))

    (model / "cameras.txt").write_text(f"1 FULL_OPENCV {w} {h} 40 40 24 16 0 0 0 0 0 0 0 0\n")
    with pytest.raises(ValueError, match="cameras.txt:1: camera model FULL_OPENCV"):
        mod.main(argv)


# ---- generic folder -------------------------------------------------------------------------


def _gl_look_at(eye, target) -> np.ndarray:
    """OpenGL/Blender c2w (x right, y up, camera looks along -z), world up +y here."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, eye
    return m


def test_folder_with_opengl_poses_fov_and_depth(tmp_path):
    w, h = 40, 30
    src = tmp_path / "capture"
    (src / "rgb").mkdir(parents=True)
    (src / "depth").mkdir()
    eyes = [(0, 0, 0), (1, 0.5, 0), (2, 0, 1)]
    target = np.array([0.5, 0.2, 4.0])
    frames = []
    for i, eye in enumerate(eyes):
        Image.fromarray(_frame(i, w, h)).save(src / "rgb" / f"{i:04d}.png")
        d = np.full((h, w), 1.5 + i, np.float32)
        d[0, 0] = 0
        if i == 1:
            np.save(src / "depth" / f"{i:04d}.npy", d)
        else:
            Image.fromarray((d * 1000).astype(np.uint16)).save(src / "depth" / f"{i:04d}.png")
        f = {"file": f"rgb/{i:04d}.png", "c2w": _gl_look_at(eye, target).tolist()}
        if i == 2:
            f["fov_deg"] = 90.0
        else:
            f["K"] = [[30.0, 0, 20.0], [0, 30.0, 15.0], [0, 0, 1]]
        frames.append(f)
    meta = {"convention": "opengl", "fps": 5, "caption": "a test scene", "frames": frames[::-1]}
    (src / "poses.json").write_text(json.dumps(meta))

    out = tmp_path / "out"
    assert _script("import_folder").main(["--input", str(src), "--out", str(out)]) == 0
    ep = Episode.open(out / "capture")
    assert (ep.num_frames, ep.width, ep.height, ep.fps) == (3, w, h, 5)
    assert ep.caption == "a test scene" and ep.has_depth
    # OpenCV: the camera looks along +z, so the target projects to the principal point
    uv, z = project_points(torch.tensor(target, dtype=torch.float32).expand(3, 1, 3), ep.c2w, ep.K)
    torch.testing.assert_close(uv[:, 0], ep.K[:, :2, 2], atol=1e-3, rtol=0)
    assert bool((z > 0).all())
    # world up (+y in this capture) is the camera's -y (image up) in OpenCV
    assert bool((ep.c2w[:, 1, 1] < 0).all())
    torch.testing.assert_close(ep.c2w[:, :3, 3], torch.tensor(eyes, dtype=torch.float32))
    assert math.isclose(float(ep.K[2, 0, 0]), w / 2, rel_tol=1e-5)  # 90 degrees: f = W / 2
    depth = ep.read_depth([0, 1, 2])
    for i in range(3):
        assert float(depth[i, 0, 0, 0]) == 0
        assert abs(float(depth[i, 0, 5, 5]) - (1.5 + i)) < 2e-3


def test_folder_errors_name_the_frame(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    Image.fromarray(_frame(0, 8, 8)).save(src / "a.png")
    (src / "poses.json").write_text(
        json.dumps({"frames": [{"file": "a.png", "c2w": np.eye(4).tolist()}]})
    )
    with pytest.raises(ValueError, match="'a.png'.*needs 'K' or 'fov_deg'"):
        _script("import_folder").main(["--input", str(src), "--out", str(tmp_path / "o")])
    skew = np.eye(4)
    skew[0, 1] = 0.5
    (src / "poses.json").write_text(
        json.dumps({"fov_deg": 60, "frames": [{"file": "a.png", "c2w": skew.tolist()}]})
    )
    with pytest.raises(ValueError, match="pose 0 is not a rotation"):
        _script("import_folder").main(["--input", str(src), "--out", str(tmp_path / "o")])


# ---- Minecraft ------------------------------------------------------------------------------


def _mc_look(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Minecraft's own look vector (x, y, z) for a yaw and pitch (its getLookVec formula)."""
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    return np.array([-math.sin(y) * math.cos(p), -math.sin(p), math.cos(y) * math.cos(p)])


def _mc_to_world(p: np.ndarray) -> np.ndarray:
    return np.array([-p[0], -p[1], p[2]])


MC_POSES = [  # x, y, z, pitch, yaw
    (0.0, 64.0, 0.0, 0.0, 0.0),
    (3.0, 65.0, -2.0, 0.0, 90.0),
    (-1.0, 70.0, 4.0, 0.0, 180.0),
    (0.5, 64.0, 0.5, 0.0, -90.0),
    (0.0, 64.0, 0.0, 30.0, 0.0),
    (2.0, 66.0, 1.0, -45.0, 45.0),
]


def test_minecraft_poses_analytic(tmp_path):
    w, h = 64, 36
    n = len(MC_POSES)
    rec = tmp_path / "rec"
    rec.mkdir()
    # one pose fewer than frames: WorldMem's poses belong to frames 1..N
    _write_mp4(rec / "run_01.mp4", [_frame(i, w, h) for i in range(n + 1)], fps=20)
    np.savez(rec / "run_01.npz", poses=np.array(MC_POSES), actions=np.zeros((n + 1, 8)))
    out = tmp_path / "out"
    mod = _script("import_minecraft")
    assert mod.main(["--input", str(rec), "--out", str(out), "--caption", "plains"]) == 0
    ep = Episode.open(out / "run_01")
    assert (ep.num_frames, ep.width, ep.height, ep.fps) == (n, w, h, 20)
    assert all(abs(a - _level(i + 1)) <= 4 for i, a in enumerate(_levels(ep)))
    f = 0.5 * h / math.tan(math.radians(35))  # vertical fov 70
    torch.testing.assert_close(ep.K[0], torch.tensor([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]))

    forward = ep.c2w[:, :3, 2].double().numpy()
    # yaw 90 faces Minecraft -x; yaw 180 faces -z; yaw -90 faces +x (expressed in worldmem)
    np.testing.assert_allclose(forward[1], _mc_to_world(np.array([-1.0, 0, 0])), atol=1e-6)
    np.testing.assert_allclose(forward[2], _mc_to_world(np.array([0, 0, -1.0])), atol=1e-6)
    np.testing.assert_allclose(forward[3], _mc_to_world(np.array([1.0, 0, 0])), atol=1e-6)
    for i, (x, y, z, pitch, yaw) in enumerate(MC_POSES):
        eye = np.array([x, y + 1.62, z])
        look = _mc_look(yaw, pitch)
        right = np.array([-math.cos(math.radians(yaw)), 0, -math.sin(math.radians(yaw))])
        pts_mc = [eye + 5 * look, eye + 5 * look + right, eye + 5 * look + np.array([0, 1, 0])]
        pts = torch.tensor(np.stack([_mc_to_world(p) for p in pts_mc]), dtype=torch.float32)
        uv, depth = project_points(pts, ep.c2w[i], ep.K[i])
        torch.testing.assert_close(uv[0], torch.tensor([w / 2, h / 2]), atol=1e-3, rtol=0)
        assert abs(float(depth[0]) - 5) < 1e-4
        assert float(uv[1, 0]) > w / 2 + 1  # Minecraft's right is the image's right
        assert float(uv[2, 1]) < h / 2 - 1  # Minecraft's up is the image's up
    # pitch 30 looks down: Minecraft -y, worldmem +y
    assert forward[4][1] > 0.49


def test_minecraft_pose_count_mismatch(tmp_path):
    _write_mp4(tmp_path / "r.mp4", [_frame(i, 32, 32) for i in range(5)], fps=10)
    np.savez(tmp_path / "r.npz", poses=np.zeros((8, 5)))
    with pytest.raises(ValueError, match="8 poses for 5 video frames"):
        _script("import_minecraft").main(
            ["--input", str(tmp_path / "r.mp4"), "--out", str(tmp_path / "o")]
        )


@pytest.mark.parametrize(
    "name",
    ["import_realestate10k", "import_colmap", "import_folder", "import_minecraft", "mine_revisits"],
)
def test_cli_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        _script(name).main(["--help"])
    assert e.value.code == 0
    assert "--out" in capsys.readouterr().out or name == "mine_revisits"


# ---- hostile input: one line naming the file (and line), exit code 1, no traceback -----------


def _folder_capture(tmp_path, frames: list[dict] | None = None) -> Path:
    src = tmp_path / "cap"
    src.mkdir()
    Image.fromarray(_frame(0, 8, 8)).save(src / "a.png")
    frames = frames or [{"file": "a.png", "c2w": np.eye(4).tolist()}]
    (src / "poses.json").write_text(json.dumps({"fov_deg": 60, "frames": frames}))
    return src


def _run_cli(name: str, argv: list[str], capsys) -> tuple[int, str]:
    from worldmem.data.importers import run_importer

    code = run_importer(_script(name).main, argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("file", ["../outside.png", "/etc/hostname", "sub/../../outside.png"])
def test_folder_frame_paths_must_stay_inside_the_input(tmp_path, capsys, file):
    Image.fromarray(_frame(0, 8, 8)).save(tmp_path / "outside.png")
    src = _folder_capture(tmp_path, [{"file": file, "c2w": np.eye(4).tolist()}])
    code, err = _run_cli(
        "import_folder", ["--input", str(src), "--out", str(tmp_path / "o")], capsys
    )
    assert code == 1
    assert f"error: {src / 'poses.json'} frame {file!r}: {file!r} is outside {src}" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("link", ["a_link.png", "up/outside.png"])
def test_folder_frame_paths_through_a_symlink_out_of_the_input_are_refused(tmp_path, capsys, link):
    Image.fromarray(_frame(0, 8, 8)).save(tmp_path / "outside.png")
    src = _folder_capture(tmp_path, [{"file": link, "c2w": np.eye(4).tolist()}])
    (src / "a_link.png").symlink_to(tmp_path / "outside.png")  # the frame itself
    (src / "up").symlink_to(tmp_path)  # a folder on the way
    code, err = _run_cli(
        "import_folder", ["--input", str(src), "--out", str(tmp_path / "o")], capsys
    )
    assert code == 1
    assert f"error: {src / 'poses.json'} frame {link!r}: {link!r} is outside {src}" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "poses, message",
    [
        ('{"frames": [1, 2', r"poses.json: cannot read \(.*line 1 column"),
        ("[1, 2]", r"poses.json: expected a JSON object, got list"),
        ('{"frames": [5]}', r"poses.json: frame 0 must be an object with a 'file' string"),
        ('{"frames": [{"file": 3}]}', r"frame 0 must be an object with a 'file' string"),
        ('{"fps": "fast", "frames": [{"file": "a.png"}]}', r"'fps' must be a number"),
        ('{"fov_deg": 60, "frames": [{"file": "a.png", "c2w": "eye"}]}', r"'c2w' must be a"),
    ],
)
def test_folder_bad_poses_json_names_the_file(tmp_path, capsys, poses, message):
    src = _folder_capture(tmp_path)
    (src / "poses.json").write_text(poses)
    code, err = _run_cli(
        "import_folder", ["--input", str(src), "--out", str(tmp_path / "o")], capsys
    )
    assert code == 1 and err.startswith("error: ")
    assert re.search(message, err), err


def test_folder_damaged_image_and_depth_name_the_file(tmp_path, capsys):
    src = _folder_capture(tmp_path)
    png = (src / "a.png").read_bytes()
    (src / "a.png").write_bytes(png[: len(png) // 2])  # truncated
    code, err = _run_cli(
        "import_folder", ["--input", str(src), "--out", str(tmp_path / "o")], capsys
    )
    assert code == 1 and f"error: {src / 'a.png'}: cannot read" in err
    (src / "a.png").write_bytes(png)
    (src / "depth").mkdir()
    (src / "depth" / "a.npy").write_bytes(b"\x93NUMPY garbage")
    code, err = _run_cli(
        "import_folder", ["--input", str(src), "--out", str(tmp_path / "o")], capsys
    )
    assert code == 1 and f"error: {src / 'depth' / 'a.npy'}: cannot read" in err


def test_colmap_image_names_must_stay_inside_the_images_folder(tmp_path, capsys):
    model = tmp_path / "sparse"
    model.mkdir()
    (tmp_path / "images").mkdir()
    (model / "cameras.txt").write_text("1 PINHOLE 8 8 8 8 4 4\n")
    (model / "images.txt").write_text("1 1 0 0 0 0 0 0 1 ../secret.png\n\n")
    argv = ["--model", str(model), "--images", str(tmp_path / "images"), "--out", str(tmp_path)]
    code, err = _run_cli("import_colmap", argv, capsys)
    assert code == 1 and "'../secret.png' is outside" in err


def test_minecraft_damaged_npz_and_video_name_the_file(tmp_path, capsys):
    _write_mp4(tmp_path / "r.mp4", [_frame(i, 32, 32) for i in range(5)], fps=10)
    np.savez_compressed(tmp_path / "r.npz", poses=np.zeros((5, 5)))
    data = bytearray((tmp_path / "r.npz").read_bytes())
    data[len(data) // 3 : len(data) // 3 + 16] = bytes(16)
    (tmp_path / "r.npz").write_bytes(bytes(data))
    argv = ["--input", str(tmp_path / "r.mp4"), "--out", str(tmp_path / "o")]
    code, err = _run_cli("import_minecraft", argv, capsys)
    assert code == 1 and f"error: {tmp_path / 'r.npz'}" in err
    np.savez(tmp_path / "r.npz", poses=np.zeros((5, 5)))
    video = (tmp_path / "r.mp4").read_bytes()
    (tmp_path / "r.mp4").write_bytes(video[:200])
    code, err = _run_cli("import_minecraft", argv, capsys)
    assert code == 1 and f"error: {tmp_path / 'r.mp4'}" in err


# ---- episode names: one folder name under --out, checked before anything is written ---------


def _importer_input(name: str, src: Path, stem: str = "rec") -> list[str]:
    """A small valid input for importer ``name`` in ``src`` -> its arguments (without --out)."""
    src.mkdir(parents=True, exist_ok=True)
    if name == "import_folder":
        return ["--input", str(_folder_capture(src))]
    if name == "import_colmap":
        (src / "images").mkdir()
        Image.fromarray(_frame(0, 8, 8)).save(src / "images" / "a.png")
        (src / "cameras.txt").write_text("1 PINHOLE 8 8 8 8 4 4\n")
        (src / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n")
        return ["--model", str(src), "--images", str(src / "images")]
    if name == "import_minecraft":
        _write_mp4(src / f"{stem}.mp4", [_frame(i, 32, 32) for i in range(3)], fps=10)
        np.savez(src / f"{stem}.npz", poses=np.zeros((3, 5)))
        return ["--input", str(src / f"{stem}.mp4")]
    stamps = [1_000_000, 1_100_000]
    _re10k_camera_file(src / f"{stem}.txt", stamps, _known_c2w(2))
    (src / "frames" / stem).mkdir(parents=True, exist_ok=True)  # stem ".." is src itself
    for i, ts in enumerate(stamps):
        Image.fromarray(_frame(i, RE_W, RE_H)).save(src / "frames" / stem / f"{ts}.png")
    return ["--cameras", str(src / f"{stem}.txt"), "--frames", str(src / "frames" / stem)]


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


IMPORTERS = ["import_folder", "import_colmap", "import_minecraft", "import_realestate10k"]


@pytest.mark.parametrize("importer", IMPORTERS)
@pytest.mark.parametrize(
    "name",
    ["../x", "TMP/x", "sub/x", "..", ".", "a\\b", "a\0b", "line\nbreak", "x" * 256],
)
def test_an_episode_name_that_is_not_one_folder_name_is_refused_before_writing(
    tmp_path, capsys, importer, name
):
    argv = _importer_input(importer, tmp_path / "src")
    name = name.replace("TMP", str(tmp_path))  # an absolute path
    out = tmp_path / "data" / "out"
    before = _files(tmp_path)
    code, err = _run_cli(importer, [*argv, "--out", str(out), "--name", name], capsys)
    assert code == 1
    assert f"error: --name: episode name {name!r} is not a single folder name (" in err
    assert _files(tmp_path) == before  # nothing written, inside --out or outside it
    # the same input under a good name imports
    assert _run_cli(importer, [*argv, "--out", str(out), "--name", "good"], capsys)[0] == 0
    assert Episode.open(out / "good").num_frames >= 1


@pytest.mark.parametrize("importer", ["import_minecraft", "import_realestate10k"])
@pytest.mark.parametrize("stem", ["..", "z\x01"])
def test_an_episode_name_taken_from_a_file_name_is_checked_for_every_file_first(
    tmp_path, capsys, importer, stem
):
    """A folder of inputs names each episode by its file: one whose name is not one folder
    name (``...mp4`` -> ``..``) is refused, naming the file, before any episode is written."""
    src = tmp_path / "src"
    _importer_input(importer, src, "a")
    _importer_input(importer, src, stem)
    bad = src / f"{stem}.{'mp4' if importer == 'import_minecraft' else 'txt'}"
    if importer == "import_minecraft":
        argv = ["--input", str(src)]
    else:
        argv = ["--cameras", str(src), "--frames", str(src / "frames")]
    out = tmp_path / "data" / "out"
    before = _files(tmp_path)
    code, err = _run_cli(importer, [*argv, "--out", str(out)], capsys)
    assert code == 1
    assert f"error: {bad}: episode name {stem!r} is not a single folder name (" in err
    assert _files(tmp_path) == before
