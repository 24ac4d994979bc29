"""One explorer's world: a ``WorldState`` stepped by a ``WorldPipeline`` shared by every session.

``Session`` is the whole interactive loop without any UI: ``start(prompt, seed)``, then
``step("w")`` / ``step(["w", "left"])`` (one frame per key), ``reset()`` (back to the start
pose). It keeps the frames generated so far (the most recent ``max_video_frames``) for the
mp4 download and the camera path for the top-down map, and exposes the insets the page shows
(depth, memory render, map) and the PLY export of the spatial memory.

Sessions never load weights or copy the pipeline: each holds its own world
(``pipeline.new_state()``: memories, pose, random state) and steps it with the one pipeline.
"""

from __future__ import annotations

import copy
import io
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldmem.geometry.actions import KEYS, c2w_to_pose
from worldmem.interactive.topdown import topdown_map
from worldmem.io import depth_to_rgb, write_video
from worldmem.pipeline import Chunk, WorldPipeline, WorldState, memories_for_mode

__all__ = [
    "Frame",
    "Pose",
    "Session",
    "StartFrame",
    "fork_pipeline",
    "encode_png",
]

DEFAULT_MAX_VIDEO_FRAMES = 2000  # frames kept for the video download (oldest dropped)
DEFAULT_MAP_SIZE_PX = 192  # side of the top-down map image


@dataclass(frozen=True)
class Pose:
    """A camera pose: position ``(x, y, z)`` metres (world y points down), yaw (> 0 turned
    right) and pitch (> 0 looking up) in degrees."""

    position: tuple[float, float, float]
    yaw_deg: float
    pitch_deg: float

    @staticmethod
    def from_c2w(c2w: torch.Tensor) -> Pose:
        """The pose of a camera-to-world matrix ``(4, 4)``."""
        pos, yaw, pitch = c2w_to_pose(c2w.detach().cpu().double())
        return Pose(tuple(float(v) for v in pos), float(yaw), float(pitch))

    def as_dict(self) -> dict:
        return {
            "position": list(self.position),
            "yaw_deg": self.yaw_deg,
            "pitch_deg": self.pitch_deg,
        }


@dataclass
class Frame:
    """One generated frame.

    rgb uint8 ``(H, W, 3)``; depth float32 ``(H, W)`` metres; memory_rgb uint8 ``(H, W, 3)``
    and memory_mask bool ``(H, W)``: the spatial-memory render the model was given at this
    camera; c2w float32 ``(4, 4)``; index: frame number since ``start``; key: the action that
    produced it (a key name, ``start`` or ``reset``); timing: seconds in the memories and the
    model for its chunk.
    """

    index: int
    rgb: np.ndarray
    depth: np.ndarray
    memory_rgb: np.ndarray
    memory_mask: np.ndarray
    c2w: np.ndarray
    pose: Pose
    key: str
    timing: dict[str, float]


