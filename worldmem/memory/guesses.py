"""What the memory invented, held to what it observed.

A generated frame is stored, and the next chunk is drawn on its render: an invented surface
is continued chunk after chunk, and so is any tint in it. Over a loop the guesses drift (on
the walk protocol's loops the start's wall colour turned into saturated yellow or brown, the
floor and ceiling bands faded) and when the camera comes back to what it observed, the
drifted guesses stand beside the observed surface with a seam of another colour. Two
corrections to the render a chunk is drawn on, at the pixels whose winning sample was
generated (observed pixels and holes are never touched):

- **Relax** (``guess_relax``): each render moves those pixels a fraction of the way towards
  what the observed frames show along elevation (``models/elevation.py``: ceiling above,
  floor below, walls between), less near observed pixels of the view (a Gaussian falloff of
  ``guess_relax_near_px``), where the guesses continue what was just seen. What the model
  draws on the render is stored again, so the correction is a leaky integrator: a guess
  revisited soon is nearly the same, and one continued for a whole loop cannot drift further
  than a few chunks' worth from the observed layout.
- **Seam** (``guess_seam_px``): where a generated pixel borders an observed one on the same
  surface (depths within ``carve_margin_rel``), the difference of their colours is spread over
  the generated pixels with a Gaussian of ``guess_seam_px`` and added, fading to nothing far
  from the seam (a loop closure for colour: the observed side is right, and the error is
  taken out of the guesses beside it).

Measured on the walk protocol's held-out worlds (``docs/results/guess_hold``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_blur", "hold_guesses", "seam_shift"]

_EPS = 1e-6
# the seam's difference is weighted against this much of "no change" (in the Gaussian's
# normalised mass), so it fades to 0 a few radii from the seam
_SEAM_PRIOR = 0.02


def gaussian_blur(x: Tensor, sigma_px: float) -> Tensor:
    """x ``(N, C, H, W)`` blurred with a separable Gaussian of ``sigma_px`` (zero padding, so
    the mass falls off at the border: blur a mask beside the image to normalise)."""
    r = max(1, int(3 * sigma_px))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma_px) ** 2)
    k = k / k.sum()
    C = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0)), k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    return F.conv2d(F.pad(x, (0, 0, r, r)), k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)


def _neighbour_mean(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """The mean of x ``(N, C, H, W)`` over the pixels of weight w ``(N, 1, H, W)`` in each 3x3
    window -> (mean ``(N, C, H, W)``, count ``(N, 1, H, W)``)."""
    n = F.avg_pool2d(w, 3, 1, 1, count_include_pad=False)
    return F.avg_pool2d(x * w, 3, 1, 1, count_include_pad=False) / n.clamp(min=_EPS), n


def seam_shift(
    rgb: Tensor, depth: Tensor, observed: Tensor, generated: Tensor, sigma_px: float, tol: float
) -> Tensor:
    """The colour shift of every generated pixel towards the observed surface it borders.

    rgb ``(N, 3, H, W)``, depth ``(N, 1, H, W)``; observed, generated ``(N, 1, H, W)`` 0/1
    (disjoint). A seam pixel is a generated pixel with an observed pixel among its 8
    neighbours whose mean depth is within ``tol`` (relative) of its own; there the shift is the
    neighbours' mean colour minus its own. The shift at every pixel is those differences
    averaged with a Gaussian of ``sigma_px`` and weighted against ``_SEAM_PRIOR`` of no change
    -> ``(N, 3, H, W)``, 0 where a pixel is not generated."""
    near_rgb, n = _neighbour_mean(rgb, observed)
    near_depth, _ = _neighbour_mean(depth, observed)
    same = (depth - near_depth).abs() <= tol * near_depth
    seam = generated * ((n > 0) & same).to(rgb.dtype)
    diff = (near_rgb - rgb) * seam
    shift = gaussian_blur(diff, sigma_px) / (gaussian_blur(seam, sigma_px) + _SEAM_PRIOR)
    return shift * generated


def hold_guesses(
    rgb: Tensor,
    depth: Tensor,
    mask: Tensor,
    observed: Tensor,
    prior: Tensor | None,
    *,
    relax: float,
    near_px: float,
    seam_px: float,
    tol: float,
) -> Tensor:
    """A render's colours with its generated pixels relaxed towards ``prior`` and shifted to
    meet the observed surfaces they border (the module docstring).

    rgb ``(N, 3, H, W)`` in [0, 1], depth ``(N, 1, H, W)``; mask, observed ``(N, 1, H, W)``
    (1 where a sample landed / where the winning sample was observed); prior ``(N, 3, H, W)``
    or None (no relaxing): what the observed frames show along elevation. relax in [0, 1];
    near_px: the falloff of the relaxing beside observed pixels (0: none); seam_px: the seam's
    reach (0: no seam shift); tol: relative depth gap within which two pixels are one surface.
    -> rgb ``(N, 3, H, W)`` in [0, 1]; observed pixels and holes are returned exactly."""
    seen = ((observed > 0.5) & (mask > 0.5)).to(rgb.dtype)
    generated = ((mask > 0.5) & (observed <= 0.5)).to(rgb.dtype)
    out = rgb
    if prior is not None and relax > 0:
        rate = relax * generated
        if near_px > 0:
            rate = rate * (1 - (2 * gaussian_blur(seen, near_px)).clamp(max=1))
        out = out + rate * (prior.to(rgb.dtype) - out)
    if seam_px > 0 and bool(seen.any()) and bool(generated.any()):
        out = out + seam_shift(out, depth, seen, generated, seam_px, tol)
    return torch.where(generated > 0, out.clamp(0, 1), rgb)
