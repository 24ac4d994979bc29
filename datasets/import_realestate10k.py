"""Import RealEstate10K clips into the worldmem episode format.

RealEstate10K publishes one camera file per clip (``<clip>.txt``): line 1 is the video URL
(some copies leave it out), then one line per frame::

    timestamp_us fx fy cx cy 0 0 r00 r01 r02 t0 r10 r11 r12 t1 r20 r21 r22 t2

with fx, cx divided by the image width, fy, cy by the height, and the last twelve numbers the
row-major 3x4 world-to-camera matrix (OpenCV camera axes). The frames come either from the
video itself (``--video``; each camera line takes the decoded frame nearest its timestamp) or
from a folder of extracted frames named by timestamp, as the public extraction scripts write
them (``--frames``: ``<timestamp_us>.png`` or ``.jpg``).

    # one clip
    python datasets/import_realestate10k.py --cameras RealEstate10K/train/0a1b2c.txt \\
        --frames frames/0a1b2c --out data/re10k --size 128 --stride 3
    # every clip in a folder: frames/<clip>/ (or --video videos/ holding <clip>.mp4)
    python datasets/import_realestate10k.py --cameras RealEstate10K/train --frames frames \\
        --out data/re10k --size 128 --split train

The world frame is the clip's SfM frame (arbitrary scale and up direction); there is no depth
and no caption unless ``--caption`` gives one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image

from worldmem.data.episode import (
    SPLITS,
    fit_frame,
    nearest_rigid,
    parse_size,
    update_manifest,
    write_episode,
)
from worldmem.data.importers import check_out, episode_name, reading, run_importer
from worldmem.geometry.trajectory import load_realestate10k, realestate10k_camera_lines

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov")


def read_image(path: Path) -> np.ndarray:
    """An image file -> uint8 (H, W, 3)."""
    with reading(path), Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def camera_timestamps_us(cameras: Path) -> list[int]:
    """Integer microsecond timestamps of the camera lines (the frame file names), in the
    order ``load_realestate10k`` reads the cameras (the URL line may be missing)."""
    out = []
    for n, fields in realestate10k_camera_lines(cameras):
        try:
            out.append(int(fields[0]))
        except ValueError:
            raise ValueError(
                f"{cameras}:{n}: timestamp {fields[0]!r} is not an integer (microseconds)"
            ) from None
    return out


def frames_from_folder(folder: Path, stamps: list[int], drop_missing: bool):
    """Yield (line index, image) for the timestamped frame files in ``folder``."""
    missing = []
    for i, ts in enumerate(stamps):
        path = next(
            (folder / f"{ts}{s}" for s in IMAGE_SUFFIXES if (folder / f"{ts}{s}").is_file()), None
        )
        if path is None:
            missing.append(ts)
            continue
        yield i, read_image(path)
    if missing and not drop_missing:
        raise FileNotFoundError(
            f"{folder}: no frame file for {len(missing)} of {len(stamps)} camera timestamps "
            f"(first: {missing[0]}.png/.jpg); pass --drop-missing to skip those cameras"
        )
    if missing:
        print(f"  {folder}: dropped {len(missing)} cameras without a frame file")


def frames_from_video(video: Path, stamps: list[int]):
    """Yield (line index, image): for each timestamp the decoded frame nearest to it."""
    order = np.argsort(stamps, kind="stable")
    with reading(video), av.open(str(video)) as container:
        stream = container.streams.video[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        # Clips start anywhere in their (often long) video: seek near the first timestamp.
        first = stamps[order[0]] / 1e6 + start
        container.seek(int(first / stream.time_base), stream=stream, backward=True)
        prev = None  # (time_s, frame)
        k = 0
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) - start
            while k < len(order) and stamps[order[k]] / 1e6 <= t:
                want = stamps[order[k]] / 1e6
                best = frame if prev is None or (t - want) < (want - prev[0]) else prev[1]
                yield int(order[k]), best.to_ndarray(format="rgb24")
                k += 1
            prev = (t, frame)
            if k == len(order):
                return
        if prev is None:
            raise ValueError(f"{video}: no decodable video frames")
        period = 1 / float(stream.average_rate or 30)
        for j in order[k:]:
            if stamps[j] / 1e6 - prev[0] > period:
                raise ValueError(
                    f"{video}: the video ends at {prev[0]:.3f} s but the camera file asks for "
                    f"a frame at {stamps[j] / 1e6:.3f} s"
                )
            yield int(j), prev[1].to_ndarray(format="rgb24")


def import_clip(
    cameras: Path,
    out_root: Path,
    name: str,
    frames: Path | None = None,
    video: Path | None = None,
    size: tuple[int, int] | None = None,
    stride: int = 1,
    caption: str = "",
    split: str = "train",
    drop_missing: bool = False,
) -> dict:
    """Import one clip to ``out_root/name``; returns its manifest entry."""
    episode_name(name, "name")
    all_stamps = camera_timestamps_us(cameras)
    lines = list(range(0, len(all_stamps), stride))  # camera lines kept
    stamps = all_stamps[::stride]
    if (frames is None) == (video is None):
        raise ValueError("give exactly one of frames (a folder) or video (a file)")
    source = (
        frames_from_folder(frames, stamps, drop_missing)
        if frames
        else frames_from_video(video, stamps)
    )
    kept, images = [], []
    native = None
    for i, img in source:
        if native is None:
            native = img.shape[:2]
        elif img.shape[:2] != native:
            raise ValueError(
                f"{cameras.stem}: frame {stamps[i]} is {img.shape[1]}x{img.shape[0]}, "
                f"earlier frames are {native[1]}x{native[0]}"
            )
        kept.append(i)
        images.append(img)
    if not kept:
        raise ValueError(f"{cameras}: no frames found")
    H, W = native
    traj = load_realestate10k(cameras, W, H)
    rows = [lines[i] for i in kept]
    c2w = nearest_rigid(traj.c2w.double().numpy()[rows], name=str(cameras))
    K_in = traj.K.double().numpy()[rows]
    rgb, K = [], []
    for img, k in zip(images, K_in):
        im, kk, _ = fit_frame(img, k, size)
        rgb.append(im)
        K.append(kk)
    ts = traj.timestamps.numpy()[rows]
    span = float(ts.max() - ts.min())
    fps = max(1, round((len(ts) - 1) / span)) if span > 0 else 30  # mean rate of the kept frames
    folder = write_episode(
        out_root / name, np.stack(rgb), c2w, np.stack(K), caption, timestamps=ts, fps=fps
    )
    print(f"  {folder}: {len(kept)} frames, {rgb[0].shape[1]}x{rgb[0].shape[0]}, {fps} fps")
    return dict(
        path=name, split=split, num_frames=len(kept), caption=caption, source="realestate10k"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Writes <out>/<clip>/ episode folders and adds them to <out>/manifest.jsonl.",
    )
    p.add_argument(
        "--cameras", type=Path, required=True, help="a camera .txt file, or a folder of them"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--frames",
        type=Path,
        help="folder of <timestamp_us>.png/.jpg frames "
        "(per clip: <frames>/<clip>/ when --cameras is a folder)",
    )
    src.add_argument(
        "--video",
        type=Path,
        help="the clip's video file (or a folder with <clip>.mp4 when --cameras is a folder)",
    )
    p.add_argument("--out", type=Path, required=True, help="dataset root to write into")
    p.add_argument(
        "--name", help="episode folder name (default: the camera file's stem; single clip only)"
    )
    p.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="output frame size 'S' or 'WxH' (centre crop + resize; default: native)",
    )
    p.add_argument("--stride", type=int, default=1, help="keep every k-th camera line (default 1)")
    p.add_argument("--split", choices=SPLITS, default="train")
    p.add_argument("--caption", default="", help="caption for every imported clip (default empty)")
    p.add_argument(
        "--drop-missing",
        action="store_true",
        help="skip cameras whose frame file is missing instead of failing",
    )
    args = p.parse_args(argv)
    if args.stride < 1:
        p.error(f"--stride must be >= 1, got {args.stride}")

    if args.cameras.is_dir():
        if args.name:
            p.error(
                "--name applies to a single clip; "
                "with a folder of cameras the clip ids name the episodes"
            )
        clips = sorted(args.cameras.glob("*.txt"))
        if not clips:
            p.error(f"no .txt camera files in {args.cameras}")
    elif args.cameras.is_file():
        clips = [args.cameras]
    else:
        p.error(f"--cameras {args.cameras} does not exist")
    # every episode name is checked before anything is written
    names = [episode_name(args.name or c.stem, "--name" if args.name else str(c)) for c in clips]
    check_out(args.out, names)

    entries = []
    for cams, name in zip(clips, names):
        clip = cams.stem
        frames = video = None
        if args.frames is not None:
            frames = args.frames / clip if len(clips) > 1 or args.cameras.is_dir() else args.frames
            if not frames.is_dir():
                p.error(f"frame folder {frames} does not exist")
        else:
            video = args.video
            if args.video.is_dir():
                video = next(
                    (
                        args.video / f"{clip}{s}"
                        for s in VIDEO_SUFFIXES
                        if (args.video / f"{clip}{s}").is_file()
                    ),
                    None,
                )
                if video is None:
                    p.error(f"no video for clip {clip} in {args.video}")
            elif not args.video.is_file():
                p.error(f"--video {args.video} does not exist")
        entries.append(
            import_clip(
                cams,
                args.out,
                name,
                frames=frames,
                video=video,
                size=args.size,
                stride=args.stride,
                caption=args.caption,
                split=args.split,
                drop_missing=args.drop_missing,
            )
        )
    update_manifest(args.out, entries)
    print(f"imported {len(entries)} clip(s) into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_importer(main))
