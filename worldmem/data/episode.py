"""The episode format on disk, its writer and its reader.

One folder per episode (see ``datasets/README.md`` for the full description)::

    <episode>/rgb.mp4       H.264, yuv420p, constant frame rate, a keyframe every 8 frames
    <episode>/depth.npz     optional: key "depth", float16 (N, H, W) z-depth in metres, 0 = unknown
    <episode>/cameras.json  {"format": "worldmem-episode", "version": 1, "fps", "width", "height",
                             "frames": [{"c2w": 4x4, "K": 3x3, "timestamp_s": float}, ...]}
    <episode>/caption.txt   UTF-8 text (may be empty: the model then sees the null prompt)

and ``manifest.jsonl`` at the dataset root, one JSON object per episode:
``{"path": <folder relative to the root>, "split": "train" | "val" | "test",
"num_frames": N, "caption": ...}``.

Cameras follow ``worldmem.geometry``: OpenCV c2w, pixel intrinsics, world y axis down.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from fractions import Fraction
from pathlib import Path, PurePosixPath

import av
import numpy as np
import torch
from torch import Tensor

from worldmem.geometry.camera import check_c2w, check_K

__all__ = [
    "EPISODE_FORMAT",
    "EPISODE_VERSION",
    "SPLITS",
    "Episode",
    "EpisodeError",
    "episode_folder",
    "fit_frame",
    "nearest_rigid",
    "parse_size",
    "read_manifest",
    "update_manifest",
    "write_episode",
    "write_manifest",
]

EPISODE_FORMAT = "worldmem-episode"
EPISODE_VERSION = 1
SPLITS = ("train", "val", "test")
MANIFEST_NAME = "manifest.jsonl"
GOP_FRAMES = 8  # keyframe interval: a seek decodes at most this many frames before the target
CRF = 17  # libx264 constant rate factor (lower = better quality, larger files)
# Frames further apart than this are reached by a new seek instead of decoding forward.
RESEEK_FRAMES = 2 * GOP_FRAMES


class EpisodeError(ValueError):
    """An episode folder that cannot be read; the message names the folder and the problem."""


# What PyAV raises on a damaged video besides its own errors (a missing codec context, a
# metadata string that is not UTF-8, a nonsense time base), and numpy / zipfile / zlib on a
# damaged .npz. Caught only around reads, and re-raised as EpisodeError naming the file.
_VIDEO_ERRORS = (
    av.FFmpegError,
    AttributeError,
    UnicodeDecodeError,
    ValueError,
    IndexError,
    OverflowError,
    ZeroDivisionError,
    TypeError,
    OSError,
    EOFError,
)
_NPZ_ERRORS = (
    OSError,
    KeyError,
    ValueError,
    EOFError,
    NotImplementedError,  # zipfile: a damaged header naming an unknown compression method
    zipfile.BadZipFile,
    zlib.error,
)
DEPTH_CHECK_CHUNK_BYTES = 1 << 20  # Episode.open decompresses depth.npz this much at a time


def _fail(folder: Path, problem: str) -> EpisodeError:
    return EpisodeError(f"episode {folder}: {problem}")


def _as_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise ValueError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_episode(
    folder: str | os.PathLike,
    rgb,
    c2w,
    K,
    caption: str,
    depth=None,
    timestamps=None,
    fps: int = 10,
    *,
    crf: int = CRF,
) -> Path:
    """Write one episode folder (created if missing; existing episode files are replaced).

    rgb uint8 ``(N, H, W, 3)`` (numpy or torch; H and W even, as yuv420p H.264 needs),
    c2w ``(N, 4, 4)`` rigid camera-to-world (OpenCV), K ``(N, 3, 3)`` pixel intrinsics,
    caption text, depth ``(N, H, W)`` z-depth in metres or None (NaN, inf and values <= 0 are
    stored as 0 = unknown), timestamps ``(N,)`` seconds or None (then ``i / fps``).
    Returns the folder path.
    """
    folder = Path(folder)
    rgb = _as_numpy(rgb, "rgb")
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb: expected uint8 (N, H, W, 3), got {rgb.dtype} {rgb.shape}")
    N, H, W, _ = rgb.shape
    if N < 1:
        raise ValueError("rgb: expected at least one frame, got 0")
    if H % 2 or W % 2:
        raise ValueError(
            f"rgb: H.264 yuv420p needs even frame sizes, got {W}x{H}; crop or resize first"
        )
    c2w_t = torch.as_tensor(_as_numpy(c2w, "c2w"), dtype=torch.float64)
    K_t = torch.as_tensor(_as_numpy(K, "K"), dtype=torch.float64)
    if tuple(c2w_t.shape) != (N, 4, 4):
        raise ValueError(f"c2w: expected shape {(N, 4, 4)}, got {tuple(c2w_t.shape)}")
    if tuple(K_t.shape) != (N, 3, 3):
        raise ValueError(f"K: expected shape {(N, 3, 3)}, got {tuple(K_t.shape)}")
    check_c2w(c2w_t)
    check_K(K_t)
    if not isinstance(caption, str):
        raise ValueError(f"caption: expected str, got {type(caption).__name__}")
    if not (isinstance(fps, int) and fps > 0):
        raise ValueError(f"fps: expected a positive int, got {fps!r}")
    if timestamps is None:
        ts = np.arange(N, dtype=np.float64) / fps
    else:
        ts = np.asarray(_as_numpy(timestamps, "timestamps"), dtype=np.float64)
        if ts.shape != (N,) or not np.isfinite(ts).all():
            raise ValueError(f"timestamps: expected finite (N={N},), got shape {ts.shape}")
    if depth is not None:
        d = np.asarray(_as_numpy(depth, "depth"), dtype=np.float32)
        if d.shape != (N, H, W):
            raise ValueError(f"depth: expected shape {(N, H, W)}, got {d.shape}")
        ok = np.isfinite(d) & (d > 0) & (d < np.finfo(np.float16).max)
        d = np.where(ok, d, 0).astype(np.float16)

    folder.mkdir(parents=True, exist_ok=True)
    _encode_mp4(folder / "rgb.mp4", rgb, fps, crf)
    cameras = {
        "format": EPISODE_FORMAT,
        "version": EPISODE_VERSION,
        "fps": fps,
        "width": W,
        "height": H,
        "num_frames": N,
        "frames": [
            {
                "c2w": [[round(v, 8) for v in row] for row in c2w_t[i].tolist()],
                "K": [[round(v, 6) for v in row] for row in K_t[i].tolist()],
                "timestamp_s": float(ts[i]),
            }
            for i in range(N)
        ],
    }
    (folder / "cameras.json").write_text(json.dumps(cameras) + "\n")
    (folder / "caption.txt").write_text(caption, encoding="utf-8")
    depth_path = folder / "depth.npz"
    if depth is not None:
        np.savez_compressed(depth_path, depth=d)
    elif depth_path.exists():
        depth_path.unlink()
    return folder


def _encode_mp4(path: Path, rgb: np.ndarray, fps: int, crf: int) -> None:
    N, H, W, _ = rgb.shape
    options = {
        "crf": str(crf),
        "g": str(GOP_FRAMES),
        "keyint_min": str(GOP_FRAMES),
        "sc_threshold": "0",  # keyframes exactly every GOP_FRAMES frames
        "bf": "0",  # no B-frames: decode order == presentation order
    }
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(N):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[i]), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


class Episode:
    """A validated episode folder. Construct with ``Episode.open(folder)``.

    Attributes: ``folder``, ``num_frames`` N, ``height`` H, ``width`` W, ``fps``, ``caption``,
    ``c2w (N, 4, 4)`` float32, ``K (N, 3, 3)`` float32, ``timestamps (N,)`` float64 seconds,
    ``has_depth``. Frames are decoded on demand by ``read_rgb``; the video file is opened
    lazily in the process that reads it (so an Episode may be built before DataLoader
    workers fork, or pickled to them).
    """

    def __init__(self, folder: Path, cameras: dict, caption: str, c2w: Tensor, K: Tensor):
        self.folder = folder
        self.caption = caption
        self.c2w = c2w
        self.K = K
        self.num_frames = int(c2w.shape[0])
        self.height = int(cameras["height"])
        self.width = int(cameras["width"])
        self.fps = cameras["fps"]
        self.timestamps = np.array([f.get("timestamp_s", math.nan) for f in cameras["frames"]])
        self.has_depth = (folder / "depth.npz").exists()
        self._container = None
        self._pid = None

    def __repr__(self) -> str:
        return (
            f"Episode({str(self.folder)!r}, frames={self.num_frames}, "
            f"size={self.width}x{self.height}, depth={self.has_depth})"
        )

    # ---- opening and validation --------------------------------------------------------

    @classmethod
    def open(cls, folder: str | os.PathLike) -> Episode:
        """Open and validate an episode folder.

        Checks that cameras.json parses and holds N >= 1 frames with finite rigid c2w and
        valid K, that rgb.mp4 decodes (its last frame included) with N frames of the stated
        size, that caption.txt exists, and that depth.npz (if present) holds (N, H, W).
        Raises ``EpisodeError`` naming the folder and the problem.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise _fail(folder, "folder does not exist")
        cameras = _read_cameras(folder)
        N = len(cameras["frames"])
        c2w, K = _parse_poses(folder, cameras)
        cap_path = folder / "caption.txt"
        if not cap_path.is_file():
            raise _fail(folder, "caption.txt is missing")
        try:
            caption = cap_path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError as e:
            raise _fail(folder, f"caption.txt is not UTF-8 ({e})") from None
        ep = cls(folder, cameras, caption, c2w, K)
        ep._check_video(N)
        if ep.has_depth:
            ep._check_depth_header()
        return ep

    def _check_video(self, num_poses: int) -> None:
        path = self.folder / "rgb.mp4"
        if not path.is_file():
            raise _fail(self.folder, "rgb.mp4 is missing")
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise _fail(self.folder, "rgb.mp4 has no video stream")
                stream = container.streams.video[0]
                w, h = stream.codec_context.width, stream.codec_context.height
                if (w, h) != (self.width, self.height):
                    raise _fail(
                        self.folder,
                        f"rgb.mp4 frames are {w}x{h} but cameras.json says "
                        f"{self.width}x{self.height}",
                    )
                n = stream.frames or sum(1 for p in container.demux(stream) if p.size)
                if n != num_poses:
                    raise _fail(
                        self.folder,
                        f"rgb.mp4 has {n} frames but cameras.json has {num_poses} poses",
                    )
        except EpisodeError:
            raise
        except _VIDEO_ERRORS as e:
            raise _fail(
                self.folder, f"rgb.mp4 is not a readable video ({type(e).__name__}: {e})"
            ) from None
        # The header can claim frames that a damaged file no longer holds: decode the last one.
        try:
            self._decode_sorted([num_poses - 1])
        except EpisodeError:
            raise
        except _VIDEO_ERRORS as e:
            raise _fail(
                self.folder, f"rgb.mp4 cannot decode its last frame ({type(e).__name__}: {e})"
            ) from None
        finally:
            self.close()

    def _check_depth_header(self) -> None:
        path = self.folder / "depth.npz"
        want = (self.num_frames, self.height, self.width)
        try:
            with zipfile.ZipFile(path) as z, z.open("depth.npy") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                # decompress the rest (in pieces): zipfile checks its CRC at the end, so
                # damage is found here, not in the middle of training
                while f.read(DEPTH_CHECK_CHUNK_BYTES):
                    pass
        except _NPZ_ERRORS as e:
            raise _fail(
                self.folder, f"depth.npz has no readable 'depth' array ({type(e).__name__}: {e})"
            ) from None
        if tuple(shape) != want or dtype.kind != "f":
            raise _fail(
                self.folder,
                f"depth.npz holds {dtype} {tuple(shape)}, expected float (N, H, W) = {want}",
            )

    # ---- frame access ----------------------------------------------------------------

    def _check_indices(self, indices) -> list[int]:
        if isinstance(indices, Tensor):
            indices = indices.tolist()
        idx = [int(i) for i in indices]
        if any(i != j for i, j in zip(idx, indices)):
            raise ValueError(f"indices: expected integers, got {list(indices)}")
        bad = [i for i in idx if not 0 <= i < self.num_frames]
        if bad:
            raise ValueError(
                f"indices: expected values in [0, {self.num_frames}) for {self.folder}, got {bad}"
            )
        return idx

    def read_rgb(self, indices) -> Tensor:
        """Decode frames ``indices`` (list of n ints, any order, repeats allowed) ->
        float ``(n, 3, H, W)`` in [0, 1].

        Seeks to the keyframe before each run of requested frames and decodes forward from
        there; memory holds only the requested frames.
        """
        idx = self._check_indices(indices)
        if not idx:
            return torch.zeros(0, 3, self.height, self.width)
        try:
            frames = self._decode_sorted(sorted(set(idx)))
        except EpisodeError:
            self.close()
            raise
        except _VIDEO_ERRORS as e:
            self.close()
            raise _fail(
                self.folder, f"rgb.mp4 failed to decode frames {idx} ({type(e).__name__}: {e})"
            ) from None
        out = np.stack([frames[i] for i in idx])  # (n, H, W, 3) uint8
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)

    def read_depth(self, indices) -> Tensor:
        """Depth of frames ``indices`` (n ints) -> float ``(n, 1, H, W)`` metres, 0 = unknown.

        Episodes without depth.npz return zeros. Each call decompresses the episode's depth
        array (about 1 ms per 100 frames at 64x64).
        """
        idx = self._check_indices(indices)
        if not self.has_depth:
            return torch.zeros(len(idx), 1, self.height, self.width)
        try:
            with np.load(self.folder / "depth.npz", allow_pickle=False) as z:
                d = z["depth"]
        except _NPZ_ERRORS as e:
            raise _fail(
                self.folder, f"depth.npz cannot be read ({type(e).__name__}: {e})"
            ) from None
        d = torch.from_numpy(d[idx].astype(np.float32))
        return torch.nan_to_num(d, nan=0.0, posinf=0.0, neginf=0.0).clamp_min_(0)[:, None]

    def close(self) -> None:
        """Close the video file (it is reopened on the next read)."""
        if self._container is not None and self._pid == os.getpid():
            self._container.close()
        self._container = None
        self._pid = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_container"] = None
        state["_pid"] = None
        return state

    def _video(self):
        # One container per process: a container inherited through fork shares its file
        # offset with the parent, so it is never reused across processes.
        if self._container is None or self._pid != os.getpid():
            self._container = av.open(str(self.folder / "rgb.mp4"))
            self._pid = os.getpid()
        return self._container

    def _decode_sorted(self, wanted: list[int]) -> dict[int, np.ndarray]:
        """Decode sorted unique frame indices -> {index: uint8 (H, W, 3)}."""
        container = self._video()
        stream = container.streams.video[0]
        tb = stream.time_base
        start = stream.start_time or 0
        rate = stream.average_rate or stream.guessed_rate or Fraction(self.fps)
        ticks_per_frame = float(1 / (tb * rate))  # time-base ticks between frames
        out: dict[int, np.ndarray] = {}
        pos = 0
        while pos < len(wanted):
            target = wanted[pos]
            container.seek(
                int(start + target * ticks_per_frame), stream=stream, backward=True, any_frame=False
            )
            for frame in container.decode(stream):
                i = round((frame.pts - start) / ticks_per_frame)
                if i < target:  # between the keyframe and the requested frame
                    continue
                if i > target:
                    raise _fail(
                        self.folder, f"rgb.mp4: seeking to frame {target} landed on frame {i}"
                    )
                out[i] = frame.to_ndarray(format="rgb24")
                pos += 1
                if pos == len(wanted) or wanted[pos] - i > RESEEK_FRAMES:
                    break
                target = wanted[pos]
            else:
                raise _fail(
                    self.folder,
                    f"rgb.mp4 ended before frame {target} (the file may be truncated)",
                )
        return out


