"""Hostile cameras: the trajectory language (counts, garbage, random text) and camera files
(JSON trajectories with bad matrices, intrinsics, sizes and timestamps; RealEstate10K files
with and without the URL line, garbage rows, bad numbers; special files), read the way
sample.py reads them and checked by the pipeline."""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path

from hostile.core import (
    Case,
    Context,
    Invalid,
    guarded,
    place,
    refused_on,
    resolve_link_target,
    runner,
    short,
)

# ============================================================================================
# Boundary: the trajectory language, and camera files (JSON trajectories, RealEstate10K)
# ============================================================================================


def _check_cameras(c2w, K=None, n_max: int | None = None) -> None:
    import torch

    from worldmem.geometry.trajectory import MAX_TRAJECTORY_FRAMES

    n_max = n_max or MAX_TRAJECTORY_FRAMES + 1
    if c2w.ndim != 3 or tuple(c2w.shape[1:]) != (4, 4) or not 1 <= len(c2w) <= n_max:
        raise Invalid(f"cameras of shape {tuple(c2w.shape)}")
    if not bool(torch.isfinite(c2w).all()):
        raise Invalid("a camera has NaN or infinite values")
    R = c2w[:, :3, :3].double()
    err = (R.transpose(-1, -2) @ R - torch.eye(3, dtype=R.dtype)).abs().amax()
    if float(err) > 1e-2 or bool((torch.linalg.det(R) < 0).any()):
        raise Invalid(f"a camera is not rigid (|R^T R - I| = {float(err):.3g})")
    if K is not None and (not bool(torch.isfinite(K).all()) or bool((K[:, 0, 0] <= 0).any())):
        raise Invalid("intrinsics with NaN, infinite or non-positive focal lengths")


@runner
def trajectory_text(ctx: Context, folder: Path, text) -> str:
    """``parse_trajectory`` and ``trajectory_from_text`` (what sample.py runs on a
    trajectory that is not a file)."""
    import torch

    from worldmem.config import ActionConfig
    from worldmem.geometry.camera import intrinsics_from_fov
    from worldmem.geometry.trajectory import (
        MAX_TRAJECTORY_FRAMES,
        parse_trajectory,
        trajectory_from_text,
    )

    steps = refused_on(lambda: parse_trajectory(text), ValueError)
    if sum(s.count or 1 for s in steps) > MAX_TRAJECTORY_FRAMES:
        raise Invalid(f"{len(steps)} steps of more than {MAX_TRAJECTORY_FRAMES} frames")
    K = intrinsics_from_fov(60.0, 32, 32)
    traj = refused_on(
        lambda: trajectory_from_text(text, torch.eye(4), K, 32, 32, ActionConfig()), ValueError
    )
    _check_cameras(traj.c2w, traj.K)
    return f"{len(traj.c2w)} frames"


def cases_trajectory(rng: random.Random) -> list[Case]:
    from worldmem.geometry.trajectory import STEP_NAMES

    counts = [
        "0",
        "-1",
        "1",
        "100000",
        "100001",
        "99999999999999999999999",
        "1e5",
        "1.5",
        "0x10",
        "",
        "+5",
        "\u0663",
        "\uff11\uff10",
        "5 ",
        "5\x00",
        "9" * 5000,
        "*3",
        "2*2",
        "-0",
        "00007",
    ]
    cases = []
    for name in ("w", "left", "pause", "back-to-start", "idle", "space", "shift", "down"):
        for c in counts:
            text = f"w*3 {name}*{c}"
            cases.append(
                Case(
                    "trajectory language",
                    short(text, 50),
                    "trajectory_text",
                    (text,),
                    (r"step|frames|trajectory|count|unknown|column",),
                    detail=short(text),
                )
            )
    specials = {
        "100001 single steps": "w " * 100_001,
        "20 x w*100000": "w*100000 " * 20,
        "far out then back-to-start": "w*50000 back-to-start",
        "w*100000 back-to-start": "w*100000 back-to-start",
        "back-to-start*100000 after a turn": "left*30 back-to-start*100000",
        "1 MB of spaces": " " * 1_000_000,
        "empty": "",
        "unicode spaces": "w\u3000w\u00a0w",
        "NUL between steps": "w\x00w",
        "lone surrogate": "w \ud800",
        "upper case": "W*2 LEFT",
        "tab separated": "w\tw",
        "newline separated": "w\nleft\r\nright",
        "emoji": "\U0001f600*3",
        "right-to-left mark": "\u202ew*3",
        "python expression": "__import__('os').system('echo hi')",
        "json": '["w", "w"]',
        "a path": "/etc/passwd",
        "a json file that is not there": "nope.json",
        "step name prefix": "back-to",
        "count on its own": "*5",
        "stars": "w**2",
        "trailing star": "w*",
        "huge back-to-start count": "back-to-start*99999999999",
    }
    for name, text in specials.items():
        cases.append(
            Case(
                "trajectory language",
                name,
                "trajectory_text",
                (text,),
                (r"step|frames|trajectory|count|unknown|column|MAX",),
                always=name in ("20 x w*100000", "w*100000 back-to-start"),
                detail=short(text),
            )
        )
    for obj in (None, 5, b"w*2", ["w"], {"w": 2}, 2.5):
        cases.append(
            Case(
                "trajectory language",
                f"not text: {type(obj).__name__}",
                "trajectory_text",
                (obj,),
                (r"string|trajectory|text",),
                detail=repr(obj),
            )
        )
    alphabet = "wsadqe*0123456789 -_\t\n\x00\u00e9\u202e\ud800\U0001f600!@#$%^&()[]{}<>\\/"
    for i in range(120):
        if i % 3 == 0:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 60)))
        elif i % 3 == 1:
            count = rng.choice([rng.randrange(-3, 60), rng.randrange(100_001, 10**9)])
            toks = [
                rng.choice(STEP_NAMES) + rng.choice(["", f"*{count}"])
                for _ in range(rng.randrange(1, 12))
            ]
            text = " ".join(toks)
        else:
            text = "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(1, 40)))
        cases.append(
            Case(
                "trajectory language",
                f"random #{i}: {short(text, 30)}",
                "trajectory_text",
                (text,),
                (r"step|frames|trajectory|count|unknown|column",),
                detail=short(text),
            )
        )
    return cases


