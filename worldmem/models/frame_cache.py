"""Stem features of clean memory frames, kept from one chunk to the next.

A frame generated in one chunk is a context frame of the next ones and may come back as a
keyframe later; while the weights do not change, the convolutional stem maps it to the same
features every time. ``StemCache`` keeps the features of the last ``capacity`` distinct frames
(keyed by their exact bytes) and runs the stem only on frames it has not seen. It forgets
everything when any stem parameter is modified in place (an optimizer or EMA step, a loaded
state dict), so a model that goes on training never reads stale features.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch
from torch import Tensor, nn

__all__ = ["StemCache"]


class StemCache:
    """Least-recently-used stem features of up to ``capacity`` frames (CPU tensors only)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"StemCache: capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._features: OrderedDict[bytes, Tensor] = OrderedDict()
        self._weights: tuple | None = None

    def __len__(self) -> int:
        return len(self._features)

    def __call__(self, stem: nn.Module, pix: Tensor) -> Tensor:
        """``stem(pix)[0]`` for stem inputs ``pix`` ``(F, Cin, h, w)``, running the stem only on
        the frames not kept -> features ``(F, D, h', w')``."""
        weights = tuple((id(p), p._version) for p in stem.parameters())
        if weights != self._weights:
            self._features.clear()
            self._weights = weights
        keys = [
            hashlib.blake2b(f.numpy().tobytes(), digest_size=16).digest()
            for f in pix.detach().contiguous()
        ]
        new = [i for i, k in enumerate(keys) if k not in self._features]
        if new:
            feat, _ = stem(pix[new])
            for i, f in zip(new, feat):
                self._features[keys[i]] = f
        out = []
        for k in keys:
            self._features.move_to_end(k)
            out.append(self._features[k])
        while len(self._features) > self.capacity:
            self._features.popitem(last=False)
        return torch.stack(out)