def _read_cameras(folder: Path) -> dict:
    path = folder / "cameras.json"
    if not path.is_file():
        raise _fail(folder, "cameras.json is missing")
    try:
        cameras = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _fail(folder, f"cameras.json does not parse ({e})") from None
    if not isinstance(cameras, dict):
        raise _fail(folder, f"cameras.json: expected an object, got {type(cameras).__name__}")
    if cameras.get("format") != EPISODE_FORMAT:
        raise _fail(
            folder,
            f"cameras.json: format is {cameras.get('format')!r}, expected {EPISODE_FORMAT!r}",
        )
    if cameras.get("version") != EPISODE_VERSION:
        raise _fail(
            folder,
            f"cameras.json: version {cameras.get('version')!r} is not "
            f"supported (this reader knows version {EPISODE_VERSION})",
        )
    for key in ("fps", "width", "height"):
        v = cameras.get(key)
        if not isinstance(v, int | float) or isinstance(v, bool) or not v > 0:
            raise _fail(folder, f"cameras.json: {key!r} must be a positive number, got {v!r}")
    frames = cameras.get("frames")
    if not isinstance(frames, list) or not frames:
        raise _fail(folder, "cameras.json: 'frames' must be a non-empty list")
    if "num_frames" in cameras and cameras["num_frames"] != len(frames):
        raise _fail(
            folder,
            f"cameras.json: num_frames is {cameras['num_frames']} but 'frames' has "
            f"{len(frames)} poses",
        )
    return cameras


