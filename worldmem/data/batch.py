"""What the world model is given (``Conditioning``) and, in training, what it must produce
(``WorldBatch``: the conditioning and the true target frames).

Shapes (B batch, T target frames, Tc working-memory frames, Tk keyframes, H, W pixels);
images are float in [0, 1], depth is z-depth in metres (0 where unknown).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

__all__ = ["Conditioning", "FrameSet", "WorldBatch", "collate_world_batches"]


@dataclass
class FrameSet:
    """A group of posed frames.

    rgb ``(B, N, 3, H, W)``, depth ``(B, N, 1, H, W)``, c2w ``(B, N, 4, 4)``,
    K ``(B, N, 3, 3)``, valid ``(B, N)`` bool (False for padding or dropped frames).
    """

    rgb: Tensor
    depth: Tensor
    c2w: Tensor
    K: Tensor
    valid: Tensor

    def __post_init__(self):
        B, N = self.rgb.shape[:2]
        want = {
            "rgb": (B, N, 3, *self.rgb.shape[-2:]),
            "depth": (B, N, 1, *self.rgb.shape[-2:]),
            "c2w": (B, N, 4, 4),
            "K": (B, N, 3, 3),
            "valid": (B, N),
        }
        for name, shape in want.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"FrameSet.{name}: expected shape {shape}, got {got}")

    @property
    def num(self) -> int:
        return self.rgb.shape[1]

    def to(self, device) -> FrameSet:
        return _moved(self, device)

    @staticmethod
    def empty(B: int, H: int, W: int, device=None) -> FrameSet:
        """A set with zero frames (for a memory that is switched off)."""
        return FrameSet(
            rgb=torch.zeros(B, 0, 3, H, W, device=device),
            depth=torch.zeros(B, 0, 1, H, W, device=device),
            c2w=torch.eye(4, device=device).expand(B, 0, 4, 4).clone(),
            K=torch.eye(3, device=device).expand(B, 0, 3, 3).clone(),
            valid=torch.zeros(B, 0, dtype=torch.bool, device=device),
        )


@dataclass
class Conditioning:
    """What a chunk is generated from: the cameras of its frames and what the memories hold.

    c2w ``(B, T, 4, 4)``, K ``(B, T, 3, 3)``, valid ``(B, T)`` bool: the target cameras.
    context: working memory, the most recent frames before the targets (Tc).
    keyframes: retrieved episodic keyframes (Tk).
    memory_rgb ``(B, T, 3, H, W)``, memory_depth ``(B, T, 1, H, W)``, memory_mask
    ``(B, T, 1, H, W)``: the spatial memory rendered at each target camera (mask 1 where a
    point landed; rgb and depth are 0 elsewhere), at the size of the frames to generate.
    caption: B strings.
    memory_observed ``(B, T, 1, H, W)``: 1 where the render's point was observed (a true
    frame), 0 where it was generated or no point landed; None: every point observed.
    hole_rgb ``(B, T, 3, H, W)``, hole_depth ``(B, T, 1, H, W)``: what the render's holes tend
    to far from its valid pixels (the room the observed frames imply, ``memory/layout.py``);
    None: the model's own default (``model.hole_prior``).
    """

    c2w: Tensor
    K: Tensor
    valid: Tensor
    context: FrameSet
    keyframes: FrameSet
    memory_rgb: Tensor
    memory_depth: Tensor
    memory_mask: Tensor
    caption: list[str]
    memory_observed: Tensor | None = None
    hole_rgb: Tensor | None = None
    hole_depth: Tensor | None = None

    def __post_init__(self):
        B, T = self.c2w.shape[:2]
        H, W = self.memory_rgb.shape[-2:]
        want = {
            "c2w": (B, T, 4, 4),
            "K": (B, T, 3, 3),
            "valid": (B, T),
            "memory_rgb": (B, T, 3, H, W),
            "memory_depth": (B, T, 1, H, W),
            "memory_mask": (B, T, 1, H, W),
        }
        if self.memory_observed is not None:
            want["memory_observed"] = (B, T, 1, H, W)
        if (self.hole_rgb is None) != (self.hole_depth is None):
            raise ValueError("Conditioning: hole_rgb and hole_depth come together")
        if self.hole_rgb is not None:
            want["hole_rgb"], want["hole_depth"] = (B, T, 3, H, W), (B, T, 1, H, W)
        for name, shape in want.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"Conditioning.{name}: expected {shape}, got {got}")
        for name in ("context", "keyframes"):
            rgb = getattr(self, name).rgb
            if rgb.shape[0] != B or tuple(rgb.shape[-2:]) != (H, W):
                raise ValueError(
                    f"Conditioning.{name}: expected {B} samples of {H}x{W} frames, got "
                    f"{rgb.shape[0]} of {rgb.shape[-2]}x{rgb.shape[-1]}"
                )
        if len(self.caption) != B:
            raise ValueError(f"Conditioning.caption: expected {B} strings, got {len(self.caption)}")

    @property
    def batch_size(self) -> int:
        return self.c2w.shape[0]

    @property
    def num_targets(self) -> int:
        return self.c2w.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the frames to generate."""
        H, W = self.memory_rgb.shape[-2:]
        return H, W

    def to(self, device) -> Conditioning:
        return _moved(self, device)


