"""Detail for what the world model invents, sampled by a small conditional flow model.

The world model draws what its memory render shows nothing observed of at one sampling step:
its estimate of the mean, the right layout and colours on average and no texture.
``DetailFlow`` samples the texture that estimate leaves out: the truth's high-frequency band
(the frame minus its Gaussian blur of ``band_sigma_px``), given the model's frame and the
mask of the pixels it invented. It is a rectified flow (Lipman et al. 2023, Liu et al. 2023)
trained by regression, not against a critic, so it draws the band's distribution given the
frame rather than whatever a critic misses. Only the band is sampled, so the layout and
colours stay the model's; the band is about a tenth of the model's error energy where it
invents (``docs/results/detail_flow``), which bounds what a wrong draw can cost in PSNR.

Sampling: ``steps`` deterministic Euler steps of the flow (DDIM-like, the network predicts
the clean band) from noise at t = 1. Given noise fixed to the surfaces
(``DetailNet.surface_noise``: the same values at the same world points from any camera), a
surface seen again is drawn with about the same texture. Everywhere outside the mask the frame
passes through bit for bit; a new net (zero head) predicts no band and is the identity.

Design: the shared small U-Net over the frame, the mask, the noisy band (scaled to unit
spread by ``band_scale``) and the flow time as a constant channel. Trained by
``worldmem/training/detail_net.py`` (``train --kind flow``) on the world model's own
rollouts. Saved like the other helpers (``config.json`` + safetensors) in ``detail_flow/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from worldmem.memory.fill import gaussian_blur
from worldmem.models.detail_net import DetailNet, DetailNetConfig

__all__ = ["DetailFlowConfig", "DetailFlow", "high_band"]


@dataclass(frozen=True)
class DetailFlowConfig(DetailNetConfig):
    noise_channels: int = 3  # the flow's noise is the band's: one channel per colour
    band_sigma_px: float = 1.5  # the band: the frame minus its Gaussian blur of this sigma
    band_scale: float = 0.056  # the truth's band spread in the model's holes (training data)
    steps: int = 4  # Euler steps of the flow at sampling

    def __post_init__(self):
        super().__post_init__()
        if self.noise_channels != 3:
            raise ValueError(f"DetailFlowConfig: noise_channels must be 3 (one per colour), "
                             f"got {self.noise_channels}")  # fmt: skip
        for name in ("band_sigma_px", "band_scale"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"DetailFlowConfig: {name} must be > 0, got {v}")
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ValueError(f"DetailFlowConfig: steps must be an int >= 1, got {self.steps}")


def high_band(x: Tensor, sigma_px: float) -> Tensor:
    """``x`` ``(B, C, H, W)`` minus its separable Gaussian blur of ``sigma_px`` (reflected at
    the borders): what a blur of that size removes."""
    return x - gaussian_blur(x, sigma_px, padding="reflect")


class DetailFlow(DetailNet):
    """rgb ``(B, 3, S, S)`` in [0, 1], holes ``(B, 1, S, S)`` (1 where the frame is the model's
    invention), noise ``(B, 3, S, S)`` -> rgb with a sampled high band added in the holes."""

    kind = "detail flow"

    @staticmethod
    def in_channels(cfg: DetailFlowConfig) -> int:
        return 3 + 1 + 3 + 1  # frame, holes, noisy band, flow time

    def predict(self, rgb: Tensor, holes: Tensor, z: Tensor, t: Tensor) -> Tensor:
        """The clean band (in units of ``band_scale``) from the band noised to flow time ``t``
        ``(B,)``: ``z = (1 - t) band + t noise``."""
        B, C, H, W = rgb.shape
        S = self.cfg.image_size
        if C != 3 or (H, W) != (S, S) or tuple(holes.shape) != (B, 1, S, S) or \
                tuple(z.shape) != (B, 3, S, S):  # fmt: skip
            raise ValueError(
                f"DetailFlow: expected rgb and noise (B, 3, {S}, {S}) and holes (B, 1, {S}, {S}), "
                f"got {tuple(rgb.shape)}, {tuple(z.shape)}, {tuple(holes.shape)}"
            )
        tt = (t.to(rgb.dtype) * 2 - 1).view(B, 1, 1, 1).expand(B, 1, S, S)
        return self.unet(torch.cat([rgb * 2 - 1, holes.to(rgb.dtype)], 1), torch.cat([z, tt], 1))

    def sample_band(self, rgb: Tensor, holes: Tensor, noise: Tensor, steps: int | None = None):
        """The band ``(B, 3, S, S)`` (in units of ``band_scale``) sampled from ``noise`` at
        t = 1 by ``steps`` (default ``cfg.steps``) deterministic Euler steps."""
        steps = self.cfg.steps if steps is None else steps
        B = rgb.shape[0]
        ts = torch.linspace(1.0, 0.0, steps + 1, device=rgb.device, dtype=rgb.dtype)
        z = noise.to(rgb.dtype)
        for t, t_next in zip(ts[:-1], ts[1:]):
            clean = self.predict(rgb, holes, z, t.expand(B))
            eps = (z - (1 - t) * clean) / t
            z = (1 - t_next) * clean + t_next * eps
        return z

    def forward(
        self, rgb: Tensor, holes: Tensor, noise: Tensor | None = None,
        generator: torch.Generator | None = None, steps: int | None = None,
    ) -> Tensor:  # fmt: skip
        """``rgb`` with a sampled band added where ``holes`` > 0.5, clamped to [0, 1]."""
        if noise is None:
            noise = self.noise(rgb, generator)
        hole = (holes > 0.5).to(rgb.dtype)
        out = rgb.clone()
        rows = hole.flatten(1).any(1)  # frames with nothing to draw are not run
        if rows.any():
            band = self.sample_band(rgb[rows], hole[rows], noise[rows], steps)
            out[rows] = (rgb[rows] + hole[rows] * self.cfg.band_scale * band).clamp(0, 1)
        return out


DetailFlow.config_class = DetailFlowConfig
