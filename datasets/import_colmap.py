"""Import a COLMAP text model (a posed image sequence) into the worldmem episode format.

COLMAP writes ``sparse/0/cameras.txt``, ``images.txt`` and ``points3D.txt`` (with
``colmap model_converter --output_type TXT`` for a binary model)::

    cameras.txt:  CAMERA_ID MODEL WIDTH HEIGHT PARAMS...
    images.txt:   IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME     (then one line of 2D points,
                                                                    possibly empty)

The quaternion and translation are the world-to-camera transform (OpenCV camera axes; COLMAP
also puts pixel centres at +0.5, as worldmem does). Camera models PINHOLE and SIMPLE_PINHOLE
are exact; SIMPLE_RADIAL, RADIAL and OPENCV are read as pinhole (their distortion is dropped
with a warning: undistort first with ``colmap image_undistorter`` for exact geometry). Frames
are ordered by image name.

    python datasets/import_colmap.py --model scene/sparse/0 --images scene/images \\
        --out data/colmap --name scene --size 128 --caption "a kitchen"
"""

from __future__ import annotations

import argparse
import sys
import warnings
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

# model name -> how (fx, fy, cx, cy) come from the parameters; distortion parameters follow
PINHOLE_MODELS = {
    "SIMPLE_PINHOLE": lambda p: (p[0], p[0], p[1], p[2]),
    "PINHOLE": lambda p: (p[0], p[1], p[2], p[3]),
    "SIMPLE_RADIAL": lambda p: (p[0], p[0], p[1], p[2]),
    "RADIAL": lambda p: (p[0], p[0], p[1], p[2]),
    "OPENCV": lambda p: (p[0], p[1], p[2], p[3]),
}
NUM_PARAMS = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4, "SIMPLE_RADIAL": 4, "RADIAL": 5, "OPENCV": 8}
DISTORTION_START = {"SIMPLE_RADIAL": 3, "RADIAL": 3, "OPENCV": 4}  # index of the first k/p


def read_cameras(path: Path) -> dict[int, tuple[int, int, np.ndarray]]:
    """cameras.txt -> {camera_id: (width, height, K (3, 3))}."""
    cams = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        f = line.split()
        where = f"{path}:{n}"
        if len(f) < 4:
            raise ValueError(
                f"{where}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS..., got {line!r}"
            )
        model = f[1]
        if model not in PINHOLE_MODELS:
            raise ValueError(
                f"{where}: camera model {model} is not supported (supported: "
                f"{', '.join(PINHOLE_MODELS)}); undistort the images with colmap first"
            )
        try:
            cam_id, w, h = int(f[0]), int(f[2]), int(f[3])
            params = [float(x) for x in f[4:]]
        except ValueError:
            raise ValueError(f"{where}: not numbers: {line!r}") from None
        if len(params) != NUM_PARAMS[model]:
            raise ValueError(
                f"{where}: {model} takes {NUM_PARAMS[model]} parameters, got {len(params)}"
            )
        distortion = params[DISTORTION_START.get(model, len(params)) :]
        if any(x != 0 for x in distortion):
            warnings.warn(
                f"{where}: camera {cam_id} is {model} with distortion {distortion}; read as a "
                "pinhole camera (undistort the images first for exact geometry)",
                stacklevel=2,
            )
        fx, fy, cx, cy = PINHOLE_MODELS[model](params)
        cams[cam_id] = (w, h, np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]))
    if not cams:
        raise ValueError(f"{path}: no cameras")
    return cams


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) ``(4,)`` -> rotation ``(3, 3)`` (Hamilton convention)."""
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def read_images(path: Path) -> list[tuple[str, int, np.ndarray]]:
    """images.txt -> [(name, camera_id, c2w (4, 4))] sorted by name."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():  # blank lines between records (or at the end)
            i += 1
            continue
        f = line.split()
        if len(f) < 10:
            raise ValueError(
                f"{path}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME', got {line!r}"
            )
        try:
            q = np.array([float(v) for v in f[1:5]])
            t = np.array([float(v) for v in f[5:8]])
            cam_id = int(f[8])
        except ValueError:
            raise ValueError(f"{path}: not numbers in image line {line!r}") from None
        if not (np.isfinite(q).all() and np.isfinite(t).all()) or np.linalg.norm(q) < 1e-8:
            raise ValueError(f"{path}: image {f[9]} has an invalid pose {f[1:8]}")
        w2c = np.eye(4)
        w2c[:3, :3] = quaternion_to_matrix(q)
        w2c[:3, 3] = t
        c2w = np.eye(4)
        c2w[:3, :3] = w2c[:3, :3].T
        c2w[:3, 3] = -w2c[:3, :3].T @ t
        out.append((" ".join(f[9:]), cam_id, c2w))
        i += 2  # the next line holds the image's 2D points (possibly empty)
    if not out:
        raise ValueError(f"{path}: no images")
    return sorted(out, key=lambda r: r[0])


