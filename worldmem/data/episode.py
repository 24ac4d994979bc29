"""The episode format on disk and its reader, ``Episode``.

One folder per episode, and a ``manifest.jsonl`` at the dataset root (the layout is in
``episode_format.py``; ``datasets/README.md`` has the full description). ``Episode.open``
validates a folder and decodes its frames on demand, seeking to the keyframe before them.

All of the format can be imported from here: its names and numbers (``episode_format.py``),
the writer (``episode_writer.py``), the manifest (``manifest.py``) and the importers' frame
fitting (``frame_fit.py``).

Cameras follow ``worldmem.geometry``: OpenCV c2w, pixel intrinsics, world y axis down.
"""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from worldmem.data.episode_format import CRF as CRF
from worldmem.data.episode_format import (
    EPISODE_FORMAT,
    EPISODE_VERSION,
    GOP_FRAMES,
    SPLITS,
    EpisodeError,
)
from worldmem.data.episode_format import MANIFEST_NAME as MANIFEST_NAME
from worldmem.data.episode_writer import write_episode
from worldmem.data.frame_fit import fit_frame, nearest_rigid, parse_size
from worldmem.data.manifest import episode_folder, read_manifest, update_manifest, write_manifest
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
    "read_poses",
    "update_manifest",
    "write_episode",
    "write_manifest",
]

# Frames further apart than this are reached by a new seek instead of decoding forward.
RESEEK_FRAMES = 2 * GOP_FRAMES


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
NPZ_ERRORS = (
    OSError,
    KeyError,
    ValueError,
    EOFError,
    NotImplementedError,  # zipfile: a damaged header naming an unknown compression method
    zipfile.BadZipFile,
    zlib.error,
)
DEPTH_CHECK_CHUNK_BYTES = 1 << 20  # Episode.open decompresses depth.npz this much at a time
EPISODE_FILES = ("rgb.mp4", "depth.npz", "cameras.json", "caption.txt")


def _fail(folder: Path, problem: str) -> EpisodeError:
    return EpisodeError(f"episode {folder}: {problem}")


def _check_file(folder: Path, name: str) -> None:
    """``folder/name``, when there, is a regular file inside the folder: a symbolic link that
    leads out of it (or nowhere) and a FIFO or device (reading one blocks or never ends) are
    an ``EpisodeError`` naming the file."""
    path = folder / name
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    except OSError as e:
        raise _fail(folder, f"{name} cannot be read ({e.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):  # a dangling link, or a loop
            raise _fail(folder, f"{name} is a symbolic link to nothing readable") from None
        if not target.is_relative_to(folder.resolve()):
            raise _fail(
                folder,
                f"{name} is a symbolic link to {target}, outside the episode folder; an "
                "episode's files must be inside it",
            )
        st = target.stat()
    if not stat.S_ISREG(st.st_mode):
        raise _fail(folder, f"{name} is not a regular file")


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

        Checks that the episode's files are regular files inside the folder (a symbolic link
        may only lead to another file in it), that cameras.json parses and holds N >= 1
        frames with finite rigid c2w and valid K, that rgb.mp4 decodes (its last frame
        included) with N frames of the stated size, that caption.txt exists, and that
        depth.npz (if present) holds (N, H, W).
        Raises ``EpisodeError`` naming the folder and the problem.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise _fail(folder, "folder does not exist")
        for name in EPISODE_FILES:
            _check_file(folder, name)
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
        except NPZ_ERRORS as e:
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
        try:
            idx = [int(i) for i in indices]
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"indices: expected integers, got {indices!r}") from None
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
        except NPZ_ERRORS as e:
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


def read_poses(folder: str | os.PathLike) -> tuple[Tensor, Tensor]:
    """An episode folder's cameras alone, checked as ``Episode.open`` checks them, without
    opening its video: c2w ``(N, 4, 4)``, K ``(N, 3, 3)``. Raises ``EpisodeError``."""
    folder = Path(folder)
    return _parse_poses(folder, _read_cameras(folder))


def _read_cameras(folder: Path) -> dict:
    path = folder / "cameras.json"
    if not path.is_file():
        raise _fail(folder, "cameras.json is missing")
    try:
        cameras = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # JSON, UTF-8, nesting, huge integers
        raise _fail(folder, f"cameras.json does not parse ({type(e).__name__}: {e})") from None
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
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0 < v < math.inf:
            raise _fail(folder, f"cameras.json: {key!r} must be a positive number, got {v!r}")
        if key != "fps" and v != int(v):
            raise _fail(folder, f"cameras.json: {key!r} must be a whole number, got {v!r}")
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
        t = f.get("timestamp_s", math.nan)
        if isinstance(t, bool) or not isinstance(t, int | float):
            raise _fail(folder, f"cameras.json: frame {i} 'timestamp_s' is {t!r}, not seconds")
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