def _parse_poses(folder: Path, cameras: dict) -> tuple[Tensor, Tensor]:
    c2w, K = [], []
    for i, f in enumerate(cameras["frames"]):
        try:
            c = np.asarray(f["c2w"], dtype=np.float64)
            k = np.asarray(f["K"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise _fail(folder, f"cameras.json: frame {i} lacks a numeric c2w or K ({e})") from None
        if c.shape != (4, 4) or k.shape != (3, 3):
            raise _fail(
                folder,
                f"cameras.json: frame {i} has c2w {c.shape} and K {k.shape}, "
                "expected (4, 4) and (3, 3)",
            )
        if not (np.isfinite(c).all() and np.isfinite(k).all()):
            raise _fail(folder, f"cameras.json: frame {i} has NaN or infinite values")
        c2w.append(c)
        K.append(k)
    c2w_t = torch.from_numpy(np.stack(c2w))
    K_t = torch.from_numpy(np.stack(K))
    try:
        check_c2w(c2w_t, name="cameras.json c2w")
        check_K(K_t, name="cameras.json K")
    except ValueError as e:
        raise _fail(folder, str(e)) from None
    return c2w_t.float(), K_t.float()


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


def _check_entry(entry, where: str) -> dict:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
    missing = [k for k in ("path", "split", "num_frames", "caption") if k not in entry]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")
    path = entry["path"]
    parts = PurePosixPath(path).parts if isinstance(path, str) else ()
    if (
        not parts
        or PurePosixPath(path).is_absolute()
        or Path(path).is_absolute()
        or any(p in ("..", ".") for p in parts)
        or "\\" in path
        or "\0" in path
    ):
        raise ValueError(
            f"{where}: 'path' must be a folder relative to the root, inside it (no '..'), "
            f"got {path!r}"
        )
    if entry["split"] not in SPLITS:
        raise ValueError(f"{where}: 'split' must be one of {SPLITS}, got {entry['split']!r}")
    n = entry["num_frames"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{where}: 'num_frames' must be a positive int, got {n!r}")
    if not isinstance(entry["caption"], str):
        raise ValueError(f"{where}: 'caption' must be a string, got {entry['caption']!r}")
    return entry


def episode_folder(root: str | os.PathLike, path: str, where: str) -> Path:
    """``root / path``, the folder of a manifest entry, when it stays inside ``root`` with
    symbolic links, ``..`` and absolute paths followed; else a ``ValueError`` beginning with
    ``where`` that names the path, where it leads and the root."""
    root = Path(root)
    folder = root / path
    resolved = folder.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValueError(
            f"{where}: 'path' {path!r} leads to {resolved}, outside the root {root}; "
            "episode folders must stay inside it"
        )
    return folder


def write_manifest(root: str | os.PathLike, entries: list[dict]) -> Path:
    """Write ``root/manifest.jsonl``: one line per entry
    ``dict(path=<relative folder>, split="train"|"val"|"test", num_frames=int, caption=str)``
    (extra keys are kept). Paths must be unique. Returns the manifest path."""
    root = Path(root)
    seen = set()
    for i, e in enumerate(entries):
        _check_entry(e, f"manifest entry {i}")
        episode_folder(root, e["path"], f"manifest entry {i}")
        if e["path"] in seen:
            raise ValueError(f"manifest entry {i}: path {e['path']!r} appears twice")
        seen.add(e["path"])
    root.mkdir(parents=True, exist_ok=True)
    path = root / MANIFEST_NAME
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(e) + "\n" for e in entries))
    tmp.replace(path)
    return path


def read_manifest(root: str | os.PathLike) -> list[dict]:
    """Read ``root/manifest.jsonl`` -> list of entry dicts (see ``write_manifest``).

    Raises ``ValueError`` naming the file and line of a malformed entry, or of one whose
    folder leads out of ``root`` (see ``episode_folder``). Does not open the episodes
    (``Episode.open`` does that)."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(f"{path}: manifest not found")
    entries = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {n}: not JSON ({e})") from None
        entries.append(_check_entry(entry, f"{path} line {n}"))
        episode_folder(root, entry["path"], f"{path} line {n}")
    return entries


def update_manifest(root: str | os.PathLike, entries: list[dict]) -> Path:
    """Add ``entries`` to ``root/manifest.jsonl`` (created if missing), replacing existing
    entries with the same path. Returns the manifest path."""
    root = Path(root)
    old = read_manifest(root) if (root / MANIFEST_NAME).is_file() else []
    new_paths = {e["path"] for e in entries}
    return write_manifest(root, [e for e in old if e["path"] not in new_paths] + list(entries))


# --------------------------------------------------------------------------------------------
# Helpers for importers: fitting frames of any size to the format
# --------------------------------------------------------------------------------------------


def parse_size(text: str) -> tuple[int, int]:
    """Frame size from the command line: ``"128"`` -> (128, 128), ``"160x96"`` -> (160, 96)
    as (width, height). Both must be even and positive."""
    parts = str(text).lower().split("x")
    try:
        w, h = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except (ValueError, IndexError):
        raise ValueError(
            f"size: expected 'S' or 'WxH' (e.g. 128 or 160x96), got {text!r}"
        ) from None
    if len(parts) > 2 or w <= 0 or h <= 0 or w % 2 or h % 2:
        raise ValueError(f"size: expected positive even numbers ('S' or 'WxH'), got {text!r}")
    return w, h


def fit_frame(
    image: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int] | None,
    depth: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Centre-crop one frame to the aspect of ``size`` = (width, height), resize it, and
    adjust its intrinsics to match.

    image uint8 ``(H, W, 3)``, K ``(3, 3)`` pixel intrinsics, depth ``(H, W)`` or None ->
    (image ``(h, w, 3)``, K ``(3, 3)`` float64, depth ``(h, w)`` float32 or None). With
    ``size=None`` the frame keeps its size, less a last row / column when odd (yuv420p needs
    even sizes; cropping at the far edge leaves K unchanged). Depth is resized by nearest
    neighbour so no depth is invented across edges.
    """
    from PIL import Image

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
    H, W = image.shape[:2]
    if depth is not None and depth.shape != (H, W):
        raise ValueError(f"depth: expected shape {(H, W)}, got {depth.shape}")
    K = np.array(K, dtype=np.float64)
    if size is None:
        h, w = H - H % 2, W - W % 2
        d = None if depth is None else np.asarray(depth[:h, :w], np.float32)
        return np.ascontiguousarray(image[:h, :w]), K, d
    tw, th = size
    # centre crop to the target aspect
    if W * th > H * tw:
        cw, ch = round(H * tw / th), H
    else:
        cw, ch = W, round(W * th / tw)
    x0, y0 = (W - cw) // 2, (H - ch) // 2
    crop = image[y0 : y0 + ch, x0 : x0 + cw]
    K[0, 2] -= x0
    K[1, 2] -= y0
    sx, sy = tw / cw, th / ch
    K[0] *= sx  # fx, cx (pixel centres at +0.5 make a resize a pure scale)
    K[1] *= sy  # fy, cy
    out = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((tw, th), Image.BICUBIC))
    d = None
    if depth is not None:
        dc = np.ascontiguousarray(depth[y0 : y0 + ch, x0 : x0 + cw], dtype=np.float32)
        d = np.asarray(Image.fromarray(dc).resize((tw, th), Image.NEAREST))
    return out, K, d


