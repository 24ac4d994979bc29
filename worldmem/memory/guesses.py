"""What the memory invented, relaxed towards what it observed.

A generated frame is stored, and the next chunk is drawn on its render: an invented surface
is continued chunk after chunk, and so is any tint in it. Over a loop the guesses drift (on
the walk protocol's loops the start's navy wall turned brown, a yellow wall saturated while
the floor and ceiling bands faded), and when the camera comes back to what it observed the
drifted guesses stand beside it.

``relax_guesses`` moves the render's generated pixels (observed pixels and holes are never
touched) a fraction ``guess_relax`` of the way towards what the observed frames show along
elevation (``models/elevation.py``: ceiling above, floor below, walls between), less near
observed pixels of the view (a Gaussian falloff of ``guess_relax_near_px``), where the
guesses continue what was just seen. What the model draws on the render is stored again, so
this is a leaky integrator: a guess revisited soon is nearly the same, and one continued for
a whole loop stays within a few chunks' drift of the observed layout.

Measured on the walk protocol (``docs/results/guess_relax``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldmem.memory.fill import gaussian_blur

__all__ = ["relax_guesses"]


def relax_guesses(
    rgb: Tensor, mask: Tensor, observed: Tensor, prior: Tensor, relax: float, near_px: float
) -> Tensor:
    """A render's colours with its generated pixels moved towards ``prior``.

    rgb ``(N, 3, H, W)`` in [0, 1]; mask, observed ``(N, 1, H, W)`` (1 where a sample landed
    / where the winning sample was observed); prior ``(N, 3, H, W)`` in [0, 1]: what the
    observed frames show along elevation. A generated pixel moves ``relax`` (in [0, 1]) of the
    way, times ``1 - min(1, 2 * blur(observed))`` with a Gaussian of ``near_px`` (0: no
    falloff): beside a wide observed area a tenth of the rate, half of it about two thirds of
    ``near_px`` away, all of it beyond about three times ``near_px``. -> rgb ``(N, 3, H, W)``;
    observed pixels and holes come back exactly."""
    seen = ((observed > 0.5) & (mask > 0.5)).to(rgb.dtype)
    rate = relax * ((mask > 0.5) & (observed <= 0.5)).to(rgb.dtype)
    if near_px > 0:
        rate = rate * (1 - (2 * gaussian_blur(seen, near_px)).clamp(max=1))
    return torch.where(rate > 0, rgb + rate * (prior.to(rgb.dtype) - rgb), rgb)
