"""Revisit consistency: does the world look the same when the camera comes back?

Two protocols, each at two horizons, each with every memory ablation on identical cameras,
prompts and seeds:

* ``gt`` (ground-truth context, as WorldMem evaluates): the memories are filled with the first
  part of a ground-truth episode (``WorldPipeline.observe``), then the model generates the
  frames that come back to views of that part; they are compared with the ground truth.
* ``recall`` (self-generated recall, as VMem evaluates; self-consistency only, never a
  quality measure on its own: a model that repeats itself scores well whatever it draws;
  ``worldmem.eval.walk`` compares every frame with the truth): from the caption (and,
  optionally, the ground-truth first frame) the model generates the whole path, out and
  back; each frame at a pose visited before is compared with the model's own earlier frame
  at that pose (view recall), depth with the earlier depth.

The horizon is the revisit gap, the frames between the first visit of a pose and its return:
``short`` about the working-memory window (``MemoryConfig.working_frames``), ``long`` at least
ten times it, so only the episodic and spatial memories can remember.

Synthetic episodes come from held-out worlds (seeds from ``HELD_OUT_SEED``; training uses
0..9999) on paths that repeat exactly with period ``gap``: frame ``t`` has the pose of frame
``t - gap``. A long path is a closed polygon walked in ``gap`` frames (a full turn, with a step
forward per frame when the world leaves room, else turning in place); a short one is a small
arc of ``gap`` frames (a step and a turn each) repeated. Datasets in the episode format
(``dataset_cases``) give ``gt`` cases from mined revisits and ``recall`` cases turning in place
from their first frame.
"""

from __future__ import annotations

import csv
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from worldmem.config import ActionConfig
from worldmem.eval.baselines import fill_holes
from worldmem.eval.metrics import LPIPS, frame_metrics, mean_ci
from worldmem.geometry import c2w_to_pose, pose_to_c2w, scale_intrinsics

__all__ = [
    "PROTOCOLS",
    "HORIZONS",
    "ABLATION_MODES",
    "HELD_OUT_SEED",
    "REVISIT_FRAMES",
    "METRICS",
    "RevisitCase",
    "horizon_gap",
    "periodic_path",
    "synthetic_case",
    "dataset_cases",
    "run_gt_context",
    "run_recall",
    "run_revisit_eval",
    "frames_to_generate",
    "summarize",
    "write_results",
]

PROTOCOLS = ("gt", "recall")
# gt rows also hold the spatial-memory render given to the model in mode "all", holes filled
# with the observed frames' mean colour: a baseline that needs no learning
MEMORY_RENDER_ROW = "memory render (no learning)"
HORIZONS = ("short", "long")
ABLATION_MODES = ("working", "episodic", "spatial", "all")
HELD_OUT_SEED = 100_000  # first world seed of the evaluation (training uses 0..9999)
REVISIT_FRAMES = 4  # frames per episode that come back to earlier poses
SHORT_GAP_EXTRA = (0, 1)  # short gaps: working window + these frames, cycled over episodes
LONG_GAP_FACTORS = (10, 11, 12)  # long gaps: working window x these, cycled over episodes
LOOP_STEP_M = 0.1  # forward step per frame on a long closed loop (when the world has room)
CLEARANCE_M = 0.35  # loop cameras stay this far from every surface (as synthetic paths do)
OBSERVE_BLOCK = 16  # ground-truth frames put into the memories at once
DATASET_MIN_OVERLAP = 0.5  # a dataset revisit's source frame sees at least this of the target
DATASET_MAX_CONTEXT = 96  # ground-truth frames before a dataset revisit, at most
# metric name -> (column title, higher is better)
METRICS = {
    "psnr": ("PSNR", True),
    "ssim": ("SSIM", True),
    "lpips": ("LPIPS", False),
    "abs_rel": ("AbsRel", False),
    "delta1": ("δ<1.25", True),
}