def nearest_rigid(c2w: np.ndarray, name: str = "c2w", tol: float = 1e-2) -> np.ndarray:
    """Snap nearly rigid poses ``(N, 4, 4)`` to exactly rigid ones (rotation via SVD).

    Poses read from text files carry rounding; a rotation further than ``tol`` from
    orthonormal (or with a reflection, or non-finite values) is a ``ValueError`` naming the
    pose index, since no amount of rounding explains it.
    """
    c2w = np.array(c2w, dtype=np.float64)
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"{name}: expected shape (N, 4, 4), got {c2w.shape}")
    bad = ~np.isfinite(c2w).reshape(len(c2w), -1).all(1)
    if bad.any():
        raise ValueError(f"{name}: pose {int(np.argmax(bad))} has NaN or infinite values")
    R = c2w[:, :3, :3]
    U, _, Vt = np.linalg.svd(R)
    Rn = U @ Vt
    err = np.abs(R - Rn).reshape(len(R), -1).max(1)
    det = np.linalg.det(Rn)
    bad = (err > tol) | (det < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{name}: pose {i} is not a rotation plus translation (distance to the nearest "
            f"rotation {err[i]:.3g}, det {np.linalg.det(R[i]):.3g})"
        )
    out = np.zeros_like(c2w)
    out[:, :3, :3] = Rn
    out[:, :3, 3] = c2w[:, :3, 3]
    out[:, 3, 3] = 1
    return out
