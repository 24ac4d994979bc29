import json
import os
import subprocess
import sys

import av
import numpy as np
import pytest
from conftest import BUNDLED, REPO, spy_chunk_sizes
from plyfile import PlyData

import sample
from worldmem.config import SampleRootConfig, load_config
from worldmem.sampling import run_jobs


def _cfg(ckpt, out, *overrides):
    return load_config(
        SampleRootConfig,
        overrides=[f"sample.checkpoint={ckpt}", f"sample.out_dir={out}", *overrides],
    )


def _decode(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_a_job_writes_video_cameras_memory_and_report(tmp_path, tiny_pipeline_dir):
    cfg = _cfg(tiny_pipeline_dir, tmp_path, "sample.trajectory=w*3 left*2 s*2", "sample.seed=7")
    [result] = run_jobs(cfg)
    assert result.ok, result.error
    out = tmp_path / "job_000"
    video = _decode(out / "video.mp4")
    assert video.shape == (8, 32, 32, 3)  # the start pose, then 7 steps
    sbs = _decode(out / "side_by_side.mp4")
    assert sbs.shape == (8, 32, 96, 3)
    cams = json.loads((out / "cameras.json").read_text())
    from worldmem.geometry.trajectory import Trajectory

    traj = Trajectory.load_json(out / "cameras.json")
    assert len(traj.c2w) == 8 and len(cams["frames"]) == 8
    assert traj.c2w[3, 2, 3] > traj.c2w[0, 2, 3]  # walked forward along +z
    ply = PlyData.read(str(out / "memory.ply"))
    assert ply["vertex"].count > 0
    report = json.loads((out / "job.json").read_text())
    assert report["seed"] == 7 and report["frames"] == 8
    assert report["config"]["sample"]["trajectory"] == "w*3 left*2 s*2"
    assert report["timing"]["model_s"] > 0


def test_chunk_frames_reaches_the_pipeline(tmp_path, tiny_pipeline_dir, monkeypatch):
    chunks = spy_chunk_sizes(monkeypatch)
    cfg = _cfg(tiny_pipeline_dir, tmp_path, "sample.trajectory=w*7", "sample.chunk_frames=3")
    [result] = run_jobs(cfg)
    assert result.ok, result.error
    assert chunks == [3, 3, 2]  # the start frame, then 7 steps: 3 + 3 + 1 (held to 2)
    assert _decode(tmp_path / "job_000" / "video.mp4").shape[0] == 8


@pytest.mark.parametrize(
    "override, message",
    [
        ("sample.trajectory=w*3 jump*2", "jump"),
        ("sample.image=/nonexistent/start.png", "start image not found"),
        ("sample.trajectory=missing.json", "trajectory file not found"),
        ("sample.chunk_frames=9", r"chunk_frames: expected an integer in \[1, 8\]"),
    ],
)
def test_bad_jobs_fail_before_any_generation(tmp_path, tiny_pipeline_dir, override, message):
    cfg = _cfg(tiny_pipeline_dir, tmp_path / "out", override)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        run_jobs(cfg)
    assert not (tmp_path / "out" / "job_000").exists()


def test_unwritable_output_folder_and_foreign_checkpoint(tmp_path, tiny_pipeline_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match="not writable"):
        run_jobs(_cfg(tiny_pipeline_dir, blocker / "out"))
    import shutil

    other = tmp_path / "other_ckpt"
    shutil.copytree(tiny_pipeline_dir, other)
    meta = json.loads((other / "pipeline.json").read_text())
    meta["format_version"] = 0
    (other / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format version"):
        run_jobs(_cfg(other, tmp_path / "out"))


def test_a_failing_job_does_not_lose_the_others(tmp_path, tiny_pipeline_dir, monkeypatch):
    jobs = tmp_path / "jobs.jsonl"
    lines = [{"name": n, "prompt": "a room", "trajectory": "w*2"} for n in ("a", "b", "c")]
    jobs.write_text("\n".join(json.dumps(x) for x in lines))
    from worldmem.pipeline import WorldPipeline

    real = WorldPipeline.start

    def start(self, prompt="", **kw):
        if kw.get("seed") == 1:  # the second job
            raise RuntimeError("simulated failure")
        return real(self, prompt=prompt, **kw)

    monkeypatch.setattr(WorldPipeline, "start", start)
    results = run_jobs(_cfg(tiny_pipeline_dir, tmp_path / "out", f"sample.jobs={jobs}"))
    assert [r.ok for r in results] == [True, False, True]
    assert "simulated failure" in results[1].error
    assert (tmp_path / "out" / "a" / "video.mp4").is_file()
    assert (tmp_path / "out" / "c" / "video.mp4").is_file()
    assert not (tmp_path / "out" / "b").exists()


def test_malformed_jobs_file_names_the_line(tmp_path, tiny_pipeline_dir):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"prompt": "x", "trajectory": "w"}\n{"prompt": "y", "trajectry": "w"}\n')
    with pytest.raises(ValueError, match=r"jobs.jsonl:2: unknown job keys \['trajectry'\]"):
        run_jobs(_cfg(tiny_pipeline_dir, tmp_path / "out", f"sample.jobs={jobs}"))


@pytest.mark.slow
def test_two_processes_shard_the_jobs_and_write_each_once(tmp_path, tiny_pipeline_dir):
    jobs = tmp_path / "jobs.jsonl"
    names = [f"j{i}" for i in range(5)]
    jobs.write_text(
        "\n".join(json.dumps({"name": n, "prompt": n, "trajectory": "w*2"}) for n in names)
    )
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(REPO / "sample.py"),
        f"sample.checkpoint={tiny_pipeline_dir}",
        f"sample.out_dir={out}",
        f"sample.jobs={jobs}",
        "sample.side_by_side=false",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted(p.name for p in out.iterdir() if (p / "job.json").is_file())
    assert written == names
    ranks = {n: json.loads((out / n / "job.json").read_text())["rank"] for n in names}
    assert ranks == {n: i % 2 for i, n in enumerate(names)}


def test_sample_py_without_arguments_uses_the_bundled_model(tmp_path):
    if not (BUNDLED / "pipeline.json").is_file():
        pytest.skip("no bundled checkpoint in checkpoints/worldmem-tiny")
    cfg, args = sample.parse_args([f"sample.out_dir={tmp_path}", "sample.num_frames=4"])
    assert cfg.sample.checkpoint == "checkpoints/worldmem-tiny"
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        assert sample.main(cfg, interactive=args.interactive) == 0
    finally:
        os.chdir(cwd)
    assert _decode(tmp_path / "job_000" / "video.mp4").shape[0] == 4


def test_start_image_and_depth_or_prompt_only(tmp_path, tiny_pipeline_dir):
    """The default job starts from the bundled frame and its depth; image=none from the prompt
    alone; a depth file that is not a float (H, W) array is refused before generation."""
    from worldmem.sampling import load_jobs

    default = load_config(SampleRootConfig).sample
    [job] = load_jobs(default)
    assert job.image and job.depth and (REPO / job.image).is_file()
    [job] = load_jobs(load_config(SampleRootConfig, overrides=["sample.image=none"]).sample)
    assert job.image is None and job.depth is None

    cfg = _cfg(tiny_pipeline_dir, tmp_path / "a", "sample.trajectory=w*3")
    [result] = run_jobs(cfg)
    assert result.ok, result.error
    cfg = _cfg(tiny_pipeline_dir, tmp_path / "b", "sample.trajectory=w*3", "sample.image=none")
    [result] = run_jobs(cfg)
    assert result.ok, result.error

    bad = tmp_path / "bad_depth.npy"
    np.save(bad, np.zeros((4, 4, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="bad_depth.npy"):
        run_jobs(_cfg(tiny_pipeline_dir, tmp_path / "c", f"sample.depth={bad}"))


def test_a_prompt_only_job_begins_from_the_banks_frame_and_says_which(
    tmp_path, tiny_pipeline_dir, synthetic_root
):
    """With a first-frame bank in the pipeline folder, a prompt-only job's first frame is the
    frame the bank draws for its prompt and seed (the start camera sees it as it was), and
    job.json names it; a job from an image names none."""
    import shutil

    import torch

    from worldmem.models.first_frame_bank import main as build_bank
    from worldmem.pipeline import WorldPipeline

    folder = tmp_path / "p"
    shutil.copytree(tiny_pipeline_dir, folder)
    build_bank(["--data", str(synthetic_root), "--pipeline", str(folder)])
    prompt = "a corridor with brick walls"
    cfg = _cfg(folder, tmp_path / "out", "sample.trajectory=w*3", "sample.image=none",
               "sample.seed=4", f"sample.prompt={prompt}")  # fmt: skip
    [result] = run_jobs(cfg)
    assert result.ok, result.error
    report = json.loads((tmp_path / "out" / "job_000" / "job.json").read_text())
    image, _, info = WorldPipeline.from_pretrained(folder).first_frame_for(prompt, 4)
    assert report["first_frame"] == info and info["kind"] == "bank"
    assert info["source"].split(":")[0] in {"ep_000", "ep_001"}  # a training episode
    first = torch.from_numpy(_decode(tmp_path / "out" / "job_000" / "video.mp4")[0]).float()
    # the video's first frame (H.264 at crf 17) is the bank's frame as stored in memory
    assert float((first.permute(2, 0, 1) / 255 - image).abs().mean()) < 0.06
    cfg = _cfg(folder, tmp_path / "img", "sample.trajectory=w*3")
    [result] = run_jobs(cfg)
    report = json.loads((tmp_path / "img" / "job_000" / "job.json").read_text())
    assert result.ok and report["first_frame"] is None


def test_side_by_side_paints_unknown_depth_black_with_one_range_per_chunk():
    from types import SimpleNamespace

    import torch

    from worldmem.io import depth_to_rgb
    from worldmem.sampling import side_by_side_frames

    S = 4
    near = torch.linspace(1.0, 2.0, S * S).reshape(1, 1, S, S)
    depth = torch.cat([near, 2 * near])  # (2, 1, S, S): the second frame twice as far
    depth[0, 0, 0, 0] = 0.0  # unknown
    rgb = torch.rand(2, 3, S, S, generator=torch.Generator().manual_seed(0))
    frames = side_by_side_frames(SimpleNamespace(rgb=rgb, memory_rgb=rgb, depth=depth))
    assert frames.shape == (2, S, 3 * S, 3)
    assert (frames[0, 0, 2 * S] == 0).all()  # unknown depth: black, not the nearest colour
    # one inverse-depth range for the chunk: only the nearest pixels of the chunk get the
    # colormap's near end, not the nearest pixel of the farther frame
    near_end = depth_to_rgb(np.array([[1.0, 2.0, 4.0]], np.float32))[0, 0]
    assert (frames[0, 0, 2 * S + 1] == near_end).all()
    assert (frames[1, 0, 2 * S] != near_end).any() and (frames[1, 0, 2 * S] != 0).any()
