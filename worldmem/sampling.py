"""Batch generation: jobs in, videos, cameras, memories and reports out (used by sample.py)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from worldmem.config import MAX_SAMPLE_SEED, SampleConfig, SampleRootConfig, to_dict
from worldmem.geometry import scale_intrinsics
from worldmem.geometry.trajectory import (
    MAX_TRAJECTORY_FRAMES,
    Trajectory,
    load_realestate10k,
    trajectory_from_text,
)
from worldmem.text_check import check_text, read_text

__all__ = [
    "Job",
    "JobResult",
    "NoCheckpointError",
    "load_jobs",
    "check_job_name",
    "job_output_dirs",
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
    depth: str | None = None


@dataclass
class JobResult:
    name: str
    ok: bool
    frames: int = 0
    seconds: float = 0.0
    out_dir: Path | None = None
    error: str = ""
    chunk_seconds: list[float] = field(default_factory=list)


_JOB_KEYS = {"name", "prompt", "trajectory", "image", "depth", "num_frames", "seed"}
_JOB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")  # a plain file name, no separators


def check_job_name(name: object, where: str) -> str:
    """A job name is its output folder's name: 1-100 letters, digits, ``_``, ``.``, ``-``, not
    starting with ``.`` or ``-`` (so never ``.``, ``..``, a path or a hidden folder)."""
    if not isinstance(name, str) or not _JOB_NAME.fullmatch(name):
        raise ValueError(
            f"{where}: 'name' must be a plain folder name (1-100 of A-Z a-z 0-9 _ . -, not "
            f"starting with '.' or '-'), got {name!r}"
        )
    return name


def _path_or_none(value: str | None) -> str | None:
    """A file setting: None, "" and "none" (any case) mean no file."""
    if value is None or value.strip().lower() in ("", "none", "null"):
        return None
    return value


def _int_field(obj: dict, key: str, default: int, lo: int, hi: int, where: str) -> int:
    """``obj[key]`` (or ``default``) as an integer in [lo, hi]; JSON floats, bools and null
    are refused rather than truncated."""
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{where}: '{key}' must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def load_jobs(cfg: SampleConfig) -> list[Job]:
    """Jobs from ``cfg.jobs`` (JSONL, one object per line with keys prompt, trajectory and
    optional name, image, depth, num_frames, seed) or the single job the config fields
    describe. A malformed line is a ``ValueError`` naming the file, the line and the field."""
    if not cfg.jobs:
        image = _path_or_none(cfg.image)
        depth = _path_or_none(cfg.depth) if image else None
        return [Job("job_000", cfg.prompt, cfg.trajectory, image, cfg.num_frames, cfg.seed, depth)]
    path = Path(cfg.jobs)
    if not path.is_file():
        raise FileNotFoundError(f"jobs file not found: {path}")
    text = read_text(path)
    jobs: list[Job] = []
    seen: dict[str, int] = {}  # folder name (case-folded) -> line
    # JSON Lines are separated by "\n" alone: a string may hold U+2028 or U+0085 as they are
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line, parse_constant=_no_constant)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
        except RecursionError:
            raise ValueError(f"{where}: not valid JSON (nested too deeply)") from None
        except ValueError as e:  # NaN/Infinity constants, integers too long to convert
            raise ValueError(f"{where}: not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        unknown = set(obj) - _JOB_KEYS
        if unknown:
            raise ValueError(
                f"{where}: unknown job keys {sorted(unknown)}; valid: {sorted(_JOB_KEYS)}"
            )
        for key in ("prompt", "trajectory"):
            if not isinstance(obj.get(key), str):
                raise ValueError(f"{where}: '{key}' must be a string, got {obj.get(key)!r}")
        for key in ("image", "depth"):
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise ValueError(
                    f"{where}: '{key}' must be a file path (string) or null, got {obj[key]!r}"
                )
        for key in ("name", "prompt", "trajectory", "image", "depth"):
            if isinstance(obj.get(key), str):  # text a file system and the text encoder take
                check_text(obj[key], f"{where}: '{key}'")
        if obj.get("depth") and not obj.get("image"):
            raise ValueError(f"{where}: 'depth' needs an 'image' (the depth of the start frame)")
        name = check_job_name(obj.get("name", f"job_{len(jobs):03d}"), where)
        if name.casefold() in seen:
            raise ValueError(
                f"{where}: job name {name!r} is already used on line {seen[name.casefold()]} "
                "(names are output folders; they must differ, ignoring case)"
            )
        seen[name.casefold()] = n
        jobs.append(
            Job(
                name=name,
                prompt=obj["prompt"],
                trajectory=obj["trajectory"],
                image=_path_or_none(obj.get("image")),
                depth=_path_or_none(obj.get("depth")),
                num_frames=_int_field(
                    obj, "num_frames", cfg.num_frames, 0, MAX_TRAJECTORY_FRAMES, where
                ),
                seed=_int_field(
                    obj, "seed", (cfg.seed + len(jobs)) % MAX_SAMPLE_SEED, 0, MAX_SAMPLE_SEED, where
                ),
            )
        )
    if not jobs:
        raise ValueError(f"{path}: no jobs (every line is blank)")
    return jobs


def job_output_dirs(out_root: Path, jobs: list[Job], overwrite: bool) -> list[Path]:
    """Each job's output folder under ``out_root``, checked: it resolves inside ``out_root``
    (no symlink out), no two jobs share one, and it does not exist yet unless ``overwrite``."""
    root = out_root.resolve()
    outs, owner = [], {}
    for job in jobs:
        check_job_name(job.name, f"job '{job.name}'")
        out = (root / job.name).resolve()
        if out.parent != root:
            raise ValueError(f"job '{job.name}': output folder {out} is not inside {root}")
        key = str(out).casefold()
        if key in owner:
            raise ValueError(f"jobs '{owner[key]}' and '{job.name}' would write the same folder")
        owner[key] = job.name
        if out.exists() and not overwrite:
            raise FileExistsError(
                f"job '{job.name}': {out} already exists; remove it, rename the job, or set "
                "sample.overwrite=true to replace it"
            )
        outs.append(out)
    return outs


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


def _load_depth(path: str, size: int) -> torch.Tensor:
    """A start frame's depth: ``.npy`` of z-depth in metres ``(H, W)`` (0 = unknown), centre
    cropped and resized to ``size`` like the image (nearest). Returns ``(1, size, size)``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"start depth not found: {p}")
    if p.suffix != ".npy":
        raise ValueError(f"start depth {p}: want a .npy file of metres (H, W), got '{p.suffix}'")
    try:
        d = np.load(p, allow_pickle=False)
    except Exception as e:  # numpy raises several types for unreadable files
        raise ValueError(f"start depth {p} could not be read: {e}") from None
    if d.ndim != 2 or not np.issubdtype(d.dtype, np.floating):
        raise ValueError(f"start depth {p}: want a float (H, W) array, got {d.dtype} {d.shape}")
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError(f"start depth {p}: has non-finite or negative values")
    h, w = d.shape
    s = min(h, w)
    d = torch.from_numpy(d[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s])
    d = torch.nn.functional.interpolate(d[None, None].float(), size=(size, size), mode="nearest")
    return d[0]