@dataclass
class RevisitCase:
    """One evaluation episode at one horizon, at the model's image size S.

    c2w ``(N, 4, 4)``, K ``(N, 3, 3)``; rgb ``(N, 3, S, S)`` and depth ``(N, 1, S, S)``: the
    ground truth at every pose (None when unknown, as for a dataset's ``recall`` path);
    first_visit ``(N,)`` int64: the earlier frame at the same pose, or -1; context_frames: the
    ground-truth frames the ``gt`` protocol observes before generating the rest; start_rgb
    ``(3, S, S)`` and start_depth ``(1, S, S)`` (or None): the first frame for ``recall``.
    """

    name: str
    caption: str
    seed: int
    horizon: str
    c2w: torch.Tensor
    K: torch.Tensor
    first_visit: torch.Tensor
    context_frames: int
    rgb: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    start_rgb: torch.Tensor | None = None
    start_depth: torch.Tensor | None = None
    protocols: tuple[str, ...] = PROTOCOLS  # the protocols this case serves

    def __post_init__(self):
        N = self.c2w.shape[0]
        if tuple(self.c2w.shape) != (N, 4, 4) or tuple(self.K.shape) != (N, 3, 3):
            raise ValueError(
                f"RevisitCase {self.name}: expected c2w (N, 4, 4) and K (N, 3, 3), got "
                f"{tuple(self.c2w.shape)} and {tuple(self.K.shape)}"
            )
        if tuple(self.first_visit.shape) != (N,):
            raise ValueError(
                f"RevisitCase {self.name}: first_visit must be ({N},), got "
                f"{tuple(self.first_visit.shape)}"
            )
        if not 0 <= self.context_frames < N:
            raise ValueError(
                f"RevisitCase {self.name}: context_frames must be in [0, {N}), got "
                f"{self.context_frames}"
            )
        for name, c in (("rgb", 3), ("depth", 1)):
            x = getattr(self, name)
            if x is not None and (x.ndim != 4 or tuple(x.shape[:2]) != (N, c)):
                raise ValueError(
                    f"RevisitCase {self.name}: {name} must be ({N}, {c}, S, S), got "
                    f"{tuple(x.shape)}"
                )

    @property
    def num_frames(self) -> int:
        return self.c2w.shape[0]


# -- paths ----------------------------------------------------------------------------------


def horizon_gap(horizon: str, working_frames: int, index: int = 0) -> int:
    """The revisit gap in frames of episode ``index`` at ``horizon``: ``short`` cycles the
    working window + (0, 1) frames, ``long`` cycles (10, 11, 12) x the window (at least 20)."""
    if horizon not in HORIZONS:
        raise ValueError(f"horizon '{horizon}' is not one of {', '.join(HORIZONS)}")
    if working_frames < 1:
        raise ValueError(f"working_frames must be >= 1, got {working_frames}")
    if horizon == "short":
        return max(2, working_frames + SHORT_GAP_EXTRA[index % len(SHORT_GAP_EXTRA)])
    return max(20, working_frames * LONG_GAP_FACTORS[index % len(LONG_GAP_FACTORS)])


def periodic_path(
    start_c2w: torch.Tensor, gap: int, num_frames: int, step_m: float, turn_deg: float
) -> torch.Tensor:
    """A camera path that repeats with period ``gap``: pose k (k < gap) is ``start_c2w``
    after k steps, each a move of ``step_m`` along the heading (on the ground plane) then a
    turn of ``turn_deg`` to the right; frame t has pose ``t mod gap``.

    start_c2w ``(4, 4)`` -> c2w ``(num_frames, 4, 4)``. With ``turn_deg = 360 / gap`` the
    poses walk a closed regular polygon, so the path is continuous.
    """
    if gap < 1 or num_frames < 1:
        raise ValueError(f"gap and num_frames must be >= 1, got {gap}, {num_frames}")
    pos, yaw, pitch = (x.double() for x in c2w_to_pose(start_c2w.cpu()))
    k = torch.arange(gap, dtype=torch.float64)
    yaws = yaw + turn_deg * k  # (gap,)
    heading = torch.stack(
        [
            torch.sin(torch.deg2rad(yaws)),
            torch.zeros(gap, dtype=torch.float64),
            torch.cos(torch.deg2rad(yaws)),
        ],
        -1,
    )  # (gap, 3): +z at yaw 0, +x at yaw 90
    steps = torch.cat([torch.zeros(1, 3, dtype=torch.float64), step_m * heading[:-1]])
    positions = pos + steps.cumsum(0)  # (gap, 3)
    poses = pose_to_c2w(positions, yaws, pitch.expand(gap))  # (gap, 4, 4)
    return poses[torch.arange(num_frames) % gap]


