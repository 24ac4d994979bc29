"""The walk protocol: every generated frame against the true render, beside baselines that
need no learning.

A held-out synthetic world (seeds from ``HELD_OUT_SEED``) gives the exact frame and depth at
any camera. The pipeline starts from the true first frame (with its true depth, or without
it) and walks a path that comes back, of one of ``WALK_KINDS``:

* ``out_and_back``, ``loop``: the synthetic generator's planners (cameras in free space);
* ``turn``: two full turns on the spot; ``strafe``: sideways right, left and back, twice;
  ``look_up_down``: pitch up and down twice; all from a free start with room around it
  (``free_start_camera``), the paths of ``worldmem.geometry.trajectory.revisit_paths``.

Rows (identical cameras and seed): ``model`` (start with depth, all memories), ``model, no
start depth`` (``depth=None``), ``no memory`` (``memory="working"``: the working window only),
and the baselines ``warp`` (the start frame warped to each camera with its true depth,
z-buffer, holes the start frame's mean colour), ``warp, filled`` (the same warp with its
holes push-pull filled: the smooth continuation of the pixels around them, the non-learned
counterpart of the model's prior), ``warp, elevation fill`` (the fill tending, far from the
warp, to the start frame's mean along each ray's elevation: the counterpart of the prior of a
model with ``hole_prior="elevation"``), ``warp, box fill`` (the fill tending, far from the
warp, to the box room the start frame implies, seen from each camera: floor, ceiling and walls
at their fitted places in their observed colours, ``memory/layout.py``; the counterpart of
``memory.layout: box``), ``memory`` (the spatial-memory render the model was given,
holes the mean colour) and ``previous`` (the previous true frame); and one reference that no
method could run, ``start, true target depth`` (the start frame read bilinearly at each
pixel through the target's own true depth, holes the mean colour): over the pixels the start
saw, the most that giving back a start frame of this resolution can score.

Frames are scored over the whole walk, at start revisits (frames at least
``RETURN_MIN_FRAMES`` after the start whose surface the start camera saw: ``START_OVERLAP`` of
it or more, by true-depth frustum overlap), where the truth is what memory should give back,
and at self-recall frames (views the start never saw, ``INVENTED_OVERLAP`` or less, that an
earlier frame at least ``RECALL_MIN_GAP`` back saw ``RECALL_OVERLAP`` or more of): the frame
against that earlier frame of the same row, warped through the true depth (read
bilinearly). Self-recall measures consistency only (a constant image is perfectly
consistent), so it is always shown beside the sharpness ratio.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmem.data.synthetic import CLEARANCE_M, free_start_camera, make_trajectory
from worldmem.eval.baselines import backward_warp, fill_holes, forward_warp
from worldmem.eval.metrics import (
    depth_abs_rel,
    depth_scale,
    masked_sharpness_ratio,
    psnr,
    psnr_from_mse,
    sharpness_ratio,
    ssim,
)
from worldmem.geometry import frustum_overlap, project_points, unproject_depth
from worldmem.geometry.trajectory import look_up_down, strafe, turn_in_place
from worldmem.memory.fill import push_pull_fill
from worldmem.memory.layout import BoxLayout
from worldmem.models.elevation import elevation_default, elevation_profile
from worldmem.models.interface import ModelFrames

__all__ = [
    "WALK_KINDS",
    "MODEL_ROWS",
    "BASELINE_ROWS",
    "REFERENCE_ROWS",
    "ROWS",
    "WalkCase",
    "WalkResult",
    "walk_path",
    "walk_case",
    "run_walk",
    "masked_psnr",
    "self_recall",
    "start_seen",
]

WALK_KINDS = ("out_and_back", "loop", "turn", "strafe", "look_up_down")
MODEL_ROWS = ("model", "model, no start depth", "no memory")
BASELINE_ROWS = (
    "warp",
    "warp, filled",
    "warp, elevation fill",
    "warp, box fill",
    "memory",
    "previous",
)
REFERENCE_ROWS = ("start, true target depth",)  # uses the truth at the target: a ceiling
ROWS = MODEL_ROWS + BASELINE_ROWS + REFERENCE_ROWS
_ROW_MODE = {"model": ("all", True), "model, no start depth": ("all", False)}
_ROW_MODE["no memory"] = ("working", True)

START_OVERLAP = 0.5  # a frame revisits the start view when the start saw this much of it
RETURN_MIN_FRAMES = 10  # ... and it is at least this many frames after the start
INVENTED_OVERLAP = 0.25  # a view the start saw at most this much of is the model's invention
RECALL_OVERLAP = 0.5  # self-recall: the earlier frame saw at least this much of the revisit
RECALL_MIN_GAP = 10  # self-recall: the earlier frame is at least this many frames back
RECALL_MIN_VALID = 0.3  # self-recall: at least this fraction of pixels warp from the earlier frame
OVERLAP_SAMPLES = 256  # surface samples per frame for the overlaps
TURNS = 2.0  # full turns of the ``turn`` walk
STRAFE_M = 1.0  # largest sideways offset of ``strafe`` (halved until the path is free)
STRAFE_CYCLES = 2
PITCH_DEG = 50.0  # largest pitch of ``look_up_down``
PITCH_CYCLES = 2


def walk_path(world, kind: str, num_frames: int, seed: int) -> Tensor:
    """Cameras c2w ``(num_frames, 4, 4)`` of a walk of ``kind`` (``WALK_KINDS``) in ``world``
    (a ``worldmem.data.synthetic.World``), all in free space and ending where they started."""
    if kind not in WALK_KINDS:
        raise ValueError(f"walk kind '{kind}' is not one of {', '.join(WALK_KINDS)}")
    if num_frames < 4:
        raise ValueError(f"num_frames must be >= 4, got {num_frames}")
    if kind in ("out_and_back", "loop"):
        return make_trajectory(world, kind, num_frames, seed)
    start = free_start_camera(world, seed)
    if kind == "turn":
        return turn_in_place(start, num_frames, TURNS)
    if kind == "look_up_down":
        return look_up_down(start, num_frames, PITCH_DEG, PITCH_CYCLES)
    amp = STRAFE_M
    while True:
        c2w = strafe(start, num_frames, amp, STRAFE_CYCLES)
        if amp < 0.05 or bool(world.is_free(c2w[:, :3, 3], CLEARANCE_M).all()):
            return c2w
        amp /= 2


@dataclass
class WalkCase:
    """One walk in one world at the model's image size S.

    c2w ``(N, 4, 4)``, K ``(N, 3, 3)``, rgb ``(N, 3, S, S)`` and depth ``(N, 1, S, S)``: the
    true render at every camera; start_overlap ``(N,)``: the fraction of each frame's surface
    the start camera sees; overlap ``(N, N)``: ``[t, s]`` the fraction of frame t's surface
    camera s sees (true depth at both)."""

    name: str
    kind: str
    seed: int
    caption: str
    c2w: Tensor
    K: Tensor
    rgb: Tensor
    depth: Tensor
    start_overlap: Tensor
    overlap: Tensor

    @property
    def num_frames(self) -> int:
        return self.c2w.shape[0]

    def start_revisits(self) -> Tensor:
        """Frame indices that revisit the start view ``(R,)``."""
        t = torch.arange(self.num_frames)
        return t[(self.start_overlap >= START_OVERLAP) & (t >= RETURN_MIN_FRAMES)]

    def recall_pairs(self) -> list[tuple[int, int]]:
        """(t, s): frame t shows a view the start did not see, and earlier frame s (at least
        ``RECALL_MIN_GAP`` back, s >= 1) saw the most of it (>= ``RECALL_OVERLAP``)."""
        pairs = []
        for t in range(1 + RECALL_MIN_GAP, self.num_frames):
            if self.start_overlap[t] > INVENTED_OVERLAP:
                continue
            ov = self.overlap[t, 1 : t - RECALL_MIN_GAP + 1]
            if len(ov) and float(ov.max()) >= RECALL_OVERLAP:
                pairs.append((t, 1 + int(ov.argmax())))
        return pairs


def walk_case(world, kind: str, num_frames: int, seed: int, size: int, K: Tensor) -> WalkCase:
    """Render a ``walk_path`` at ``size`` px with intrinsics K ``(3, 3)`` and measure its
    overlaps."""
    c2w = walk_path(world, kind, num_frames, seed)
    Ks = K.float().cpu().expand(num_frames, 3, 3).contiguous()
    rgb, depth = world.render(c2w, Ks, size, size)
    d = depth[:, 0]
    overlap = frustum_overlap(
        c2w, Ks, c2w, Ks, size, size, OVERLAP_SAMPLES, target_depth=d, cand_depth=d
    )  # (N, N)
    return WalkCase(
        name=f"world{seed}",
        kind=kind,
        seed=seed,
        caption=world.caption,
        c2w=c2w,
        K=Ks,
        rgb=rgb,
        depth=depth,
        start_overlap=overlap[:, 0].clone(),
        overlap=overlap,
    )


def _elevation_fill(case: WalkCase, rgb: Tensor, mask: Tensor) -> Tensor:
    """The warp ``rgb`` ``(N, 3, S, S)`` with its holes (``mask`` ``(N, 1, S, S)`` False)
    filled towards the start frame's mean along elevation (``models/elevation.py``)."""
    S = rgb.shape[-1]
    start = ModelFrames(
        x=case.rgb[None, :1],
        sigma=torch.zeros(1, 1),
        c2w=case.c2w[None, :1],
        K=case.K[None, :1],
        valid=torch.ones(1, 1, dtype=torch.bool),
    )
    default = elevation_default(elevation_profile(S, start), case.c2w[None], case.K[None], S, S)
    return push_pull_fill(rgb, mask, default[0])[0]


