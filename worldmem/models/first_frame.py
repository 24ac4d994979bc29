"""A first frame from a caption: what a world begun from a prompt alone starts from.

The world model draws a chunk from its memories; with none (a prompt alone) it can only draw
its estimate of the mean of every frame that caption could show, a smooth layout with no
edges. So, as text-to-video systems that begin from a generated key image do, a prompt-only
world begins from an image drawn by ``FirstFrameNet``, a small caption-conditioned GAN
generator; the pipeline then starts from that image as from any image without depth (its
depth net gives the depth).

The caption is the frozen all-MiniLM-L6-v2 encoder's token states, mean-pooled and scaled
to unit length (``caption_embedding``); an empty caption is the zero vector, which training
shows in a tenth of the samples so the net draws some world for it. The generator maps a
64-d Gaussian draw and the caption's 128-d projection through a 4x4 grid and four 2x
nearest-upsampling stages (3x3 convolutions, BatchNorm and ReLU by default) to RGB in [0, 1].

``FirstFrameCritic``, used only in training, is the projection discriminator (Miyato and
Koyama 2018): spectrally normalised strided convolutions, the batch's standard deviation as
one more channel before the last (Karras et al. 2018: without it every generator tried
collapsed to one image), and the inner product of the pooled features with the caption's
projection added to an unconditional score.

Not used by the shipped checkpoint: trained for 2,000 steps here it draws coloured noise over
a dark band above and a light one below, not rooms (the README's results).

Saved like the other helper nets: ``config.json`` and ``diffusion_pytorch_model.safetensors``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from worldmem.models.small_unet import SavedNet

__all__ = [
    "FirstFrameConfig",
    "FirstFrameNet",
    "FirstFrameCritic",
    "caption_embedding",
    "caption_states",
    "TEXT_DIM",
]

TEXT_DIM = 384  # all-MiniLM-L6-v2's width
_ENCODER: list = []  # the frozen text encoder, loaded once (outside every module tree)


def caption_states(caption: str) -> Tensor:
    """A caption's MiniLM token states ``(L, 384)`` with the encoder's [CLS] and [SEP] left
    out, each of unit length (``(0, 384)`` for ""). The encoder caches what it has seen."""
    if not isinstance(caption, str):
        raise ValueError(f"caption_states: expected a string, got {caption!r}")
    if not caption:
        return torch.zeros(0, TEXT_DIM)
    return F.normalize(_encoder()._encode_one(caption)[1:-1], dim=1)


def _encoder():
    from worldmem.models.text import HFTextEncoder, minilm_path

    if not _ENCODER:
        _ENCODER.append(HFTextEncoder(minilm_path()))
    return _ENCODER[0]


def caption_embedding(captions: list[str]) -> Tensor:
    """Captions -> ``(B, 384)``: the MiniLM token states' mean, unit length ("" -> zeros).
    The encoder caches the states of every caption it has seen."""
    if not isinstance(captions, (list, tuple)) or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"caption_embedding: expected a list of strings, got {captions!r}")
    enc = _encoder()
    out = torch.zeros(len(captions), TEXT_DIM)
    for i, c in enumerate(captions):
        if c:
            out[i] = F.normalize(enc._encode_one(c).mean(0), dim=0)
    return out


@dataclass
class FirstFrameConfig:
    image_size: int = 64
    z_dim: int = 64
    text_proj: int = 128
    widths: tuple[int, ...] = (128, 64, 32, 16)  # 4x4 grid, then one per 2x upsampling
    # after each convolution: "batch" (BatchNorm, ReLU), "pixel" (LeakyReLU, each pixel's
    # features to unit mean square) or "group" (GroupNorm, SiLU)
    norm: str = "batch"

    def __post_init__(self):
        self.widths = tuple(self.widths)
        if not all(isinstance(w, int) and w > 0 and w % 8 == 0 for w in self.widths):
            raise ValueError(f"FirstFrameConfig: widths must be multiples of 8, got {self.widths}")
        if self.image_size != 4 * 2 ** len(self.widths):
            raise ValueError(
                f"FirstFrameConfig: image_size {self.image_size} must be 4 * 2^len(widths) "
                f"({4 * 2 ** len(self.widths)} for {len(self.widths)} widths)"
            )
        if self.norm not in ("batch", "pixel", "group"):
            raise ValueError(
                f"FirstFrameConfig: norm must be batch, pixel or group, got {self.norm!r}"
            )
        if self.z_dim < 1 or self.text_proj < 1:
            raise ValueError("FirstFrameConfig: z_dim and text_proj must be positive")


class PixelNorm(nn.Module):
    """Each pixel's feature vector scaled to unit mean square (Karras et al. 2018)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-8)


