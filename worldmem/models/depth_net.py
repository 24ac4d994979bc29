"""A small monocular depth network: the depth a start image without depth is given.

A world begun from an image needs that image's depth to put it into the spatial memory. The
world model can supply one (the frame it generates at the image's camera), but it is trained
to draw frames, not to measure them, and its depth of a single image is poor (a per-pixel
layout prior that needs no learning beats it in delta < 1.25). ``DepthNet`` is trained for
this one job: metric depth of a frame seen through the pipeline's camera (its intrinsics fixed
by the field of view, so metric depth is learnable from the image alone on the data it was
trained on; ``worldmem/training/depth_net.py``).

Design: the shared small U-Net (``worldmem/models/small_unet.py``) over the image and two
pixel-coordinate channels, four levels (S, S/2, S/4, S/8); it predicts log depth, starting
from ``init_depth_m`` everywhere.

Saved like the world model (``config.json`` + ``diffusion_pytorch_model.safetensors``) in a
pipeline folder's ``depth_net/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn as nn
from torch import Tensor

from worldmem.models.small_unet import SmallUNet, check_levels

__all__ = ["DepthNetConfig", "DepthNet", "depth_net_loss"]


@dataclass(frozen=True)
class DepthNetConfig:
    image_size: int = 64  # S: the pipeline's frame size the net was trained at
    widths: tuple[int, ...] = (16, 32, 64, 128)  # channels at S, S/2, S/4, S/8
    init_depth_m: float = 3.0  # the depth every pixel starts from (log-depth bias)
    fov_deg: float = 75.0  # the horizontal field of view of the frames it was trained on

    def __post_init__(self):
        check_levels("DepthNetConfig", self.image_size, self.widths)
        if not (self.init_depth_m > 0 and math.isfinite(self.init_depth_m)):
            raise ValueError(f"DepthNetConfig: init_depth_m must be > 0, got {self.init_depth_m}")


class DepthNet(SmallUNet):
    """rgb ``(B, 3, S, S)`` in [0, 1] -> metric depth ``(B, 1, S, S)`` (> 0)."""

    kind = "depth net"

    def __init__(self, cfg: DepthNetConfig | None = None):
        self.cfg = cfg = cfg or DepthNetConfig()
        super().__init__(3, cfg.widths, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, math.log(cfg.init_depth_m))

    def log_depth(self, rgb: Tensor) -> Tensor:
        """rgb ``(B, 3, S, S)`` -> log metres ``(B, 1, S, S)``."""
        _, C, H, W = rgb.shape
        S = self.cfg.image_size
        if C != 3 or (H, W) != (S, S):
            raise ValueError(f"DepthNet: expected rgb (B, 3, {S}, {S}), got {tuple(rgb.shape)}")
        return self.unet(rgb * 2 - 1)

    def forward(self, rgb: Tensor) -> Tensor:
        return self.log_depth(rgb).exp()


DepthNet.config_class = DepthNetConfig


def depth_net_loss(log_pred: Tensor, depth: Tensor, grad_weight: float = 0.5) -> Tensor:
    """L1 of log depth (a relative error, the same weight near and far) plus ``grad_weight``
    times the L1 of its differences between neighbouring pixels (edges in the right place),
    over the pixels with depth (> 0). log_pred ``(B, 1, S, S)``, depth ``(B, 1, S, S)`` m."""
    valid = depth > 0
    target = depth.clamp(min=1e-6).log()
    err = (log_pred - target) * valid
    n = valid.sum().clamp(min=1)
    loss = err.abs().sum() / n
    if grad_weight > 0:
        vx = valid[..., :, 1:] & valid[..., :, :-1]
        vy = valid[..., 1:, :] & valid[..., :-1, :]
        gx = (err[..., :, 1:] - err[..., :, :-1]).abs() * vx
        gy = (err[..., 1:, :] - err[..., :-1, :]).abs() * vy
        loss = loss + grad_weight * (gx.sum() + gy.sum()) / (vx.sum() + vy.sum()).clamp(min=1)
    return loss