def fork_pipeline(template: WorldPipeline) -> WorldPipeline:
    """A pipeline object over ``template``'s model, codec and sampler (shared, not copied or
    reloaded) whose current world is a new, empty one. A ``Session`` does not need it (it
    keeps its own world); it is for callers that want ``pipe.spatial`` and the like to read
    a world of their own."""
    if not isinstance(template, WorldPipeline):
        raise ValueError(f"template: expected a WorldPipeline, got {type(template).__name__}")
    pipe = copy.copy(template)  # shallow: model, codec, sampler, configs and K are shared
    pipe.state = template.new_state(memory=template.memory_mode)
    return pipe


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """``(..., 3, H, W)`` in [0, 1] -> uint8 ``(..., H, W, 3)``."""
    x = (rgb.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


def encode_png(image: np.ndarray) -> bytes:
    """uint8 ``(H, W, 3)`` -> PNG bytes."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image: expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@dataclass(frozen=True)
class StartFrame:
    """A frame a world can begin from: image ``(3, S, S)`` in [0, 1], depth ``(1, S, S)``
    metres (0 = unknown) at the model's size S, and its caption (the page's default prompt)."""

    image: torch.Tensor
    depth: torch.Tensor
    caption: str


class Session:
    """An interactive world stepped by ``pipeline``; any number of sessions share one
    pipeline, each with its own world (``world``, a ``WorldState``).

    Thread-safe: every method holds the session's lock, so a download can run while another
    thread steps the world (it waits for the current chunk). The pipeline itself holds no
    world state a session changes, so sessions step their worlds concurrently.
    """

    def __init__(
        self,
        pipeline: WorldPipeline,
        max_video_frames: int = DEFAULT_MAX_VIDEO_FRAMES,
        map_size_px: int = DEFAULT_MAP_SIZE_PX,
        memory: str = "all",
        start_frame: StartFrame | None = None,
    ):
        if not isinstance(pipeline, WorldPipeline):
            raise ValueError(f"pipeline: expected a WorldPipeline, got {type(pipeline).__name__}")
        if max_video_frames < 1:
            raise ValueError(f"max_video_frames: expected >= 1, got {max_video_frames}")
        if map_size_px < 8:
            raise ValueError(f"map_size_px: expected >= 8, got {map_size_px}")
        memories_for_mode(memory)
        if start_frame is not None and not isinstance(start_frame, StartFrame):
            raise ValueError(
                f"start_frame: expected a StartFrame, got {type(start_frame).__name__}"
            )
        self.start_frame = start_frame
        self.pipe = pipeline
        self.world: WorldState = pipeline.new_state(memory=memory)
        self.max_video_frames = max_video_frames
        self.map_size_px = map_size_px
        self.memory = memory
        self._lock = threading.RLock()
        self._video: deque[np.ndarray] = deque(maxlen=max_video_frames)  # uint8 (H, W, 3)
        self._path: deque[torch.Tensor] = deque(maxlen=max_video_frames)  # c2w (4, 4) on cpu
        self._last: Frame | None = None
        self.started = False
        self.prompt = ""
        self.seed = 0

    # -- the world --------------------------------------------------------------------------

    @property
    def image_size(self) -> int:
        return self.pipe.size

    @property
    def first_frame(self) -> dict | None:
        """What the current world began from without the start frame (``WorldState.
        began_from``: a first-frame bank's frame, a drawing), else None."""
        return self.world.began_from

    @property
    def chunk_frames(self) -> int:
        return self.pipe.chunk_frames

    @property
    def pose(self) -> Pose:
        """The current camera pose."""
        return Pose.from_c2w(self.world.c2w)

    @property
    def start_pose(self) -> Pose:
        return Pose.from_c2w(self.world.start_c2w)

    @property
    def frame_count(self) -> int:
        """Frames generated since ``start``."""
        return self.world.frame_count

    @property
    def last_frame(self) -> Frame | None:
        return self._last

    def start(self, prompt: str = "", seed: int = 0, from_image: bool = False) -> list[Frame]:
        """A new world for ``prompt`` (memories cleared, camera at the identity pose); returns
        the first frame, generated at the start pose. ``from_image``: the world begins from
        the session's ``start_frame`` (its image and depth seen from the start pose), as an
        image-to-video model does; else from the prompt alone (from what the pipeline's
        first-frame bank or net gives it, described in ``first_frame``)."""
        if not isinstance(prompt, str):
            raise ValueError(f"prompt: expected a string, got {type(prompt).__name__}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed: expected an int >= 0, got {seed!r}")
        if from_image and self.start_frame is None:
            raise ValueError("from_image: this session has no start frame")
        image = depth = None
        if from_image:
            image, depth = self.start_frame.image, self.start_frame.depth
        with self._lock:
            self.pipe.start(
                prompt=prompt,
                image=image,
                depth=depth,
                seed=seed,
                memory=self.memory,
                world=self.world,
            )
            self._video.clear()
            self._path.clear()
            self._last = None
            self.prompt, self.seed, self.started = prompt, seed, True
            chunk = self.pipe.step(self.world.start_c2w[None].clone(), world=self.world)
            return self._keep(chunk, ["start"])

    def step(self, action: str | list[str]) -> list[Frame]:
        """Apply action keys (one frame each, ``KEYS``: w s a d q e space shift left right up
        down idle) from the current pose; returns the generated frames in order."""
        keys = [action] if isinstance(action, str) else list(action)
        if not keys:
            raise ValueError("action: expected a key or a non-empty list of keys, got []")
        for k in keys:
            if k not in KEYS:
                raise ValueError(f"action: unknown key {k!r}; valid keys: {', '.join(KEYS)}")
        with self._lock:
            self._check_started()
            return self._keep(self.pipe.step(keys, world=self.world), keys)

    def reset(self) -> list[Frame]:
        """Move the camera back to the start pose and generate the frame seen from there (the
        memories are kept: what was seen there should come back)."""
        with self._lock:
            self._check_started()
            chunk = self.pipe.step(self.world.start_c2w[None].clone(), world=self.world)
            return self._keep(chunk, ["reset"])

    def _check_started(self) -> None:
        if not self.started:
            raise ValueError("no world yet: call Session.start(prompt, seed) first")

    def _keep(self, chunk: Chunk, keys: list[str]) -> list[Frame]:
        rgb = _to_uint8(chunk.rgb)  # (T, H, W, 3)
        mem = _to_uint8(chunk.memory_rgb)
        depth = chunk.depth[:, 0].detach().float().cpu().numpy()
        mask = (chunk.memory_mask[:, 0] > 0.5).cpu().numpy()
        c2w = chunk.c2w.detach().float().cpu()
        frames = []
        for i in range(len(rgb)):
            frame = Frame(
                index=int(chunk.frame_index[i]),
                rgb=rgb[i],
                depth=depth[i],
                memory_rgb=mem[i],
                memory_mask=mask[i],
                c2w=c2w[i].numpy(),
                pose=Pose.from_c2w(c2w[i]),
                key=keys[i] if i < len(keys) else keys[-1],
                timing=dict(chunk.timing),
            )
            self._video.append(frame.rgb)
            self._path.append(c2w[i])
            frames.append(frame)
        self._last = frames[-1]
        return frames

    # -- views and exports ------------------------------------------------------------------

    def video_frames(self) -> np.ndarray:
        """The frames kept so far: uint8 ``(T, H, W, 3)``, T <= ``max_video_frames``."""
        with self._lock:
            if not self._video:
                return np.zeros((0, self.image_size, self.image_size, 3), np.uint8)
            return np.stack(list(self._video))

    def camera_path(self) -> torch.Tensor:
        """c2w ``(T, 4, 4)`` of the kept frames."""
        with self._lock:
            if not self._path:
                return torch.zeros(0, 4, 4)
            return torch.stack(list(self._path))

    def video_mp4(self, fps: int = 8) -> bytes:
        """The kept frames as an H.264 mp4; ``ValueError`` if there are none yet."""
        frames = self.video_frames()
        if len(frames) == 0:
            raise ValueError("no frames yet: start a world and move first")
        with tempfile.TemporaryDirectory() as d:
            path = write_video(Path(d) / "video.mp4", frames, fps=fps)
            return path.read_bytes()

    def memory_ply(self) -> bytes:
        """The spatial memory (points, colours, confidence) as a PLY file."""
        with self._lock, tempfile.TemporaryDirectory() as d:
            path = Path(d) / "memory.ply"
            self.world.spatial.export_ply(path)
            return path.read_bytes()

    def topdown_map(self, size_px: int | None = None) -> np.ndarray:
        """uint8 ``(S, S, 3)``: the spatial memory from above with the camera path and the
        current heading (image right is +x, up is +z)."""
        with self._lock:
            path = self.camera_path()
            return topdown_map(
                self.world.spatial, size_px or self.map_size_px, path if len(path) else None
            )

    def insets(self, with_map: bool = True) -> dict[str, np.ndarray]:
        """The small pictures beside the frame, for the latest frame: ``depth`` (turbo
        colours), ``memory`` (the spatial-memory render the model was given) and, if
        ``with_map``, ``map``; each uint8 ``(H, W, 3)``. Empty before the first frame."""
        with self._lock:
            if self._last is None:
                return {}
            out = {"depth": depth_to_rgb(self._last.depth), "memory": self._last.memory_rgb}
            if with_map:
                out["map"] = self.topdown_map()
            return out
