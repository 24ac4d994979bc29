"""Studies beside the walk protocol: memory fidelity, drift over a repeated circuit, and
prompt-only starts.

* ``memory_fidelity``: a ``SpatialMemory`` filled with a walk's true frames (every other
  frame), rendered at the cameras it was filled from (``seen``) and at the frames between them
  (``novel``), against the truth and against a brute-force reference: an independent z-buffer
  of every observed pixel (``baselines.forward_warp`` at one point per pixel).
* ``drift``: one closed circuit (the generator's ``loop`` planner) walked ``rounds`` times
  from the true start frame; every frame against the truth, per round, beside the ``warp``
  baseline; and each frame against the model's own first-round frame at the same camera
  (consistency only).
* ``prompt_starts``: first frames from captions of held-out worlds (``start(prompt=...)``,
  then one step at the start camera), against the true frames at those cameras.
* ``start_depths`` / ``start_depth_rows``: the depth a start image without depth is given,
  against the true depth, beside baselines that need no learning: a layout prior (each pixel
  the median true depth of the other worlds' start views at that pixel) and a constant depth.
* ``fit_start_depth_scale``: the ``start_depth_scale`` (pipeline.json) that makes that depth
  right in the median, fitted on worlds neither trained on nor evaluated (``CALIBRATION_SEED``).
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from worldmem.eval.baselines import fill_holes, forward_warp
from worldmem.eval.metrics import depth_abs_rel, depth_delta, psnr, sharpness_ratio, ssim
from worldmem.eval.walk import masked_psnr

__all__ = [
    "FREE_PROMPTS",
    "memory_fidelity",
    "drift",
    "prompt_starts",
    "free_prompt_frames",
    "start_depths",
    "layout_prior",
    "start_depth_rows",
    "fit_start_depth_scale",
    "scale_from_depths",
    "CALIBRATION_SEED",
    "INSERT_BLOCK",
]

INSERT_BLOCK = 16  # true frames inserted into the memory at once
# worlds start_depth_scale is fitted on: training uses seeds below 10,000, evaluation 100,000 on
CALIBRATION_SEED = 50_000
FREE_PROMPTS = (
    "a crimson brick hallway",
    "a bright room with wooden floors and a green door",
    "an open plaza under a blue sky with tall pillars",
    "a narrow corridor with striped blue walls",
    "a beige room with a checkered floor and a white lamp",
    "a dark purple room full of boxes",
)


def memory_fidelity(memory_cfg, case, device: str | torch.device = "cpu") -> list[dict]:
    """Fill a fresh ``SpatialMemory(memory_cfg)`` with the true frames 0, 2, 4, ... of
    ``case`` (a ``WalkCase``) and render it at those cameras (``seen``) and at the odd frames
    (``novel``); the brute-force z-buffer of the same observed pixels likewise.

    Returns rows: episode, kind, source (``memory`` or ``brute force``), views (``seen`` or
    ``novel``), psnr_valid (vs truth over pixels the source covers), coverage (fraction of
    pixels covered), psnr_filled (vs truth over all pixels, holes the start frame's mean
    colour), and for ``memory``: psnr_vs_brute (over pixels both cover).
    """
    from worldmem.memory import SpatialMemory

    mem = SpatialMemory(memory_cfg, device=device)
    N = case.num_frames
    seen_idx = torch.arange(0, N, 2)
    novel_idx = torch.arange(1, N, 2)
    for a in range(0, len(seen_idx), INSERT_BLOCK):
        idx = seen_idx[a : a + INSERT_BLOCK]
        mem.insert(case.rgb[idx], case.depth[idx], case.c2w[idx], case.K[idx], step=int(idx[-1]))
    S = case.rgb.shape[-1]
    fill = case.rgb[0].mean(dim=(1, 2))
    rows = []
    for views, idx in (("seen", seen_idx), ("novel", novel_idx)):
        if len(idx) == 0:
            continue
        r = mem.render(case.c2w[idx], case.K[idx], S, S)
        m_rgb, m_mask = r.rgb.cpu().float(), r.mask.cpu() > 0
        b_rgb, _, b_mask = forward_warp(
            case.rgb[seen_idx],
            case.depth[seen_idx],
            case.c2w[seen_idx],
            case.K[seen_idx],
            case.c2w[idx],
            case.K[idx],
            supersample=1,
        )
        truth = case.rgb[idx]
        for source, rgb, mask in (("memory", m_rgb, m_mask), ("brute force", b_rgb, b_mask)):
            valid = [masked_psnr(rgb[i], truth[i], mask[i, 0]) for i in range(len(idx))]
            row = {
                "episode": case.name,
                "kind": case.kind,
                "source": source,
                "views": views,
                "psnr_valid": _nanmean(valid),
                "coverage": float(mask.float().mean()),
                "psnr_filled": float(psnr(fill_holes(rgb, mask, fill), truth).mean()),
                "psnr_vs_brute": math.nan,
            }
            if source == "memory":
                both = m_mask & b_mask
                row["psnr_vs_brute"] = _nanmean(
                    [masked_psnr(m_rgb[i], b_rgb[i], both[i, 0]) for i in range(len(idx))]
                )
            rows.append(row)
    return rows


def _nanmean(values) -> float:
    v = [x for x in values if not math.isnan(x)]
    return sum(v) / len(v) if v else math.nan


def drift(pipe, world, seed: int, rounds: int, frames_per_round: int) -> dict:
    """Walk one closed circuit ``rounds`` times from the true start frame (with its depth).

    Returns dict: records (one per generated frame: frame, round, psnr, ssim, sharpness vs
    truth; warp_psnr of the warp baseline; self_psnr vs the model's own frame at the same
    camera in round 0, NaN in round 0), seconds, frames.
    """
    from worldmem.data.synthetic import make_trajectory

    if rounds < 2 or frames_per_round < 4:
        raise ValueError(f"drift: need rounds >= 2 and frames_per_round >= 4, got {rounds}, "
                         f"{frames_per_round}")  # fmt: skip
    R = frames_per_round
    circuit = make_trajectory(world, "loop", R + 1, seed)[:R]  # last pose == first: dropped
    K = pipe.K.float().cpu().expand(R, 3, 3).contiguous()
    S = pipe.size
    truth, depth = world.render(circuit, K, S, S)
    t0 = time.perf_counter()
    pipe.start(prompt=world.caption, image=truth[0], depth=depth[0], c2w=circuit[0], seed=seed)
    c2w = circuit.repeat(rounds, 1, 1)
    chunk = pipe.step(c2w[1:], K[:1].expand(len(c2w) - 1, 3, 3))
    gen = torch.cat([truth[:1], chunk.rgb.detach().cpu().float().clamp(0, 1)])
    seconds = time.perf_counter() - t0
    fill = truth[0].mean(dim=(1, 2))
    w_rgb, _, w_mask = forward_warp(truth[:1], depth[:1], circuit[:1], K[:1], circuit, K)
    warp = fill_holes(w_rgb, w_mask, fill)
    warp_p = psnr(warp, truth)
    records = []
    for r in range(rounds):
        lo = max(1, r * R)
        idx = torch.arange(lo, (r + 1) * R)
        pose = idx % R
        x, y = gen[idx], truth[pose]
        p, s, sh = psnr(x, y), ssim(x, y), sharpness_ratio(x, y)
        self_p = psnr(x, gen[pose]) if r > 0 else torch.full((len(idx),), math.nan)
        for i, t in enumerate(idx.tolist()):
            records.append(
                {
                    "frame": t,
                    "round": r,
                    "psnr": float(p[i]),
                    "ssim": float(s[i]),
                    "sharpness": float(sh[i]),
                    "warp_psnr": float(warp_p[pose[i]]),
                    "self_psnr": float(self_p[i]),
                }
            )
    return {"records": records, "seconds": seconds, "frames": len(c2w) - 1, "gen": gen}


def prompt_starts(pipe, seeds: list[int]) -> tuple[Tensor, Tensor, list[str]]:
    """First frames from the captions of held-out worlds ``seeds``: ``start(prompt=caption,
    c2w=start)`` then one ``step`` at the start camera (``free_start_camera``).

    Returns generated ``(P, 3, S, S)``, truth ``(P, 3, S, S)`` at those cameras, captions."""
    from worldmem.data.synthetic import free_start_camera, make_world

    S, K = pipe.size, pipe.K.float().cpu()
    gen, truth, captions = [], [], []
    for seed in seeds:
        world = make_world(seed)
        cam = free_start_camera(world, seed)
        pipe.start(prompt=world.caption, c2w=cam, seed=seed)
        gen.append(pipe.step(cam[None], K[None]).rgb[0].detach().cpu().float().clamp(0, 1))
        truth.append(world.render(cam[None], K[None], S, S)[0][0])
        captions.append(world.caption)
    return torch.stack(gen), torch.stack(truth), captions


def free_prompt_frames(pipe, prompts=FREE_PROMPTS, seed: int = 0) -> Tensor:
    """First frames ``(P, 3, S, S)`` from freely phrased prompts at the identity camera."""
    K = pipe.K.float().cpu()
    cam = torch.eye(4)
    out = []
    for i, prompt in enumerate(prompts):
        pipe.start(prompt=prompt, c2w=cam, seed=seed + i)
        out.append(pipe.step(cam[None], K[None]).rgb[0].detach().cpu().float().clamp(0, 1))
    return torch.stack(out)


def start_depths(pipe, seeds: list[int]) -> tuple[Tensor, Tensor]:
    """The depth the model gives a start image without depth: each held-out world of ``seeds``
    begins from its true frame at its start camera (``free_start_camera``) with no depth, as
    ``python sample.py sample.depth=none`` does. Returns the model's depth and the true depth,
    both ``(P, 1, S, S)`` metres (0: none)."""
    from worldmem.data.synthetic import free_start_camera, make_world

    S, K = pipe.size, pipe.K.float().cpu()
    pred, truth = [], []
    for seed in seeds:
        world = make_world(seed)
        cam = free_start_camera(world, seed)
        rgb, depth = world.render(cam[None], K[None], S, S)
        chunk = pipe.start(prompt=world.caption, image=rgb[0], c2w=cam, seed=seed)
        pred.append(chunk.depth[0].detach().cpu().float())
        truth.append(depth[0])
    return torch.stack(pred), torch.stack(truth)


def _median_depth(depth: Tensor) -> Tensor:
    """Median over the pixels with depth (> 0) -> scalar tensor (the lower median)."""
    return depth[depth > 0].median()


def fit_start_depth_scale(pipe, seeds: list[int]) -> tuple[float, Tensor]:
    """The ``start_depth_scale`` that makes the depth ``pipe`` gives a start image without
    depth right in the median over the worlds ``seeds`` (``start_depths``): the median over
    views of (median true depth / median given depth), times the scale the pipeline already
    applies. Returns that scale and the per-view ratios ``(P,)``."""
    return scale_from_depths(*start_depths(pipe, seeds), pipe.start_depth_scale)


def scale_from_depths(pred: Tensor, truth: Tensor, current: float) -> tuple[float, Tensor]:
    """``fit_start_depth_scale`` from the depths ``start_depths`` gave (``pred`` given at the
    scale ``current``, ``truth``) -> (scale, per-view ratios ``(P,)``). A view given no depth
    at any pixel (0 m: a model that gives an image without depth none) has nothing to scale:
    ValueError naming those views."""
    empty = [i for i, p in enumerate(pred) if not bool((p > 0).any())]
    if empty:
        raise ValueError(
            f"scale_from_depths: {len(empty)} of {len(pred)} start views were given no depth "
            f"(0 m at every pixel; views {empty[:8]}): nothing to scale"
        )
    ratios = torch.stack([_median_depth(t) / _median_depth(p) for p, t in zip(pred, truth)])
    return float(current * ratios.median()), ratios


def _others(truth: Tensor, i: int) -> Tensor:
    """Every view of ``truth`` ``(P, ...)`` but the i-th (leave one out)."""
    return torch.cat([truth[:i], truth[i + 1 :]])


def layout_prior(truth: Tensor) -> Tensor:
    """A depth for every view that needs no learning: at each pixel the median true depth of
    the other views ``(P, 1, S, S)`` (leave one out; pixels none of them has take their overall
    median) -> ``(P, 1, S, S)``. Needs P >= 2."""
    if truth.shape[0] < 2:
        raise ValueError(f"layout_prior: needs at least 2 views, got {truth.shape[0]}")
    out = []
    for i in range(truth.shape[0]):
        others = _others(truth, i)
        known = torch.where(others > 0, others, torch.full_like(others, math.nan))
        prior = known.nanmedian(0).values
        out.append(prior.nan_to_num(float(_median_depth(others))))
    return torch.stack(out)


def start_depth_rows(
    pred: Tensor, truth: Tensor, row: str = "model (image without depth)"
) -> list[dict]:
    """AbsRel, delta < 1.25 and the median scale (median predicted depth / median true depth,
    per view, then the median over views) of ``pred`` (the row named ``row``) and of the two
    baselines against ``truth`` (all ``(P, 1, S, S)`` metres)."""
    layout = layout_prior(truth)
    const = torch.stack(
        [truth[i].new_full(truth[i].shape, float(_median_depth(_others(truth, i))))
         for i in range(truth.shape[0])]
    )  # fmt: skip
    rows = []
    for name, d in (
        (row, pred),
        ("layout prior (other worlds' median per pixel)", layout),
        ("constant (other worlds' median depth)", const),
    ):
        scale = []
        for i in range(truth.shape[0]):
            m = truth[i] > 0
            scale.append(float(d[i][m].median() / truth[i][m].median()))
        rows.append(
            {
                "row": name,
                "abs_rel": float(depth_abs_rel(d, truth).nanmean()),
                "delta1": float(depth_delta(d, truth).nanmean()),
                "median_scale": float(torch.tensor(scale).median()),
                "n": truth.shape[0],
            }
        )
    return rows