def _first_visits(num_frames: int, gap: int) -> torch.Tensor:
    t = torch.arange(num_frames)
    return torch.where(t >= gap, t % gap, torch.full_like(t, -1))


def synthetic_case(
    seed: int,
    horizon: str,
    gap: int,
    image_size: int,
    K: torch.Tensor,
    revisit_frames: int = REVISIT_FRAMES,
    actions: ActionConfig | None = None,
) -> RevisitCase:
    """A held-out synthetic world (``make_world(seed)``) and a path that repeats every ``gap``
    frames, rendered at ``image_size``. K ``(3, 3)`` pixel intrinsics at that size.

    ``long``: a closed loop (one full turn in ``gap`` frames, stepping ``LOOP_STEP_M`` when
    the circle is free, else in place). ``short``: an arc of ``gap`` frames, each a step and a
    turn of the ``actions`` speeds (in place when not free), then again from its start.
    Returns ``gap + revisit_frames`` frames; the ``gt`` protocol observes the first ``gap``.
    """
    from worldmem.data.synthetic import make_trajectory, make_world

    if horizon not in HORIZONS:
        raise ValueError(f"horizon '{horizon}' is not one of {', '.join(HORIZONS)}")
    if gap < 2 or revisit_frames < 1:
        raise ValueError(f"gap must be >= 2 and revisit_frames >= 1, got {gap}, {revisit_frames}")
    actions = actions or ActionConfig()
    world = make_world(seed)
    start = make_trajectory(world, "look_around", 8, seed)[0]
    N = gap + revisit_frames
    if horizon == "long":
        options = [(LOOP_STEP_M, 360.0 / gap), (LOOP_STEP_M, -360.0 / gap), (0.0, 360.0 / gap)]
    else:
        t = actions.turn_deg
        options = [(actions.move_m, t), (actions.move_m, -t), (0.0, t)]
    for step_m, turn_deg in options:
        c2w = periodic_path(start, gap, N, step_m, turn_deg)
        if step_m == 0 or bool(world.is_free(c2w[:gap, :3, 3], CLEARANCE_M).all()):
            break
    Ks = K.float().cpu().expand(N, 3, 3).contiguous()
    rgb, depth = world.render(c2w[:gap], Ks[:gap], image_size, image_size)  # the rest repeats
    idx = torch.arange(N) % gap
    return RevisitCase(
        name=f"world{seed}",
        caption=world.caption,
        seed=seed,
        horizon=horizon,
        c2w=c2w,
        K=Ks,
        first_visit=_first_visits(N, gap),
        context_frames=gap,
        rgb=rgb[idx],
        depth=depth[idx],
        start_rgb=rgb[0],
        start_depth=depth[0],
    )


# -- datasets in the episode format ---------------------------------------------------------


def _episode_folders(root: Path) -> list[Path]:
    from worldmem.data.episode import read_manifest

    if (root / "cameras.json").is_file():
        return [root]
    entries = read_manifest(root)
    for split in ("test", "val"):
        chosen = [e for e in entries if e.get("split") == split]
        if chosen:
            break
    else:
        chosen = entries
    return [root / e["path"] for e in chosen]