def _box_fill(case: WalkCase, rgb: Tensor, mask: Tensor) -> Tensor:
    """The warp ``rgb`` ``(N, 3, S, S)`` with its holes (``mask`` ``(N, 1, S, S)`` False)
    filled towards the box room the start frame implies, seen from each camera
    (``memory/layout.py``)."""
    start = [(case.c2w[0], case.K[0], case.rgb[0], case.depth[0, 0])]
    room, _, _ = BoxLayout.from_frames(start).render(case.c2w, case.K, rgb.shape[-1])
    return push_pull_fill(rgb, mask, room)[0]


def _start_through_target_depth(case: WalkCase) -> tuple[Tensor, Tensor]:
    """The start frame read at every pixel of every frame through that frame's true depth ->
    rgb ``(N, 3, S, S)`` (bilinear), valid ``(N, S, S)`` (the start saw the surface: its
    depth at the nearest pixel agrees, ``backward_warp``)."""
    N, S = case.num_frames, case.rgb.shape[-1]
    valid = torch.stack(
        [
            backward_warp(
                case.rgb[0],
                case.depth[0],
                case.c2w[0],
                case.K[0],
                case.depth[t],
                case.c2w[t],
                case.K[t],
            )[1]
            for t in range(N)
        ]
    )
    pts = unproject_depth(case.depth[:, 0].double(), case.c2w.double(), case.K.double())
    uv, _ = project_points(pts.reshape(1, -1, 3), case.c2w[:1].double(), case.K[:1].double())
    grid = (uv.reshape(N, S, S, 2) / S * 2 - 1).float()  # pixel centres at +0.5
    start = case.rgb[:1].float().expand(N, -1, -1, -1)
    rgb = F.grid_sample(start, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return rgb * valid[:, None], valid


def _start_resampled(case: WalkCase, fill: Tensor) -> Tensor:
    """The reference ``start, true target depth``: ``_start_through_target_depth``, holes
    ``fill`` ``(3,)``."""
    rgb, valid = _start_through_target_depth(case)
    return fill_holes(rgb, valid[:, None], fill)


def start_seen(case: WalkCase) -> Tensor:
    """``(N, S, S)`` bool: the pixels of each frame whose true surface the start camera saw
    (its true depth, reprojected, agrees with the start frame's), where memory must give back
    exactly what was observed."""
    return _start_through_target_depth(case)[1]


def masked_psnr(pred: Tensor, target: Tensor, mask: Tensor) -> float:
    """PSNR in dB over the pixels where ``mask`` ``(H, W)`` is True; pred, target ``(3, H, W)``
    in [0, 1]. NaN when the mask is empty; at most ``MAX_PSNR_DB`` (8-bit rounding), as ``psnr``."""
    n = int(mask.sum())
    if n == 0:
        return math.nan
    mse = ((pred.double() - target.double()) ** 2 * mask).sum() / (3 * n)
    return float(psnr_from_mse(mse))


@dataclass
class WalkResult:
    """Per-frame records of one walk (one per row and generated frame), and the frames of each
    row kept for KID/FID (``kept`` indices) and figures: ``frames[row]`` ``(len(kept), 3, S,
    S)``; ``frames["truth"]`` too."""

    records: list[dict]
    kept: Tensor
    frames: dict[str, Tensor] = field(default_factory=dict)
    seconds: float = 0.0


def _generate(pipe, case: WalkCase, memory: str, with_depth: bool) -> tuple[Tensor, object]:
    """Run the pipeline along the walk from the true start frame -> rgb ``(N, 3, S, S)`` (frame
    0 the given start frame) and the chunk of frames 1..N-1."""
    pipe.start(
        prompt=case.caption,
        image=case.rgb[0],
        depth=case.depth[0] if with_depth else None,
        c2w=case.c2w[0],
        seed=case.seed,
        memory=memory,
    )
    chunk = pipe.step(case.c2w[1:], case.K[1:])
    return torch.cat([case.rgb[:1], chunk.rgb.detach().cpu().float()]), chunk


def self_recall(case: WalkCase, images: Tensor, pairs: list[tuple[int, int]]) -> dict:
    """Self-recall of frames ``images (N, 3, S, S)``: {t: (PSNR of frame t against frame s
    warped to it through the true depth, read bilinearly, s)} for the pairs (t, s) where at
    least ``RECALL_MIN_VALID`` of the pixels warp."""
    recall = {}
    for t, src in pairs:
        warped, valid = backward_warp(
            images[src],
            case.depth[src],
            case.c2w[src],
            case.K[src],
            case.depth[t],
            case.c2w[t],
            case.K[t],
            bilinear=True,
        )
        if float(valid.float().mean()) >= RECALL_MIN_VALID:
            recall[t] = (masked_psnr(images[t], warped, valid), src)
    return recall


def run_walk(
    pipe,
    case: WalkCase,
    rows: tuple[str, ...] = ROWS,
    keep_every: int = 1,
) -> WalkResult:
    """Every row of ``rows`` (``ROWS``) along one walk; returns per-frame records for frames
    1..N-1 (frame 0 is given): episode, kind, row, frame, psnr, ssim, sharpness (high-frequency
    energy / truth's), sharpness_held / sharpness_new (the same over the pixels where the
    model's memory render held something / had a hole, NaN without the model row),
    start_overlap, start_revisit (0/1), psnr_seen (start revisits: PSNR
    over the pixels the start frame saw, else NaN), recall_psnr (self-recall frames,
    else NaN), recall_frame, recall_truth (the true frames' own self-recall over the same
    pair: what frames exactly as sharp and as consistent as the truth score), depth_abs_rel /
    depth_scale (a model row's generated depth against the true depth:
    ``metrics.depth_abs_rel``, ``metrics.depth_scale``; NaN for the other rows). Keeps every
    ``keep_every``-th frame of each row for KID/FID."""
    for r in rows:
        if r not in ROWS:
            raise ValueError(f"row '{r}' is not one of {', '.join(ROWS)}")
    t0 = time.perf_counter()
    N = case.num_frames
    fill = case.rgb[0].mean(dim=(1, 2))  # (3,) hole colour of warp and memory
    images: dict[str, Tensor] = {}
    depths: dict[str, Tensor] = {}  # the model rows' generated depth, frames 1..N-1
    memory_render = held = None
    for r in MODEL_ROWS:
        need = r in rows or (r == "model" and "memory" in rows)
        if not need:
            continue
        mode, with_depth = _ROW_MODE[r]
        rgb, chunk = _generate(pipe, case, mode, with_depth)
        if r in rows:
            images[r] = rgb.clamp(0, 1)
            depths[r] = chunk.depth.detach().cpu().float()
        if r == "model":
            mem = fill_holes(chunk.memory_rgb.cpu().float(), chunk.memory_mask.cpu(), fill)
            memory_render = torch.cat([case.rgb[:1], mem])
            held = chunk.memory_mask.cpu().reshape(N - 1, 1, *mem.shape[-2:]) > 0.5
    if "memory" in rows:
        images["memory"] = memory_render
    if any(r.startswith("warp") for r in rows):
        w_rgb, _, w_mask = forward_warp(
            case.rgb[:1], case.depth[:1], case.c2w[:1], case.K[:1], case.c2w, case.K
        )
        if "warp" in rows:
            images["warp"] = fill_holes(w_rgb, w_mask, fill)
        if "warp, filled" in rows:
            images["warp, filled"] = push_pull_fill(w_rgb, w_mask, fill.expand(N, 3))[0]
        if "warp, elevation fill" in rows:
            images["warp, elevation fill"] = _elevation_fill(case, w_rgb, w_mask)
        if "warp, box fill" in rows:
            images["warp, box fill"] = _box_fill(case, w_rgb, w_mask)
    if "previous" in rows:
        images["previous"] = torch.cat([case.rgb[:1], case.rgb[:-1]])
    if "start, true target depth" in rows:
        images["start, true target depth"] = _start_resampled(case, fill)

    frames = torch.arange(1, N)
    revisit = torch.zeros(N, dtype=torch.bool)
    revisit[case.start_revisits()] = True
    seen = start_seen(case)
    pairs = case.recall_pairs()
    records = []
    truth = case.rgb[1:]
    truth_recall = self_recall(case, case.rgb, pairs)  # what the true frames themselves score
    nan = torch.full((N - 1,), math.nan)  # a measure that does not apply to a row
    for r in rows:
        x = images[r][1:]
        p, s, sh = psnr(x, truth), ssim(x, truth), sharpness_ratio(x, truth)
        d_rel = d_scale = nan
        if r in depths:
            d_rel = depth_abs_rel(depths[r], case.depth[1:])
            d_scale = depth_scale(depths[r], case.depth[1:])
        if held is None:
            sh_held = sh_new = nan
        else:  # the same split of each frame for every row: where the model's memory held it
            sh_held = masked_sharpness_ratio(x, truth, held)
            sh_new = masked_sharpness_ratio(x, truth, ~held)
        recall = self_recall(case, images[r], pairs)
        for i, t in enumerate(frames.tolist()):
            rp, rs = recall.get(t, (math.nan, -1))
            ps = masked_psnr(x[i], truth[i], seen[t]) if revisit[t] else math.nan
            records.append(
                {
                    "episode": case.name,
                    "kind": case.kind,
                    "row": r,
                    "frame": t,
                    "psnr": float(p[i]),
                    "ssim": float(s[i]),
                    "sharpness": float(sh[i]),
                    "sharpness_held": float(sh_held[i]),
                    "sharpness_new": float(sh_new[i]),
                    "start_overlap": float(case.start_overlap[t]),
                    "start_revisit": int(revisit[t]),
                    "psnr_seen": ps,
                    "recall_psnr": rp,
                    "recall_frame": rs,
                    "recall_truth": truth_recall.get(t, (math.nan, -1))[0],
                    "depth_abs_rel": float(d_rel[i]),
                    "depth_scale": float(d_scale[i]),
                }
            )
    kept = torch.arange(1, N, max(1, keep_every))
    out = {r: images[r][kept] for r in rows}
    out["truth"] = case.rgb[kept]
    return WalkResult(records, kept, out, time.perf_counter() - t0)
