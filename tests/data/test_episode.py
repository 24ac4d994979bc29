"""The episode format: write, validate, seek-read, and clear errors for broken folders."""

from __future__ import annotations

import json
import multiprocessing as mp
import pickle
import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from worldmem.data.episode import (
    GOP_FRAMES,
    Episode,
    EpisodeError,
    episode_folder,
    read_manifest,
    read_poses,
    update_manifest,
    write_episode,
    write_manifest,
)
from worldmem.geometry import intrinsics_from_fov, rotation_y

N, H, W = 40, 64, 64


def _frames(n=N, h=H, w=W) -> np.ndarray:
    """Smooth moving colour patterns: uint8 (n, h, w, 3), each frame distinct."""
    t = np.arange(n)[:, None, None]
    yy, xx = np.mgrid[0:h, 0:w]
    r = 128 + 90 * np.sin(xx / 9 + 0.4 * t)
    g = 128 + 90 * np.cos(yy / 7 - 0.3 * t)
    b = 128 + 90 * np.sin((xx + yy) / 11 + 0.2 * t)
    return np.stack([r, g, b], -1).astype(np.uint8)


def _cameras(n=N):
    c2w = torch.eye(4).repeat(n, 1, 1)
    c2w[:, :3, :3] = rotation_y(torch.linspace(0, 1, n))
    c2w[:, 0, 3] = torch.arange(n) * 0.1
    K = intrinsics_from_fov(75.0, W, H).expand(n, 3, 3).clone()
    return c2w, K


