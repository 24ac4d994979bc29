"""The order in which the spatial memory lets samples go when it holds more than
``max_points``: generated before observed, then the least recently seen, then the coarsest
quality, then the lowest index; the samples the current insert saw go last."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["eviction_mask"]


def eviction_mask(
    last_seen: Tensor,
    observed: Tensor,
    quality: Tensor,
    dropped: Tensor,
    excess: int,
    step: int | None,
) -> Tensor:
    """The ``excess`` samples to evict among those not already ``dropped``, as a bool mask
    ``(N,)``, for samples with ``last_seen (N,)`` int64, ``observed (N,)`` bool and ``quality
    (N,)`` metres: generated first, then oldest ``last_seen``, then the coarsest quality, then
    the lowest index. Samples seen by the current insert (``last_seen >= step``) go only
    after all others, so what the camera sees now is never lost to older samples. One O(N)
    ``kthvalue`` on a packed int64 order key."""
    n = last_seen.shape[0]
    now = (
        torch.zeros(n, dtype=torch.int64, device=last_seen.device)
        if step is None
        else (last_seen >= step).long()
    )
    qbits = quality.clamp(min=0).view(torch.int32).long()  # orders like quality
    order = (
        (now << 61)
        | (observed.long() << 60)
        | (last_seen.clamp(0, (1 << 29) - 1) << 31)
        | (((1 << 31) - 1) - qbits)  # coarser first
    )
    order = torch.where(dropped, torch.iinfo(torch.int64).max, order)
    thresh = torch.kthvalue(order, excess).values
    evict = order < thresh
    need = excess - int(evict.sum())
    ties = (order == thresh).nonzero().squeeze(1)[:need]  # ascending index
    evict[ties] = True
    return evict
