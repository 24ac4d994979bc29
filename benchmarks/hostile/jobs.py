"""Hostile jobs files: ``load_jobs`` on fields of every wrong type and value, whole files of
broken JSON, random bytes, special files; and sample.py on the command line with bad jobs,
output folders that exist or are links, broken checkpoints, start images and depths."""

from __future__ import annotations

import io
import json
import random
import re
from pathlib import Path

from hostile.core import (
    REPO,
    Case,
    Context,
    Invalid,
    cli_outcome,
    guarded,
    place,
    refused_on,
    resolve_link_target,
    run_cli,
    runner,
    short,
    under,
)

# ============================================================================================
# Boundary: jobs files (load_jobs) and sample.py on the command line
# ============================================================================================

MAX_SEED_63 = 2**63 - 1
# JSON value texts (not Python values: 1e400, NaN and escapes are written as a file has them)
JSON_VALUES = [
    "null",
    "true",
    "false",
    "0",
    "-0",
    "-1",
    "1",
    "3",
    "1.5",
    "-1.5",
    "1e400",
    "-1e400",
    "1E+400",
    "1e-400",
    "NaN",
    "Infinity",
    "-Infinity",
    str(2**63 - 1),
    str(2**63),
    str(2**64),
    str(-(2**63)),
    "9" * 400,
    "9" * 5000,
    '""',
    '" "',
    '"../x"',
    '"/abs"',
    '"/etc/passwd"',
    '"walk/."',
    '"./walk"',
    '"x/../walk"',
    '"a\\u0000b"',
    '"' + "x" * 300 + '"',
    '"\\ud800"',
    '"a\\udfffb"',
    '"a\\nb"',
    '"\\u202e"',
    '"CON"',
    '"walk"',
    '"w*2"',
    '"w*100001"',
    '"nope.json"',
    '"nope.txt"',
    '"."',
    '".."',
    '"-rf"',
    "[]",
    "{}",
    "[1]",
    '{"a": 1}',
    '["w"]',
    "[" * 50 + "]" * 50,
    '{"a": ' * 30 + "1" + "}" * 30,
]
JOB_FIELDS = ("name", "prompt", "trajectory", "image", "depth", "num_frames", "seed")


def job_line(**raw) -> str:
    obj = {"prompt": '"a room"', "trajectory": '"w*2"', **raw}
    return "{" + ", ".join(f'"{k}": {v}' for k, v in obj.items()) + "}"


