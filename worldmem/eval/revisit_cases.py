"""Revisit cases: the episodes the revisit-consistency protocols (``revisit.py``) run on,
each at one horizon, with the cameras, the ground truth and, per frame, the earlier frame at
the same pose.

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

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from worldmem.config import ActionConfig
from worldmem.data.synthetic import CLEARANCE_M, free_start_camera, make_world
from worldmem.geometry import scale_intrinsics
from worldmem.geometry.trajectory import periodic_path

__all__ = [
    "PROTOCOLS",
    "HORIZONS",
    "HELD_OUT_SEED",
    "REVISIT_FRAMES",
    "RevisitCase",
    "horizon_gap",
    "periodic_path",
    "synthetic_case",
    "dataset_cases",
]

PROTOCOLS = ("gt", "recall")
HORIZONS = ("short", "long")
HELD_OUT_SEED = 100_000  # first world seed of the evaluation (training uses 0..9999)
REVISIT_FRAMES = 4  # frames per episode that come back to earlier poses
SHORT_GAP_EXTRA = (0, 1)  # short gaps: working window + these frames, cycled over episodes
LONG_GAP_FACTORS = (10, 11, 12)  # long gaps: working window x these, cycled over episodes
LOOP_STEP_M = 0.1  # forward step per frame on a long closed loop (when the world has room)
DATASET_MIN_OVERLAP = 0.5  # a dataset revisit's source frame sees at least this of the target
DATASET_MAX_CONTEXT = 96  # ground-truth frames before a dataset revisit, at most


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
    if horizon not in HORIZONS:
        raise ValueError(f"horizon '{horizon}' is not one of {', '.join(HORIZONS)}")
    if gap < 2 or revisit_frames < 1:
        raise ValueError(f"gap must be >= 2 and revisit_frames >= 1, got {gap}, {revisit_frames}")
    actions = actions or ActionConfig()
    world = make_world(seed)
    start = free_start_camera(world, seed)
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
