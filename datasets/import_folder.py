"""Import a folder of posed frames (any source) into the worldmem episode format.

Layout of the input folder::

    <input>/poses.json
    <input>/<frames>        png or jpg, wherever poses.json points ("file", relative to <input>)
    <input>/depth/          optional (or --depth DIR): <frame stem>.png, 16-bit, millimetres,
                            or <frame stem>.npy, float (H, W) metres; 0 = unknown

poses.json::

    {
      "convention": "opencv",   // optional: "opencv" (x right, y down, z forward; default) or
                                // "opengl" (x right, y up, z backward: Blender, NeRF)
      "fov_deg": 60.0,          // optional: horizontal field of view for frames without "K"
      "fps": 10,                // optional (default 10)
      "caption": "a red room",  // optional (--caption overrides)
      "frames": [
        {"file": "rgb/0000.png", "c2w": [[4x4 camera-to-world]], "K": [[3x3 pixels]]},
        {"file": "rgb/0001.png", "c2w": [[...]], "fov_deg": 60.0},
        ...
      ]
    }

Frames are ordered by file name. "K" is in pixels of the image as stored (pixel centres at
+0.5); "fov_deg" is horizontal with the principal point at the centre and square pixels.

    python datasets/import_folder.py --input my_capture --out data/mine --size 128
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

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
from worldmem.data.importers import check_out, episode_name, inside, reading, run_importer

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # flips the camera's y and z axes


def read_depth(folder: Path, stem: str, shape: tuple[int, int]) -> np.ndarray | None:
    """Depth for one frame in metres (H, W) float32, or None when the folder has none."""
    png, npy = folder / f"{stem}.png", folder / f"{stem}.npy"
    if png.is_file():
        with reading(png), Image.open(png) as im:
            d = np.asarray(im)
        if d.dtype not in (np.uint16, np.int32) or d.ndim != 2:
            raise ValueError(
                f"{png}: expected a 16-bit single-channel png, got {d.dtype} {d.shape}"
            )
        d = d.astype(np.float32) / 1000.0
    elif npy.is_file():
        with reading(npy):
            d = np.load(npy, allow_pickle=False).astype(np.float32)
    else:
        return None
    if d.shape != shape:
        raise ValueError(f"depth for {stem}: expected shape {shape} (the frame's), got {d.shape}")
    return d


def _matrix(frame: dict, key: str, shape: tuple[int, int], where: str) -> np.ndarray:
    try:
        m = np.array(frame[key], dtype=np.float64)
    except (TypeError, ValueError):
        m = None
    if m is None or m.shape != shape or not np.isfinite(m).all():
        raise ValueError(f"{where}: '{key}' must be a finite {shape[0]}x{shape[1]} matrix")
    return m


def import_folder(
    folder: Path,
    out_root: Path,
    name: str,
    size: tuple[int, int] | None = None,
    caption: str | None = None,
    split: str = "train",
    depth_dir: Path | None = None,
) -> dict:
    """Import ``folder`` (the layout in the module docstring) to ``out_root/name``; returns its
    manifest entry."""
    episode_name(name, "name")
    poses_path = folder / "poses.json"
    try:
        meta = json.loads(poses_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # JSON (line, column), UTF-8, nesting
        raise ValueError(f"{poses_path}: cannot read ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{poses_path}: expected a JSON object, got {type(meta).__name__}")
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise ValueError(f"{poses_path}: 'frames' must be a non-empty list")
    for i, f in enumerate(frames):
        if not isinstance(f, dict) or not isinstance(f.get("file"), str):
            raise ValueError(f"{poses_path}: frame {i} must be an object with a 'file' string")
    fps = meta.get("fps", 10)
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 1 <= fps <= 1000:
        raise ValueError(f"{poses_path}: 'fps' must be a number in [1, 1000], got {fps!r}")
    if caption is None and not isinstance(meta.get("caption", ""), str):
        raise ValueError(f"{poses_path}: 'caption' must be a string")
    convention = meta.get("convention", "opencv")
    if convention not in ("opencv", "opengl"):
        raise ValueError(
            f"{poses_path}: 'convention' must be 'opencv' or 'opengl', got {convention!r}"
        )
    depth_dir = depth_dir if depth_dir is not None else folder / "depth"
    try:
        frames = sorted(frames, key=lambda f: str(f["file"]))
    except (KeyError, TypeError):
        raise ValueError(f"{poses_path}: every frame needs a 'file'") from None

    rgb, K, c2w, depth = [], [], [], []
    for f in frames:
        where = f"{poses_path} frame {f['file']!r}"
        pose = _matrix(f, "c2w", (4, 4), where)
        if convention == "opengl":
            pose = pose @ OPENGL_TO_OPENCV
        path = inside(folder, f["file"], where)
        if not path.is_file():
            raise FileNotFoundError(f"{where}: image {path} is missing")
        with reading(path), Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))
        H, W = img.shape[:2]
        if "K" in f:
            k = _matrix(f, "K", (3, 3), where)
        else:
            fov = f.get("fov_deg", meta.get("fov_deg"))
            if not isinstance(fov, int | float) or not 0 < fov < 180:
                raise ValueError(f"{where}: needs 'K' or 'fov_deg' in (0, 180), got {fov!r}")
            fx = 0.5 * W / math.tan(math.radians(fov) / 2)
            k = np.array([[fx, 0, W / 2], [0, fx, H / 2], [0, 0, 1.0]])
        d = read_depth(depth_dir, Path(f["file"]).stem, (H, W)) if depth_dir.is_dir() else None
        if depth_dir.is_dir() and d is None:
            raise FileNotFoundError(f"{where}: {depth_dir} has no depth for it (.png or .npy)")
        im2, k2, d2 = fit_frame(img, k, size, d)
        if rgb and im2.shape != rgb[0].shape:
            raise ValueError(
                f"{where}: frames differ in size ({im2.shape[1]}x{im2.shape[0]} vs "
                f"{rgb[0].shape[1]}x{rgb[0].shape[0]}); pass --size to bring them to one size"
            )
        rgb.append(im2)
        K.append(k2)
        c2w.append(pose)
        depth.append(d2)
    c2w_arr = nearest_rigid(np.stack(c2w), name=str(poses_path))
    caption = caption if caption is not None else meta.get("caption", "")
    out = write_episode(
        out_root / name,
        np.stack(rgb),
        c2w_arr,
        np.stack(K),
        caption,
        depth=np.stack(depth) if depth[0] is not None else None,
        fps=int(fps),
    )
    h, w = rgb[0].shape[:2]
    print(f"  {out}: {len(rgb)} frames, {w}x{h}, depth: {depth[0] is not None}")
    return dict(path=name, split=split, num_frames=len(rgb), caption=caption, source="folder")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Writes <out>/<name>/ and adds it to <out>/manifest.jsonl. "
        "See datasets/README.md for the poses.json layout.",
    )
    p.add_argument(
        "--input", type=Path, required=True, help="folder holding poses.json and the frames"
    )
    p.add_argument("--out", type=Path, required=True, help="dataset root to write into")
    p.add_argument("--name", help="episode folder name (default: the input folder's name)")
    p.add_argument(
        "--depth", type=Path, default=None, help="depth folder (default: <input>/depth if present)"
    )
    p.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="output frame size 'S' or 'WxH' (centre crop + resize; default: native)",
    )
    p.add_argument("--split", choices=SPLITS, default="train")
    p.add_argument("--caption", default=None, help="caption (default: poses.json's, else empty)")
    args = p.parse_args(argv)
    if not (args.input / "poses.json").is_file():
        p.error(f"{args.input / 'poses.json'} not found")
    if args.depth is not None and not args.depth.is_dir():
        p.error(f"--depth {args.depth} is not a folder")
    name = episode_name(
        args.name or args.input.resolve().name, "--name" if args.name else f"--input {args.input}"
    )
    check_out(args.out, [name])
    entry = import_folder(
        args.input, args.out, name, args.size, args.caption, args.split, args.depth
    )
    update_manifest(args.out, [entry])
    print(f"imported {name} into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_importer(main))
