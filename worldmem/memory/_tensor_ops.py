"""Small tensor helpers shared by the spatial memory's modules."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["flat_nonzero", "kth_smallest"]


def flat_nonzero(mask: Tensor) -> Tensor:
    """Positions of the True entries of a bool ``mask`` read as one flat array: ``(M,)`` int64,
    ascending (what ``mask.flatten().nonzero().squeeze(1)`` gives). On CPU numpy's
    ``flatnonzero`` does it several times faster than ``torch.nonzero`` (measured 5-7x on
    10^4-10^6 entries), and the splat calls it a dozen times per render."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()).astype(np.int64, copy=False))
    return mask.flatten().nonzero().squeeze(1)


def kth_smallest(x: Tensor, k: int) -> Tensor:
    """The k-th smallest value (1-based) of a 1-D tensor, as a 0-d tensor. On CPU numpy's
    ``partition`` finds it about 5x faster than ``torch.topk`` or ``torch.kthvalue`` (10^5 to
    3 * 10^5 int64 entries)."""
    if x.device.type == "cpu":
        return torch.tensor(np.partition(x.numpy(), k - 1)[k - 1])
    return torch.kthvalue(x, k).values
