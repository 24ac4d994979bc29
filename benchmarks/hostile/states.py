"""Hostile world state files: flipped and truncated bytes, payloads with every entry deleted,
replaced or of the wrong shape, dtype or value (re-checksummed, so the checks behind the
checksum are reached), special files; and ``save_state`` to paths that cannot be written."""

from __future__ import annotations

import hashlib
import io
import math
import random
import zipfile
from pathlib import Path

from hostile.core import (
    Case,
    Context,
    DataLoss,
    Invalid,
    Refused,
    build,
    guarded,
    refused_on,
    runner,
    short,
)

# ============================================================================================
# Boundary: world state files (load_state, save_state)
# ============================================================================================


def _state_parts(path: Path):
    """The state dict inside a world state file."""
    import torch

    wrapper = torch.load(path, weights_only=True)
    return torch.load(io.BytesIO(wrapper["payload"].numpy().tobytes()), weights_only=True)


def _wrap(state, to: Path, **wrapper_edits) -> Path:
    """Write ``state`` as a world state file with a valid checksum (so the checks after the
    checksum are reached), the wrapper's entries replaced by ``wrapper_edits``."""
    import torch

    from worldmem.pipeline import STATE_FORMAT_VERSION

    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    wrapper = {
        "format_version": STATE_FORMAT_VERSION,
        "sha256": hashlib.sha256(data).hexdigest(),
        "payload": torch.frombuffer(bytearray(data), dtype=torch.uint8),
    }
    for k, v in wrapper_edits.items():
        if v == "DELETE":
            wrapper.pop(k)
        else:
            wrapper[k] = v
    torch.save(wrapper, to)
    return to


def _get(state: dict, keys: tuple):
    for k in keys:
        state = state[k]
    return state


def _set(state: dict, keys: tuple, value) -> None:
    _get(state, keys[:-1])[keys[-1]] = value