# ---- camera files ---------------------------------------------------------------------------


@runner
def camera_file(ctx: Context, folder: Path, name: str, content) -> str:
    """What sample.py does with a trajectory file: ``resolve_trajectory`` then the pipeline's
    ``check_cameras``."""
    from worldmem.config import ActionConfig
    from worldmem.sampling import resolve_trajectory

    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        kind, *rest = content
        place(path, (kind, resolve_link_target(ctx, folder, rest[0])) if rest else (kind,))
    pipe = ctx.pipe
    with guarded(folder, allow=lambda *a: False):
        traj = refused_on(
            lambda: resolve_trajectory(str(path), pipe.size, pipe.K.cpu(), ActionConfig()),
            ValueError,
            FileNotFoundError,
        )
        c2w, K = refused_on(lambda: pipe.check_cameras(traj.c2w, traj.K), ValueError)
    _check_cameras(c2w, K)
    return f"{len(c2w)} cameras"


def _traj_json(frames=None, **top) -> dict:
    eye = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    K = [[25, 0, 16], [0, 25, 16], [0, 0, 1]]
    frames = frames if frames is not None else [{"c2w": eye, "K": K} for _ in range(3)]
    return {"width": 32, "height": 32, "frames": frames, **top}


def _dumps(obj) -> bytes:
    """JSON with the tokens NaN, Infinity and 1e400 written where the strings "NaN", "Inf"
    and "1e400" stand."""
    text = json.dumps(obj)
    for token in ("NaN", "Infinity", "-Infinity", "1e400", "1e39", "1e-400"):
        text = text.replace(f'"@{token}"', token)
    return text.encode()


def _one_field_cases(base: dict, frame: int, key: str, values: dict, error: str) -> list[Case]:
    """A camera file per ``values`` entry: ``base`` with frame ``frame``'s ``key`` set to it;
    the error must match ``error``."""
    cases = []
    for name, v in values.items():
        obj = copy.deepcopy(base)
        obj["frames"][frame][key] = v
        cases.append(
            Case(
                "camera files",
                f"{key}: {name}",
                "camera_file",
                ("t.json", _dumps(obj)),
                (error,),
                detail=name,
            )
        )
    return cases


