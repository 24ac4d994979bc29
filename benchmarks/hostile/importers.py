"""Hostile imports: each dataset importer on the command line with broken inputs, and with an
output folder (``--out``) whose root, episode folder, episode files or manifest are links,
files, folders or FIFOs where they should not be."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from hostile.cameras import re10k_file, re10k_line
from hostile.core import (
    DATASETS,
    Case,
    Context,
    DataLoss,
    Invalid,
    build,
    cli_outcome,
    guarded,
    refused_on,
    run_cli,
    runner,
    short,
    snapshot,
    under,
)
from hostile.jobs import png_bomb

# ============================================================================================
# Boundary: the dataset importers (datasets/import_*.py on the command line)
# ============================================================================================

RE10K_STAMPS = (0, 33366, 66733)


def _importer_sources() -> dict[str, tuple[list[str], dict]]:
    """Each importer's valid input (files) and command line (CASE = the case folder)."""
    re10k = (
        "\n".join(
            ["https://www.youtube.com/watch?v=abcdefghijk"]
            + [
                re10k_line(ts, w2c=[1, 0, 0, -0.1 * i, 0, 1, 0, 0, 0, 0, 1, 0])
                for i, ts in enumerate(RE10K_STAMPS)
            ]
        )
        + "\n"
    )
    colmap_images = (
        "# images\n1 1 0 0 0 0 0 0 1 im0.png\n\n2 1 0 0 0 -0.1 0 0 1 im1.png\n1.0 2.0 -1\n"
    )
    poses = {
        "fov_deg": 60,
        "frames": [
            {"file": "a.png", "c2w": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]},
            {"file": "b.png", "c2w": [[1, 0, 0, 0.1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]},
        ],
    }
    return {
        "import_realestate10k": (
            ["--cameras", "CASE/in/clip.txt", "--frames", "CASE/in/frames", "--out", "CASE/out"],
            {
                "in/clip.txt": re10k,
                **{
                    f"in/frames/{ts}.png": ("png", 16, 16, 50 + i)
                    for i, ts in enumerate(RE10K_STAMPS)
                },
            },
        ),
        "import_colmap": (
            [
                "--model",
                "CASE/in/sparse",
                "--images",
                "CASE/in/images",
                "--out",
                "CASE/out",
                "--name",
                "scene",
            ],
            {
                "in/sparse/cameras.txt": "# cams\n1 PINHOLE 16 16 12 12 8 8\n",
                "in/sparse/images.txt": colmap_images,
                "in/images/im0.png": ("png", 16, 16, 40),
                "in/images/im1.png": ("png", 16, 16, 90),
            },
        ),
        "import_folder": (
            ["--input", "CASE/in/cap", "--out", "CASE/out"],
            {
                "in/cap/poses.json": json.dumps(poses),
                "in/cap/a.png": ("png", 16, 16, 40),
                "in/cap/b.png": ("png", 16, 16, 90),
            },
        ),
        "import_minecraft": (
            ["--input", "CASE/in/run.mp4", "--out", "CASE/out"],
            {
                "in/run.mp4": ("mp4", 4, 16, 16),
                "in/run.npz": ("npz", {"poses": ("float64", (4, 5), "ramp")}, False),
            },
        ),
    }


EPISODE_NAMES = {
    "import_realestate10k": "clip",
    "import_colmap": "scene",
    "import_folder": "cap",
    "import_minecraft": "run",
}