def _read_resized(ep, indices: list[int], size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    rgb = ep.read_rgb(indices)  # (n, 3, H, W) in [0, 1]
    depth = ep.read_depth(indices) if ep.has_depth else None  # (n, 1, H, W)
    if tuple(rgb.shape[-2:]) != (size, size):
        rgb = F.interpolate(rgb, size=(size, size), mode="area")
        if depth is not None:
            depth = F.interpolate(depth, size=(size, size), mode="nearest")
    return rgb, depth


def dataset_cases(
    root: str | Path,
    num_episodes: int,
    horizons: Iterable[str],
    image_size: int,
    working_frames: int,
    revisit_frames: int = REVISIT_FRAMES,
    actions: ActionConfig | None = None,
    log: Callable[[str], None] = print,
) -> list[RevisitCase]:
    """Cases from episodes on disk (a dataset root with manifest.jsonl, preferring its test
    then val split, or one episode folder), resized to ``image_size`` (K scaled to match).

    For ``gt``: per horizon, the best-overlapping revisit (``find_revisits``) of
    ``revisit_frames`` frames whose source is in the horizon's range of frames back
    (``short``: 1-2 working windows, ``long``: from 10 windows to ``DATASET_MAX_CONTEXT``),
    with up to ``DATASET_MAX_CONTEXT`` earlier frames as context; episodes without depth or
    without such a revisit are skipped (logged). For ``recall``: a path turning in place from
    the first frame (any scene has room for that).
    """
    from worldmem.data.episode import Episode
    from worldmem.data.revisits import find_revisits

    root = Path(root)
    actions = actions or ActionConfig()
    cases = []
    for index, folder in enumerate(_episode_folders(root)[:num_episodes]):
        ep = Episode.open(folder)
        sx, sy = image_size / ep.width, image_size / ep.height
        K_all = scale_intrinsics(ep.K.float(), sx, sy)
        c2w_all = ep.c2w.float()
        rgb0, depth0 = _read_resized(ep, [0], image_size)
        for horizon in horizons:
            gap = horizon_gap(horizon, working_frames, index)
            min_gap = working_frames if horizon == "short" else 10 * working_frames
            # recall: turn in place from the first frame
            N = gap + revisit_frames
            turn = 360.0 / gap if horizon == "long" else actions.turn_deg
            c2w = periodic_path(c2w_all[0], gap, N, 0.0, turn)
            cases.append(
                RevisitCase(
                    name=folder.name,
                    caption=ep.caption,
                    seed=HELD_OUT_SEED + index,
                    horizon=horizon,
                    c2w=c2w,
                    K=K_all[0].expand(N, 3, 3).contiguous(),
                    first_visit=_first_visits(N, gap),
                    context_frames=gap,
                    start_rgb=rgb0[0],
                    start_depth=None if depth0 is None else depth0[0],
                    protocols=("recall",),
                )
            )
            if not ep.has_depth:
                log(f"{folder}: no depth, so no ground-truth-context ({horizon}) case")
                continue
            revisits = find_revisits(
                c2w_all,
                K_all,
                image_size,
                image_size,
                revisit_frames,
                min_gap,
                DATASET_MIN_OVERLAP,
            )
            max_gap = 2 * working_frames if horizon == "short" else DATASET_MAX_CONTEXT
            found = []  # (overlap, target start, source) with the source in the horizon's range
            for r in revisits:
                for src, ov in zip(r.source_frames, r.source_overlaps):
                    if r.target_start - src <= max_gap:
                        found.append((ov, -r.target_start, src))
                        break
            if not found:
                log(
                    f"{folder}: no revisit {min_gap}-{max_gap} frames back, so no gt "
                    f"({horizon}) case"
                )
                continue
            _, s, src = max(found)  # best overlap, then earliest
            s = -s
            lo = max(0, s - DATASET_MAX_CONTEXT)
            idx = list(range(lo, s + revisit_frames))
            rgb, depth = _read_resized(ep, idx, image_size)
            first = torch.full((len(idx),), -1, dtype=torch.int64)
            first[s - lo :] = src - lo
            cases.append(
                RevisitCase(
                    name=folder.name,
                    caption=ep.caption,
                    seed=HELD_OUT_SEED + index,
                    horizon=horizon,
                    c2w=c2w_all[idx],
                    K=K_all[idx],
                    first_visit=first,
                    context_frames=s - lo,
                    rgb=rgb,
                    depth=depth,
                    protocols=("gt",),
                )
            )
        ep.close()
    return cases


# -- the protocols --------------------------------------------------------------------------


def _records(
    case: RevisitCase,
    protocol: str,
    mode: str,
    reference: str,
    frames: torch.Tensor,
    metrics: dict[str, torch.Tensor],
) -> list[dict]:
    out = []
    for i, t in enumerate(frames.tolist()):
        f = int(case.first_visit[t])
        row = {
            "episode": case.name,
            "protocol": protocol,
            "horizon": case.horizon,
            "mode": mode,
            "reference": reference,
            "frame": t,
            "gap": t - f if f >= 0 else -1,
        }
        row.update({k: float(v[i]) for k, v in metrics.items()})
        out.append(row)
    return out


def run_gt_context(pipe, case: RevisitCase, mode: str, lpips: LPIPS | None = None) -> list[dict]:
    """The ground-truth-context protocol on one case in one memory mode.

    Observes ground-truth frames ``[0, context_frames)``, generates the rest at the case's
    cameras and compares every generated frame with the ground truth (reference ``gt``).
    Returns one record per generated frame (episode, protocol, horizon, mode, reference,
    frame, gap = frames since the first visit of its pose or -1, and the metrics).
    """
    if case.rgb is None or case.depth is None:
        raise ValueError(f"case {case.name}: the gt protocol needs ground-truth rgb and depth")
    ctx = case.context_frames
    pipe.start(prompt=case.caption, c2w=case.c2w[0], seed=case.seed, memory=mode)
    for a in range(0, ctx, OBSERVE_BLOCK):
        b = min(ctx, a + OBSERVE_BLOCK)
        pipe.observe(case.rgb[a:b], case.depth[a:b], case.c2w[a:b], case.K[a:b])
    chunk = pipe.step(case.c2w[ctx:], case.K[ctx:])
    frames = torch.arange(ctx, case.num_frames)
    m = frame_metrics(chunk.rgb.cpu(), case.rgb[ctx:], chunk.depth.cpu(), case.depth[ctx:], lpips)
    out = _records(case, "gt", mode, "gt", frames, m)
    if mode == "all":  # the render the model was given, alone: the baseline it must beat
        fill = case.rgb[:ctx].mean(dim=(0, 2, 3))
        mem = fill_holes(chunk.memory_rgb.cpu().float(), chunk.memory_mask.cpu(), fill)
        mm = frame_metrics(mem, case.rgb[ctx:], chunk.memory_depth.cpu(), case.depth[ctx:], lpips)
        out += _records(case, "gt", MEMORY_RENDER_ROW, "gt", frames, mm)
    return out


def run_recall(
    pipe,
    case: RevisitCase,
    mode: str,
    lpips: LPIPS | None = None,
    start_image: bool = True,
) -> list[dict]:
    """The self-generated recall protocol on one case in one memory mode.

    Starts from the caption (and, with ``start_image``, the case's first frame and its depth
    when known), generates every other frame along the path, and compares each frame at a
    revisited pose with the model's own frame at the first visit (reference ``recall``).
    With a start image and ground truth, every generated frame is also compared with the
    ground truth (reference ``gt``: drift along the path). Returns records as
    ``run_gt_context``.
    """
    use_image = start_image and case.start_rgb is not None
    first = pipe.start(
        prompt=case.caption,
        image=case.start_rgb if use_image else None,
        depth=case.start_depth if use_image else None,
        c2w=case.c2w[0],
        seed=case.seed,
        memory=mode,
    )
    if use_image:
        d0 = case.start_depth if case.start_depth is not None else first.depth[0].cpu()
        chunk = pipe.step(case.c2w[1:], case.K[1:])
        rgb = torch.cat([case.start_rgb[None].cpu(), chunk.rgb.cpu()])
        depth = torch.cat([d0[None].cpu(), chunk.depth.cpu()])
        generated = torch.arange(1, case.num_frames)
    else:
        chunk = pipe.step(case.c2w, case.K)
        rgb, depth = chunk.rgb.cpu(), chunk.depth.cpu()
        generated = torch.arange(case.num_frames)
    out = []
    revisits = generated[case.first_visit[generated] >= 0]
    if len(revisits):
        src = case.first_visit[revisits]
        m = frame_metrics(rgb[revisits], rgb[src], depth[revisits], depth[src], lpips)
        out += _records(case, "recall", mode, "recall", revisits, m)
    if use_image and case.rgb is not None:
        m = frame_metrics(
            rgb[generated],
            case.rgb[generated],
            depth[generated],
            None if case.depth is None else case.depth[generated],
            lpips,
        )
        out += _records(case, "recall", mode, "gt", generated, m)
    return out


def frames_to_generate(
    cases: list[RevisitCase], protocols: Iterable[str], num_modes: int, start_image: bool = True
) -> int:
    """Frames the model generates to run ``protocols`` on ``cases`` in ``num_modes`` modes."""
    n = 0
    for case in cases:
        for p in protocols:
            if p not in case.protocols:
                continue
            if p == "gt":
                n += case.num_frames - case.context_frames
            else:
                n += case.num_frames - (1 if start_image and case.start_rgb is not None else 0)
    return n * num_modes


def run_revisit_eval(
    pipe,
    cases: list[RevisitCase],
    protocols: Iterable[str] = PROTOCOLS,
    modes: Iterable[str] = ABLATION_MODES,
    lpips: LPIPS | None = None,
    start_image: bool = True,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Run every protocol on every case in every memory mode (identical cameras, prompt and
    seed across modes). Returns the per-frame records of all runs."""
    protocols, modes = list(protocols), list(modes)
    for p in protocols:
        if p not in PROTOCOLS:
            raise ValueError(f"protocol '{p}' is not one of {', '.join(PROTOCOLS)}")
    records: list[dict] = []
    t0 = time.perf_counter()
    for i, case in enumerate(cases):
        for p in protocols:
            if p not in case.protocols:
                continue
            for mode in modes:
                if p == "gt":
                    records += run_gt_context(pipe, case, mode, lpips)
                else:
                    records += run_recall(pipe, case, mode, lpips, start_image)
        log(
            f"[{i + 1}/{len(cases)}] {case.name} {case.horizon} ({case.num_frames} frames) "
            f"done, {time.perf_counter() - t0:.0f} s elapsed"
        )
    return records


# -- results: table, CSV, plots -------------------------------------------------------------


_TITLES = {
    "gt": "gt: generated revisits vs ground truth, after ground-truth context",
    "recall": "recall (self-consistency only): generated revisits vs the model's own first visit",
}


def _primary(protocol: str) -> str:
    return "gt" if protocol == "gt" else "recall"


def _metric_names(records: list[dict]) -> list[str]:
    have = set().union(*(r.keys() for r in records)) if records else set()
    return [m for m in METRICS if m in have]


def summarize(records: list[dict], confidence: float = 0.95) -> list[dict]:
    """Per (protocol, horizon, mode): the mean over episodes of each episode's mean over its
    revisit frames (the protocol's own reference), with a t-interval over episodes.

    Returns rows: protocol, horizon, mode, episodes, gap (mean frames since first visit), and
    per metric ``<m>``, ``<m>_low``, ``<m>_high``.
    """
    metrics = _metric_names(records)
    per_episode: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r["reference"] != _primary(r["protocol"]) or r["gap"] < 0:
            continue
        key = (r["protocol"], r["horizon"], r["mode"], r["episode"])
        for m in metrics + ["gap"]:
            if m in r:
                per_episode[key][m].append(r[m])
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (p, h, mode, _), vals in per_episode.items():
        for m, v in vals.items():
            finite = [x for x in v if not math.isnan(x)]
            groups[(p, h, mode)][m].append(sum(finite) / len(finite) if finite else math.nan)
    order = {n: i for i, n in enumerate(PROTOCOLS + HORIZONS)}
    rows = []
    for (p, h, mode), vals in sorted(
        groups.items(), key=lambda kv: (order.get(kv[0][0], 9), order.get(kv[0][1], 9))
    ):
        row = {"protocol": p, "horizon": h, "mode": mode, "episodes": len(vals["gap"])}
        row["gap"] = sum(vals["gap"]) / len(vals["gap"])
        for m in metrics:
            mean, lo, hi, _ = mean_ci(vals.get(m, []), confidence)
            row[m], row[f"{m}_low"], row[f"{m}_high"] = mean, lo, hi
        rows.append(row)
    return rows


def _fmt(mean: float, lo: float, hi: float) -> str:
    if math.isnan(mean):
        return "–"
    if math.isnan(lo):
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {(hi - lo) / 2:.3f}"


def _markdown(rows: list[dict], metrics: list[str]) -> str:
    head = ["protocol", "horizon", "gap (frames)", "memory", "episodes"] + [
        f"{METRICS[m][0]} {'↑' if METRICS[m][1] else '↓'}" for m in metrics
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["protocol"], r["horizon"], f"{r['gap']:.1f}", r["mode"], str(r["episodes"])]
        cells += [_fmt(r[m], r[f"{m}_low"], r[f"{m}_high"]) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(
    records: list[dict], out_dir: str | Path, confidence: float = 0.95, note: str = ""
) -> dict[str, Path]:
    """Write ``summary.md`` (mean ± half-width of the ``confidence`` t-interval over
    episodes), ``summary.csv`` (one row per protocol, horizon, memory mode and metric),
    ``frames.csv`` (every per-frame record) and plots ``revisit_<protocol>.png`` (metrics vs
    frames since the first visit, one line per memory mode) and ``path_<protocol>.png``
    (metrics along the path). Returns the paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = _metric_names(records)
    rows = summarize(records, confidence)
    paths = {}
    md = (
        f"# Revisit consistency\n\n{note}Mean over episodes ± half-width of the "
        f"{confidence:.0%} t-interval. `gt`: generated revisits vs ground truth after "
        "ground-truth context; `recall`: generated revisits vs the model's own first visit "
        "(self-consistency only: noise or a flat image can score well here; the `walk` "
        "protocol compares every frame with the truth).\n\n" + _markdown(rows, metrics)
    )
    paths["summary.md"] = out / "summary.md"
    paths["summary.md"].write_text(md)
    paths["summary.csv"] = out / "summary.csv"
    with open(paths["summary.csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "protocol",
                "horizon",
                "mode",
                "metric",
                "mean",
                "ci_low",
                "ci_high",
                "episodes",
                "gap_frames",
            ]
        )
        for r in rows:
            for m in metrics:
                w.writerow(
                    [
                        r["protocol"],
                        r["horizon"],
                        r["mode"],
                        m,
                        r[m],
                        r[f"{m}_low"],
                        r[f"{m}_high"],
                        r["episodes"],
                        r["gap"],
                    ]
                )
    paths["frames.csv"] = out / "frames.csv"
    cols = ["episode", "protocol", "horizon", "mode", "reference", "frame", "gap"] + metrics
    with open(paths["frames.csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    paths.update(_plot(records, out, metrics, confidence))
    return paths


def _mean_by(records: list[dict], x_key: str, metric: str, confidence: float):
    """x -> (mean, low, high) over episodes (each episode's mean at that x)."""
    per: dict[float, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if metric in r and not math.isnan(r[metric]):
            per[r[x_key]][r["episode"]].append(r[metric])
    xs = sorted(per)
    stats = [mean_ci([sum(v) / len(v) for v in per[x].values()], confidence) for x in xs]
    return xs, stats


def _plot(records: list[dict], out: Path, metrics: list[str], confidence: float) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    paths = {}
    modes = list(dict.fromkeys(r["mode"] for r in records))
    for protocol in dict.fromkeys(r["protocol"] for r in records):
        mine = [r for r in records if r["protocol"] == protocol]
        # metrics vs frames since the first visit, at revisits
        rev = [r for r in mine if r["reference"] == _primary(protocol) and r["gap"] >= 0]
        fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4), squeeze=False)
        for ax, m in zip(axes[0], metrics):
            for mode in modes:
                xs, st = _mean_by([r for r in rev if r["mode"] == mode], "gap", m, confidence)
                if not xs:
                    continue
                mean = [s[0] for s in st]
                lo = [s[1] if not math.isnan(s[1]) else s[0] for s in st]
                hi = [s[2] if not math.isnan(s[2]) else s[0] for s in st]
                ax.plot(xs, mean, marker="o", label=mode)
                ax.fill_between(xs, lo, hi, alpha=0.15)
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.set_xlabel("frames since first visit")
            title, up = METRICS[m]
            ax.set_title(f"{title} ({'higher' if up else 'lower'} is better)")
            ax.grid(alpha=0.3)
        axes[0][0].legend(title="memory")
        fig.suptitle(_TITLES.get(protocol, protocol))
        fig.tight_layout()
        name = f"revisit_{protocol}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        paths[name] = out / name
        # metrics along the path (against ground truth when there is one)
        ref = "gt" if any(r["reference"] == "gt" for r in mine) else _primary(protocol)
        horizons = [h for h in HORIZONS if any(r["horizon"] == h for r in mine)]
        shown = [m for m in ("psnr", "abs_rel") if m in metrics]
        fig, axes = plt.subplots(
            len(horizons), len(shown), figsize=(5 * len(shown), 3 * len(horizons)), squeeze=False
        )
        for row, h in zip(axes, horizons):
            for ax, m in zip(row, shown):
                for mode in modes:
                    sel = [
                        r
                        for r in mine
                        if r["reference"] == ref and r["horizon"] == h and r["mode"] == mode
                    ]
                    xs, st = _mean_by(sel, "frame", m, confidence)
                    if xs:
                        ax.plot(xs, [s[0] for s in st], marker=".", label=mode)
                ax.set_xlabel("frame")
                ax.set_title(f"{h} horizon: {METRICS[m][0]} vs {ref}")
                ax.grid(alpha=0.3)
        axes[0][0].legend(title="memory")
        fig.tight_layout()
        name = f"path_{protocol}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        paths[name] = out / name
    return paths