def cases_camera_files(rng: random.Random) -> list[Case]:

    cases = []
    base = _traj_json()
    values = [
        "@NaN",
        "@Infinity",
        "@-Infinity",
        "@1e400",
        "@1e39",
        "@1e-400",
        "1",
        None,
        True,
        [],
        1e7,
        -1e7,
        2.0,
        0.0,
    ]
    for key, shape in (("c2w", (4, 4)), ("K", (3, 3))):
        for i in range(shape[0]):
            for j in range(shape[1]):
                for v in values if (i + j) % 2 == 0 else values[:6]:
                    obj = copy.deepcopy(base)
                    obj["frames"][1][key][i][j] = v
                    cases.append(
                        Case(
                            "camera files",
                            f"{key}[{i}][{j}] = {v!r}",
                            "camera_file",
                            ("t.json", _dumps(obj)),
                            (r"t\.json|frame 1|pose 1|intrinsics 1|camera",),
                            detail=f"frame 1 {key}[{i}][{j}] = {v!r}",
                        )
                    )
    s, c = math.sin(0.3), math.cos(0.3)
    matrices = {
        "scaled rotation": [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]],
        "shear": [[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        "reflection": [[-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        "zero matrix": [[0] * 4] * 4,
        "projective last row": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]],
        "rotation off by 1e-2": [[c, -s + 1e-2, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        "far off the grid": [[1, 0, 0, 1e6], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        "3x4": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],
        "4x3": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]],
        "ragged": [[1, 0, 0, 0], [0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        "flat 16": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
        "4x4x1": [[[1], [0], [0], [0]]] * 4,
        "strings": [["1", "0", "0", "0"]] * 4,
        "null": None,
        "a string": "eye",
        "nested deeply": [[[[[[1]]]]]],
    }
    cases += _one_field_cases(base, 2, "c2w", matrices, r"t\.json|pose 2|frame 2|grid")
    intrinsics = {
        "zero focal": [[0, 0, 16], [0, 0, 16], [0, 0, 1]],
        "negative focal": [[-25, 0, 16], [0, -25, 16], [0, 0, 1]],
        "focal 1e9": [[1e9, 0, 16], [0, 1e9, 16], [0, 0, 1]],
        "skew 1e9": [[25, 1e9, 16], [0, 25, 16], [0, 0, 1]],
        "principal point far": [[25, 0, 1e6], [0, 25, 16], [0, 0, 1]],
        "last row zero": [[25, 0, 16], [0, 25, 16], [0, 0, 0]],
        "2x2": [[25, 0], [0, 25]],
        "identity": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    }
    cases += _one_field_cases(base, 0, "K", intrinsics, r"t\.json|intrinsics|frame 0|K")
    tops = {
        "width 0": {"width": 0},
        "width -32": {"width": -32},
        "width 1.5": {"width": 1.5},
        "width '32'": {"width": "32"},
        "width null": {"width": None},
        "width true": {"width": True},
        "width 1e400": {"width": "@1e400"},
        "width 2**64": {"width": 2**64},
        "height []": {"height": []},
        "width 10**9": {"width": 10**9},
        "frames {}": {"frames": {}},
        "frames []": {"frames": []},
        "frames null": {"frames": None},
        "frames 'x'": {"frames": "x"},
        "frames [1]": {"frames": [1]},
        "frames [{}]": {"frames": [{}]},
        "extra key": {"extra": 1},
    }
    for name, top in tops.items():
        obj = {**base, **top}
        cases.append(
            Case(
                "camera files",
                name,
                "camera_file",
                ("t.json", _dumps(obj)),
                (r"t\.json|width|height|frames",),
                detail=name,
            )
        )
    obj = {**base, "width": 1}  # the intrinsics, rescaled to the model's frame, are absurd
    cases.append(
        Case(
            "camera files",
            "width 1",
            "camera_file",
            ("t.json", _dumps(obj)),
            (r"\bK\b.*intrinsics 0",),
            detail="width 1",
        )
    )
    stamps = {
        "some timestamps": [0.0, None, 2.0],
        "NaN timestamp": [0.0, "@NaN", 1.0],
        "string timestamp": [0.0, "1", 2.0],
        "list timestamp": [0.0, [1], 2.0],
        "1e400 timestamp": [0, "@1e400", 2],
        "huge timestamps": [1e308, -1e308, 0],
    }
    for name, ts in stamps.items():
        obj = copy.deepcopy(base)
        for f, t in zip(obj["frames"], ts):
            if t is not None:
                f["timestamp"] = t
        cases.append(
            Case(
                "camera files",
                name,
                "camera_file",
                ("t.json", _dumps(obj)),
                (r"t\.json|timestamp",),
                detail=name,
            )
        )
    eye = base["frames"][0]
    raw = {
        "100001 frames": json.dumps(_traj_json([eye] * 100_001)).encode(),
        "top-level list": b"[1, 2]",
        "top-level string": b'"x"',
        "top-level null": b"null",
        "missing frames": b'{"width": 32, "height": 32}',
        "empty file": b"",
        "deep nesting": b"[" * 100_000 + b"]" * 100_000,
        "not UTF-8": b'{"width": 32, "\xff": 1}',
        "BOM": b"\xef\xbb\xbf" + json.dumps(base).encode(),
        "huge integer": b'{"width": ' + b"9" * 5000 + b', "height": 32, "frames": []}',
        "truncated": json.dumps(base).encode()[:-7],
    }
    for name, content in raw.items():
        cases.append(
            Case(
                "camera files",
                name,
                "camera_file",
                ("t.json", content),
                (r"t\.json",),
                always=name == "empty file",
                detail=short(content),
            )
        )
    specials = {
        "json link to /dev/zero": ("z.json", ("link", "/dev/zero")),
        "txt link to /dev/urandom": ("z.txt", ("link", "/dev/urandom")),
        "json FIFO": ("f.json", ("fifo",)),
        "json folder": ("d.json", ("dir",)),
        "dangling json link": ("n.json", ("link", "CASE/nowhere")),
    }
    for name, (fname, spec) in specials.items():
        cases.append(
            Case(
                "camera files",
                name,
                "camera_file",
                (fname, spec),
                (r"\.json|\.txt|not found|trajectory",),
                always=True,
                detail=repr(spec),
            )
        )
    cases += _re10k_cases(rng)
    return cases


def re10k_line(ts=0, intr=(0.8, 0.8, 0.5, 0.5), w2c=None) -> str:
    w2c = w2c or [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]
    return " ".join(str(v) for v in [ts, *intr, 0, 0, *w2c])


def re10k_file(lines: list[str], url: bool = True) -> bytes:
    head = ["https://www.youtube.com/watch?v=abcdefghijk"] if url else []
    return ("\n".join(head + lines) + "\n").encode()


def _re10k_cases(rng: random.Random) -> list[Case]:
    good = [re10k_line(i * 33366) for i in range(3)]
    variants = {
        "18 fields": good[:1] + [" ".join(good[1].split()[:18])],
        "20 fields": good[:1] + [good[1] + " 7"],
        "a word": good[:1] + [good[1].replace("0.8", "abc", 1)],
        "NaN focal": good[:1] + [re10k_line(1, (float("nan"), 0.8, 0.5, 0.5))],
        "inf translation": good[:1] + [re10k_line(1, w2c=[1, 0, 0, "inf", 0, 1, 0, 0, 0, 0, 1, 0])],
        "1e400": good[:1] + [re10k_line(1, w2c=[1, 0, 0, "1e400", 0, 1, 0, 0, 0, 0, 1, 0])],
        "zero focal": good[:1] + [re10k_line(1, (0, 0, 0.5, 0.5))],
        "negative focal": good[:1] + [re10k_line(1, (-0.8, 0.8, 0.5, 0.5))],
        "scaled rotation": good[:1] + [re10k_line(1, w2c=[2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0])],
        "reflection": good[:1] + [re10k_line(1, w2c=[-1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0])],
        "zero rotation": good[:1] + [re10k_line(1, w2c=[0] * 12)],
        "off the grid": good[:1] + [re10k_line(1, w2c=[1, 0, 0, 1e7, 0, 1, 0, 0, 0, 0, 1, 0])],
        "tabs": [g.replace(" ", "\t") for g in good],
        "second url line": good[:1] + ["https://example.com"] + good[1:],
        "only the url": [],
        "hex numbers": good[:1] + [good[1].replace("0.5", "0x1p-1")],
        "huge timestamp": [re10k_line("9" * 400)] + good[1:],
        "negative timestamps": [re10k_line(-5), re10k_line(-10)],
        "1e308 intrinsics": good[:1] + [re10k_line(1, (1e308, 1e308, 0.5, 0.5))],
        "100001 lines": [re10k_line(i) for i in range(100_001)],
    }
    cases = []
    for name, lines in variants.items():
        for url in (True, False):
            cases.append(
                Case(
                    "camera files",
                    f"re10k {name}{'' if url else ' (no url)'}",
                    "camera_file",
                    ("c.txt", re10k_file(lines, url)),
                    (r"c\.txt", r"cameras: pose \d+ is at .* grid"),
                    detail=name,
                )
            )
    for name, content in {
        "empty": b"",
        "not UTF-8": b"https://x\n\xff\xfe\n",
        "binary": bytes(range(256)) * 4,
        "CRLF": re10k_file(good).replace(b"\n", b"\r\n"),
        "NUL bytes": b"\x00" * 100,
    }.items():
        cases.append(
            Case(
                "camera files",
                f"re10k {name}",
                "camera_file",
                ("c.txt", content),
                (r"c\.txt",),
                detail=short(content),
            )
        )
    for i in range(30):
        fields = re10k_line(1).split()
        fields[rng.randrange(len(fields))] = rng.choice(
            ["nan", "inf", "-inf", "1e400", "x", "", "--", "1e39", "0", "-0", "1_0"]
        )
        content = re10k_file([good[0], " ".join(fields)], url=bool(i % 2))
        cases.append(
            Case(
                "camera files",
                f"re10k random field #{i}",
                "camera_file",
                ("c.txt", content),
                (r"c\.txt",),
                detail=short(content),
            )
        )
    return cases