def import_model(
    model: Path,
    images: Path,
    out_root: Path,
    name: str,
    size: tuple[int, int] | None = None,
    caption: str = "",
    split: str = "train",
    fps: int = 10,
) -> dict:
    """Import one COLMAP text model to ``out_root/name``; returns its manifest entry."""
    episode_name(name, "name")
    cams = read_cameras(model / "cameras.txt")
    recs = read_images(model / "images.txt")
    rgb, K, c2w = [], [], []
    for img_name, cam_id, pose in recs:
        if cam_id not in cams:
            raise ValueError(
                f"{model / 'images.txt'}: image {img_name} uses unknown camera {cam_id}"
            )
        w, h, k = cams[cam_id]
        path = inside(images, img_name, f"{model / 'images.txt'}: image {img_name!r}")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: image listed in {model / 'images.txt'} is missing")
        with reading(path), Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))
        if img.shape[:2] != (h, w):
            raise ValueError(
                f"{path}: image is {img.shape[1]}x{img.shape[0]} but camera {cam_id} is {w}x{h}"
            )
        im2, k2, _ = fit_frame(img, k, size)
        if rgb and im2.shape != rgb[0].shape:
            raise ValueError(
                f"{path}: frames differ in size ({im2.shape[1]}x{im2.shape[0]} vs "
                f"{rgb[0].shape[1]}x{rgb[0].shape[0]}); pass --size to bring them to one size"
            )
        rgb.append(im2)
        K.append(k2)
        c2w.append(pose)
    c2w_arr = nearest_rigid(np.stack(c2w), name=str(model / "images.txt"))
    folder = write_episode(out_root / name, np.stack(rgb), c2w_arr, np.stack(K), caption, fps=fps)
    print(f"  {folder}: {len(rgb)} frames, {rgb[0].shape[1]}x{rgb[0].shape[0]}")
    return dict(path=name, split=split, num_frames=len(rgb), caption=caption, source="colmap")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Writes <out>/<name>/ and adds it to <out>/manifest.jsonl.",
    )
    p.add_argument(
        "--model", type=Path, required=True, help="folder with cameras.txt and images.txt"
    )
    p.add_argument(
        "--images", type=Path, required=True, help="folder the image NAMEs are relative to"
    )
    p.add_argument("--out", type=Path, required=True, help="dataset root to write into")
    p.add_argument("--name", help="episode folder name (default: the images folder's parent name)")
    p.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="output frame size 'S' or 'WxH' (centre crop + resize; default: native)",
    )
    p.add_argument(
        "--fps", type=int, default=10, help="frame rate written to the episode (default 10)"
    )
    p.add_argument("--split", choices=SPLITS, default="train")
    p.add_argument("--caption", default="", help="caption (default empty)")
    args = p.parse_args(argv)
    for f in ("cameras.txt", "images.txt"):
        if not (args.model / f).is_file():
            p.error(
                f"{args.model / f} not found (convert a binary model with "
                "colmap model_converter --output_type TXT)"
            )
    if not args.images.is_dir():
        p.error(f"--images {args.images} is not a folder")
    name = episode_name(
        args.name or args.images.resolve().parent.name,
        "--name" if args.name else f"--images {args.images}",
    )
    check_out(args.out, [name])
    entry = import_model(
        args.model, args.images, args.out, name, args.size, args.caption, args.split, args.fps
    )
    update_manifest(args.out, [entry])
    print(f"imported {name} into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_importer(main))
