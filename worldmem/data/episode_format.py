"""The episode format on disk: its layout, its names and numbers, and ``EpisodeError``.

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

``episode.py`` reads an episode (and re-exports the whole format), ``episode_writer.py``
writes one, ``manifest.py`` reads and writes the manifest.
"""

from __future__ import annotations

__all__ = [
    "CRF",
    "EPISODE_FORMAT",
    "EPISODE_VERSION",
    "GOP_FRAMES",
    "MANIFEST_NAME",
    "SPLITS",
    "EpisodeError",
]

EPISODE_FORMAT = "worldmem-episode"
EPISODE_VERSION = 1
SPLITS = ("train", "val", "test")
MANIFEST_NAME = "manifest.jsonl"
GOP_FRAMES = 8  # keyframe interval: a seek decodes at most this many frames before the target
CRF = 17  # libx264 constant rate factor (lower = better quality, larger files)


class EpisodeError(ValueError):
    """An episode folder that cannot be read; the message names the folder and the problem."""