@runner
def importer_cli(
    ctx: Context, folder: Path, script: str, argv: tuple, files: dict, out_spec=None
) -> str:
    """A dataset importer on the command line. ``out`` holds an episode ``keep`` listed in
    its manifest before the run (unless ``out_spec`` puts something else there)."""
    from worldmem.data.episode import Episode, read_manifest, write_manifest

    out = folder / "out"
    if out_spec is None:
        shutil.copytree(ctx.episode, out / "keep")
        write_manifest(out, [dict(path="keep", split="train", num_frames=4, caption="a room")])
    else:
        for name, spec in out_spec.items():
            build(folder / name, spec, ctx, folder)
    (folder / "elsewhere").mkdir(exist_ok=True)
    (folder / "elsewhere" / "keep.txt").write_text("keep")
    for name, spec in files.items():
        build(folder / name, spec, ctx, folder)
    args = [str(DATASETS / f"{script}.py")]
    args += [a.replace("CASE", str(folder)) for a in argv]
    manifest_before = snapshot(out).get("manifest.jsonl")
    names = _new_episode_names(script, argv)

    def allow(path: str, how: str, accepted: bool) -> bool:
        if under(path, *(f"out/{n}" for n in names), *(f"elsewhere/{n}" for n in names)):
            return accepted  # the episode imported (a re-import replaces it)
        if under(path, "in", "out/keep", "elsewhere/keep.txt"):
            return False
        if path in ("out/manifest.jsonl", "elsewhere/manifest.jsonl"):
            return accepted
        return accepted and how == "added" and under(path, "out", "elsewhere")

    with guarded(folder, allow):
        code, stdout, stderr = run_cli(args, folder)
        note = cli_outcome(code, stdout, stderr)
    root = out.resolve()
    entries = refused_on(lambda: read_manifest(root), ValueError)
    paths = [e["path"] for e in entries]
    if manifest_before is not None and "keep" not in paths:
        raise DataLoss(f"the manifest lost the episode 'keep' (now {paths})")
    for e in entries:
        if e["path"] in names:
            try:
                Episode.open(root / e["path"])
            except ValueError as err:
                raise Invalid(f"the imported episode does not open: {err}") from None
    return note


def _new_episode_names(script: str, argv: tuple) -> set[str]:
    names = {EPISODE_NAMES[script]}
    if "--name" in argv:
        names.add(argv[list(argv).index("--name") + 1])
    return names


