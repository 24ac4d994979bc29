"""Batch generation: jobs in, videos, cameras, memories and reports out (used by sample.py)."""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from worldmem.config import SampleConfig, SampleRootConfig, to_dict
from worldmem.geometry import scale_intrinsics
from worldmem.geometry.trajectory import (
    Trajectory,
    load_realestate10k,
    trajectory_from_text,
)

__all__ = [
    "Job",
    "JobResult",
    "NoCheckpointError",
    "load_jobs",
    "resolve_trajectory",
    "run_jobs",
    "side_by_side_frames",
]

log = logging.getLogger(__name__)


class NoCheckpointError(FileNotFoundError):
    """The configured checkpoint folder does not exist."""


@dataclass
class Job:
    """One video to generate. ``trajectory``: the trajectory language, a ``.json`` trajectory
    or a RealEstate10K camera ``.txt``; ``num_frames`` 0 means the whole trajectory."""

    name: str
    prompt: str
    trajectory: str
    image: str | None = None
    num_frames: int = 0
    seed: int = 0


@dataclass
class JobResult:
    name: str
    ok: bool
    frames: int = 0
    seconds: float = 0.0
    out_dir: Path | None = None
    error: str = ""
    chunk_seconds: list[float] = field(default_factory=list)


_JOB_KEYS = {"name", "prompt", "trajectory", "image", "num_frames", "seed"}


def load_jobs(cfg: SampleConfig) -> list[Job]:
    """Jobs from ``cfg.jobs`` (JSONL, one object per line with keys prompt, trajectory and
    optional name, image, num_frames, seed) or the single job the config fields describe."""
    if not cfg.jobs:
        return [Job("job_000", cfg.prompt, cfg.trajectory, cfg.image, cfg.num_frames, cfg.seed)]
    path = Path(cfg.jobs)
    if not path.is_file():
        raise FileNotFoundError(f"jobs file not found: {path}")
    jobs = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
        unknown = set(obj) - _JOB_KEYS
        if unknown:
            raise ValueError(
                f"{path}:{n}: unknown job keys {sorted(unknown)}; valid: {sorted(_JOB_KEYS)}"
            )
        for key in ("prompt", "trajectory"):
            if not isinstance(obj.get(key), str):
                raise ValueError(f"{path}:{n}: '{key}' must be a string")
        jobs.append(
            Job(
                name=str(obj.get("name", f"job_{len(jobs):03d}")),
                prompt=obj["prompt"],
                trajectory=obj["trajectory"],
                image=obj.get("image"),
                num_frames=int(obj.get("num_frames", cfg.num_frames)),
                seed=int(obj.get("seed", cfg.seed + len(jobs))),
            )
        )
    names = [j.name for j in jobs]
    dup = {x for x in names if names.count(x) > 1}
    if dup:
        raise ValueError(f"{path}: duplicate job names {sorted(dup)}")
    return jobs


def resolve_trajectory(spec: str, size: int, fov_K: torch.Tensor, actions) -> Trajectory:
    """A trajectory at the model's ``size``: a ``.json`` file, a RealEstate10K ``.txt`` camera
    file (intrinsics rescaled to ``size``), or the trajectory language from the identity pose."""
    p = Path(spec)
    if spec.endswith(".json") or spec.endswith(".txt"):
        if not p.is_file():
            raise FileNotFoundError(f"trajectory file not found: {p}")
        traj = (
            Trajectory.load_json(p) if spec.endswith(".json") else load_realestate10k(p, size, size)
        )
        if (traj.width, traj.height) != (size, size):
            K = scale_intrinsics(traj.K, size / traj.width, size / traj.height)
            traj = Trajectory(traj.c2w, K, size, size, traj.timestamps)
        return traj
    return trajectory_from_text(spec, torch.eye(4), fov_K, size, size, actions)


def _load_image(path: str, size: int) -> torch.Tensor:
    from PIL import Image

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"start image not found: {p}")
    try:
        img = Image.open(p).convert("RGB")
    except Exception as e:  # PIL raises several types for unreadable files
        raise ValueError(f"start image {p} could not be read: {e}") from None
    w, h = img.size
    s = min(w, h)  # centre crop to square, then resize
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255


