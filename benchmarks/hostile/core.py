"""The campaign's machinery: cases and their outcomes, the files a case may and may not
change, the context a worker builds once (the tiny pipeline, a world in progress, an episode,
the explorer app), workers with a per-case alarm, command lines run as ``__main__``, and the
fixtures cases write."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import re
import resource
import runpy
import shutil
import signal
import stat
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
DATASETS = REPO / "datasets"

CASE_TIMEOUT_S = 60.0  # in-process cases: the alarm fires after this
CLI_TIMEOUT_S = 90.0  # command-line cases (a process each): killed after this
GRACE_S = 20.0  # a worker silent this long after a case's limit is killed
SETUP_TIMEOUT_S = 300.0  # a worker building its tiny model and fixtures
ADDRESS_SPACE_BYTES = 12 << 30  # workers' RLIMIT_AS
QUICK_CASES = 8  # cases per boundary with --quick (plus the ones marked always)
QUICK_CLI_CASES = 1  # command-line boundaries are slower: fewer with --quick

CLEAN, ACCEPTED = "clean error", "accepted"
VAGUE, INVALID = "VAGUE ERROR", "ACCEPTED INVALID"
UNCAUGHT, HANG, DATA_LOSS = "UNCAUGHT", "HANG", "DATA LOSS"
OUTCOMES = (CLEAN, ACCEPTED, VAGUE, INVALID, UNCAUGHT, HANG, DATA_LOSS)
FAILING = (VAGUE, INVALID, UNCAUGHT, HANG, DATA_LOSS)


# ============================================================================================
# Cases, results and how a case reports
# ============================================================================================


@dataclass
class Case:
    """One hostile input: ``RUNNERS[runner](ctx, folder, *args)`` under a time limit.

    expect: regular expressions, one of which a refusal's message must match (empty: any
    message). cli: run in a process of its own. always: kept by --quick."""

    boundary: str
    name: str
    runner: str
    args: tuple = ()
    expect: tuple[str, ...] = ()
    cli: bool = False
    always: bool = False
    detail: str = ""  # the input, shortened, for the report


@dataclass
class Result:
    outcome: str
    message: str = ""
    tail: str = ""  # last lines of a traceback (or of stderr)
    seconds: float = 0.0


class Refused(Exception):
    """The code under test refused the input with an expected error; the message is its."""


class Invalid(Exception):
    """The input was accepted but what came out is not valid."""


class DataLoss(Exception):
    """A file or a world was changed by a call that should not have changed it."""


class CaseTimeout(BaseException):
    """The per-case alarm (a BaseException, so ``except Exception`` in the code under test
    does not swallow it)."""


def refused_on(fn: Callable, *errors: type[BaseException]):
    """``fn()``; an exception of one of ``errors`` becomes ``Refused`` with its message."""
    try:
        return fn()
    except errors as e:
        raise Refused(f"{type(e).__name__}: {e}") from e


def short(value, n: int = 90) -> str:
    """``value`` as one line of printable ASCII of about ``n`` characters, for reports."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= n else f"{text[: n - 20]}...({len(text)} chars)"