def cases_importers(rng: random.Random) -> list[Case]:
    sources = _importer_sources()
    cases = []

    def add(script, name, argv=None, files=None, out_spec=None, always=False, expect=None):
        base_argv, base_files = sources[script]
        merged = dict(base_files)
        for k, v in (files or {}).items():
            if v == "DELETE":
                merged.pop(k, None)
            else:
                merged[k] = v
        cases.append(
            Case(
                "importers",
                f"{script[7:]}: {name}",
                "importer_cli",
                (script, tuple(argv or base_argv), merged, out_spec),
                expect or (r"error|usage",),
                cli=True,
                always=always,
                detail=short(files or argv or out_spec),
            )
        )

    for script, (_argv, _files) in sources.items():
        add(script, "accepted: the valid input", always=script == "import_folder")
        outs = {
            "--out is a file": {"out": "a file"},
            "--out links to another folder": {"out": ("link", "CASE/elsewhere")},
            "--out links to a file": {"out": ("link", "VICTIM/secret.txt")},
            "--out is a dangling link": {"out": ("link", "CASE/nowhere")},
            "--out is a link loop": {"out": ("link", "CASE/out")},
            "<out>/<name> links out": {
                "out/keep.txt": "x",
                f"out/{EPISODE_NAMES[script]}": ("link", "VICTIM/episode"),
            },
            "<out>/<name> is a file": {f"out/{EPISODE_NAMES[script]}": "a file"},
            "<out>/<name>/rgb.mp4 links out": {
                f"out/{EPISODE_NAMES[script]}/cameras.json": "{}",
                f"out/{EPISODE_NAMES[script]}/rgb.mp4": ("link", "VICTIM/episode/rgb.mp4"),
            },
            "<out>/manifest.jsonl links out": {
                "out/manifest.jsonl": ("link", "VICTIM/manifest.jsonl")
            },
            "<out>/manifest.jsonl.tmp links out": {
                "out/manifest.jsonl.tmp": ("link", "VICTIM/secret.txt")
            },
            "<out>/manifest.jsonl is garbage": {"out/manifest.jsonl": b"\x00garbage\n"},
            "<out>/manifest.jsonl is a folder": {"out/manifest.jsonl": ("dir",)},
            "<out>/manifest.jsonl is a FIFO": {"out/manifest.jsonl": ("fifo",)},
            "<out>/manifest.jsonl leads out": {
                "out/manifest.jsonl": (
                    b'{"path": "../x", "split": "train", "num_frames": 1, "caption": ""}\n'
                )
            },
        }
        for name, spec in outs.items():
            add(script, name, out_spec=spec, always="links out" in name and "folder" in script)
    re10k = "import_realestate10k"
    re_lines = [
        re10k_line(ts, w2c=[1, 0, 0, -0.1 * i, 0, 1, 0, 0, 0, 0, 1, 0])
        for i, ts in enumerate(RE10K_STAMPS)
    ]
    for name, content in {
        "no url line": re10k_file(re_lines, url=False),
        "a garbage row": re10k_file([*re_lines[:2], "garbage row here"]),
        "a row of 18 fields": re10k_file([*re_lines[:2], " ".join(re_lines[2].split()[:18])]),
        "a NaN row": re10k_file([*re_lines[:2], re_lines[2].replace("0.8", "nan", 1)]),
        "a non-rigid pose": re10k_file(
            [*re_lines[:2], re10k_line(RE10K_STAMPS[2], w2c=[3, 0, 0, 0, 0, 3, 0, 0, 0, 0, 3, 0])]
        ),
        "a timestamp that is not an integer": re10k_file(
            [*re_lines[:2], re_lines[2].replace("66733", "66733.5", 1)]
        ),
        "a timestamp with no frame": re10k_file([*re_lines, re10k_line(99999)]),
        "only the url": re10k_file([]),
        "empty": b"",
        "not UTF-8": b"\xff\xfe\n",
        "a lone-surrogate url": b"https://\xed\xa0\x80\n" + re10k_file(re_lines, url=False),
        "zero focal": re10k_file([*re_lines[:2], re10k_line(RE10K_STAMPS[2], (0, 0, 0.5, 0.5))]),
        "1e308 focal": re10k_file(
            [*re_lines[:2], re10k_line(RE10K_STAMPS[2], (1e308, 1e308, 0.5, 0.5))]
        ),
        "huge timestamp": re10k_file([*re_lines[:2], re10k_line("9" * 30)]),
    }.items():
        add(re10k, f"cameras {name}", files={"in/clip.txt": content})
    add(re10k, "frame missing", files={f"in/frames/{RE10K_STAMPS[1]}.png": "DELETE"})
    add(
        re10k,
        "frame missing, --drop-missing",
        argv=[*sources[re10k][0], "--drop-missing"],
        files={f"in/frames/{RE10K_STAMPS[1]}.png": "DELETE"},
    )
    add(re10k, "frame truncated", files={f"in/frames/{RE10K_STAMPS[1]}.png": b"\x89PNG\r\n"})
    add(re10k, "frame is a bomb", files={f"in/frames/{RE10K_STAMPS[1]}.png": png_bomb()})
    add(re10k, "frame of another size", files={f"in/frames/{RE10K_STAMPS[1]}.png": ("png", 18, 12)})
    add(re10k, "frame is a folder", files={f"in/frames/{RE10K_STAMPS[1]}.png": ("dir",)})
    add(
        re10k,
        "frame links outside",
        files={f"in/frames/{RE10K_STAMPS[1]}.png": ("link", "VICTIM/image.png")},
    )
    add(
        re10k, "frame is a FIFO", files={f"in/frames/{RE10K_STAMPS[1]}.png": ("fifo",)}, always=True
    )
    add(
        re10k,
        "frame links to /dev/zero",
        files={f"in/frames/{RE10K_STAMPS[1]}.png": ("link", "/dev/zero")},
    )
    for bad in (
        ["--stride", "0"],
        ["--stride", "-3"],
        ["--stride", "99999999999999999999"],
        ["--size", "0"],
        ["--size", "33"],
        ["--size", "x"],
        ["--size", "2x2x2"],
        ["--size", "-16"],
        ["--size", "100000"],
        ["--size", "65536x2"],
        ["--split", "x"],
        ["--name", "../x"],
        ["--name", "/abs"],
        ["--name", "."],
        ["--name", ""],
        ["--name", "a/b"],
        ["--name", "x" * 300],
        ["--caption", "\udcff"],
        ["--name", "keep"],
    ):
        add(re10k, " ".join(bad)[:40], argv=[*sources[re10k][0], *bad], always=bad[1] == "100000")
    add(
        re10k,
        "--video that is garbage",
        argv=["--cameras", "CASE/in/clip.txt", "--video", "CASE/in/v.mp4", "--out", "CASE/out"],
        files={"in/v.mp4": b"garbage"},
    )
    add(
        re10k,
        "--video that is too short",
        argv=["--cameras", "CASE/in/clip.txt", "--video", "CASE/in/v.mp4", "--out", "CASE/out"],
        files={"in/v.mp4": ("mp4", 1, 16, 16)},
    )
    add(
        re10k,
        "--video /dev/zero",
        argv=["--cameras", "CASE/in/clip.txt", "--video", "/dev/zero", "--out", "CASE/out"],
    )
    add(
        re10k,
        "--cameras folder with a bad clip",
        argv=["--cameras", "CASE/in/cams", "--frames", "CASE/in/frames", "--out", "CASE/out"],
        files={"in/cams/a.txt": b"bad\n1 2\n"},
    )

    colmap = "import_colmap"
    for name, text in {
        "unsupported model": "1 FULL_OPENCV 16 16 1 2 3 4 5 6 7 8 9 10 11 12\n",
        "too few params": "1 PINHOLE 16 16 12\n",
        "not numbers": "1 PINHOLE a b c d e f\n",
        "NaN focal": "1 PINHOLE 16 16 nan 12 8 8\n",
        "zero focal": "1 PINHOLE 16 16 0 0 8 8\n",
        "negative size": "1 PINHOLE -16 16 12 12 8 8\n",
        "no cameras": "# nothing\n",
        "not UTF-8": "1 PINHOLE 16 16 12 12 8 8\xff\n",
        "huge size": "1 PINHOLE 99999999 99999999 12 12 8 8\n",
    }.items():
        add(
            colmap,
            f"cameras.txt {name}",
            files={
                "in/sparse/cameras.txt": text.encode("utf-8", "surrogateescape")
                if isinstance(text, str)
                else text
            },
        )
    for name, text in {
        "zero quaternion": "1 0 0 0 0 0 0 0 1 im0.png\n\n",
        "NaN quaternion": "1 nan 0 0 0 0 0 0 1 im0.png\n\n",
        "inf translation": "1 1 0 0 0 inf 0 0 1 im0.png\n\n",
        "unknown camera": "1 1 0 0 0 0 0 0 7 im0.png\n\n",
        "too few fields": "1 1 0 0\n\n",
        "name ../x": "1 1 0 0 0 0 0 0 1 ../../victim.png\n\n",
        "absolute name": "1 1 0 0 0 0 0 0 1 /etc/hostname\n\n",
        "missing image": "1 1 0 0 0 0 0 0 1 nope.png\n\n",
        "a name with spaces": "1 1 0 0 0 0 0 0 1 im 0.png\n\n",
        "no images": "# none\n",
        "same image twice": "1 1 0 0 0 0 0 0 1 im0.png\n\n2 1 0 0 0 0 0 0 1 im0.png\n\n",
        "1e308 translation": "1 1 0 0 0 1e308 0 0 1 im0.png\n\n",
    }.items():
        add(colmap, f"images.txt {name}", files={"in/sparse/images.txt": text})
    add(colmap, "image truncated", files={"in/images/im0.png": b"\x89PNG\r\n"})
    add(colmap, "image of another size", files={"in/images/im0.png": ("png", 20, 16)})
    add(colmap, "image links outside", files={"in/images/im0.png": ("link", "VICTIM/image.png")})
    add(colmap, "--fps 0", argv=[*sources[colmap][0], "--fps", "0"])
    add(colmap, "--fps -5", argv=[*sources[colmap][0], "--fps", "-5"])

    folder_script = "import_folder"
    frame = {"file": "a.png", "c2w": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}
    for name, obj in {
        "not JSON": "{",
        "a list": "[1]",
        "no frames": "{}",
        "frames empty": '{"frames": []}',
        "frame not an object": '{"frames": [5]}',
        "file not a string": '{"frames": [{"file": 3}]}',
        "fps NaN": '{"fps": NaN, "fov_deg": 60, "frames": [' + json.dumps(frame) + "]}",
        "fps 0": {"fps": 0, "fov_deg": 60, "frames": [frame]},
        "fps 1e400": '{"fps": 1e400, "fov_deg": 60, "frames": [' + json.dumps(frame) + "]}",
        "fov NaN": '{"fov_deg": NaN, "frames": [' + json.dumps(frame) + "]}",
        "fov 180": {"fov_deg": 180, "frames": [frame]},
        "fov true": {"fov_deg": True, "frames": [frame]},
        "convention bad": {"convention": "directx", "fov_deg": 60, "frames": [frame]},
        "caption not text": {"caption": 5, "fov_deg": 60, "frames": [frame]},
        "c2w NaN": '{"fov_deg": 60, "frames": [{"file": "a.png", "c2w": [[NaN, 0, 0, 0], '
        "[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}]}",
        "c2w non-rigid": {
            "fov_deg": 60,
            "frames": [{**frame, "c2w": [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]]}],
        },
        "c2w 3x4": {"fov_deg": 60, "frames": [{**frame, "c2w": frame["c2w"][:3]}]},
        "K zero": {"frames": [{**frame, "K": [[0, 0, 8], [0, 0, 8], [0, 0, 1]]}]},
        "K NaN": '{"frames": [{"file": "a.png", "c2w": [[1, 0, 0, 0], [0, 1, 0, 0], '
        '[0, 0, 1, 0], [0, 0, 0, 1]], "K": [[NaN, 0, 8], [0, 12, 8], [0, 0, 1]]}]}',
        "file ../x": {"fov_deg": 60, "frames": [{**frame, "file": "../../victim.png"}]},
        "file absolute": {"fov_deg": 60, "frames": [{**frame, "file": "/etc/hostname"}]},
        "file with NUL": {"fov_deg": 60, "frames": [{**frame, "file": "a\u0000.png"}]},
        "file is the folder": {"fov_deg": 60, "frames": [{**frame, "file": "."}]},
        "deep nesting": "[" * 100_000 + "]" * 100_000,
        "huge integer fps": '{"fps": ' + "9" * 5000 + ', "frames": [' + json.dumps(frame) + "]}",
        "a lone surrogate caption": '{"caption": "\\ud800", "fov_deg": 60, "frames": ['
        + json.dumps(frame)
        + "]}",
    }.items():
        text = obj if isinstance(obj, str) else json.dumps(obj)
        add(folder_script, f"poses.json {name}", files={"in/cap/poses.json": text})
    add(
        folder_script,
        "depth folder with a bad .npy",
        files={"in/cap/depth/a.npy": b"\x93NUMPY garbage", "in/cap/depth/b.npy": b""},
    )
    add(
        folder_script,
        "depth .npy of another shape",
        files={
            "in/cap/depth/a.npy": ("npy", "float32", (3, 3), 1.0),
            "in/cap/depth/b.npy": ("npy", "float32", (16, 16), 1.0),
        },
    )
    add(
        folder_script,
        "depth .npy pickled",
        files={
            "in/cap/depth/a.npy": ("npy", "object", None, None),
            "in/cap/depth/b.npy": ("npy", "float32", (16, 16), 1.0),
        },
    )
    add(
        folder_script,
        "depth .npy links outside",
        files={
            "in/cap/depth/a.npy": ("link", "VICTIM/secret.txt"),
            "in/cap/depth/b.npy": ("npy", "float32", (16, 16), 1.0),
        },
    )
    add(
        folder_script,
        "depth .npy is a FIFO",
        always=True,
        files={
            "in/cap/depth/a.npy": ("fifo",),
            "in/cap/depth/b.npy": ("npy", "float32", (16, 16), 1.0),
        },
    )
    add(folder_script, "image links outside", files={"in/cap/a.png": ("link", "VICTIM/image.png")})
    add(folder_script, "image is a FIFO", files={"in/cap/a.png": ("fifo",)}, always=True)
    add(folder_script, "image is a bomb", files={"in/cap/a.png": png_bomb()})
    add(
        folder_script,
        "--depth is a file",
        argv=[*sources[folder_script][0], "--depth", "CASE/in/cap/poses.json"],
    )

    mc = "import_minecraft"
    for name, spec in {
        "poses NaN": ("npz", {"poses": ("float64", (4, 5), float("nan"))}, False),
        "poses of 4 columns": ("npz", {"poses": ("float64", (4, 4), 0.0)}, False),
        "no poses key": ("npz", {"other": ("float64", (4, 5), 0.0)}, False),
        "poses pickled": ("npz", {"poses": ("object", None, None)}, False),
        "2 poses for 4 frames": ("npz", {"poses": ("float64", (2, 5), 0.0)}, False),
        "poses 1e308": ("npz", {"poses": ("float64", (4, 5), 1e308)}, False),
        "poses as text": b"not a zip",
    }.items():
        add(mc, name, files={"in/run.npz": spec})
    add(mc, "video garbage", files={"in/run.mp4": b"garbage"})
    add(mc, "video truncated", files={"in/run.mp4": [("mp4", 4, 16, 16), ("truncate", 0.5)]})
    return cases
