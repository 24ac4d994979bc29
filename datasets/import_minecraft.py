"""Import WorldMem-style Minecraft recordings into the worldmem episode format.

Each recording is a video plus an npz next to it (``<name>.mp4`` + ``<name>.npz``) whose
``poses`` array ``(N, 5)`` holds, per frame, ``x, y, z, pitch, yaw`` in Minecraft's world:
x east, y up, z south, the position at the player's feet, angles in degrees; yaw 0 faces +z
and grows turning right (clockwise seen from above: yaw 90 faces -x); pitch > 0 looks down.

Conversion to worldmem (OpenCV cameras, world y pointing down):

    position  (X, Y, Z) = (-x, -(y + eye_height), z)      a 180-degree turn about z
    yaw       = yaw_minecraft                             0 faces +Z, 90 faces +X
    pitch     = -pitch_minecraft                          worldmem pitch > 0 looks up
    c2w       = worldmem.geometry.pose_to_c2w(position, yaw, pitch)

Negating y alone would mirror the world (and so every frame); turning about z keeps it
right-handed: Minecraft's +z (south) stays +Z and its -x (west, on the right when facing
south) becomes +X (on the right of a worldmem camera facing +Z). The intrinsics come from
Minecraft's vertical field of view (``--fov-y-deg``, 70 by default) and square pixels.

When the npz has one pose fewer than the video has frames, its poses belong to frames 1..N
(as the WorldMem loader pads them) and the first frame is dropped.

    python datasets/import_minecraft.py --input minecraft/training --out data/minecraft \\
        --size 64 --start 100 --max-frames 600 --caption "a minecraft plains world"
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import av
import numpy as np

from worldmem.data.episode import (
    SPLITS,
    fit_frame,
    nearest_rigid,
    parse_size,
    update_manifest,
    write_episode,
)
from worldmem.data.importers import check_out, episode_name, reading, run_importer
from worldmem.geometry import pose_to_c2w

EYE_HEIGHT_M = 1.62  # Minecraft's standing eye height above the feet (1 block = 1 m)


def minecraft_to_c2w(poses: np.ndarray, eye_height: float = EYE_HEIGHT_M) -> np.ndarray:
    """Minecraft poses ``(N, 5)`` (x, y, z, pitch_deg, yaw_deg) -> worldmem c2w ``(N, 4, 4)``
    (the conversion in the module docstring)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 5:
        raise ValueError(f"poses: expected (N, 5) x, y, z, pitch, yaw; got {poses.shape}")
    if not np.isfinite(poses).all():
        i = int(np.argmax(~np.isfinite(poses).all(1)))
        raise ValueError(f"poses: frame {i} has NaN or infinite values")
    x, y, z, pitch, yaw = poses.T
    position = np.stack([-x, -(y + eye_height), z], -1)
    return pose_to_c2w(position, yaw, -pitch).double().numpy()


def intrinsics_from_vertical_fov(fov_y_deg: float, width: int, height: int) -> np.ndarray:
    """Square-pixel intrinsics ``(3, 3)`` for a vertical field of view, centred."""
    f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])