@dataclass
class WorldBatch:
    """One training step's inputs and truth: a ``Conditioning`` with the true target frames.

    target: the chunk to generate (its rgb/depth are the ground truth).
    context: working memory, the most recent frames before the target.
    keyframes: retrieved episodic keyframes.
    memory_rgb ``(B, T, 3, H, W)``, memory_depth ``(B, T, 1, H, W)``, memory_mask
    ``(B, T, 1, H, W)``: the spatial memory rendered at each target camera (mask 1 where a
    point landed; rgb and depth are 0 elsewhere).
    caption: B strings. is_revisit ``(B,)`` bool: the target revisits earlier views.
    memory_observed ``(B, T, 1, H, W)`` or None: as in ``Conditioning``. hole_rgb ``(B, T, 3,
    H, W)``, hole_depth ``(B, T, 1, H, W)`` or None: as in ``Conditioning`` (zeros for a sample
    whose render is empty).
    """

    target: FrameSet
    context: FrameSet
    keyframes: FrameSet
    memory_rgb: Tensor
    memory_depth: Tensor
    memory_mask: Tensor
    caption: list[str]
    is_revisit: Tensor
    memory_observed: Tensor | None = None
    hole_rgb: Tensor | None = None
    hole_depth: Tensor | None = None

    def __post_init__(self):
        B, T = self.target.rgb.shape[:2]
        H, W = self.target.rgb.shape[-2:]
        names = ("memory_rgb", 3), ("memory_depth", 1), ("memory_mask", 1)
        if self.memory_observed is not None:
            names = (*names, ("memory_observed", 1))
        if (self.hole_rgb is None) != (self.hole_depth is None):
            raise ValueError("WorldBatch: hole_rgb and hole_depth come together")
        if self.hole_rgb is not None:
            names = (*names, ("hole_rgb", 3), ("hole_depth", 1))
        for name, c in names:
            got = tuple(getattr(self, name).shape)
            if got != (B, T, c, H, W):
                raise ValueError(f"WorldBatch.{name}: expected {(B, T, c, H, W)}, got {got}")
        if len(self.caption) != B:
            raise ValueError(f"WorldBatch.caption: expected {B} strings, got {len(self.caption)}")

    @classmethod
    def from_conditioning(
        cls, conditioning: Conditioning, target: FrameSet, is_revisit: Tensor
    ) -> WorldBatch:
        """``conditioning`` with the true frames ``target`` at its cameras and ``is_revisit``
        ``(B,)``."""
        c = conditioning
        return cls(
            target=target,
            context=c.context,
            keyframes=c.keyframes,
            memory_rgb=c.memory_rgb,
            memory_depth=c.memory_depth,
            memory_mask=c.memory_mask,
            caption=list(c.caption),
            is_revisit=is_revisit,
            memory_observed=c.memory_observed,
            hole_rgb=c.hole_rgb,
            hole_depth=c.hole_depth,
        )

    @property
    def conditioning(self) -> Conditioning:
        """What the model is given to generate the targets (everything but their frames);
        it shares this batch's tensors."""
        return Conditioning(
            c2w=self.target.c2w,
            K=self.target.K,
            valid=self.target.valid,
            context=self.context,
            keyframes=self.keyframes,
            memory_rgb=self.memory_rgb,
            memory_depth=self.memory_depth,
            memory_mask=self.memory_mask,
            caption=list(self.caption),
            memory_observed=self.memory_observed,
            hole_rgb=self.hole_rgb,
            hole_depth=self.hole_depth,
        )

    @property
    def batch_size(self) -> int:
        return self.target.rgb.shape[0]

    def observed_mask(self) -> Tensor:
        """``memory_observed``, or the memory mask where it is None (every point observed)."""
        return self.memory_mask if self.memory_observed is None else self.memory_observed

    def to(self, device) -> WorldBatch:
        return _moved(self, device)


def _moved(obj, device):
    """A copy of the dataclass ``obj`` with every tensor (and ``FrameSet``) field on ``device``;
    lists (captions) are copied, None stays None."""
    return type(obj)(
        **{
            f.name: list(v) if isinstance(v, list) else None if v is None else v.to(device)
            for f in fields(obj)
            for v in [getattr(obj, f.name)]
        }
    )


def _cat_sets(sets: list[FrameSet]) -> FrameSet:
    return FrameSet(
        **{f.name: torch.cat([getattr(s, f.name) for s in sets]) for f in fields(FrameSet)}
    )


def collate_world_batches(items: list[WorldBatch]) -> WorldBatch:
    """Concatenate single-sample (or smaller) batches along B."""
    return WorldBatch(
        target=_cat_sets([i.target for i in items]),
        context=_cat_sets([i.context for i in items]),
        keyframes=_cat_sets([i.keyframes for i in items]),
        memory_rgb=torch.cat([i.memory_rgb for i in items]),
        memory_depth=torch.cat([i.memory_depth for i in items]),
        memory_mask=torch.cat([i.memory_mask for i in items]),
        caption=[c for i in items for c in i.caption],
        is_revisit=torch.cat([i.is_revisit for i in items]),
        memory_observed=None
        if all(i.memory_observed is None for i in items)
        else torch.cat([i.observed_mask() for i in items]),
        hole_rgb=_cat_or_zeros([i.hole_rgb for i in items], [i.memory_rgb for i in items]),
        hole_depth=_cat_or_zeros([i.hole_depth for i in items], [i.memory_depth for i in items]),
    )


def _cat_or_zeros(parts: list[Tensor | None], like: list[Tensor]) -> Tensor | None:
    """``parts`` concatenated, zeros shaped as ``like`` for the None ones (a sample without a
    room has an empty render, which takes no prior); None when all are None."""
    if all(p is None for p in parts):
        return None
    return torch.cat([torch.zeros_like(x) if p is None else p for p, x in zip(parts, like)])
