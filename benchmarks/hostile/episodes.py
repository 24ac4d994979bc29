"""Hostile episodes: copies of a valid episode with each file missing, empty, truncated, with
flipped bytes, of the wrong content, a special file or a symbolic link (inside, outside,
nowhere); cameras.json fields of every wrong kind; bad frame indices; dataset manifests."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from hostile.core import (
    Case,
    Context,
    Invalid,
    build,
    guarded,
    place,
    refused_on,
    resolve_link_target,
    runner,
    short,
)

# ============================================================================================
# Boundary: the episode reader and dataset manifests
# ============================================================================================

EPISODE_FILES = ("rgb.mp4", "depth.npz", "cameras.json", "caption.txt")


def _episode_links_out(ep_dir: Path) -> str:
    """The first episode file that is a link leading outside the episode folder ('' none)."""
    for name in EPISODE_FILES:
        p = ep_dir / name
        if not p.is_symlink():
            continue
        try:
            inside = p.resolve(strict=True).is_relative_to(ep_dir.resolve())
        except (OSError, RuntimeError):  # a dangling link or a loop
            inside = False
        if not inside:
            return name
    return ""


@runner
def episode_open(ctx: Context, folder: Path, edits: tuple, indices=None) -> str:
    """``Episode.open`` on a copy of a valid episode with ``edits`` ((file, spec), ...), then
    every frame and depth read (or ``indices``)."""
    import torch

    from worldmem.data.episode import Episode, EpisodeError

    ep_dir = folder / "ep"
    shutil.copytree(ctx.episode, ep_dir)
    shutil.copytree(ctx.episode, folder / "outside_copy")
    for name, spec in edits:
        if spec == ("rename_away",):
            (ep_dir / name).rename(ep_dir / f"real_{name}")
            continue
        build(ep_dir / name, spec, ctx, folder)
    errors = (EpisodeError,) if indices is None else (EpisodeError, ValueError)
    with guarded(folder, allow=lambda *a: False):
        ep = refused_on(lambda: Episode.open(ep_dir), EpisodeError)
        idx = list(range(ep.num_frames)) if indices is None else indices
        rgb = refused_on(lambda: ep.read_rgb(idx), *errors)
        depth = refused_on(lambda: ep.read_depth(idx), *errors)
        ep.close()
    out = _episode_links_out(ep_dir)
    if out:
        raise Invalid(f"read {out} through a symbolic link leading outside the episode folder")
    n = len(idx)
    if tuple(rgb.shape) != (n, 3, ep.height, ep.width) or not bool(torch.isfinite(rgb).all()):
        raise Invalid(f"frames of shape {tuple(rgb.shape)} (or not finite)")
    if float(rgb.min()) < 0 or float(rgb.max()) > 1:
        raise Invalid("frame values outside [0, 1]")
    if tuple(depth.shape) != (n, 1, ep.height, ep.width) or not bool(torch.isfinite(depth).all()):
        raise Invalid(f"depth of shape {tuple(depth.shape)} (or not finite)")
    if float(depth.min()) < 0:
        raise Invalid("negative depth")
    return f"{n} frames"


def cases_episodes(rng: random.Random) -> list[Case]:
    cases = []
    expect = (r"episode .*(rgb\.mp4|depth\.npz|cameras\.json|caption\.txt|folder|frame)",)

    def add(name, edits, always=False, indices=None, exp=expect):
        cases.append(
            Case(
                "episodes",
                name,
                "episode_open",
                (tuple(edits), indices),
                exp,
                always=always,
                detail=short(edits),
            )
        )

    specials = {
        "missing": None,
        "empty": b"",
        "text": b"hello world\n",
        "a folder": ("dir",),
        "a FIFO": ("fifo",),
        "link to /dev/zero": ("link", "/dev/zero"),
        "link to /dev/urandom": ("link", "/dev/urandom"),
        "dangling link": ("link", "CASE/none"),
        "link loop": ("link", "CASE/ep/loop"),
        "link to a copy outside": None,
        "link to the victim": None,
        "link to a copy inside": None,
    }
    for fname in EPISODE_FILES:
        for name, spec in specials.items():
            if name == "link to a copy outside":
                spec = ("link", f"CASE/outside_copy/{fname}")
            elif name == "link to the victim":
                spec = ("link", f"VICTIM/episode/{fname}")
            elif name == "link to a copy inside":
                add(
                    f"{fname}: {name}",
                    [(fname, ("rename_away",)), (fname, ("link", f"CASE/ep/real_{fname}"))],
                )
                continue
            elif name == "link loop":
                spec = ("link", f"CASE/ep/{fname}")
            add(
                f"{fname}: {name}",
                [(fname, spec)],
                always=name in ("a FIFO", "link to a copy outside", "link to /dev/zero"),
            )
    for frac in [0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]:
        add(f"rgb.mp4 truncated at {frac:.0%}", [("rgb.mp4", ("truncate", frac))])
        add(f"depth.npz truncated at {frac:.0%}", [("depth.npz", ("truncate", frac))])
    for _i in range(60):
        frac = rng.random()
        add(f"rgb.mp4 byte flipped at {frac:.3f}", [("rgb.mp4", ("flip", frac))])
    for _i in range(30):
        frac = rng.random()
        add(f"depth.npz byte flipped at {frac:.3f}", [("depth.npz", ("flip", frac))])
    for _i in range(12):
        frac = rng.random()
        add(f"rgb.mp4 zeroed from {frac:.2f}", [("rgb.mp4", ("zero", frac, 64))])
    add("rgb.mp4 with garbage appended", [("rgb.mp4", ("append", rng.randbytes(4096)))])
    add("rgb.mp4 of another size", [("rgb.mp4", ("mp4", 4, 32, 32))])
    add("rgb.mp4 with 3 frames", [("rgb.mp4", ("mp4", 3, 16, 16))])
    add("rgb.mp4 with 5 frames", [("rgb.mp4", ("mp4", 5, 16, 16))])
    add("rgb.mp4 is a PNG", [("rgb.mp4", ("png", 16, 16))])
    n, s = 4, 16
    npz = {
        "wrong key": ({"depths": ("float16", (n, s, s), 1.0)}, True),
        "one frame short": ({"depth": ("float16", (n - 1, s, s), 1.0)}, True),
        "a channel axis": ({"depth": ("float16", (n, s, s, 1), 1.0)}, True),
        "transposed": ({"depth": ("float16", (s, s, n), 1.0)}, True),
        "int16": ({"depth": ("int16", (n, s, s), 1)}, True),
        "bool": ({"depth": ("bool", (n, s, s), True)}, True),
        "complex": ({"depth": ("complex64", (n, s, s), 1)}, True),
        "object (pickle)": ({"depth": ("object", None, None)}, True),
        "NaN values": ({"depth": ("float32", (n, s, s), float("nan"))}, True),
        "inf values": ({"depth": ("float32", (n, s, s), float("inf"))}, True),
        "negative values": ({"depth": ("float32", (n, s, s), -2.0)}, True),
        "float64": ({"depth": ("float64", (n, s, s), 1.5)}, True),
        "uncompressed": ({"depth": ("float16", (n, s, s), 1.5)}, False),
        "extra arrays": ({"depth": ("float16", (n, s, s), 1.5), "x": ("int8", (5,), 1)}, True),
        "a scalar": ({"depth": ("float32", (), 1.0)}, True),
        "zero-size": ({"depth": ("float32", (0, s, s), 1.0)}, True),
        "50 MB of zeros": ({"depth": ("float32", (n * 200, 128, 128), 0.0)}, True),
    }
    for name, (arrays, compressed) in npz.items():
        add(f"depth.npz: {name}", [("depth.npz", ("npz", arrays, compressed))])
    cam_values = {
        "format": ['"other"', "null", "5"],
        "version": ["2", "0", '"1"', "1.0", "null"],
        "fps": ["0", "-1", "NaN", '"10"', "1e400", "true", "null", "1e308"],
        "width": ["0", "-16", "15", "17", '"16"', "1e9", "1.5", "32"],
        "height": ["0", "8", "NaN", "Infinity"],
        "num_frames": ["3", "5", '"4"', "null", "-1", "4.0"],
        "frames": ["[]", "null", "{}", "[1]", '"x"'],
    }
    for key, vals in cam_values.items():
        for v in vals:
            add(f"cameras.json {key} = {v}", [("cameras.json", ("json_set", (key,), v))])
    for key in ("format", "version", "fps", "width", "height", "frames", "num_frames"):
        add(f"cameras.json without {key}", [("cameras.json", ("json_del", (key,)))])
    frame_values = {
        "c2w": [
            "NaN",
            "null",
            '"eye"',
            "[[1, 0], [0, 1]]",
            "[[2,0,0,0],[0,2,0,0],[0,0,2,0],[0,0,0,1]]",
            "[[1,0,0,1e400],[0,1,0,0],[0,0,1,0],[0,0,0,1]]",
            "[[1,0,0,1e39],[0,1,0,0],[0,0,1,0],[0,0,0,1]]",
        ],
        "K": ["[[0,0,8],[0,0,8],[0,0,1]]", "[[NaN,0,8],[0,12,8],[0,0,1]]", "[[12,0],[0,12]]", "5"],
        "timestamp_s": ["NaN", '"x"', "null", "[]", "1e400"],
    }
    for key, vals in frame_values.items():
        for v in vals:
            add(
                f"cameras.json frame 2 {key} = {short(v, 30)}",
                [("cameras.json", ("json_set", ("frames", 2, key), v))],
            )
    for key in ("c2w", "K", "timestamp_s"):
        add(
            f"cameras.json frame 1 without {key}",
            [("cameras.json", ("json_del", ("frames", 1, key)))],
        )
    add("cameras.json frame 0 is a list", [("cameras.json", ("json_set", ("frames", 0), "[1, 2]"))])
    raw = {
        "top-level list": b"[1, 2]",
        "deep nesting": b"[" * 100_000 + b"]" * 100_000,
        "not UTF-8": b'{"format": "\xff"}',
        "BOM": None,
        "huge integer": b'{"fps": ' + b"9" * 5000 + b"}",
        "NaN at the top": b"NaN",
    }
    for name, content in raw.items():
        if content is None:
            continue
        add(f"cameras.json {name}", [("cameras.json", content)])
    for name, content in {
        "not UTF-8": b"\xff\xfe room",
        "a UTF-8 encoded surrogate": b"\xed\xa0\x80",
        "NUL bytes": b"a\x00b",
        "10 MB": b"x" * 10_000_000,
    }.items():
        add(f"caption.txt {name}", [("caption.txt", content)])
    index_cases = [[-1], [4], [1.5], ["a"], [10**20], list(range(4)) * 1000, [True]]
    for idx in index_cases:
        add(f"read indices {short(idx, 30)}", [], indices=idx, exp=(r"indices",))
    cases += _manifest_cases()
    return cases


@runner
def manifest_read(ctx: Context, folder: Path, content: bytes, links: tuple) -> str:
    """``read_manifest`` on a dataset root holding ``content`` as manifest.jsonl."""
    from worldmem.data.episode import read_manifest

    root = folder / "root"
    (root / "ep").mkdir(parents=True)
    for name, target in links:
        place(root / name, ("link", resolve_link_target(ctx, folder, target)))
    (root / "manifest.jsonl").write_bytes(content)
    with guarded(folder, allow=lambda *a: False):
        entries = refused_on(lambda: read_manifest(root), ValueError)
    for e in entries:
        p = (root / e["path"]).resolve()
        if not p.is_relative_to(root.resolve()):
            raise Invalid(f"entry {e['path']!r} leads outside the root")
    return f"{len(entries)} entries"


def _manifest_cases() -> list[Case]:
    def line(**kw):
        entry = {"path": '"ep"', "split": '"train"', "num_frames": "4", "caption": '""', **kw}
        return "{" + ", ".join(f'"{k}": {v}' for k, v in entry.items() if v is not None) + "}"

    variants = {
        "path": [
            '"../x"',
            '"/abs"',
            '"ep/../../x"',
            '"a\\\\b"',
            '""',
            '"."',
            '"a\\u0000b"',
            "5",
            "null",
            '"out"',
            '"in"',
            '"ep/."',
            '"\\ud800"',
            None,
        ],
        "split": ['"training"', "null", "1", '"TRAIN"', None],
        "num_frames": ["0", "-1", "1.5", "true", '"3"', "1e400", "NaN", str(2**64), None],
        "caption": ["5", "null", '"\\ud800"', None],
    }
    cases = []
    links = (("out", "VICTIM/dir"), ("in", "CASE/root/ep"))
    for key, vals in variants.items():
        for v in vals:
            content = (line() + "\n" + line(**{key: v}) + "\n").encode()
            cases.append(
                Case(
                    "episodes",
                    f"manifest {key} = {v}",
                    "manifest_read",
                    (content, links),
                    (r"manifest\.jsonl line 2",),
                    always=v == '"out"',
                    detail=content.decode(),
                )
            )
    for name, content in {
        "deep nesting": b"[" * 100_000 + b"]" * 100_000,
        "not UTF-8": b'{"path": "\xff"}',
        "a list": b"[1, 2]",
        "empty": b"",
        "garbage": random.Random(7).randbytes(300),
    }.items():
        cases.append(
            Case(
                "episodes",
                f"manifest {name}",
                "manifest_read",
                (content, links),
                (r"manifest\.jsonl",),
                detail=short(content),
            )
        )
    return cases