def side_by_side_frames(chunk) -> np.ndarray:
    """uint8 ``(T, H, 3W, 3)``: generated | spatial-memory render | depth (turbo colours)."""
    import matplotlib

    rgb = chunk.rgb.clamp(0, 1)
    mem = chunk.memory_rgb.clamp(0, 1)
    d = chunk.depth[:, 0].clamp(min=1e-3)
    inv = 1 / d
    lo, hi = torch.quantile(inv, 0.02), torch.quantile(inv, 0.98)
    dn = ((inv - lo) / (hi - lo + 1e-6)).clamp(0, 1).cpu().numpy()
    depth_rgb = torch.from_numpy(matplotlib.colormaps["turbo"](dn)[..., :3]).permute(0, 3, 1, 2)
    grid = torch.cat([rgb.cpu(), mem.cpu(), depth_rgb.float()], dim=-1)  # (T, 3, H, 3W)
    return (grid.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def run_jobs(root: SampleRootConfig, rank: int = 0, world_size: int = 1) -> list[JobResult]:
    """Check every job, then generate this rank's share (jobs ``rank::world_size``)."""
    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from worldmem.geometry import intrinsics_from_fov
    from worldmem.pipeline import Chunk, WorldPipeline, memories_for_mode

    cfg = root.sample
    ckpt = Path(cfg.checkpoint)
    if not ckpt.exists():
        raise NoCheckpointError(
            f"no checkpoint at {ckpt}: train one with `python train.py --config "
            "configs/train/tiny.yaml` or set sample.checkpoint=<pipeline folder>"
        )
    memories_for_mode(cfg.memory)
    jobs = load_jobs(cfg)
    # Everything that can be checked is checked before any generation starts.
    pipe = WorldPipeline.from_pretrained(
        ckpt,
        device=cfg.device,
        steps=cfg.steps,
        guidance_scale=cfg.guidance_scale,
        actions=root.actions,
    )
    S = pipe.size
    K = intrinsics_from_fov(pipe.fov_deg, S, S)
    plans = []
    for job in jobs:
        try:
            traj = resolve_trajectory(job.trajectory, S, K, root.actions)
        except ValueError as e:
            raise ValueError(f"job '{job.name}': bad trajectory: {e}") from None
        n = job.num_frames or len(traj.c2w)
        if n > len(traj.c2w):
            raise ValueError(
                f"job '{job.name}': num_frames={n} but the trajectory has {len(traj.c2w)} frames"
            )
        image = _load_image(job.image, S) if job.image else None
        plans.append((job, traj, n, image))
    out_root = Path(cfg.out_dir)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        probe = out_root / f".write_test_{rank}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise PermissionError(f"output folder {out_root} is not writable: {e}") from None

    mine = plans[rank::world_size]
    results: list[JobResult] = []
    overall = tqdm(
        total=sum(p[2] for p in mine),
        desc=f"rank {rank} all jobs",
        unit="frame",
        position=0,
        disable=None,
    )
    for job, traj, n, image in mine:
        out = out_root / job.name
        t0 = time.perf_counter()
        try:
            pipe.start(
                prompt=job.prompt, image=image, c2w=traj.c2w[0], seed=job.seed, memory=cfg.memory
            )
            chunks: list[Chunk] = []
            bar = tqdm(total=n, desc=job.name, unit="frame", position=1, leave=False, disable=None)
            T = pipe.model_cfg.chunk_frames
            for i in range(0, n, T):
                c = pipe.step(traj.c2w[i : min(i + T, n)], K=traj.K[i : min(i + T, n)])
                chunks.append(c)
                bar.update(len(c.rgb))
                overall.update(len(c.rgb))
            bar.close()
            video = Chunk.cat(chunks)
            seconds = time.perf_counter() - t0
            _write_job(out, job, video, pipe, root, seconds, rank)
            results.append(
                JobResult(
                    job.name,
                    True,
                    n,
                    seconds,
                    out,
                    chunk_seconds=[sum(c.timing.values()) for c in chunks],
                )
            )
        except Exception as e:  # one failing job must not lose the others
            log.error("job %s failed:\n%s", job.name, traceback.format_exc())
            results.append(JobResult(job.name, False, error=f"{type(e).__name__}: {e}"))
    overall.close()

    table = Table(title=f"worldmem sample (rank {rank}/{world_size})")
    for col in ("job", "frames", "seconds", "frames/s", "output"):
        table.add_column(col)
    for r in results:
        fps = f"{r.frames / r.seconds:.1f}" if r.ok and r.seconds else "-"
        table.add_row(
            r.name,
            str(r.frames),
            f"{r.seconds:.1f}",
            fps,
            str(r.out_dir) if r.ok else f"FAILED: {r.error}",
        )
    Console().print(table)
    return results


def _write_job(out: Path, job: Job, video, pipe, root: SampleRootConfig, seconds: float, rank: int):
    """Write one job's outputs into ``out``."""
    from worldmem.io import write_video

    cfg = root.sample
    out.mkdir(parents=True, exist_ok=True)
    frames = (video.rgb.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round()
    write_video(out / "video.mp4", frames.astype(np.uint8), fps=cfg.fps)
    if cfg.side_by_side:
        write_video(out / "side_by_side.mp4", side_by_side_frames(video), fps=cfg.fps)
    S = pipe.size
    Trajectory(video.c2w.cpu(), video.K.cpu(), S, S, None).save_json(out / "cameras.json")
    pipe.spatial.export_ply(out / "memory.ply")
    timing = {k: round(v, 4) for k, v in video.timing.items()}
    report = {
        "job": job.__dict__,
        "config": to_dict(root),
        "seed": job.seed,
        "rank": rank,
        "frames": len(video.rgb),
        "seconds": round(seconds, 3),
        "frames_per_s": round(len(video.rgb) / seconds, 3),
        "timing": timing,
        "memory_points": pipe.spatial.num_points,
    }
    (out / "job.json").write_text(json.dumps(report, indent=2))