def _edited_value(old, how: str):
    """A hostile replacement for the state entry ``old``."""
    import torch

    if how == "nan" or how == "inf":
        x = old.clone() if old.is_floating_point() else old.double()  # ints become floats
        if x.numel():
            x.view(-1)[x.numel() // 2] = math.nan if how == "nan" else math.inf
        else:
            x = torch.full((1, *x.shape[1:]), math.nan if how == "nan" else math.inf)
        return x
    if how == "1e39":
        return old.double().clone().fill_(1e39) if old.numel() else torch.full((1,), 1e39)
    if how == "drop a row":
        return old[:-1].clone() if old.ndim and len(old) else old.reshape(-1)[:0]
    if how == "add a row":
        return torch.cat([old, old[:1]]) if old.ndim and len(old) else torch.zeros(1)
    if how == "flatten":
        return old.reshape(-1).clone()
    if how == "add an axis":
        return old[None].clone()
    if how == "float64":
        return old.double()
    if how == "int32":
        return old.to(torch.int32)
    if how == "bool":
        return old.bool()
    if how == "empty":
        return old.reshape(-1)[:0].clone()
    if how == "a list":
        return old.tolist() if old.numel() < 10_000 else [1, 2]
    if how == "None":
        return None
    if how == "a string":
        return "x"
    if how == "negated":
        return -old if old.dtype != torch.bool else ~old
    if how == "huge":
        if old.is_floating_point():
            return old.double().clone().fill_(1e30)
        return old.clone().fill_(torch.iinfo(old.dtype).max if old.dtype != torch.bool else 1)
    raise ValueError(how)


@runner
def state_load(ctx: Context, folder: Path, kind: str, arg) -> str:
    """``load_state`` of a hostile world state file into a world in progress: a refusal must
    leave the world exactly as it was; an accepted file must step."""
    import torch

    pipe = ctx.pipe
    good = ctx.state_file
    path = folder / "world.pt"
    if kind == "raw":
        path.write_bytes(arg)
    elif kind == "file":
        build(path, arg, ctx, folder)
    elif kind == "bytes edit":
        path.write_bytes(good.read_bytes())
        build(path, arg, ctx, folder)
    elif kind == "payload edit":
        state = _state_parts(good)
        keys, how = arg
        if how == "delete":
            del _get(state, keys[:-1])[keys[-1]]
        elif how == "unknown key":
            _get(state, keys)["extra"] = 1
        elif isinstance(how, tuple) and how[0] == "value":
            _set(state, keys, how[1])
        else:
            _set(state, keys, _edited_value(_get(state, keys), how))
        _wrap(state, path)
    elif kind == "wrapper edit":
        _wrap(_state_parts(good), path, **arg)
    elif kind == "payload bytes":
        _wrap_bytes(good, path, arg)
    elif kind == "not a path":
        path = arg
    world = ctx.fresh_world()
    with guarded(folder, allow=lambda *a: False):
        try:
            pipe.load_state(path)
        except (ValueError, FileNotFoundError) as e:
            differs = ctx.state_differs(world)
            if differs:
                raise DataLoss(f"refused ({type(e).__name__}: {e}), but {differs}") from e
            raise Refused(f"{type(e).__name__}: {e}") from e
    try:
        chunk = pipe.step(["w", "right"])
    except Exception as e:  # noqa: BLE001 - an accepted state that cannot step is invalid
        raise Invalid(f"accepted, then the next step failed: {type(e).__name__}: {e}") from e
    if not (torch.isfinite(chunk.rgb).all() and torch.isfinite(chunk.depth).all()):
        raise Invalid("accepted, then the next chunk was not finite")
    return "loaded and stepped"


def _wrap_bytes(good: Path, to: Path, edit) -> None:
    """A file whose payload bytes are edited and then given a valid checksum."""
    import torch

    wrapper = torch.load(good, weights_only=True)
    data = bytearray(wrapper["payload"].numpy().tobytes())
    op, frac = edit
    i = min(int(frac * len(data)), len(data) - 1)
    if op == "flip":
        data[i] ^= 0xFF
    else:
        data = data[:i]
    _wrap_raw(bytes(data), to)


def _wrap_raw(data: bytes, to: Path) -> None:
    import torch

    from worldmem.pipeline import STATE_FORMAT_VERSION

    torch.save(
        {
            "format_version": STATE_FORMAT_VERSION,
            "sha256": hashlib.sha256(data).hexdigest(),
            "payload": torch.frombuffer(bytearray(data), dtype=torch.uint8)
            if data
            else torch.zeros(0, dtype=torch.uint8),
        },
        to,
    )


@runner
def state_save(ctx: Context, folder: Path, target: str, pre: dict) -> str:
    """``save_state`` to a hostile path; a file already there survives a refusal, and a
    link is replaced, never written through."""
    pipe = ctx.pipe
    for name, spec in pre.items():
        build(folder / name, spec, ctx, folder)
    world = ctx.fresh_world()
    path = target.replace("CASE", str(folder)) if isinstance(target, str) else target

    def allow(p: str, how: str, accepted: bool) -> bool:
        return accepted and p == "s.pt"

    with guarded(folder, allow):
        refused_on(lambda: pipe.save_state(path), ValueError, OSError)
    if ctx.state_differs(world):
        raise DataLoss("save_state changed the world")
    return "saved"


def _state_entries() -> list[tuple[tuple, str]]:
    """(key path, kind) of every entry of a world's state dict (kind: tensor or value)."""
    import torch
    from conftest import make_tiny_pipeline

    pipe = make_tiny_pipeline(seed=0)
    S = pipe.size
    pipe.start("a room", image=torch.rand(3, S, S), depth=1 + torch.rand(1, S, S))
    pipe.step(["w"])
    out = []

    def walk(d, keys):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, (*keys, k))
            else:
                out.append(((*keys, k), "tensor" if isinstance(v, torch.Tensor) else "value"))

    walk(pipe.state.state_dict(), ())
    return out