def _check_jobs(jobs) -> None:
    from worldmem.geometry.trajectory import MAX_TRAJECTORY_FRAMES

    seen = set()
    for j in jobs:
        where = f"job {j.name!r}"
        if not (isinstance(j.prompt, str) and isinstance(j.trajectory, str)):
            raise Invalid(f"{where}: prompt or trajectory is not a string")
        for key in ("name", "prompt", "trajectory", "image", "depth"):
            value = getattr(j, key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise Invalid(f"{where}: {key} is a {type(value).__name__}")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise Invalid(f"{where}: {key} {short(value, 40)} is not valid Unicode") from None
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", j.name):
            raise Invalid(f"{where}: the name is not a plain folder name")
        if j.name.casefold() in seen:
            raise Invalid(f"{where}: two jobs write the same folder")
        seen.add(j.name.casefold())
        for key, hi in (("num_frames", MAX_TRAJECTORY_FRAMES), ("seed", MAX_SEED_63)):
            v = getattr(j, key)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
                raise Invalid(f"{where}: {key}={v!r}")


@runner
def jobs_file(ctx: Context, folder: Path, content) -> str:
    """``load_jobs`` on a jobs file holding ``content`` (bytes, or a file spec for place)."""
    from worldmem.config import SampleConfig
    from worldmem.sampling import load_jobs

    path = folder / "jobs.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        kind, *rest = content
        spec = (kind, resolve_link_target(ctx, folder, rest[0])) if rest else (kind,)
        place(path, spec)
    with guarded(folder, allow=lambda *a: False):
        jobs = refused_on(
            lambda: load_jobs(SampleConfig(jobs=str(path))), ValueError, FileNotFoundError
        )
    _check_jobs(jobs)
    return f"{len(jobs)} job(s)"


def cases_jobs(rng: random.Random) -> list[Case]:
    cases = []
    good = job_line()
    for key in (*JOB_FIELDS, "extra", "Prompt"):
        for raw in JSON_VALUES:
            extra = {"image": '"start.png"'} if key == "depth" else {}
            line = job_line(**extra, **{key: raw})
            known = key in JOB_FIELDS
            expect = (f"'{key}'" if known else "unknown job keys", "not valid JSON")
            if key == "name":
                expect += ("already used",)
            content = f"{good}\n{line}\n".encode()
            cases.append(
                Case(
                    "jobs",
                    f"{key}: {short(raw, 40)}",
                    "jobs_file",
                    (content,),
                    expect,
                    detail=short(line, 120),
                )
            )
    whole = {
        "empty file": b"",
        "blank lines only": b"\n  \n\t\n",
        "[ x 100000": b"[" * 100_000 + b"]" * 100_000,
        "{ x 50000": b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
        "[ x 1000 in a field": job_line(seed="[" * 1000 + "]" * 1000).encode(),
        "unterminated object": b'{"prompt": "a", "trajectory": "w"',
        "two objects on a line": (good + " " + good).encode(),
        "a JSON list of jobs": f"[{good}]".encode(),
        "a bare string": b'"w*2"',
        "a number": b"42",
        "null": b"null",
        "BOM then a job": b"\xef\xbb\xbf" + good.encode(),
        "invalid UTF-8": b'{"prompt": "\xff\xfe", "trajectory": "w"}',
        "overlong UTF-8": b'{"prompt": "\xc0\xaf", "trajectory": "w"}',
        "UTF-8 encoded surrogate": b'{"prompt": "\xed\xa0\x80", "trajectory": "w"}',
        "NUL bytes": b"\x00" * 64,
        "CRLF lines": (good + "\r\n" + job_line(name='"b"') + "\r\n").encode(),
        "CR-only lines": (good + "\r" + job_line(name='"b"')).encode(),
        "U+2028 inside a prompt": job_line(prompt='"a\u2028b"').encode(),
        "U+0085 inside a prompt": job_line(prompt='"a\u0085b"').encode(),
        "vertical tab between jobs": (good + "\x0b" + job_line(name='"b"')).encode(),
        "10,000 jobs": "\n".join(job_line(name=f'"j{i}"') for i in range(10_000)).encode(),
        "same name twice": (job_line(name='"walk"') + "\n" + job_line(name='"walk"')).encode(),
        "names differ in case": (job_line(name='"Walk"') + "\n" + job_line(name='"wALK"')).encode(),
        "default name taken": (job_line(name='"job_001"') + "\n" + good).encode(),
        "a 5 MB prompt": job_line(prompt='"' + "x" * 5_000_000 + '"').encode(),
        "duplicate keys in one object": b'{"prompt": "a", "prompt": 5, "trajectory": "w"}',
        "depth without image": job_line(depth='"d.npy"').encode(),
        "key that is not a string": b'{"prompt": "a", "trajectory": "w", 1: 2}',
        "trailing comma": b'{"prompt": "a", "trajectory": "w",}',
        "single quotes": b"{'prompt': 'a', 'trajectory': 'w'}",
        "comment line": b"// a comment\n" + good.encode(),
    }
    for name, content in whole.items():
        cases.append(
            Case("jobs", name, "jobs_file", (content,), (r"jobs\.jsonl",), detail=short(content))
        )
    for i in range(40):
        n = rng.choice([1, 8, 64, 512, 4096])
        junk = bytes(rng.randrange(256) for _ in range(n))
        cases.append(
            Case(
                "jobs",
                f"random bytes #{i} ({n})",
                "jobs_file",
                (junk,),
                (r"jobs\.jsonl",),
                detail=short(junk),
            )
        )
    for i in range(40):  # a valid job with one character replaced by a random one
        line = bytearray(good.encode())
        line[rng.randrange(len(line))] = rng.randrange(256)
        cases.append(
            Case(
                "jobs",
                f"one byte changed #{i}",
                "jobs_file",
                (bytes(line),),
                (r"jobs\.jsonl",),
                detail=short(bytes(line)),
            )
        )
    files = {
        "no file": None,
        "a folder": ("dir",),
        "link to /dev/zero": ("link", "/dev/zero"),
        "link to a FIFO": ("fifo",),
        "dangling link": ("link", "CASE/nowhere"),
        "link loop": ("link", "CASE/jobs.jsonl"),
        "link to a text file": ("link", "VICTIM/secret.txt"),
    }
    for name, spec in files.items():
        cases.append(
            Case(
                "jobs",
                f"jobs path: {name}",
                "jobs_file",
                (spec,),
                (r"jobs\.jsonl", "jobs file"),
                always=name.startswith("link to /dev"),
                detail=repr(spec),
            )
        )
    return cases


# ---- sample.py -----------------------------------------------------------------------------


@runner
def sample_cli(ctx: Context, folder: Path, jobs: bytes | None, overrides: tuple, files: dict):
    """sample.py with a jobs file (or none), ``overrides`` and extra files; ``out/job_000``
    exists before the run and must survive unless the run is accepted with overwrite."""
    out = folder / "out"
    (out / "job_000").mkdir(parents=True)
    (out / "job_000" / "notes.txt").write_text("mine")
    (folder / "elsewhere").mkdir()
    (folder / "elsewhere" / "keep.txt").write_text("keep")
    for name, spec in files.items():
        if isinstance(spec, tuple) and spec[0] == "link":
            spec = ("link", resolve_link_target(ctx, folder, spec[1]))
        place(folder / name, spec)
    argv = [
        str(REPO / "sample.py"),
        f"sample.checkpoint={ctx.root / 'tiny_pipeline'}",
        f"sample.out_dir={out}",
        "sample.image=none",
        "sample.side_by_side=false",
        "sample.trajectory=w*2",
    ]
    if jobs is not None:
        (folder / "jobs.jsonl").write_bytes(jobs.replace(b"CASE", str(folder).encode()))
        argv.append(f"sample.jobs={folder / 'jobs.jsonl'}")
    argv += [o.replace("CASE", str(folder)) for o in overrides]
    overwrite = "sample.overwrite=true" in overrides

    def allow(path: str, how: str, accepted: bool) -> bool:
        if under(path, "out/job_000"):
            return accepted and overwrite
        if under(path, "elsewhere") and path != "elsewhere/keep.txt":
            return how == "added"  # an out_dir that links here
        # a job that fails does not take the others' outputs with it
        return how == "added" and under(path, "out", "fresh")

    with guarded(folder, allow):
        code, stdout, stderr = run_cli(argv, folder)
        note = cli_outcome(code, stdout, stderr)
    used = Path([a for a in argv if a.startswith("sample.out_dir=")][-1].split("=", 1)[1])
    written = [p for p in used.glob("*") if (p / "video.mp4").is_file()]
    # out/job_000 was there before the run: only a replaced one counts
    if not any(p.name != "job_000" or overwrite or used != out for p in written):
        raise Invalid(f"exit 0 but no job folder with a video was written in {used}")
    return note


def cases_sample_cli(rng: random.Random) -> list[Case]:
    bad_lines = [
        job_line(name='"../x"'),
        job_line(name='"/abs"'),
        job_line(num_frames="1e400"),
        job_line(seed="NaN"),
        job_line(prompt="5"),
        "[" * 100_000,
        job_line(extra="1"),
        job_line(trajectory='"w*100001"'),
        job_line(trajectory='"jump*3"'),
        job_line(trajectory='"CASE/nope.json"'),
        job_line(image='"CASE/nope.png"'),
        job_line(prompt='"\\ud800"'),
        job_line(name='"job_000"'),
        job_line(trajectory='"CASE/zero.json"'),
        job_line(trajectory='"CASE/bad.json"'),
        job_line(trajectory='"CASE/re10k.txt"'),
        job_line(image='"CASE/bad.png"'),
        job_line(image='"CASE/bomb.png"'),
        job_line(image='"CASE/ok.png"', depth='"CASE/nan.npy"'),
        job_line(image='"CASE/ok.png"', depth='"CASE/huge.npy"'),
        job_line(image='"CASE/ok.png"', depth='"CASE/pickle.npy"'),
    ]
    files = _sample_files()
    cases = []
    first = job_line(name='"first"')
    for line in bad_lines:
        cases.append(
            Case(
                "sample.py",
                f"jobs line {short(line, 50)}",
                "sample_cli",
                (f"{first}\n{line}\n".encode(), (), files),
                (
                    r"jobs\.jsonl:2|job 'job_001'|job_000|(nope|zero|bad|re10k|ok|bomb|nan|huge"
                    r"|pickle)\.(json|txt|png|npy)",
                ),
                cli=True,
                detail=short(line, 120),
            )
        )
    # name -> (jobs, overrides, files, what the message must name)
    more = {
        "existing job folder, no overwrite": (None, (), {}, r"job_000 already exists"),
        "job folder is a link out of out_dir": (
            None,
            ("sample.overwrite=true",),
            {"out/job_000": ("link", "VICTIM/dir")},
            r"is not inside",
        ),
        "out_dir is a file": (None, ("sample.out_dir=CASE/afile",), {"afile": "x"}, r"afile"),
        "out_dir links elsewhere": (
            None,
            ("sample.out_dir=CASE/linked",),
            {"linked": ("link", "CASE/elsewhere")},
            r"linked",
        ),
        "out_dir is a dangling link": (
            None,
            ("sample.out_dir=CASE/dangling",),
            {"dangling": ("link", "CASE/nowhere")},
            r"dangling",
        ),
        "trajectory file with NaN": (
            None,
            ("sample.trajectory=CASE/bad.json",),
            files,
            r"bad\.json: frame 1",
        ),
        "trajectory: /dev/zero as json": (
            None,
            ("sample.trajectory=CASE/zero.json",),
            files,
            r"zero\.json",
        ),
        "accepted: a fresh out_dir": (None, ("sample.out_dir=CASE/fresh",), {}, r"^$"),
        "accepted: overwrite": (None, ("sample.overwrite=true",), {}, r"^$"),
        "checkpoint missing": (None, ("sample.checkpoint=CASE/none",), {}, r"no checkpoint at"),
        "checkpoint is a file": (
            None,
            ("sample.checkpoint=CASE/afile",),
            {"afile": "x"},
            r"afile is not a worldmem pipeline",
        ),
        "checkpoint with a broken pipeline.json": (
            None,
            ("sample.checkpoint=CASE/ckpt",),
            {"ckpt/pipeline.json": "{not json"},
            r"pipeline\.json",
        ),
        "checkpoint with a wrong-version pipeline.json": (
            None,
            ("sample.checkpoint=CASE/ckpt",),
            {"ckpt/pipeline.json": '{"format_version": 99}'},
            r"pipeline format version 99",
        ),
        "checkpoint with pipeline.json missing keys": (
            None,
            ("sample.checkpoint=CASE/ckpt",),
            {"ckpt/pipeline.json": '{"format_version": 1}'},
            r"pipeline\.json.*'model'",
        ),
        "start image is a folder": (None, ("sample.image=CASE",), {}, r"start image"),
        "start image is a bomb": (None, ("sample.image=CASE/bomb.png",), files, r"bomb\.png"),
        "depth of a huge shape": (
            None,
            ("sample.image=CASE/ok.png", "sample.depth=CASE/huge.npy"),
            files,
            r"huge\.npy",
        ),
    }
    for name, (jobs, overrides, more_files, expect) in more.items():
        cases.append(
            Case(
                "sample.py",
                name,
                "sample_cli",
                (jobs, overrides, more_files),
                (expect,),
                cli=True,
                always=name.startswith("job folder"),
                detail=short(overrides),
            )
        )
    return cases


def _sample_files() -> dict:
    import numpy as np

    def npy(array) -> bytes:
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=True)
        return buf.getvalue()

    huge = io.BytesIO()  # a header claiming 10^10 floats, then 16 bytes
    np.lib.format.write_array_header_1_0(
        huge, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)}
    )
    huge = huge.getvalue() + bytes(16)
    nan = np.ones((32, 32), np.float32)
    nan[3, 3] = np.nan
    frames = [
        {
            "c2w": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
            "K": [[25, 0, 16], [0, 25, 16], [0, 0, 1]],
        }
    ] * 3
    frames = json.loads(json.dumps(frames))
    frames[1]["c2w"][0][3] = "NaN"
    bad = json.dumps({"width": 32, "height": 32, "frames": frames}).replace('"NaN"', "NaN")
    return {
        "zero.json": ("link", "/dev/zero"),
        "bad.json": bad,
        "re10k.txt": "https://x\n1 2 3\n",
        "bad.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
        "bomb.png": png_bomb(),
        "ok.png": png_bytes(32, 32),
        "nan.npy": npy(nan),
        "huge.npy": huge,
        "pickle.npy": npy(np.array([{"a": 1}], dtype=object)),
    }


def png_bytes(w: int, h: int) -> bytes:
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def png_bomb() -> bytes:
    """A valid PNG header declaring 30000 x 30000 pixels (900 Mpx) and almost no data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