def _norm_act(norm: str, ch: int) -> list[nn.Module]:
    if norm == "batch":
        return [nn.BatchNorm2d(ch), nn.ReLU()]
    if norm == "pixel":
        return [nn.LeakyReLU(0.2), PixelNorm()]
    return [nn.GroupNorm(8, ch), nn.SiLU()]


def _up(cin: int, cout: int, norm: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(cin, cout, 3, padding=1),
        *_norm_act(norm, cout),
        nn.Conv2d(cout, cout, 3, padding=1),
        *_norm_act(norm, cout),
    )


class MinibatchStd(nn.Module):
    """Appends the batch's mean standard deviation (over samples, averaged over features and
    pixels) as one more channel: a critic that sees it can tell a collapsed batch from a
    varied one (Karras et al. 2018)."""

    def forward(self, x: Tensor) -> Tensor:
        std = (x.var(0, unbiased=False) + 1e-8).sqrt().mean() if len(x) > 1 else x.new_zeros(())
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], 1)


class FirstFrameNet(SavedNet):
    """Caption embedding ``(B, 384)`` and noise ``(B, z_dim)`` -> RGB ``(B, 3, S, S)`` in
    [0, 1]."""

    config_class = FirstFrameConfig
    kind = "first-frame net"

    def __init__(self, cfg: FirstFrameConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or FirstFrameConfig()
        w = cfg.widths
        self.text = nn.Linear(TEXT_DIM, cfg.text_proj)
        self.stem = nn.Linear(cfg.z_dim + cfg.text_proj, w[0] * 16)
        self.stem_norm = nn.Sequential(*_norm_act(cfg.norm, w[0]))
        self.ups = nn.ModuleList([_up(a, b, cfg.norm) for a, b in zip((w[0],) + w[:-1], w)])
        self.head = nn.Conv2d(w[-1], 3, 3, padding=1)

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    def forward(self, text: Tensor, z: Tensor) -> Tensor:
        B = text.shape[0]
        if text.shape != (B, TEXT_DIM) or z.shape != (B, self.cfg.z_dim):
            raise ValueError(
                f"{self.kind}: want text (B, {TEXT_DIM}) and z (B, {self.cfg.z_dim}), got "
                f"{tuple(text.shape)} and {tuple(z.shape)}"
            )
        h = self.stem(torch.cat([z, self.text(text)], 1)).view(B, self.cfg.widths[0], 4, 4)
        h = self.stem_norm(h)
        for up in self.ups:
            h = up(h)
        return torch.sigmoid(self.head(h))

    @torch.no_grad()
    def generate(self, captions: list[str], generator: torch.Generator | None = None) -> Tensor:
        """One frame per caption ``(B, 3, S, S)``, the noise drawn from ``generator``; the net
        runs in eval mode (its normalisation's running statistics), whatever its mode."""
        dev = self.head.weight.device
        text = caption_embedding(captions).to(dev)
        z = torch.randn(len(captions), self.cfg.z_dim, generator=generator)
        was_training = self.training
        try:
            return self.eval()(text, z.to(dev))
        finally:
            self.train(was_training)


class FirstFrameCritic(nn.Module):
    """Frames ``(B, 3, S, S)`` in [0, 1] (S = 4 * 2^len(widths) gives a 4x4 last map) and
    caption embeddings ``(B, 384)`` -> a score per frame ``(B,)``."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), batch_std: bool = True):
        super().__init__()
        sn = nn.utils.spectral_norm
        layers, cin = [], 3
        for w in widths:  # 64 -> 32 -> 16 -> 8 -> 4
            layers += [sn(nn.Conv2d(cin, w, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            layers += [sn(nn.Conv2d(w, w, 3, padding=1)), nn.LeakyReLU(0.2)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.batch_std = MinibatchStd() if batch_std else nn.Identity()
        extra = 1 if batch_std else 0
        self.last = nn.Sequential(sn(nn.Conv2d(cin + extra, cin, 3, padding=1)), nn.LeakyReLU(0.2))
        self.score = sn(nn.Linear(cin, 1))
        self.text = sn(nn.Linear(TEXT_DIM, cin))

    def forward(self, frames: Tensor, text: Tensor) -> Tensor:
        h = self.last(self.batch_std(self.features(frames * 2 - 1))).sum((2, 3))  # (B, C)
        return self.score(h)[:, 0] + (self.text(text) * h).sum(1)
