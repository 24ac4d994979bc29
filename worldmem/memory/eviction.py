"""The order in which the spatial memory lets samples go when it holds more than
``max_points``: generated before observed, then the least recently seen, then the coarsest
quality, then the lowest index; the samples the current insert saw go last."""

from __future__ import annotations

import torch
from torch import Tensor

from worldmem.memory._tensor_ops import flat_nonzero, kth_smallest

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
    selection of the k-th smallest packed int64 order key."""
    qbits = quality.clamp(min=0).view(torch.int32)  # orders like quality
    order = last_seen.clamp(0, (1 << 29) - 1).bitwise_left_shift_(31)
    order |= ((1 << 31) - 1) - qbits.long()  # coarser first
    order |= observed.long().bitwise_left_shift_(60)
    if step is not None:
        order |= (last_seen >= step).long().bitwise_left_shift_(61)
    order.masked_fill_(dropped, torch.iinfo(torch.int64).max)
    thresh = kth_smallest(order, excess)
    evict = order < thresh
    need = excess - int(evict.sum())
    ties = flat_nonzero(order == thresh)[:need]  # ascending index
    evict[ties] = True
    return evict