# ---- files: snapshots and the data-loss rules --------------------------------------------


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed): relative path -> (kind, content)."""
    out: dict[str, tuple] = {}
    if not root.exists() and not root.is_symlink():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", hashlib.sha1(p.read_bytes()).hexdigest())
            else:
                out[rel] = ("other", stat.S_IFMT(st.st_mode))
    return out


def changes(before: dict, after: dict) -> list[tuple[str, str]]:
    """(path, "added" | "removed" | "changed") between two snapshots."""
    out = [(p, "removed") for p in before if p not in after]
    out += [(p, "added") for p in after if p not in before]
    out += [(p, "changed") for p in before if p in after and before[p] != after[p]]
    return sorted(out)


@contextlib.contextmanager
def guarded(folder: Path, allow: Callable[[str, str, bool], bool] | None = None):
    """Compare ``folder`` before and after the block: a change that ``allow(path, how,
    accepted)`` does not allow is ``DataLoss`` (replacing the block's own outcome). By
    default nothing may change when the block raises, and only additions when it returns."""
    allow = allow or (lambda path, how, accepted: accepted and how == "added")
    before = snapshot(folder)
    accepted = False
    try:
        yield
        accepted = True
    finally:
        bad = [(p, h) for p, h in changes(before, snapshot(folder)) if not allow(p, h, accepted)]
        if bad:
            what = "accepted" if accepted else "refused"
            raise DataLoss(f"{what}, but {', '.join(f'{p} {h}' for p, h in bad[:6])}")


def under(path: str, *prefixes: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


# ============================================================================================
# The worker's context: fixtures built once per worker, on demand
# ============================================================================================


class Context:
    """What the runners share inside one worker: the campaign's folder, the tiny pipeline,
    a started world and the chunk its untouched twin makes next, fixtures."""

    def __init__(self, root: Path):
        self.root = root
        self.victim = root / "victim"  # symbolic links point here; it must never change
        self._pipe = None
        self._client = None
        self._ws = None
        self._ws_cm = None
        self._app = None
        self._episode = None

    # -- the tiny pipeline and a world in progress ----------------------------------------

    @property
    def pipe(self):
        if self._pipe is None:
            import torch
            from conftest import make_tiny_pipeline

            pipe = make_tiny_pipeline(steps=1, seed=0)  # one sampling step: the checks are the same
            S = pipe.size
            g = torch.Generator().manual_seed(1)
            self.image = torch.rand(3, S, S, generator=g)
            self.depth = 1 + torch.rand(1, S, S, generator=g)
            world = pipe.new_state()
            pipe.start("a red room", image=self.image, depth=self.depth, seed=0, world=world)
            pipe.step(["w", "left"], world=world)
            self.world_state = world.state_dict()
            self.state_file = pipe.save_state(self.root / "good_state.pt", world=world)
            twin = pipe.new_state()
            twin.load_state_dict(self._copy(self.world_state))
            self.twin_chunk = pipe.step(["w", "right"], world=twin)
            self._pipe = pipe
        return self._pipe

    @staticmethod
    def _copy(state):
        import copy

        return copy.deepcopy(state)

    def fresh_world(self):
        """A world exactly like the started one (as the pipeline's current world)."""
        pipe = self.pipe
        world = pipe.new_state()
        world.load_state_dict(self._copy(self.world_state))
        pipe.state = world
        return world

    def state_differs(self, world) -> str:
        """'' when ``world`` (the pipeline's current world) holds exactly the started world's
        state, else the first entry that differs."""
        import torch

        if self.pipe.state is not world:
            return "the pipeline's current world was replaced"

        def diff(a, b, where):
            if isinstance(a, dict) and isinstance(b, dict):
                if set(a) != set(b):
                    return f"{where or 'state'} has other keys"
                return next((d for k in a if (d := diff(a[k], b[k], f"{where}{k}."))), "")
            if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
                same = a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
                return "" if same else f"'{where[:-1]}' changed"
            return "" if type(a) is type(b) and a == b else f"'{where[:-1]}' changed"

        return diff(world.state_dict(), self.world_state, "")

    def same_as_twin(self, world) -> str:
        """'' when the next chunk of ``world`` equals the untouched twin's, else what differs."""
        import torch

        chunk = self.pipe.step(["w", "right"], world=world)
        for name in ("rgb", "depth", "c2w"):
            a, b = getattr(chunk, name), getattr(self.twin_chunk, name)
            if a.shape != b.shape or not torch.equal(a, b):
                return f"the next chunk's {name} differs from the untouched twin's"
        return ""

    # -- an episode to damage ------------------------------------------------------------

    @property
    def episode(self) -> Path:
        if self._episode is None:
            import numpy as np
            import torch

            from worldmem.data.episode import write_episode

            n, s = 4, 16
            rng = np.random.default_rng(0)
            rgb = rng.integers(0, 255, (n, s, s, 3), dtype=np.uint8)
            c2w = torch.eye(4).repeat(n, 1, 1)
            c2w[:, 0, 3] = torch.arange(n) * 0.1
            K = torch.tensor([[12.0, 0, 8], [0, 12.0, 8], [0, 0, 1]]).repeat(n, 1, 1)
            depth = 1 + rng.random((n, s, s)).astype(np.float32)
            self._episode = write_episode(
                self.root / "template_episode", rgb, c2w, K, "a room", depth=depth, fps=10
            )
        return self._episode

    # -- the interactive server ------------------------------------------------------------

    def ws(self):
        """A websocket to a live app on the tiny pipeline (reconnected when it was closed)."""
        if self._ws is None:
            from fastapi.testclient import TestClient

            from worldmem.config import ServerConfig
            from worldmem.interactive.server import create_app

            if self._app is None:
                cfg = ServerConfig(max_messages_per_s=1e6, max_sessions=4)
                self._app = create_app(cfg, self.pipe)
                host = "127.0.0.1:8765"

                class _HostClient(TestClient):
                    def websocket_connect(self, url, *args, **kwargs):
                        return super().websocket_connect(f"ws://{host}{url}", *args, **kwargs)

                self._client = _HostClient(self._app, base_url=f"http://{host}")
                self._client.__enter__()
            self._ws_cm = self._client.websocket_connect("/ws")
            self._ws = self._ws_cm.__enter__()
            hello = self._ws.receive_json()
            if hello.get("type") != "hello":
                raise RuntimeError(f"expected hello, got {hello}")
        return self._ws

    def drop_ws(self):
        if self._ws_cm is not None:
            with contextlib.suppress(BaseException):
                self._ws_cm.__exit__(None, None, None)
        self._ws = self._ws_cm = None

    @property
    def server_errors(self) -> list[str]:
        return self._app.state.worldmem.errors if self._app is not None else []


# ============================================================================================
# Running cases: workers, alarms, time limits
# ============================================================================================

RUNNERS: dict[str, Callable] = {}


def runner(fn):
    RUNNERS[fn.__name__] = fn
    return fn


def on_alarm(signum, frame):
    raise CaseTimeout()


def _limit_worker():
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, on_alarm)
    import logging
    import warnings

    logging.disable(logging.CRITICAL)  # refusals are reported here, not logged
    warnings.simplefilter("ignore")


def _matches(case: Case, message: str) -> bool:
    return not case.expect or any(re.search(p, message, re.S) for p in case.expect)


def tail_lines(text: str, n: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


def run_case(ctx: Context, case: Case, index: int, timeout: float) -> Result:
    """One in-process case under the alarm, classified."""
    folder = ctx.root / "cases" / f"{index:05d}"
    folder.mkdir(parents=True, exist_ok=True)
    victim_before = snapshot(ctx.victim)
    t0 = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        note = RUNNERS[case.runner](ctx, folder, *case.args)
        result = Result(ACCEPTED, note or "")
    except Refused as e:
        message = str(e)
        result = Result(CLEAN if _matches(case, message) else VAGUE, message)
    except Invalid as e:
        result = Result(INVALID, str(e))
    except DataLoss as e:
        result = Result(DATA_LOSS, str(e), tail_lines(_cause_traceback(e)))
    except Uncaught as e:
        result = Result(UNCAUGHT, "a traceback on stderr", str(e))
    except CaseTimeout:
        result = Result(HANG, f"no answer within {timeout:g} s", tail_lines(traceback.format_exc()))
    except BaseException as e:  # noqa: BLE001 - everything else is the finding
        result = Result(UNCAUGHT, f"{type(e).__name__}: {e}", tail_lines(traceback.format_exc()))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    result.seconds = time.perf_counter() - t0
    moved = changes(victim_before, snapshot(ctx.victim))
    if moved:
        result = Result(
            DATA_LOSS,
            "wrote outside its folders: " + ", ".join(f"victim/{p} {h}" for p, h in moved[:6]),
            result.tail,
            result.seconds,
        )
        _restore_victim(ctx.victim)
    shutil.rmtree(folder, ignore_errors=True)
    if folder.exists() or folder.is_symlink():
        with contextlib.suppress(OSError):
            folder.unlink()
    result.message = result.message[:400]
    return result


def _cause_traceback(e: BaseException) -> str:
    cause = e.__context__ or e.__cause__
    return "".join(traceback.format_exception(cause)) if cause is not None else ""


BOUNDARY_MODULES = (
    "jobs",
    "configs",
    "cameras",
    "episodes",
    "importers",
    "states",
    "pipeline_calls",
    "websocket",
)


def load_runners() -> None:
    """Import every boundary module, so that ``RUNNERS`` holds all their runners."""
    for name in BOUNDARY_MODULES:
        importlib.import_module(f"hostile.{name}")


def _worker(cases: list[tuple[int, Case]], conn, root: str, timeout: float) -> None:
    _limit_worker()
    sys.path[:0] = [str(TESTS), str(DATASETS)]
    load_runners()
    ctx = Context(Path(root))
    for index, case in cases:
        conn.send(("begin", index))
        conn.send(("done", index, run_case(ctx, case, index, timeout)))
    ctx.drop_ws()
    conn.send(("end", None))
    conn.close()
    os._exit(0)  # no atexit handlers: the server and client threads are not joined


def execute(
    mpctx, todo: list[tuple[int, Case]], root: Path, timeout: float, report: Callable
) -> None:
    """Run ``todo`` in one worker after another until every case has a result; a worker
    that stays silent past a case's limit is killed and the case is a HANG."""
    while todo:
        parent, child = mpctx.Pipe(duplex=False)
        proc = mpctx.Process(target=_worker, args=(todo, child, str(root), timeout), daemon=True)
        proc.start()
        child.close()
        current, done = None, set()
        started = time.monotonic()
        while True:
            limit = SETUP_TIMEOUT_S if current is None else timeout + GRACE_S
            if not parent.poll(limit):
                kind = HANG if proc.is_alive() else UNCAUGHT
                proc.kill()
                proc.join()
                if current is None:
                    current = todo[0][0]
                why = (
                    f"no answer within {limit:g} s (worker killed)"
                    if kind == HANG
                    else f"the worker process died (exit code {proc.exitcode})"
                )
                report(current, Result(kind, why, seconds=time.monotonic() - started))
                done.add(current)
                break
            try:
                msg = parent.recv()
            except EOFError:
                proc.join()
                if current is not None and current not in done:
                    report(
                        current,
                        Result(UNCAUGHT, f"the worker process died (exit code {proc.exitcode})"),
                    )
                    done.add(current)
                elif current is None and todo:
                    first = todo[0][0]
                    report(first, Result(UNCAUGHT, f"worker died (exit code {proc.exitcode})"))
                    done.add(first)
                break
            if msg[0] == "begin":
                current = msg[1]
                started = time.monotonic()
            elif msg[0] == "done":
                report(msg[1], msg[2])
                done.add(msg[1])
            else:
                break
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
        todo = [(i, c) for i, c in todo if i not in done]


# ---- command-line cases: the script's __main__ block in a process of its own ---------------


def run_cli(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run ``argv[0]`` (a script path, or ``-m module``) as ``__main__`` with ``argv[1:]`` in
    this process: (exit code, stdout, stderr), the stderr with the traceback the interpreter
    would print for an uncaught exception."""
    import logging

    out, err = io.StringIO(), io.StringIO()
    old = (sys.argv[:], os.getcwd(), sys.stdin)
    code = 0
    disabled = logging.root.manager.disable  # workers silence logging; put it back after
    logging.disable(logging.NOTSET)  # what the command line logs (a job's traceback) counts
    handler = logging.StreamHandler(err)  # where the interpreter's last-resort handler writes
    logging.getLogger().addHandler(handler)
    try:
        os.chdir(cwd)
        sys.stdin = io.TextIOWrapper(io.BytesIO(b""))  # nothing to read: never a wait
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if argv[0] == "-m":
                    sys.argv = [argv[1], *argv[2:]]
                    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
                else:
                    sys.argv = list(argv)
                    runpy.run_path(argv[0], run_name="__main__")
            except SystemExit as e:
                if e.code is None:
                    code = 0
                elif isinstance(e.code, int):
                    code = e.code
                else:
                    print(e.code, file=sys.stderr)
                    code = 1
            except CaseTimeout:
                raise
            except BaseException:  # noqa: BLE001 - what the interpreter would print
                traceback.print_exc()
                code = 1
    finally:
        sys.argv, sys.stdin = old[0], old[2]
        os.chdir(old[1])
        logging.getLogger().removeHandler(handler)
        logging.disable(disabled)
    return code, out.getvalue(), err.getvalue()


def cli_outcome(code: int, stdout: str, stderr: str) -> str:
    """Classify a command-line run: a traceback is UNCAUGHT; a non-zero exit is a refusal
    with its stderr as the message; exit 0 is accepted (the caller checks what it wrote)."""
    if "Traceback (most recent call last)" in stderr:
        raise Uncaught(tail_lines(stderr, 8))
    if code != 0:
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        raise Refused(f"exit {code}: {' | '.join(lines[-3:]) if lines else '(no message)'}")
    return "exit 0"


class Uncaught(Exception):
    """A command line printed a traceback."""


# ============================================================================================
# Fixtures written into a case's folder
# ============================================================================================


def write_png(path: Path, w: int = 16, h: int = 16, level: int = 128) -> Path:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), level, np.uint8)).save(path, format="PNG")
    return path


def write_mp4(path: Path, n: int = 4, w: int = 16, h: int = 16, fps: int = 10) -> Path:
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            img = np.full((h, w, 3), 20 + 30 * i, np.uint8)
            for pk in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


def place(path: Path, spec) -> Path:
    """Put ``spec`` at ``path``: bytes or str (a file), ("link", target), ("dir",),
    ("fifo",), or None (nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    if spec is None:
        return path
    if isinstance(spec, bytes):
        path.write_bytes(spec)
    elif isinstance(spec, str):
        path.write_text(spec, encoding="utf-8", errors="surrogatepass")
    elif spec[0] == "link":
        path.symlink_to(spec[1])
    elif spec[0] == "dir":
        path.mkdir()
    elif spec[0] == "fifo":
        os.mkfifo(path)
    else:
        raise ValueError(f"unknown file spec {spec!r}")
    return path


def resolve_link_target(ctx: Context, folder: Path, target: str) -> str:
    """Link targets are written with placeholders: VICTIM/... and CASE/..."""
    return target.replace("VICTIM", str(ctx.victim)).replace("CASE", str(folder))


def make_victim(victim: Path) -> None:
    """Files that symbolic links in hostile inputs point at; they must never change."""
    victim.mkdir(parents=True, exist_ok=True)
    (victim / "secret.txt").write_text("keep me\n")
    (victim / "manifest.jsonl").write_text("not a manifest\n")
    (victim / "dir").mkdir(exist_ok=True)
    (victim / "dir" / "keep.txt").write_text("keep me too\n")
    (victim / "episode").mkdir(exist_ok=True)
    for name in ("rgb.mp4", "cameras.json", "caption.txt", "depth.npz"):
        (victim / "episode" / name).write_bytes(f"victim {name}\n".encode())
    (victim / "image.png").write_bytes(b"")


def _restore_victim(victim: Path) -> None:
    shutil.rmtree(victim, ignore_errors=True)
    with contextlib.suppress(OSError):
        victim.unlink()
    make_victim(victim)


class _RunsCode:
    """Unpickling this writes ``marker``: what a crafted file does to a load that unpickles."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def build(path: Path, spec, ctx: Context, folder: Path) -> None:
    """``place`` plus generated fixtures: ("png", w, h), ("mp4", n, w, h), ("npz", {key:
    (dtype, shape, fill)}, compressed), ("npy", dtype, shape, fill), ("ckpt_runs_code",
    marker) (a checkpoint whose unpickling writes ``folder/marker``), and edits of an existing
    file: ("truncate", fraction), ("flip", fraction), ("zero", fraction, n), ("append", bytes),
    ("json_set", path, raw JSON), ("json_del", path)."""
    import numpy as np

    if isinstance(spec, list):
        for part in spec:
            build(path, part, ctx, folder)
        return None
    if isinstance(spec, tuple) and spec and spec[0] in ("link",):
        return place(path, ("link", resolve_link_target(ctx, folder, spec[1])))
    if not isinstance(spec, tuple) or spec[0] in ("dir", "fifo"):
        return place(path, spec)
    kind, *a = spec
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "synthetic":
        from conftest import write_synthetic_dataset

        write_synthetic_dataset(path, episodes=2, frames=8, size=32)
    elif kind == "ckpt_runs_code":
        import torch

        crafted = {"epoch": 0, "global_step": 1, "state_dict": {}, "x": _RunsCode(folder / a[0])}
        torch.save(crafted, path)
    elif kind == "png":
        write_png(path, *a)
    elif kind == "mp4":
        write_mp4(path, *a)
    elif kind in ("npz", "npy"):

        def make(dtype, shape, fill):
            if dtype == "object":
                return np.array([{"a": 1}], dtype=object)
            x = np.full(shape, fill, dtype=dtype) if not isinstance(fill, str) else None
            if fill == "ramp":
                x = (1 + np.arange(int(np.prod(shape)), dtype=np.float64) % 7).reshape(shape)
                x = x.astype(dtype)
            return x

        if kind == "npy":
            np.save(path, make(*a), allow_pickle=True)
        else:
            arrays, compressed = a
            save = np.savez_compressed if compressed else np.savez
            with open(path, "wb") as f:
                save(f, allow_pickle=True, **{k: make(*v) for k, v in arrays.items()})
    elif kind in ("truncate", "flip", "zero", "append"):
        data = bytearray(path.read_bytes())
        if kind == "truncate":
            data = data[: int(a[0] * len(data))]
        elif kind == "flip":
            data[min(int(a[0] * len(data)), len(data) - 1)] ^= 0xFF
        elif kind == "zero":
            i = int(a[0] * len(data))
            data[i : i + a[1]] = bytes(len(data[i : i + a[1]]))
        else:
            data += a[0]
        path.write_bytes(bytes(data))
    elif kind in ("json_set", "json_del"):
        obj = json.loads(path.read_text())
        *parents, last = a[0]
        node = obj
        for p in parents:
            node = node[p]
        if kind == "json_del":
            del node[last]
            text = json.dumps(obj)
        else:
            node[last] = "@VALUE"
            text = json.dumps(obj).replace('"@VALUE"', a[1])
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    else:
        raise ValueError(f"unknown fixture {spec!r}")
