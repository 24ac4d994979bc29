"""A small monocular depth network: the depth a start image without depth is given.

A world begun from an image needs that image's depth to put it into the spatial memory. The
world model can supply one (the frame it generates at the image's camera), but it is trained
to draw frames, not to measure them, and its depth of a single image is poor (a per-pixel
layout prior that needs no learning beats it in delta < 1.25). ``DepthNet`` is trained for
this one job: metric depth of a frame seen through the pipeline's camera (its intrinsics fixed
by the field of view, so metric depth is learnable from the image alone on the data it was
trained on; ``worldmem/training/depth_net.py``).

Design: a U-Net over the image and two pixel-coordinate channels (where a pixel lies in the
frame says much about its depth: the floor below the horizon, the ceiling above), four
levels (S, S/2, S/4, S/8) of two 3x3 convolutions with GroupNorm and SiLU, strided
convolutions down, the whole view's mean added at the bottom (which wall is the far one is a
question about the whole frame), and nearest upsampling with skip connections back up; it
predicts log
depth, starting from ``init_depth_m`` everywhere.

Saved like the world model (``config.json`` + ``diffusion_pytorch_model.safetensors``) in a
pipeline folder's ``depth_net/``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DepthNetConfig", "DepthNet", "depth_net_loss"]

WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class DepthNetConfig:
    image_size: int = 64  # S: the pipeline's frame size the net was trained at
    widths: tuple[int, ...] = (16, 32, 64, 128)  # channels at S, S/2, S/4, S/8
    init_depth_m: float = 3.0  # the depth every pixel starts from (log-depth bias)
    fov_deg: float = 75.0  # the horizontal field of view of the frames it was trained on

    def __post_init__(self):
        if self.image_size % 2 ** (len(self.widths) - 1):
            raise ValueError(
                f"DepthNetConfig: image_size {self.image_size} must divide by "
                f"2^{len(self.widths) - 1} (one halving per level after the first)"
            )
        if not all(isinstance(w, int) and w > 0 and w % 8 == 0 for w in self.widths):
            raise ValueError(
                f"DepthNetConfig: widths must be positive multiples of 8, got {self.widths}"
            )
        if not (self.init_depth_m > 0 and math.isfinite(self.init_depth_m)):
            raise ValueError(f"DepthNetConfig: init_depth_m must be > 0, got {self.init_depth_m}")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.GroupNorm(8, cout),
        nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.GroupNorm(8, cout),
        nn.SiLU(),
    )


class DepthNet(nn.Module):
    """rgb ``(B, 3, S, S)`` in [0, 1] -> metric depth ``(B, 1, S, S)`` (> 0)."""

    def __init__(self, cfg: DepthNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DepthNetConfig()
        w = cfg.widths
        self.down = nn.ModuleList([_block(3 + 2, w[0])])
        self.pool = nn.ModuleList()
        for a, b in zip(w[:-1], w[1:]):
            self.pool.append(nn.Conv2d(a, a, 3, stride=2, padding=1))
            self.down.append(_block(a, b))
        self.context = nn.Conv2d(w[-1], w[-1], 1)  # the whole view's mean, at the bottom
        self.up = nn.ModuleList([_block(b + a, a) for a, b in zip(w[:-1], w[1:])][::-1])
        self.head = nn.Conv2d(w[0], 1, 1)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, math.log(self.cfg.init_depth_m))

    def log_depth(self, rgb: Tensor) -> Tensor:
        """rgb ``(B, 3, S, S)`` -> log metres ``(B, 1, S, S)``."""
        B, C, H, W = rgb.shape
        S = self.cfg.image_size
        if C != 3 or (H, W) != (S, S):
            raise ValueError(f"DepthNet: expected rgb (B, 3, {S}, {S}), got {tuple(rgb.shape)}")
        ys = torch.linspace(-1, 1, H, device=rgb.device, dtype=rgb.dtype)
        xs = torch.linspace(-1, 1, W, device=rgb.device, dtype=rgb.dtype)
        coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij")).expand(B, 2, H, W)
        x = self.down[0](torch.cat([rgb * 2 - 1, coords], 1))  # (B, w0, S, S)
        skips = [x]
        for pool, block in zip(self.pool, self.down[1:]):
            x = block(pool(x))
            skips.append(x)
        x = x + self.context(x.mean((2, 3), keepdim=True))  # (B, w[-1], S/8, S/8)
        for block, skip in zip(self.up, skips[-2::-1]):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], 1))
        return self.head(x)

    def forward(self, rgb: Tensor) -> Tensor:
        return self.log_depth(rgb).exp()

    # -- persistence ---------------------------------------------------------------------

    def save_pretrained(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = asdict(self.cfg)
        cfg["widths"] = list(cfg["widths"])
        (path / CONFIG_FILE).write_text(json.dumps(cfg, indent=1) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(path / WEIGHTS_FILE))
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path) -> DepthNet:
        from safetensors.torch import load_file

        path = Path(path)
        try:
            raw = json.loads((path / CONFIG_FILE).read_text())
            cfg = DepthNetConfig(**{**raw, "widths": tuple(raw["widths"])})
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ValueError(f"{path / CONFIG_FILE}: not a depth net config: {e}") from None
        net = cls(cfg)
        try:
            net.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        except (OSError, RuntimeError) as e:  # missing, corrupt, or another net's weights
            first = str(e).strip().splitlines()[0]
            raise ValueError(
                f"{path / WEIGHTS_FILE}: not this config's weights ({first})"
            ) from None
        return net.eval()


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