def import_recording(
    video: Path,
    poses_path: Path,
    out_root: Path,
    name: str,
    size: tuple[int, int] | None = None,
    fov_y_deg: float = 70.0,
    eye_height: float = EYE_HEIGHT_M,
    start: int = 0,
    max_frames: int | None = None,
    stride: int = 1,
    pose_key: str = "poses",
    caption: str = "",
    split: str = "train",
) -> dict:
    """Import one recording to ``out_root/name``; returns its manifest entry."""
    episode_name(name, "name")
    with reading(poses_path), np.load(poses_path, allow_pickle=False) as z:
        if not hasattr(z, "files"):
            raise ValueError(f"{poses_path}: expected an .npz archive of arrays")
        if pose_key not in z:
            raise ValueError(f"{poses_path}: no '{pose_key}' array (has {sorted(z.keys())})")
        poses = np.asarray(z[pose_key], dtype=np.float64)
    with reading(video), av.open(str(video)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 10)
        n_video = stream.frames or sum(1 for pk in container.demux(stream) if pk.size)
    if len(poses) == n_video - 1:
        offset = 1  # poses belong to frames 1..N
    elif len(poses) == n_video:
        offset = 0
    else:
        raise ValueError(f"{poses_path}: {len(poses)} poses for {n_video} video frames in {video}")
    stop = len(poses) if max_frames is None else min(len(poses), start + max_frames * stride)
    keep = list(range(start, stop, stride))  # pose indices; video frame = pose index + offset
    if not keep:
        raise ValueError(f"{video}: no frames left after --start {start} (it has {len(poses)})")
    c2w = nearest_rigid(minecraft_to_c2w(poses[keep], eye_height), name=str(poses_path))
    wanted = set(keep)
    rgb, K = [], []
    with reading(video), av.open(str(video)) as container:
        for v, frame in enumerate(container.decode(video=0)):
            i = v - offset
            if i > keep[-1]:
                break
            if i not in wanted:
                continue
            img = frame.to_ndarray(format="rgb24")
            K0 = intrinsics_from_vertical_fov(fov_y_deg, img.shape[1], img.shape[0])
            im, k, _ = fit_frame(img, K0, size)  # resized as decoded: memory stays small
            rgb.append(im)
            K.append(k)
    if len(rgb) != len(keep):
        raise ValueError(f"{video}: decoded {len(rgb)} of the {len(keep)} frames asked for")
    out_fps = max(1, round(fps / stride))
    folder = write_episode(out_root / name, np.stack(rgb), c2w, np.stack(K), caption, fps=out_fps)
    print(f"  {folder}: {len(keep)} frames, {rgb[0].shape[1]}x{rgb[0].shape[0]}")
    return dict(path=name, split=split, num_frames=len(keep), caption=caption, source="minecraft")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Writes <out>/<name>/ episode folders and adds them to <out>/manifest.jsonl.",
    )
    p.add_argument(
        "--input",
        type=Path,
        required=True,
        help="a recording .mp4 (its poses in the .npz beside it) or a folder searched for them",
    )
    p.add_argument("--out", type=Path, required=True, help="dataset root to write into")
    p.add_argument(
        "--name", help="episode folder name (single recording; default: the video's stem)"
    )
    p.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="output frame size 'S' or 'WxH' (centre crop + resize; default: native)",
    )
    p.add_argument(
        "--fov-y-deg",
        type=float,
        default=70.0,
        help="Minecraft's vertical field of view (default 70)",
    )
    p.add_argument(
        "--eye-height",
        type=float,
        default=EYE_HEIGHT_M,
        help="camera height above the pose's feet position (default 1.62)",
    )
    p.add_argument("--start", type=int, default=0, help="first frame to keep (WorldMem skips 100)")
    p.add_argument("--max-frames", type=int, default=None, help="keep at most this many frames")
    p.add_argument("--stride", type=int, default=1, help="keep every k-th frame (default 1)")
    p.add_argument("--pose-key", default="poses", help="npz array with the poses (default 'poses')")
    p.add_argument("--split", choices=SPLITS, default="train")
    p.add_argument("--caption", default="", help="caption for every recording (default empty)")
    args = p.parse_args(argv)
    if args.stride < 1 or args.start < 0 or (args.max_frames is not None and args.max_frames < 1):
        p.error("--stride and --max-frames must be >= 1 and --start >= 0")
    if not 0 < args.fov_y_deg < 180:
        p.error(f"--fov-y-deg must be in (0, 180), got {args.fov_y_deg}")
    if args.input.is_dir():
        if args.name:
            p.error("--name applies to a single recording")
        videos = sorted(args.input.rglob("*.mp4"))
        if not videos:
            p.error(f"no .mp4 files under {args.input}")
    elif args.input.is_file():
        videos = [args.input]
    else:
        p.error(f"--input {args.input} does not exist")
    recordings = []  # (video, poses, episode name), all checked before anything is written
    for v in videos:
        poses = v.with_suffix(".npz")
        if not poses.is_file():
            p.error(f"{poses} not found (the poses of {v})")
        default = (
            "_".join(v.relative_to(args.input).with_suffix("").parts)
            if args.input.is_dir()
            else v.stem
        )
        name = episode_name(args.name or default, "--name" if args.name else str(v))
        recordings.append((v, poses, name))
    check_out(args.out, [r[2] for r in recordings])
    entries = []
    for v, poses, name in recordings:
        entries.append(
            import_recording(
                v,
                poses,
                args.out,
                name,
                size=args.size,
                fov_y_deg=args.fov_y_deg,
                eye_height=args.eye_height,
                start=args.start,
                max_frames=args.max_frames,
                stride=args.stride,
                pose_key=args.pose_key,
                caption=args.caption,
                split=args.split,
            )
        )
    update_manifest(args.out, entries)
    print(f"imported {len(entries)} recording(s) into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_importer(main))
