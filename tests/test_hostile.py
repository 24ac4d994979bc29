"""Hostile input: every malformed or malicious value is refused with an error that names it,
before anything is written or any state changes; nothing already written is lost."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
from conftest import make_tiny_pipeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sample
from worldmem.config import ConfigError, SampleConfig, SampleRootConfig, load_config
from worldmem.geometry.trajectory import MAX_TRAJECTORY_FRAMES, STEP_NAMES, parse_trajectory
from worldmem.sampling import load_jobs, run_jobs


def _cfg(ckpt, out, *overrides):
    return load_config(
        SampleRootConfig,
        overrides=[
            f"sample.checkpoint={ckpt}",
            f"sample.out_dir={out}",
            "sample.image=none",
            "sample.side_by_side=false",
            *overrides,
        ],
    )


def _jobs_file(tmp_path, *lines: str):
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return SampleConfig(jobs=str(path))


def _job(**kw) -> str:
    return json.dumps({"prompt": "a room", "trajectory": "w*2", **kw})


# ---- 1. job outputs: safe names, inside out_dir, never overwritten silently ----------------


@pytest.mark.parametrize(
    "name", ["./walk", "walk/.", "x/../walk", "../x", "/tmp/x", "", ".", "..", ".hidden", "a\0b"]
)
def test_job_names_must_be_plain_folder_names(tmp_path, name):
    cfg = _jobs_file(tmp_path, _job(name="ok"), _job(name=name))
    with pytest.raises(ValueError, match=r"jobs.jsonl:2: 'name' must be a plain folder name"):
        load_jobs(cfg)


def test_duplicate_job_names_are_refused_ignoring_case(tmp_path):
    cfg = _jobs_file(tmp_path, _job(name="walk"), _job(), _job(name="Walk"))
    with pytest.raises(ValueError, match=r"jobs.jsonl:3: .*'Walk' is already used on line 1"):
        load_jobs(cfg)
    # a default name that collides with an explicit one
    cfg = _jobs_file(tmp_path, _job(name="job_001"), _job())
    with pytest.raises(ValueError, match=r"jobs.jsonl:2: .*'job_001'"):
        load_jobs(cfg)


def test_an_existing_job_folder_is_kept_unless_overwrite(tmp_path, tiny_pipeline_dir):
    out = tmp_path / "out"
    [r] = run_jobs(_cfg(tiny_pipeline_dir, out, "sample.trajectory=w*2"))
    assert r.ok, r.error
    report = (out / "job_000" / "job.json").read_text()
    (out / "job_000" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="sample.overwrite=true"):
        run_jobs(_cfg(tiny_pipeline_dir, out, "sample.trajectory=w*3"))
    assert (out / "job_000" / "job.json").read_text() == report
    assert (out / "job_000" / "notes.txt").read_text() == "mine"

    [r] = run_jobs(_cfg(tiny_pipeline_dir, out, "sample.trajectory=w*3", "sample.overwrite=true"))
    assert r.ok, r.error
    assert json.loads((out / "job_000" / "job.json").read_text())["frames"] == 4
    assert not (out / "job_000" / "notes.txt").exists()  # replaced as a whole, not mixed
    assert sorted(p.name for p in out.iterdir()) == ["job_000"]  # no temporary folders left


def test_a_job_folder_cannot_be_a_symlink_out_of_out_dir(tmp_path, tiny_pipeline_dir):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "job_000").symlink_to(elsewhere)
    cfg = _cfg(tiny_pipeline_dir, out, "sample.trajectory=w*2", "sample.overwrite=true")
    with pytest.raises(ValueError, match="is not inside"):
        run_jobs(cfg)
    assert list(elsewhere.iterdir()) == []


# ---- 6. hangs and silent defaults ------------------------------------------------------------


def test_trajectory_length_is_capped_before_expanding():
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=f"more than {MAX_TRAJECTORY_FRAMES} frames"):
        parse_trajectory("w*100000 " * 20)
    with pytest.raises(ValueError, match="more than"):
        parse_trajectory("w " * (MAX_TRAJECTORY_FRAMES + 1))
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize(
    "override, field",
    [
        ("sample.steps=1001", "steps"),
        ("sample.steps=0", "steps"),
        ("sample.chunk_frames=0", "chunk_frames"),
        ("sample.fps=0", "fps"),
        ("sample.guidance_scale=nan", "guidance_scale"),
        ("sample.guidance_scale=inf", "guidance_scale"),
        ("sample.num_frames=-1", "num_frames"),
        ("sample.seed=-1", "seed"),
        ("server.port=70000", "port"),
        ("server.idle_timeout_s=nan", "idle_timeout_s"),
        ("server.torch_threads=-1", "torch_threads"),
    ],
)
def test_sample_and_server_settings_are_checked(override, field):
    with pytest.raises(ConfigError, match=field):
        load_config(SampleRootConfig, overrides=[override])


def test_a_missing_checkpoint_exits_non_zero(tmp_path, capsys):
    cfg = load_config(
        SampleRootConfig,
        overrides=[f"sample.checkpoint={tmp_path / 'nope'}", f"sample.out_dir={tmp_path}"],
    )
    assert sample.main(cfg) != 0
    assert "no checkpoint" in capsys.readouterr().err


# ---- 7. jobs.jsonl fields of the wrong type ------------------------------------------------


@pytest.mark.parametrize(
    "line, field",
    [
        ('{"prompt": "a", "trajectory": "w", "image": 5}', "'image'"),
        ('{"prompt": "a", "trajectory": "w", "num_frames": null}', "'num_frames'"),
        ('{"prompt": "a", "trajectory": "w", "num_frames": 1e400}', "'num_frames'"),
        ('{"prompt": "a", "trajectory": "w", "num_frames": 2.5}', "'num_frames'"),
        ('{"prompt": "a", "trajectory": "w", "num_frames": true}', "'num_frames'"),
        ('{"prompt": "a", "trajectory": "w", "num_frames": 10000000000000}', "'num_frames'"),
        ('{"prompt": "a", "trajectory": "w", "seed": 100000000000000000000000}', "'seed'"),
        ('{"prompt": "a", "trajectory": "w", "seed": -1}', "'seed'"),
        ('{"prompt": "a", "trajectory": "w", "seed": NaN}', "NaN"),
        ('{"prompt": 3, "trajectory": "w"}', "'prompt'"),
        ('{"prompt": "a", "trajectory": ["w"]}', "'trajectory'"),
        ('{"prompt": "a", "trajectory": "w", "name": 7}', "'name'"),
        ('{"prompt": "a", "trajectory": "w", "seed": ' + "9" * 5000 + "}", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ('{"prompt": "a", "trajectory": "w", "extra": 1}', "unknown job keys"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_wrong_job_fields_name_file_line_and_field(tmp_path, line, field):
    cfg = _jobs_file(tmp_path, _job(), line)
    with pytest.raises(ValueError, match=r"jobs.jsonl:2: ") as e:
        load_jobs(cfg)
    assert field in str(e.value)


def test_num_frames_and_seed_in_range_are_kept(tmp_path):
    [job] = load_jobs(_jobs_file(tmp_path, _job(num_frames=3, seed=2**63 - 1)))
    assert (job.num_frames, job.seed) == (3, 2**63 - 1)


# ---- 3, 5. a refused call leaves the world exactly as it was -------------------------------


def _started(seed: int = 0):
    """A tiny pipeline with a world in progress: a start frame with depth, then one chunk."""
    pipe = make_tiny_pipeline(seed=0)
    S = pipe.size
    g = torch.Generator().manual_seed(1)
    image = torch.rand(3, S, S, generator=g)
    depth = 1 + torch.rand(1, S, S, generator=g)
    pipe.start("a red room", image=image, depth=depth, seed=seed)
    pipe.step(["w", "left"])
    return pipe


def _far(t: float, dtype=torch.float32) -> torch.Tensor:
    c2w = torch.eye(4, dtype=dtype)[None].repeat(2, 1, 1)
    c2w[1, 0, 3] = t
    return c2w


def _K(S: int, entries: dict[tuple[int, int], float]) -> torch.Tensor:
    """Two float64 intrinsics for an S x S frame with ``entries`` (row, column) replaced."""
    K = torch.tensor([[S * 0.8, 0, S / 2], [0, S * 0.8, S / 2], [0, 0, 1]], dtype=torch.float64)
    for (i, j), v in entries.items():
        K[i, j] = v
    return K[None].repeat(2, 1, 1)


def _nan_like(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[0] = math.nan
    return x


S = 32  # the tiny pipeline's frame size
REFUSED = {
    "start: seed -1": lambda p: p.start("x", seed=-1),
    "start: seed 1.5": lambda p: p.start("x", seed=1.5),
    "start: seed 2**64": lambda p: p.start("x", seed=2**64),
    "start: prompt not a string": lambda p: p.start(5),
    "start: unknown memory mode": lambda p: p.start("x", memory="most"),
    "start: NaN image": lambda p: p.start("x", image=_nan_like(torch.rand(3, S, S))),
    "start: NaN depth": lambda p: p.start(
        "x", image=torch.rand(3, S, S), depth=_nan_like(torch.ones(1, S, S))
    ),
    "start: c2w off the grid": lambda p: p.start("x", c2w=_far(1e7)[1]),
    "step: camera off the grid": lambda p: p.step(_far(1e7)),
    "step: translation overflows float32": lambda p: p.step(_far(1e39, torch.float64)),
    "step: NaN camera": lambda p: p.step(_nan_like(_far(0.0))),
    "step: no cameras": lambda p: p.step(torch.zeros(0, 4, 4)),
    "step: unknown key": lambda p: p.step(["w", "jump"]),
    "step: too many keys": lambda p: p.step(["w"] * (MAX_TRAJECTORY_FRAMES + 1)),
    "step: focal overflows float32": lambda p: p.step(_far(0.0), K=_K(S, {(0, 0): 1e39})),
    "step: absurd focal": lambda p: p.step(_far(0.0), K=_K(S, {(1, 1): 1e9})),
    "step: NaN intrinsics": lambda p: p.step(_far(0.0), K=_K(S, {(0, 2): math.nan})),
    "step: not a pinhole": lambda p: p.step(_far(0.0), K=_K(S, {(2, 2): 5.0})),
    "observe: NaN frame": lambda p: p.observe(
        _nan_like(torch.rand(2, 3, S, S)), torch.ones(2, 1, S, S), _far(0.0)
    ),
    "observe: negative depth": lambda p: p.observe(
        torch.rand(2, 3, S, S), -torch.ones(2, 1, S, S), _far(0.0)
    ),
    "observe: camera off the grid": lambda p: p.observe(
        torch.rand(2, 3, S, S), torch.ones(2, 1, S, S), _far(1e7)
    ),
}


@pytest.fixture(scope="module")
def twin_chunk():
    """The chunk an untouched pipeline makes next."""
    return _started().step(["w", "right"])


@pytest.mark.parametrize("call", list(REFUSED), ids=list(REFUSED))
def test_a_refused_call_leaves_the_world_as_it_was(call, twin_chunk):
    pipe = _started()
    with pytest.raises(ValueError):
        REFUSED[call](pipe)
    chunk = pipe.step(["w", "right"])
    torch.testing.assert_close(chunk.rgb, twin_chunk.rgb, rtol=0, atol=0)
    torch.testing.assert_close(chunk.depth, twin_chunk.depth, rtol=0, atol=0)
    torch.testing.assert_close(chunk.c2w, twin_chunk.c2w, rtol=0, atol=0)


# ---- 3, 4. world state files: atomic, checksummed, checked in full before loading ----------


def _payload(path):
    """The state dict inside a world state file, and a writer that re-wraps an edited one
    with a valid checksum (so the checks after the checksum are reached)."""
    import hashlib
    import io

    from worldmem.pipeline import STATE_FORMAT_VERSION

    wrapper = torch.load(path, weights_only=True)
    state = torch.load(io.BytesIO(wrapper["payload"].numpy().tobytes()), weights_only=True)

    def write(new_state, to):
        buf = io.BytesIO()
        torch.save(new_state, buf)
        data = buf.getvalue()
        torch.save(
            {
                "format_version": STATE_FORMAT_VERSION,
                "sha256": hashlib.sha256(data).hexdigest(),
                "payload": torch.frombuffer(bytearray(data), dtype=torch.uint8),
            },
            to,
        )
        return to

    return state, write


def test_save_state_is_atomic_and_round_trips(tmp_path, twin_chunk):
    pipe = _started()
    path = pipe.save_state(tmp_path / "world.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world.pt"]  # no temporary file left
    other = make_tiny_pipeline(seed=0)
    other.load_state(path)
    chunk = other.step(["w", "right"])
    torch.testing.assert_close(chunk.rgb, twin_chunk.rgb, rtol=0, atol=0)
    with pytest.raises(ValueError, match="NUL"):
        pipe.save_state(str(tmp_path / "a\0b.pt"))


def _bad_states(tmp_path):
    good = _started().save_state(tmp_path / "good.pt")
    state, write = _payload(good)
    raw = bytearray(good.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "flipped.pt").write_bytes(bytes(raw))
    old = dict(state, format_version=1)
    torch.save(old, tmp_path / "v1.pt")
    nan = {**state, "spatial": {**state["spatial"]}}
    nan["spatial"]["xyz"] = _nan_like(nan["spatial"]["xyz"])
    shape = {**state, "c2w": torch.eye(3)}
    inner = {**state, "working": {**state["working"], "extra": 1}}
    return {
        "missing file": (tmp_path / "nope.pt", "not found"),
        "NUL in path": (str(tmp_path / "a\0b.pt"), "NUL"),
        "not a state file": (good.with_name("text.pt"), "not a world state file"),
        "damaged": (tmp_path / "flipped.pt", "checksum|not a world state file"),
        "old format": (tmp_path / "v1.pt", "format 1"),
        "missing key": (
            write({k: v for k, v in state.items() if k != "rng"}, tmp_path / "m.pt"),
            "missing key.*'rng'",
        ),
        "unknown key": (write({**state, "extra": 1}, tmp_path / "u.pt"), "unknown key.*'extra'"),
        "unknown inner key": (write(inner, tmp_path / "i.pt"), "'working.extra'"),
        "NaN tensor": (write(nan, tmp_path / "n.pt"), "'spatial.xyz' has NaN"),
        "wrong shape": (write(shape, tmp_path / "s.pt"), "'c2w' must be a \\(4, 4\\)"),
        "bad seed": (write({**state, "seed": -3}, tmp_path / "d.pt"), "'seed'"),
        "bad mode": (write({**state, "memory_mode": "x"}, tmp_path / "o.pt"), "'memory_mode'"),
    }


def test_a_refused_state_file_leaves_the_world_as_it_was(tmp_path, twin_chunk):
    (tmp_path / "text.pt").write_text("hello")
    bad = _bad_states(tmp_path)
    pipe = _started()
    for _name, (path, message) in bad.items():
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            pipe.load_state(path)
    chunk = pipe.step(["w", "right"])  # the world survived all of them
    torch.testing.assert_close(chunk.rgb, twin_chunk.rgb, rtol=0, atol=0)
    torch.testing.assert_close(chunk.depth, twin_chunk.depth, rtol=0, atol=0)


# ---- 5. non-finite or absurd cameras in a trajectory file: refused before generation ------


@pytest.mark.parametrize(
    "t, focal, message",
    [
        (1e39, 25.0, "NaN or infinite"),  # overflows float32
        (1e7, 25.0, "outside the spatial memory's grid"),
        (0.0, 1e39, "NaN or infinite"),
        (0.0, 1e9, "not a pinhole camera"),
    ],
)
def test_trajectory_files_with_absurd_cameras_fail_before_generation(
    tmp_path, tiny_pipeline_dir, t, focal, message
):
    frames = []
    for i in range(3):
        c2w = [[1, 0, 0, t * i], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
        frames.append({"c2w": c2w, "K": [[focal, 0, 16], [0, focal, 16], [0, 0, 1]]})
    path = tmp_path / "traj.json"
    path.write_text(json.dumps({"width": 32, "height": 32, "frames": frames}))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=f"job 'job_000': bad trajectory: .*{message}"):
        run_jobs(_cfg(tiny_pipeline_dir, out, f"sample.trajectory={path}"))
    assert not (out / "job_000").exists()


# ---- fuzz: the trajectory language and the jobs loader parse or raise ValueError ----------

_token = st.one_of(
    st.sampled_from(STEP_NAMES),
    st.builds(lambda n, c: f"{n}*{c}", st.sampled_from(STEP_NAMES), st.integers(-5, 10**7)),
    st.builds(lambda n, c: f"{n}*{c}", st.sampled_from(STEP_NAMES), st.text(max_size=8)),
    st.text(max_size=12),
)
_programs = st.one_of(
    st.text(max_size=200),
    st.lists(_token, max_size=30).map(" ".join),
)


@settings(max_examples=200, deadline=None)
@given(_programs)
def test_fuzz_trajectory_language_parses_or_raises_value_error(text):
    try:
        steps = parse_trajectory(text)
    except ValueError:
        return
    assert sum(s.count or 1 for s in steps) <= MAX_TRAJECTORY_FRAMES


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
_job_values = st.fixed_dictionaries(
    {},
    optional={
        "name": _json | st.text(max_size=12),
        "prompt": _json,
        "trajectory": _json | _programs,
        "image": _json,
        "depth": _json,
        "num_frames": _json,
        "seed": _json,
        "other": _json,
    },
)
_lines = st.one_of(
    _job_values.map(json.dumps),
    _json.map(json.dumps),
    st.text(max_size=60),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(
        lambda n: '{"prompt": "a", "trajectory": "w", "seed": ' + "9" * n + "}"
    ),
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_lines, min_size=1, max_size=4))
def test_fuzz_jobs_loader_parses_or_raises_value_error(tmp_path, lines):
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    try:
        jobs = load_jobs(SampleConfig(jobs=str(path)))
    except ValueError:
        return
    for job in jobs:
        assert isinstance(job.prompt, str) and isinstance(job.trajectory, str)
        assert isinstance(job.num_frames, int) and 0 <= job.num_frames <= MAX_TRAJECTORY_FRAMES
        assert isinstance(job.seed, int) and job.seed >= 0