def _decode_all(path: Path) -> np.ndarray:
    """Independent truth: a plain sequential decode of the whole file."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def episode_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("eps") / "ep0"
    c2w, K = _cameras()
    depth = np.full((N, H, W), 2.5, np.float32)
    depth[:, 0, 0] = np.nan  # unknown pixels
    depth[:, 0, 1] = 0.0
    write_episode(folder, _frames(), c2w, K, "a sunny test corridor", depth=depth, fps=12)
    return folder


def _copy_episode(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_round_trip_metadata_cameras_and_depth(episode_dir):
    ep = Episode.open(episode_dir)
    c2w, K = _cameras()
    assert (ep.num_frames, ep.height, ep.width, ep.fps) == (N, H, W, 12)
    assert ep.caption == "a sunny test corridor"
    assert ep.has_depth
    torch.testing.assert_close(ep.c2w, c2w, atol=1e-6, rtol=0)
    torch.testing.assert_close(ep.K, K, atol=1e-5, rtol=0)
    np.testing.assert_allclose(ep.timestamps, np.arange(N) / 12)
    d = ep.read_depth([3, 0])
    assert d.shape == (2, 1, H, W) and d.dtype == torch.float32
    assert d[0, 0, 0, 0] == 0 and d[0, 0, 0, 1] == 0  # NaN and 0 both stored as unknown
    assert torch.allclose(d[:, :, 1:], torch.tensor(2.5))


def test_read_poses_gives_the_written_cameras_without_the_video(episode_dir, tmp_path):
    c2w, K = _cameras()
    got_c2w, got_K = read_poses(episode_dir)
    torch.testing.assert_close(got_c2w, c2w, atol=1e-6, rtol=0)
    torch.testing.assert_close(got_K, K, atol=1e-5, rtol=0)
    alone = tmp_path / "cameras_only"  # no video, no caption: the cameras are all it reads
    alone.mkdir()
    (alone / "cameras.json").write_bytes((Path(episode_dir) / "cameras.json").read_bytes())
    torch.testing.assert_close(read_poses(alone)[0], got_c2w)
    (alone / "cameras.json").unlink()
    with pytest.raises(EpisodeError, match="cameras.json is missing"):
        read_poses(alone)


def test_rgb_matches_source_within_codec_error(episode_dir):
    ep = Episode.open(episode_dir)
    x = ep.read_rgb(list(range(N)))
    assert x.shape == (N, 3, H, W) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    src = torch.from_numpy(_frames()).permute(0, 3, 1, 2).float() / 255
    # Most of the error is yuv420p's half-resolution chroma, not the crf-17 compression.
    assert float((x - src).abs().mean()) < 5 / 255


def test_seek_read_equals_sequential_decode(episode_dir):
    ep = Episode.open(episode_dir)
    full = torch.from_numpy(_decode_all(episode_dir / "rgb.mp4")).permute(0, 3, 1, 2) / 255
    assert full.shape[0] == N
    rng = np.random.default_rng(0)
    for _ in range(15):
        k = int(rng.integers(0, N))
        assert torch.equal(ep.read_rgb([k])[0], full[k]), f"frame {k}"
    # unsorted, repeated, far apart (forces several seeks), first and last frame
    idx = [N - 1, 3, 3, 0, 2 * GOP_FRAMES + 5, 1]
    assert torch.equal(ep.read_rgb(idx), full[idx])
    assert ep.read_rgb([]).shape == (0, 3, H, W)
    with pytest.raises(ValueError, match=r"indices.*\[40\]"):
        ep.read_rgb([40])


def _read_in_child(ep: Episode, idx: list[int], q) -> None:
    q.put(ep.read_rgb(idx).numpy())


def test_episode_survives_pickle_and_fork(episode_dir):
    ep = Episode.open(episode_dir)
    want = ep.read_rgb([7, 30])  # the parent now holds an open container
    ep2 = pickle.loads(pickle.dumps(ep))
    assert torch.equal(ep2.read_rgb([7, 30]), want)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_read_in_child, args=(ep, [7, 30], q))
    p.start()
    got = q.get(timeout=30)
    p.join(timeout=30)
    assert np.array_equal(got, want.numpy())
    assert torch.equal(ep.read_rgb([7, 30]), want)  # the parent's reads are unaffected


def test_episode_without_depth_reads_zeros(tmp_path):
    c2w, K = _cameras(8)
    write_episode(tmp_path / "e", _frames(8), c2w, K, "")
    ep = Episode.open(tmp_path / "e")
    assert not ep.has_depth and ep.caption == ""
    assert torch.equal(ep.read_depth([0, 7]), torch.zeros(2, 1, H, W))


def test_write_rejects_bad_input(tmp_path):
    c2w, K = _cameras(4)
    with pytest.raises(ValueError, match="even frame sizes"):
        write_episode(tmp_path / "a", _frames(4, 63, 64), c2w, K, "x")
    with pytest.raises(ValueError, match=r"c2w: expected shape \(4, 4, 4\)"):
        write_episode(tmp_path / "b", _frames(4), c2w[:3], K, "x")
    with pytest.raises(ValueError, match="uint8"):
        write_episode(tmp_path / "c", _frames(4).astype(np.float32), c2w, K, "x")
    bad = c2w.clone()
    bad[2, 0, 0] = 2.0
    with pytest.raises(ValueError, match="pose 2 is not a rigid"):
        write_episode(tmp_path / "d", _frames(4), bad, K, "x")


# ---- broken folders -------------------------------------------------------------------------


def _edit_cameras(folder: Path, fn) -> None:
    cams = json.loads((folder / "cameras.json").read_text())
    fn(cams)
    (folder / "cameras.json").write_text(json.dumps(cams))


def _nan_pose(c):
    c["frames"][5]["c2w"][0][3] = float("nan")


def _drop_poses(c):
    del c["frames"][-3:]
    c.pop("num_frames")


def _extra_poses(c):
    c["frames"] += c["frames"][:2]
    c["num_frames"] += 2


def _skew_pose(c):
    c["frames"][9]["c2w"][0][0] = 1.5


def _bad_K(c):
    c["frames"][2]["K"][0][0] = -10.0


@pytest.mark.parametrize(
    "edit, message",
    [
        (_nan_pose, "frame 5 has NaN"),
        (_drop_poses, "rgb.mp4 has 40 frames but cameras.json has 37 poses"),
        (_extra_poses, "rgb.mp4 has 40 frames but cameras.json has 42 poses"),
        (_skew_pose, "pose 9 is not a rigid transform"),
        (_bad_K, "intrinsics 2 has non-positive focal length"),
    ],
)
def test_bad_cameras_raise_naming_episode_and_problem(episode_dir, tmp_path, edit, message):
    folder = _copy_episode(episode_dir, tmp_path / "broken_ep")
    _edit_cameras(folder, edit)
    with pytest.raises(EpisodeError, match="broken_ep") as e:
        Episode.open(folder)
    assert message in str(e.value)


def test_unparseable_or_missing_files_raise(episode_dir, tmp_path):
    cases = {
        "no_caption": (lambda f: (f / "caption.txt").unlink(), "caption.txt is missing"),
        "no_cameras": (lambda f: (f / "cameras.json").unlink(), "cameras.json is missing"),
        "no_video": (lambda f: (f / "rgb.mp4").unlink(), "rgb.mp4 is missing"),
        "bad_json": (
            lambda f: (f / "cameras.json").write_text('{"frames": [1, 2'),
            "cameras.json does not parse",
        ),
        "bad_depth": (
            lambda f: np.savez_compressed(f / "depth.npz", depth=np.zeros((N, 8, 8), np.float16)),
            "depth.npz holds float16 (40, 8, 8)",
        ),
    }
    for name, (breaker, message) in cases.items():
        folder = _copy_episode(episode_dir, tmp_path / name)
        breaker(folder)
        with pytest.raises(EpisodeError, match=name) as e:
            Episode.open(folder)
        assert message in str(e.value), (name, str(e.value))
    with pytest.raises(EpisodeError, match="folder does not exist"):
        Episode.open(tmp_path / "nowhere")


def test_corrupt_mp4_raises(episode_dir, tmp_path):
    folder = _copy_episode(episode_dir, tmp_path / "noise_ep")
    rng = np.random.default_rng(1)
    (folder / "rgb.mp4").write_bytes(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(EpisodeError, match=r"noise_ep.*rgb.mp4 is not a readable video"):
        Episode.open(folder)


def test_truncated_mp4_raises(episode_dir, tmp_path):
    folder = _copy_episode(episode_dir, tmp_path / "cut_ep")
    data = (folder / "rgb.mp4").read_bytes()
    (folder / "rgb.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(EpisodeError, match=r"cut_ep: rgb.mp4 is not a readable video"):
        Episode.open(folder)


def test_truncated_faststart_mp4_raises(episode_dir, tmp_path):
    """With the index at the front the header still claims every frame; decoding the last
    frame finds the damage."""
    folder = _copy_episode(episode_dir, tmp_path / "cut_fast_ep")
    src, dst = episode_dir / "rgb.mp4", folder / "faststart.mp4"
    with (
        av.open(str(src)) as cin,
        av.open(str(dst), "w", options={"movflags": "faststart"}) as cout,
    ):
        sin = cin.streams.video[0]
        sout = cout.add_stream_from_template(sin)
        for packet in cin.demux(sin):
            if packet.dts is not None:
                packet.stream = sout
                cout.mux(packet)
    data = dst.read_bytes()
    dst.unlink()
    (folder / "rgb.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(EpisodeError, match=r"cut_fast_ep: rgb.mp4 ended before frame 39"):
        Episode.open(folder)


# ---- manifest -------------------------------------------------------------------------------


def test_manifest_round_trip_and_update(tmp_path):
    entries = [
        dict(path="ep0", split="train", num_frames=40, caption="a"),
        dict(path="sub/ep1", split="val", num_frames=8, caption="b", source="synthetic"),
    ]
    write_manifest(tmp_path, entries)
    assert read_manifest(tmp_path) == entries
    update_manifest(tmp_path, [dict(path="ep0", split="test", num_frames=41, caption="c")])
    got = read_manifest(tmp_path)
    assert [e["path"] for e in got] == ["sub/ep1", "ep0"]
    assert got[1]["split"] == "test"


def test_manifest_errors_name_line_and_field(tmp_path):
    with pytest.raises(ValueError, match="'split' must be one of"):
        write_manifest(tmp_path, [dict(path="e", split="training", num_frames=3, caption="")])
    with pytest.raises(ValueError, match="relative"):
        write_manifest(tmp_path, [dict(path="/abs/e", split="train", num_frames=3, caption="")])
    (tmp_path / "manifest.jsonl").write_text(
        json.dumps(dict(path="e", split="train", num_frames=3, caption="")) + "\n{oops\n"
    )
    with pytest.raises(ValueError, match="manifest.jsonl line 2: not JSON"):
        read_manifest(tmp_path)
    with pytest.raises(ValueError, match="manifest not found"):
        read_manifest(tmp_path / "missing")


# ---- hostile files: damaged video and depth, manifest paths out of the root -----------------


def _flip_bytes(path: Path, start_frac: float, count: int = 16) -> None:
    """Invert ``count`` bytes from ``start_frac`` of the way into the file (deterministic)."""
    data = bytearray(path.read_bytes())
    i = int(len(data) * start_frac)
    data[i : i + count] = bytes(b ^ 0xFF for b in data[i : i + count])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", [0.3, 0.6, 0.9])
def test_flipped_bytes_in_depth_npz_fail_at_open(episode_dir, tmp_path, where):
    """Damage inside the compressed array (zlib.error or a CRC mismatch) is found by
    Episode.open, not halfway through training."""
    folder = _copy_episode(episode_dir, tmp_path / "flip_ep")
    _flip_bytes(folder / "depth.npz", where)
    with pytest.raises(EpisodeError, match=r"flip_ep: depth.npz has no readable 'depth' array"):
        Episode.open(folder)


def test_a_depth_npz_that_is_not_a_zip_fails_at_open(episode_dir, tmp_path):
    folder = _copy_episode(episode_dir, tmp_path / "nozip_ep")
    (folder / "depth.npz").write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(EpisodeError, match=r"nozip_ep: depth.npz .*BadZipFile"):
        Episode.open(folder)


@pytest.mark.parametrize("cut", [0.05, 0.5, 0.97])
def test_a_truncated_mp4_fails_at_open_wherever_it_is_cut(episode_dir, tmp_path, cut):
    folder = _copy_episode(episode_dir, tmp_path / "cut_ep")
    data = (folder / "rgb.mp4").read_bytes()
    (folder / "rgb.mp4").write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(EpisodeError, match=r"cut_ep: rgb.mp4"):
        Episode.open(folder)


@pytest.mark.parametrize(
    "error",
    [
        AttributeError("'NoneType' object has no attribute 'width'"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    ],
)
def test_pyav_errors_that_are_not_ffmpeg_errors_name_the_video(
    episode_dir, tmp_path, monkeypatch, error
):
    """PyAV raises these on some damaged files (seen when fuzzing rgb.mp4): they too are an
    EpisodeError naming the file, on open and on read."""
    ep = Episode.open(episode_dir)

    def broken_open(*args, **kwargs):
        raise error

    monkeypatch.setattr(av, "open", broken_open)
    name = type(error).__name__
    with pytest.raises(EpisodeError, match=rf"ep0: rgb.mp4 is not a readable video \({name}"):
        Episode.open(episode_dir)
    with pytest.raises(EpisodeError, match=rf"ep0: rgb.mp4 failed to decode frames \[3\] \({name}"):
        ep.read_rgb([3])


def test_skip_bad_leaves_out_every_damaged_episode(episode_dir, tmp_path):
    from worldmem.config import DataConfig, MemoryConfig
    from worldmem.data.dataset import WorldDataset

    root = tmp_path / "root"
    _copy_episode(episode_dir, root / "good")
    _copy_episode(episode_dir, root / "val_good")
    cut = _copy_episode(episode_dir, root / "cut")
    data = (cut / "rgb.mp4").read_bytes()
    (cut / "rgb.mp4").write_bytes(data[: len(data) // 2])
    _flip_bytes(_copy_episode(episode_dir, root / "flipped") / "depth.npz", 0.5)
    (_copy_episode(episode_dir, root / "noise") / "rgb.mp4").write_bytes(bytes(range(256)) * 40)
    names = ["good", "cut", "flipped", "noise"]
    entries = [dict(path=n, split="train", num_frames=N, caption="") for n in names]
    write_manifest(root, [*entries, dict(path="val_good", split="val", num_frames=N, caption="")])
    cfg = DataConfig(root=str(root), image_size=H)
    with pytest.raises(EpisodeError, match="cut: rgb.mp4"):
        WorldDataset(cfg, MemoryConfig(), "train")
    cfg.skip_bad = True
    ds = WorldDataset(cfg, MemoryConfig(), "train")
    assert [p.name for p in ds.episodes] == ["good"]


@pytest.mark.parametrize("path", ["../x", "a/../../x", "a/..", "/abs/e", "..", "a\\..\\x", "a\0b"])
def test_manifest_paths_must_stay_inside_the_root(tmp_path, path):
    entry = dict(path=path, split="train", num_frames=3, caption="")
    with pytest.raises(ValueError, match="inside it"):
        write_manifest(tmp_path, [entry])
    (tmp_path / "manifest.jsonl").write_text(json.dumps(entry) + "\n")
    with pytest.raises(ValueError, match=r"manifest.jsonl line 1: 'path' must be a folder"):
        read_manifest(tmp_path)


def test_manifest_paths_through_a_symlink_out_of_the_root_are_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "ep").symlink_to(outside)  # the entry itself
    (root / "up").symlink_to(tmp_path)  # a folder on the way: "up/outside"
    for path in ["ep", "up/outside"]:
        entry = dict(path=path, split="train", num_frames=3, caption="")
        message = re.escape(
            f"'path' {path!r} leads to {outside.resolve()}, outside the root {root}"
        )
        with pytest.raises(ValueError, match=rf"manifest entry 0: {message}"):
            write_manifest(root, [entry])
        (root / "manifest.jsonl").write_text(json.dumps(entry) + "\n")
        with pytest.raises(ValueError, match=rf"manifest.jsonl line 1: {message}"):
            read_manifest(root)


def test_manifest_symlinks_that_stay_inside_the_root_are_kept(tmp_path):
    real = tmp_path / "real"
    (real / "store" / "ep0").mkdir(parents=True)
    (real / "ep0").symlink_to(real / "store" / "ep0")
    root = tmp_path / "root"
    root.symlink_to(real)  # the root itself may be a link
    entries = [dict(path="ep0", split="train", num_frames=3, caption="")]
    write_manifest(root, entries)
    assert read_manifest(root) == entries


@pytest.mark.parametrize("path", ["../outside", "/outside", "ep"])
def test_episode_folder_follows_dotdot_absolute_paths_and_symlinks(tmp_path, path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "ep").symlink_to(outside)
    path = str(outside) if path == "/outside" else path
    with pytest.raises(
        ValueError, match=rf"^where: 'path' .* outside the root {re.escape(str(root))}"
    ):
        episode_folder(root, path, "where")
    (root / "in").mkdir()
    assert episode_folder(root, "in", "where") == root / "in"
