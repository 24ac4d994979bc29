"""The interface every world model offers: what the sampler and the training loss call.

``WorldDiT`` (``models/dit.py``) and the backbone adapters (``models/backbones/``) implement
it, and ``worldmem.diffusion`` reaches a model through nothing else, so a new model needs
only this (``WorldModel``)::

    model.config.image_size    frame side in pixels the model takes (H = W)
    model.device               where the sampler puts the inputs
    model.encode_text(captions) -> TextStates
    model.encode_context(context, keyframes, reference_c2w, captions | text) -> cache
    model(target, context, keyframes, memory, captions | text, cache) -> WorldModelOutput

A model that draws on the memory render with its holes filled (``WorldDiT``) also takes
``hole_default`` ``(B, T, C, h, w)``, what those holes tend to far from the render's valid
pixels (the room the observed frames imply, ``memory/layout.py``); the sampler passes it only
when the conditioning carries one.

The cache is opaque to its callers: whatever the model needs to run the target frames of
one chunk against its memory frames and text at every denoising step (``WorldDiT``: every
block's keys and values; a backbone: the frames and text states themselves).

Loading, saving and training the model (``WorldPipeline``, ``WorldModule``) also need a
diffusers ``ModelMixin``: ``to``, ``eval``, ``parameters``, ``save_pretrained``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from diffusers.utils import BaseOutput
from torch import Tensor

from worldmem.models.text import TextStates

__all__ = ["ROLES", "ModelFrames", "WorldModel", "WorldModelOutput"]

# What a frame is in the model's sequence; every model embeds it.
ROLES = {"context": 0, "keyframe": 1, "target": 2}


@dataclass
class ModelFrames:
    """Frames in model space (after the codec).

    x ``(B, N, C, h, w)``, sigma ``(B, N)`` noise level in [0, 1] (0 = clean), c2w
    ``(B, N, 4, 4)``, K ``(B, N, 3, 3)`` pixel intrinsics at the model's ``image_size``,
    valid ``(B, N)`` bool.
    """

    x: Tensor
    sigma: Tensor
    c2w: Tensor
    K: Tensor
    valid: Tensor

    def __post_init__(self):
        if self.x.dim() != 5:
            raise ValueError(f"ModelFrames.x: want (B, N, C, h, w), got {tuple(self.x.shape)}")
        B, N = self.x.shape[:2]
        for name, shape in (
            ("sigma", (B, N)),
            ("c2w", (B, N, 4, 4)),
            ("K", (B, N, 3, 3)),
            ("valid", (B, N)),
        ):
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"ModelFrames.{name}: want {shape}, got {got}")
        if self.valid.dtype != torch.bool:
            raise ValueError(f"ModelFrames.valid: want bool, got {self.valid.dtype}")

    @property
    def num(self) -> int:
        return self.x.shape[1]

    def cat(self, other: ModelFrames) -> ModelFrames:
        """Concatenate two sets along the batch axis."""
        return ModelFrames(
            *(torch.cat([getattr(self, k), getattr(other, k)]) for k in self.__dataclass_fields__)
        )


@dataclass
class WorldModelOutput(BaseOutput):
    """sample ``(B, T, C, h, w)``: the predicted flow velocity of every target frame; x0 (same
    shape): the predicted clean frame, from models that predict one (the loss then regresses
    it; ``WorldDiT``), else None (the loss regresses the velocity; the backbone adapters);
    gate ``(B, T, 1, h, w)``: how much of the memory render was passed through (0 where it
    had no point), from models that gate it, else None."""

    sample: Tensor
    x0: Tensor | None = None
    gate: Tensor | None = None


@runtime_checkable
class WorldModel(Protocol):
    """What ``WorldSampler`` and ``FlowMatching.training_losses`` need from a model (see the
    module docstring). ``isinstance(m, WorldModel)`` checks that the members exist, not their
    signatures."""

    config: Any  # reads config.image_size: frame side in pixels (H = W)
    device: torch.device

    def encode_text(self, captions: list[str]) -> TextStates:
        """captions (B strings; "" = no text) -> the text states the model attends to."""
        ...

    def encode_context(
        self,
        context: ModelFrames | None,
        keyframes: ModelFrames | None,
        reference_c2w: Tensor,
        captions: list[str] | None = None,
        text: TextStates | None = None,
    ) -> Any:
        """Prepare the clean memory frames and the text once per chunk.

        context ``(B, Nc, ...)``, keyframes ``(B, Nk, ...)`` (either may be None or empty),
        reference_c2w ``(B, 4, 4)`` (the first target camera), captions (B strings) or
        ``text`` from ``encode_text`` -> an opaque cache for ``__call__``.
        """
        ...

    def __call__(
        self,
        target: ModelFrames,
        context: ModelFrames | None = None,
        keyframes: ModelFrames | None = None,
        memory: Tensor | None = None,
        captions: list[str] | None = None,
        text: TextStates | None = None,
        cache: Any = None,
    ) -> WorldModelOutput:
        """Predict the flow velocity of every target frame.

        target: noisy ``ModelFrames`` x ``(B, T, C, h, w)``, sigma ``(B, T)``. context,
        keyframes: clean memory frames, or ``cache`` from ``encode_context`` (then context,
        keyframes, captions and text are None). memory ``(B, T, C + 1 [+ 1], h, w)``: the
        encoded spatial-memory render at each target camera (frame channels, validity, then
        with the codec's ``provenance`` what was observed), or None (same as zeros). captions
        (B strings) or ``text`` from ``encode_text``.
        """
        ...
