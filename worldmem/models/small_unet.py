"""The small U-Net the pipeline's helper networks share (``DepthNet``, ``DetailNet``), and
their saving and loading.

Over its input and two pixel-coordinate channels (where a pixel lies in the frame says much
about what it shows: the floor below the horizon, the ceiling above): one level per width
(S, S/2, S/4, ...) of two 3x3 convolutions with GroupNorm and SiLU, strided convolutions
down, the whole view's mean added at the bottom (which wall is the far one is a question
about the whole frame), and nearest upsampling with skip connections back up to a 1x1 head.

A net is saved like the world model: ``config.json`` (its config dataclass) and
``diffusion_pytorch_model.safetensors``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SavedNet", "SmallUNet", "check_levels", "WEIGHTS_FILE", "CONFIG_FILE"]

WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
CONFIG_FILE = "config.json"


def check_levels(name: str, image_size: int, widths: tuple[int, ...]) -> None:
    """Refuse (``ValueError`` beginning with ``name``) widths that GroupNorm(8) cannot take or
    an image size the levels cannot halve."""
    if image_size % 2 ** (len(widths) - 1):
        raise ValueError(
            f"{name}: image_size {image_size} must divide by 2^{len(widths) - 1} (one halving "
            "per level after the first)"
        )
    if not all(isinstance(w, int) and w > 0 and w % 8 == 0 for w in widths):
        raise ValueError(f"{name}: widths must be positive multiples of 8, got {widths}")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.GroupNorm(8, cout),
        nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.GroupNorm(8, cout),
        nn.SiLU(),
    )


class SavedNet(nn.Module):
    """A helper net saved as ``config.json`` (its config dataclass, which has a ``widths``
    tuple) and ``diffusion_pytorch_model.safetensors``. Subclasses set ``config_class`` and
    ``kind`` (named in load errors), are built from their config alone and keep ``self.cfg``."""

    config_class: type
    kind: str

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
    def from_pretrained(cls, path: str | Path):
        from safetensors.torch import load_file

        path = Path(path)
        try:
            raw = json.loads((path / CONFIG_FILE).read_text())
            cfg = cls.config_class(**{**raw, "widths": tuple(raw["widths"])})
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ValueError(f"{path / CONFIG_FILE}: not a {cls.kind} config: {e}") from None
        net = cls(cfg)
        try:
            net.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        except (OSError, RuntimeError) as e:  # missing, corrupt, or another net's weights
            first = str(e).strip().splitlines()[0]
            raise ValueError(
                f"{path / WEIGHTS_FILE}: not this config's weights ({first})"
            ) from None
        return net.eval()


class SmallUNet(SavedNet):
    """``in_channels`` (+ 2 coordinate channels) -> ``out_channels`` at the same size, with
    ``widths`` channels per level (subclasses: see ``SavedNet``)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], out_channels: int):
        super().__init__()
        w = widths
        self.down = nn.ModuleList([_block(in_channels + 2, w[0])])
        self.pool = nn.ModuleList()
        for a, b in zip(w[:-1], w[1:]):
            self.pool.append(nn.Conv2d(a, a, 3, stride=2, padding=1))
            self.down.append(_block(a, b))
        self.context = nn.Conv2d(w[-1], w[-1], 1)  # the whole view's mean, at the bottom
        self.up = nn.ModuleList([_block(b + a, a) for a, b in zip(w[:-1], w[1:])][::-1])
        self.head = nn.Conv2d(w[0], out_channels, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def unet(self, x: Tensor, extra: Tensor | None = None) -> Tensor:
        """x ``(B, C, H, W)`` and ``extra`` ``(B, in_channels - C, H, W)`` (or None) -> the
        head's output ``(B, out_channels, H, W)``; the input is x, the coordinates, extra."""
        B, _, H, W = x.shape
        ys = torch.linspace(-1, 1, H, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1, 1, W, device=x.device, dtype=x.dtype)
        coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij")).expand(B, 2, H, W)
        x = self.down[0](torch.cat([x, coords] + ([] if extra is None else [extra]), 1))
        skips = [x]
        for pool, block in zip(self.pool, self.down[1:]):
            x = block(pool(x))
            skips.append(x)
        x = x + self.context(x.mean((2, 3), keepdim=True))
        for block, skip in zip(self.up, skips[-2::-1]):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], 1))
        return self.head(x)
