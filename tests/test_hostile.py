"""Hostile input: every malformed or malicious value is refused with an error that names it,
before anything is written or any state changes; nothing already written is lost."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
from conftest import make_tiny_pipeline

import sample
from worldmem.config import ConfigError, SampleConfig, SampleRootConfig, load_config
from worldmem.geometry.trajectory import MAX_TRAJECTORY_FRAMES, parse_trajectory
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
        ("sample.fps=0", "fps"),
        ("sample.guidance_scale=nan", "guidance_scale"),
        ("sample.guidance_scale=inf", "guidance_scale"),
        ("sample.num_frames=-1", "num_frames"),
        ("sample.seed=-1", "seed"),
        ("server.port=70000", "port"),
        ("server.idle_timeout_s=nan", "idle_timeout_s"),
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


# make_tiny_pipeline and math are used by the pipeline tests below
_ = (make_tiny_pipeline, math, torch)
