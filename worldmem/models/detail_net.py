"""Detail for what the world model invents: a small conditional generator, trained adversarially.

The world model draws the regions its memory render shows nothing observed of at one sampling
step, its estimate of the mean given everything it saw: the right layout and colours on
average, but no texture (a smooth field where the truth has mottled walls and chequered
floors). More sampling steps of a model this size draw varied but no sharper detail.
``DetailNet`` adds the detail afterwards, as the decoder of a latent-diffusion autoencoder
does with its adversarial loss: given the model's frame, the mask of those pixels and a noise
field, it draws a correction there only; everywhere else the frame passes through bit for
bit. The pipeline draws it on the frames it shows and keeps the frames without it in the
memories (stored, each view's drawing was continued and amplified by the next).

Design: the shared small U-Net (``worldmem/models/small_unet.py``, as ``DepthNet``) over the
frame, the hole mask, two pixel-coordinate channels and ``noise_channels`` of unit Gaussian
noise; the correction starts at zero (a new net is the identity). Trained by
``worldmem/training/detail_net.py`` on the world model's own rollouts (a low-pass L1 to the
true frame and a hinge loss against ``PatchCritic``, both over the holes of the memory
render).

Saved like the world model (``config.json`` + ``diffusion_pytorch_model.safetensors``) in a
pipeline folder's ``detail_net/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch import Tensor

from worldmem.models.small_unet import SmallUNet, check_levels

__all__ = ["DetailNetConfig", "DetailNet", "PatchCritic"]

NOISE_TABLE = 1 << 16  # lattice draws of surface_noise, indexed by a hash of the corner


@dataclass(frozen=True)
class DetailNetConfig:
    image_size: int = 64  # S: the pipeline's frame size the net was trained at
    widths: tuple[int, ...] = (16, 32, 64, 128)  # channels at S, S/2, S/4, S/8
    noise_channels: int = 4  # unit Gaussian noise fed beside the frame
    noise_cell_m: float = 0.05  # the lattice of ``surface_noise``: about a pixel at 2 m

    def __post_init__(self):
        check_levels("DetailNetConfig", self.image_size, self.widths)
        if not (self.noise_cell_m > 0 and math.isfinite(self.noise_cell_m)):
            raise ValueError(f"DetailNetConfig: noise_cell_m must be > 0, got {self.noise_cell_m}")
        if not (isinstance(self.noise_channels, int) and self.noise_channels >= 0):
            raise ValueError(
                f"DetailNetConfig: noise_channels must be an int >= 0, got {self.noise_channels}"
            )


class DetailNet(SmallUNet):
    """rgb ``(B, 3, S, S)`` in [0, 1], holes ``(B, 1, S, S)`` (1 where the frame is the model's
    invention) -> rgb with detail drawn in the holes, unchanged elsewhere."""

    kind = "detail net"

    def __init__(self, cfg: DetailNetConfig | None = None):
        self.cfg = cfg = cfg or self.config_class()
        super().__init__(self.in_channels(cfg), cfg.widths, 3)
        nn.init.zeros_(self.head.weight)  # a new net draws nothing: the identity
        self._table, self._table_seed = None, None  # surface_noise's draws, for that seed

    @staticmethod
    def in_channels(cfg: DetailNetConfig) -> int:
        """The U-Net's input channels (without the two coordinates): frame, holes, noise."""
        return 3 + 1 + cfg.noise_channels

    def noise(self, rgb: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Unit Gaussian noise ``(B, noise_channels, S, S)`` for ``rgb`` from ``generator``."""
        B, _, H, W = rgb.shape
        z = torch.randn(
            (B, self.cfg.noise_channels, H, W),
            generator=generator,
            device=generator.device if generator is not None else rgb.device,
        )
        return z.to(device=rgb.device, dtype=rgb.dtype)

    def surface_noise(self, points: Tensor, seed: int) -> Tensor:
        """Unit Gaussian noise ``(N, noise_channels, S, S)`` fixed to space: at each pixel's
        world point (``points`` ``(N, S, S, 3)`` metres) the value noise of a lattice of
        ``noise_cell_m`` cells whose corners hold draws seeded by ``seed`` (hashed into a
        table), interpolated trilinearly and rescaled to unit variance. A surface seen again,
        from anywhere, is given the same noise."""
        C = self.cfg.noise_channels
        if self._table_seed != seed:  # the same world chunk after chunk: drawn once
            g = torch.Generator().manual_seed(int(seed))
            self._table, self._table_seed = torch.randn((C, NOISE_TABLE), generator=g), seed
        table = self._table.to(points.device)
        p = points.double() / self.cfg.noise_cell_m
        base = p.floor()
        frac = (p - base).float()
        base = base.long()
        out = torch.zeros((C, *points.shape[:-1]), device=points.device)
        weight_sq = torch.zeros(points.shape[:-1], device=points.device)
        for corner in range(8):
            d = torch.tensor([(corner >> k) & 1 for k in range(3)], device=points.device)
            w = torch.where(d.bool(), frac, 1 - frac).prod(-1)  # (N, S, S)
            c = base + d
            key = (c[..., 0] * 73856093) ^ (c[..., 1] * 19349663) ^ (c[..., 2] * 83492791)
            out += w * table[:, key & (NOISE_TABLE - 1)]
            weight_sq += w * w
        return (out / weight_sq.sqrt()).permute(1, 0, 2, 3).contiguous()

    def correction(self, rgb: Tensor, holes: Tensor, noise: Tensor) -> Tensor:
        """The drawn correction ``(B, 3, S, S)`` before it is masked to the holes."""
        B, C, H, W = rgb.shape
        S, Z = self.cfg.image_size, self.cfg.noise_channels
        if C != 3 or (H, W) != (S, S):
            raise ValueError(f"DetailNet: expected rgb (B, 3, {S}, {S}), got {tuple(rgb.shape)}")
        if tuple(holes.shape) != (B, 1, S, S):
            raise ValueError(f"DetailNet: expected holes ({B}, 1, {S}, {S}), got "
                             f"{tuple(holes.shape)}")  # fmt: skip
        if tuple(noise.shape) != (B, Z, S, S):
            raise ValueError(f"DetailNet: expected noise ({B}, {Z}, {S}, {S}), got "
                             f"{tuple(noise.shape)}")  # fmt: skip
        return self.unet(torch.cat([rgb * 2 - 1, holes.to(rgb.dtype)], 1), noise)

    def forward(
        self, rgb: Tensor, holes: Tensor, noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:  # fmt: skip
        """``rgb`` with the correction added where ``holes`` > 0.5, clamped to [0, 1]."""
        if noise is None:
            noise = self.noise(rgb, generator)
        hole = (holes > 0.5).to(rgb.dtype)
        return (rgb + hole * self.correction(rgb, hole, noise)).clamp(0, 1)


DetailNet.config_class = DetailNetConfig


class PatchCritic(nn.Module):
    """The training-time critic: a frame's holes (the candidate inside them, grey outside) and
    the hole mask ``(B, 4, S, S)`` -> a realism score per patch ``(B, 1, S/8, S/8)`` (each
    patch sees about 40 pixels across). It sees only what is drawn: shown the frame around
    the holes too, it told the true frames by the seam where the truth meets the model's
    guess, and the net learned to draw seams. Spectrally normalised convolutions; not
    shipped."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        layers, cin = [], 4
        for w in widths:
            layers += [sn(nn.Conv2d(cin, w, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            cin = w
        layers += [sn(nn.Conv2d(cin, cin, 3, padding=1)), nn.LeakyReLU(0.2)]
        layers.append(sn(nn.Conv2d(cin, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, candidate: Tensor, holes: Tensor) -> Tensor:
        hole = holes.to(candidate.dtype)
        return self.net(torch.cat([(candidate * 2 - 1) * hole, hole], 1))
