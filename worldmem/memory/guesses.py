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

With ``guess_relax_outside_deg`` the rate also depends on where a guess looks: a generated
pixel whose ray lies inside an observed frame's field of view (a camera that strafed or
walked on, whose guesses continue surfaces seen from beside them) keeps its guess; the rate
rises to its full value over that many degrees outside every observed frame's field of view
(``outside_observed``), where a guess has nothing observed behind it.

Measured on the walk protocol (``docs/results/guess_relax``, ``docs/results/guess_outside``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from worldmem.geometry.rays import ray_directions
from worldmem.memory.fill import gaussian_blur

__all__ = ["outside_observed", "relax_guesses"]


def outside_observed(c2w: Tensor, K: Tensor, size: int, frames: list) -> Tensor:
    """How far each pixel's ray looks outside the observed frames' fields of view, in degrees.

    c2w ``(T, 4, 4)``, K ``(T, 3, 3)`` of views ``size`` px square; frames: (c2w ``(4, 4)``,
    K ``(3, 3)``, rgb ``(3, H, W)``, ...) as ``SpatialMemory.observed_frames`` gives them ->
    ``(T, 1, size, size)``: 0 for a ray inside some frame's image rectangle (by direction
    alone: where the frame's camera would see it if it turned no further), else the smallest
    over frames of the angle, horizontal or vertical whichever is larger, by which the ray
    misses that frame's rectangle; 180 for a ray behind a frame's camera. Without frames, 180.
    """
    T = c2w.shape[0]
    if not frames:
        return torch.full((T, 1, size, size), 180.0, device=c2w.device)
    _, d = ray_directions(c2w.float(), K.float(), size, size)  # (T, S, S, 3) world directions
    R = torch.stack([f[0][:3, :3] for f in frames]).float().to(d.device)  # (F, 3, 3)
    fK = torch.stack([f[1] for f in frames]).float().to(d.device)
    hw = torch.tensor([f[2].shape[-2:] for f in frames], dtype=torch.float32, device=d.device)
    c = torch.einsum("tijk,fkl->ftijl", d, R)  # R^T d: each ray in each frame's camera
    z = c[..., 2]
    ahead = z > 1e-6

    def view(v):  # (F,) -> broadcast over (F, T, S, S)
        return v[:, None, None, None]

    miss = []
    for axis, f_, cen, extent in (
        (0, fK[:, 0, 0], fK[:, 0, 2], hw[:, 1]),
        (1, fK[:, 1, 1], fK[:, 1, 2], hw[:, 0]),
    ):
        a = torch.atan(c[..., axis] / z.clamp(min=1e-6))
        lo, hi = torch.atan(view(-cen / f_)), torch.atan(view((extent - cen) / f_))
        miss.append((lo - a).clamp(min=0) + (a - hi).clamp(min=0))
    deg = torch.maximum(*miss) * (180.0 / math.pi)
    deg = torch.where(ahead, deg, torch.full_like(deg, 180.0))  # (F, T, S, S)
    return deg.amin(0)[:, None]


def relax_guesses(
    rgb: Tensor,
    mask: Tensor,
    observed: Tensor,
    prior: Tensor,
    relax: float,
    near_px: float,
    outside: Tensor | None = None,
    outside_deg: float = 0.0,
) -> Tensor:
    """A render's colours with its generated pixels moved towards ``prior``.

    rgb ``(N, 3, H, W)`` in [0, 1]; mask, observed ``(N, 1, H, W)`` (1 where a sample landed
    / where the winning sample was observed); prior ``(N, 3, H, W)`` in [0, 1]: what the
    observed frames show along elevation. A generated pixel moves ``relax`` (in [0, 1]) of the
    way, times ``1 - min(1, 2 * blur(observed))`` with a Gaussian of ``near_px`` (0: no
    falloff): beside a wide observed area a tenth of the rate, half of it about two thirds of
    ``near_px`` away, all of it beyond about three times ``near_px``. With ``outside``
    ``(N, 1, H, W)`` (``outside_observed``) and ``outside_deg`` > 0, times
    ``min(1, outside / outside_deg)``. -> rgb ``(N, 3, H, W)``; observed pixels and holes
    come back exactly."""
    seen = ((observed > 0.5) & (mask > 0.5)).to(rgb.dtype)
    rate = relax * ((mask > 0.5) & (observed <= 0.5)).to(rgb.dtype)
    if near_px > 0:
        rate = rate * (1 - (2 * gaussian_blur(seen, near_px)).clamp(max=1))
    if outside is not None and outside_deg > 0:
        rate = rate * (outside.to(rgb.dtype) / outside_deg).clamp(max=1)
    return torch.where(rate > 0, rgb + rate * (prior.to(rgb.dtype) - rgb), rgb)