def cases_states(rng: random.Random) -> list[Case]:
    cases = []
    expect = (r"world\.pt|world state|'[a-z_.]+'|state",)

    def add(name, kind, arg, always=False, exp=expect):
        cases.append(
            Case(
                "world states",
                name,
                "state_load",
                (kind, arg),
                exp,
                always=always,
                detail=short(arg),
            )
        )

    for _i in range(50):
        frac = rng.random()
        add(f"file byte flipped at {frac:.3f}", "bytes edit", ("flip", frac))
    for frac in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999]:
        add(f"file truncated at {frac:.1%}", "bytes edit", ("truncate", frac))
    for _i in range(40):
        frac = rng.random()
        add(f"payload byte flipped at {frac:.3f} (checksum fixed)", "payload bytes", ("flip", frac))
    for frac in [0.0, 0.1, 0.5, 0.9, 0.999]:
        add(f"payload truncated at {frac:.1%} (checksum fixed)", "payload bytes", ("trunc", frac))
    for name, data in {
        "empty": b"",
        "text": b"hello",
        "random bytes": random.Random(3).randbytes(4096),
        "a zip": _zip_bytes(),
        "a pickle of os.system": b"cos\nsystem\n(S'echo hi'\ntR.",
    }.items():
        add(name, "raw", data)
    for name, spec in {
        "missing": None,
        "a folder": ("dir",),
        "a FIFO": ("fifo",),
        "link to /dev/zero": ("link", "/dev/zero"),
        "dangling link": ("link", "CASE/none"),
        "link to a text file": ("link", "VICTIM/secret.txt"),
    }.items():
        add(name, "file", spec, always=name == "a FIFO")
    for name, edits in {
        "format 1": {"format_version": 1},
        "format '2'": {"format_version": "2"},
        "no format": {"format_version": "DELETE"},
        "no sha256": {"sha256": "DELETE"},
        "sha256 a number": {"sha256": 5},
        "payload a list": {"payload": [1, 2]},
        "payload missing": {"payload": "DELETE"},
        "extra wrapper key": {"extra": 1},
    }.items():
        add(f"wrapper: {name}", "wrapper edit", edits)
    for keys, kind in _state_entries():
        label = ".".join(map(str, keys))
        add(f"{label}: deleted", "payload edit", (keys, "delete"))
        if len(keys) > 1:
            add(f"{label}: parent gets an unknown key", "payload edit", (keys[:-1], "unknown key"))
        hows = (
            ["nan", "1e39", "drop a row", "add an axis", "int32", "empty", "None", "huge"]
            if kind == "tensor"
            else []
        )
        for how in hows:
            add(
                f"{label}: {how}",
                "payload edit",
                (keys, how),
                always=(label, how) in {("spatial.xyz", "drop a row"), ("c2w", "nan")},
            )
        if kind == "value":
            for v in (None, -1, 2**64, 1.5, math.nan, "x", [], {}, True, "\ud800"):
                add(f"{label} = {v!r}", "payload edit", (keys, ("value", v)))
    for obj in (5, None, b"x", ["a"]):
        add(f"path is {type(obj).__name__}", "not a path", obj, exp=(r"path",))
    # save_state
    for name, (target, pre) in {
        "to a folder": ("CASE/d", {"d": ("dir",)}),
        "under a file": ("CASE/f/s.pt", {"f": "x"}),
        "to ''": ("", {}),
        "with NUL": ("CASE/a\x00b.pt", {}),
        "over a link to the victim": ("CASE/s.pt", {"s.pt": ("link", "VICTIM/secret.txt")}),
        "over a link to a folder": ("CASE/s.pt", {"s.pt": ("link", "VICTIM/dir")}),
        "to /dev/full": ("/dev/full", {}),
        "to a path of 5000 characters": ("CASE/" + "x" * 5000 + ".pt", {}),
        "to a number": (5, {}),
    }.items():
        cases.append(
            Case(
                "world states",
                f"save_state {name}",
                "state_save",
                (target, pre),
                (r"path|s\.pt|d|f|full|x{100}|directory|Errno",),
                always=name == "over a link to the victim",
                detail=repr(target)[:80],
            )
        )
    return cases


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.pkl", b"hello")
    return buf.getvalue()