def load_start(cfg: SampleConfig, size: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The configured start image ``(3, size, size)`` and its depth ``(1, size, size)``, each
    None when not set (``image=none`` / ``depth=none``; a depth needs an image)."""
    image_path = _path_or_none(cfg.image)
    if image_path is None:
        return None, None
    depth_path = _path_or_none(cfg.depth)
    image = _load_image(image_path, size)
    return image, None if depth_path is None else _load_depth(depth_path, size)


def side_by_side_frames(chunk) -> np.ndarray:
    """uint8 ``(T, H, 3W, 3)``: generated | spatial-memory render | depth (``depth_to_rgb``
    with one inverse-depth range for the whole chunk; unknown depth is black)."""
    from worldmem.io import depth_to_rgb, inverse_depth_range

    rgb = chunk.rgb.clamp(0, 1)
    mem = chunk.memory_rgb.clamp(0, 1)
    grid = torch.cat([rgb.cpu(), mem.cpu()], dim=-1)  # (T, 3, H, 2W)
    images = (grid.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    depth = chunk.depth[:, 0].float().cpu().numpy()  # (T, H, W)
    inv_range = inverse_depth_range(depth)
    depth_rgb = np.stack([depth_to_rgb(d, inv_range) for d in depth])  # (T, H, W, 3)
    return np.concatenate([images, depth_rgb], axis=2)


def run_jobs(root: SampleRootConfig, rank: int = 0, world_size: int = 1) -> list[JobResult]:
    """Check every job, then generate this rank's share (jobs ``rank::world_size``)."""
    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from worldmem.pipeline import WorldPipeline, memories_for_mode

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
        chunk_frames=cfg.chunk_frames,
        guidance_scale=cfg.guidance_scale,
        actions=root.actions,
    )
    S = pipe.size
    K = pipe.K.cpu()
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
        try:
            pipe.check_cameras(traj.c2w[:n], traj.K[:n])
        except ValueError as e:
            raise ValueError(f"job '{job.name}': bad trajectory: {e}") from None
        image = _load_image(job.image, S) if job.image else None
        depth = _load_depth(job.depth, S) if job.depth else None
        plans.append((job, traj, n, image, depth))
    out_root = Path(cfg.out_dir)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        probe = out_root / f".write_test_{rank}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise PermissionError(f"output folder {out_root} is not writable: {e}") from None
    mine = plans[rank::world_size]
    # Only this rank's folders: another rank may already have finished one of its own.
    outs = job_output_dirs(out_root, [p[0] for p in mine], cfg.overwrite)
    results: list[JobResult] = []
    overall = tqdm(
        total=sum(p[2] for p in mine),
        desc=f"rank {rank} all jobs",
        unit="frame",
        position=0,
        disable=None,
    )
    for (job, traj, n, image, depth), out in zip(mine, outs):
        t0 = time.perf_counter()
        try:
            video, chunk_seconds = _generate_job(
                pipe, job, traj, n, image, depth, cfg.memory, overall
            )
            seconds = time.perf_counter() - t0
            _write_job(out, job, video, pipe, root, seconds, rank)
            results.append(
                JobResult(
                    job.name,
                    True,
                    n,
                    seconds,
                    out,
                    chunk_seconds=chunk_seconds,
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


def _generate_job(pipe, job: Job, traj: Trajectory, n: int, image, depth, memory: str, overall):
    """Start the job's world and generate its first ``n`` cameras (``step`` takes them a
    chunk at a time), updating the progress bars per chunk. Returns the frames as one
    ``Chunk`` and the seconds each chunk took."""
    from tqdm import tqdm

    pipe.start(
        prompt=job.prompt,
        image=image,
        depth=depth,
        c2w=traj.c2w[0],
        seed=job.seed,
        memory=memory,
    )
    chunk_seconds: list[float] = []
    bar = tqdm(total=n, desc=job.name, unit="frame", position=1, leave=False, disable=None)

    def chunk_done(chunk) -> None:
        chunk_seconds.append(sum(chunk.timing.values()))
        bar.update(len(chunk.rgb))
        overall.update(len(chunk.rgb))

    video = pipe.step(traj.c2w[:n], K=traj.K[:n], on_chunk=chunk_done)
    bar.close()
    return video, chunk_seconds


def _write_job(out: Path, job: Job, video, pipe, root: SampleRootConfig, seconds: float, rank: int):
    """Write one job's outputs into a temporary folder next to ``out`` and rename it to
    ``out`` when complete; an existing ``out`` (``sample.overwrite``) is replaced only then."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_job_files(tmp, job, video, pipe, root, seconds, rank)
        if out.exists():
            if not root.sample.overwrite:
                raise FileExistsError(f"{out} appeared while the job ran; its files are kept")
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except OSError:
                os.replace(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_job_files(
    out: Path, job: Job, video, pipe, root: SampleRootConfig, seconds: float, rank: int
):
    """Write one job's files into the folder ``out``."""
    from worldmem.io import write_video

    cfg = root.sample
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
        # a prompt alone: what the world began from (a first-frame bank's frame, a drawing)
        "first_frame": pipe.state.began_from,
    }
    (out / "job.json").write_text(json.dumps(report, indent=2))
