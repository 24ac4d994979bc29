"""One place turns memories into the model's inputs, for training and generation alike.

``assemble_inputs`` takes the three memories as they stand before a chunk (a spatial memory,
an episodic memory, the working-memory frames), the target cameras and the memory mode, and
returns the ``Conditioning`` the model is given: the spatial memory rendered at each target
camera, the keyframes the episodic memory retrieves for the targets, the working frames as
context. The dataset calls it with memories filled from a ground-truth history (and adds the
true target frames: a ``WorldBatch``); the pipeline with the memories it has filled from its
start frame, observed frames and generated chunks, and hands it to the sampler.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldmem.config import MEMORY_MODES
from worldmem.data.batch import Conditioning, FrameSet
from worldmem.memory import EpisodicMemory, SpatialMemory

__all__ = ["MEMORY_MODE_GIVES", "memories_for_mode", "assemble_inputs", "padded_frames"]

# What the model is given in each memory mode. The memories are updated in every mode (so
# the map and the PLY export work); the mode only decides what the model sees.
MEMORY_MODE_GIVES = {
    "none": frozenset(),
    "working": frozenset({"working"}),
    "episodic": frozenset({"working", "episodic"}),
    "spatial": frozenset({"working", "spatial"}),
    "all": frozenset({"working", "episodic", "spatial"}),
}
assert tuple(MEMORY_MODE_GIVES) == MEMORY_MODES  # the config's choices are these modes


def memories_for_mode(mode: str) -> frozenset[str]:
    """The memories the model is given in ``mode`` (none, working, episodic, spatial, all)."""
    if mode not in MEMORY_MODE_GIVES:
        raise ValueError(f"memory mode '{mode}' is not one of {', '.join(MEMORY_MODE_GIVES)}")
    return MEMORY_MODE_GIVES[mode]


def padded_frames(
    frames: tuple[Tensor, Tensor, Tensor, Tensor] | None, n: int, size: int, K_pad: Tensor
) -> FrameSet:
    """A one-sample ``FrameSet`` of ``n`` slots from stacks (rgb ``(m, 3, S, S)``, depth
    ``(m, 1, S, S)``, c2w ``(m, 4, 4)``, K ``(m, 3, 3)``), oldest first: the last ``n`` frames
    fill the first slots in order, the rest are invalid padding (identity pose, ``K_pad``)."""
    dev = K_pad.device
    fs = FrameSet(
        rgb=torch.zeros(1, n, 3, size, size, device=dev),
        depth=torch.zeros(1, n, 1, size, size, device=dev),
        c2w=torch.eye(4, device=dev).expand(1, n, 4, 4).clone(),
        K=K_pad.expand(1, n, 3, 3).clone(),
        valid=torch.zeros(1, n, dtype=torch.bool, device=dev),
    )
    if frames is not None and n and len(frames[0]):
        rgb, depth, c2w, K = (f[-n:].to(dev) for f in frames)
        m = len(rgb)
        fs.rgb[0, :m], fs.depth[0, :m], fs.c2w[0, :m], fs.K[0, :m] = rgb, depth, c2w, K
        fs.valid[0, :m] = True
    return fs


def assemble_inputs(
    cams: Tensor,
    K: Tensor,
    size: int,
    *,
    mode: str,
    spatial: SpatialMemory,
    episodic: EpisodicMemory,
    working: tuple[Tensor, Tensor, Tensor, Tensor] | None,
    context_frames: int,
    keyframes: int,
    caption: str,
) -> Conditioning:
    """The model's inputs for one chunk of targets at ``cams`` ``(T, 4, 4)``, ``K``
    ``(T, 3, 3)`` (pixel intrinsics at ``size``).

    mode: what the model is given (``memories_for_mode``). spatial, episodic: the memories
    before the chunk; working: the recent frames (rgb, depth, c2w, K stacks, oldest first) or
    None. context_frames, keyframes: slots for the working frames and retrieved keyframes.
    Returns a one-sample ``Conditioning`` (every target camera valid); the memory render is
    zeros where spatial memory is not given.
    """
    given = memories_for_mode(mode)
    T, dev = cams.shape[0], cams.device
    if "spatial" in given:
        render = spatial.render(cams, K, size, size)
        share = spatial.cfg.far_guess_min_observed
        if share > 0:
            every = spatial.cfg.hide_guesses == "all"
            margin = None if every else spatial.cfg.carve_margin_rel
            render = render.without_far_guesses(margin, share)
        mem_rgb, mem_depth, mem_mask = render.rgb, render.depth, render.mask
        mem_observed = render.observed * (render.mask > 0.5)
    else:
        mem_rgb = torch.zeros(T, 3, size, size, device=dev)
        mem_depth = torch.zeros(T, 1, size, size, device=dev)
        mem_mask = torch.zeros(T, 1, size, size, device=dev)
        mem_observed = torch.zeros(T, 1, size, size, device=dev)
    kf_stack = None
    if "episodic" in given and keyframes:
        known = torch.where(mem_mask > 0, mem_depth, torch.zeros_like(mem_depth))[:, 0]
        kfs = episodic.retrieve(cams, K, size, size, k=keyframes, depth=known)
        if kfs:
            kf_stack = tuple(
                torch.stack([getattr(k, f) for k in kfs]) for f in ("rgb", "depth", "c2w", "K")
            )
    context = working if "working" in given else None
    K_pad = K[0]
    return Conditioning(
        c2w=cams[None],
        K=K[None],
        valid=torch.ones(1, T, dtype=torch.bool, device=dev),
        context=padded_frames(context, context_frames, size, K_pad),
        keyframes=padded_frames(kf_stack, keyframes, size, K_pad),
        memory_rgb=mem_rgb[None],
        memory_depth=mem_depth[None],
        memory_mask=mem_mask[None],
        caption=[caption],
        memory_observed=mem_observed[None],
    )
