"""Named colours, materials and the procedural textures the renderer paints with.

Every texture function maps world-space surface coordinates (metres) to values, and is
box-filtered by the pixel footprint so distant patterns do not alias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# Named colours (linear-ish RGB in [0, 1]); the names are what captions say.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.78, 0.16, 0.14),
    "orange": (0.92, 0.52, 0.14),
    "yellow": (0.93, 0.82, 0.22),
    "green": (0.22, 0.62, 0.25),
    "teal": (0.12, 0.58, 0.58),
    "blue": (0.18, 0.35, 0.82),
    "purple": (0.50, 0.25, 0.68),
    "pink": (0.92, 0.50, 0.66),
    "brown": (0.50, 0.32, 0.17),
    "beige": (0.86, 0.78, 0.62),
    "white": (0.92, 0.92, 0.90),
    "grey": (0.55, 0.55, 0.57),
    "black": (0.12, 0.12, 0.13),
    "navy": (0.10, 0.14, 0.40),
    "olive": (0.50, 0.52, 0.18),
    "maroon": (0.45, 0.10, 0.14),
}

# Texture kinds (index = code used by the renderer) and the word a caption uses for each.
TEXTURES = ("plain", "brick", "checkered", "striped", "mottled", "wooden", "tiled", "windowed")
_SKY = len(TEXTURES)  # the plaza's sky: unlit, never named in captions
_TEXTURE_WORDS = {
    "plain": "painted",
    "brick": "brick",
    "checkered": "checkered",
    "striped": "striped",
    "mottled": "mottled",
    "wooden": "wooden",
    "tiled": "tiled",
    "windowed": "windowed",
}


@dataclass(frozen=True)
class Material:
    """A procedural texture: ``colour`` is the main colour, ``colour2`` the pattern's second
    colour (mortar, grout, the other checker, glass), ``scale_m`` the pattern period in metres,
    ``variant`` a per-texture switch (stripe direction). ``texture`` is one of ``TEXTURES``, or
    "sky" (unlit clouds, for the plaza's ceiling); colours are ``PALETTE`` names."""

    texture: str
    colour: str
    colour2: str
    scale_m: float
    variant: int = 0

    def phrase(self) -> str:
        """Caption words, e.g. ``"red brick"`` or ``"black and white checkered"``."""
        word = _TEXTURE_WORDS[self.texture]
        if self.texture == "checkered":
            return f"{self.colour} and {self.colour2} {word}"
        if self.texture == "plain":
            return self.colour
        return f"{self.colour} {word}"


def _hash2(ix: Tensor, iy: Tensor, salt: Tensor | int) -> Tensor:
    """Integer lattice hash -> float in [0, 1); ix, iy (and salt, if a tensor) int64 of one
    shape."""
    h = ix * 374761393 + iy * 668265263 + salt * 982451653
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).float() * (1.0 / 16777216)


def _value_noise(x: Tensor, y: Tensor, salt: Tensor | int) -> Tensor:
    """Smooth value noise in [0, 1] with unit lattice spacing."""
    fx, fy = torch.floor(x), torch.floor(y)
    tx, ty = x - fx, y - fy
    tx = tx * tx * (3 - 2 * tx)
    ty = ty * ty * (3 - 2 * ty)
    ix, iy = fx.long(), fy.long()
    a = _hash2(ix, iy, salt)
    b = _hash2(ix + 1, iy, salt)
    c = _hash2(ix, iy + 1, salt)
    d = _hash2(ix + 1, iy + 1, salt)
    return torch.lerp(torch.lerp(a, b, tx), torch.lerp(c, d, tx), ty)


def _fbm(x: Tensor, y: Tensor, salt: Tensor | int, fw: Tensor, octaves: int = 3) -> Tensor:
    """Fractal value noise in [0, 1]; octaves finer than the footprint ``fw`` (in lattice
    units) fade to their mean, which is what a box filter of that width would give."""
    total = torch.zeros_like(x)
    amp, norm, freq = 0.5, 0.0, 1.0
    for k in range(octaves):
        keep = (1.5 - fw * freq * 2).clamp(0, 1)
        total = total + amp * (0.5 + (_value_noise(x * freq, y * freq, salt + k) - 0.5) * keep)
        norm += amp
        amp *= 0.5
        freq *= 2.0
    return total / norm


def _pulse(x: Tensor, duty: float | Tensor, fw: Tensor) -> Tensor:
    """Box-filtered periodic pulse: the fraction of [x - fw/2, x + fw/2] where frac(x) < duty.

    x and fw in units of the period; exact for any filter width (integral of the step)."""
    w = fw.clamp(min=1e-4)

    def integral(t: Tensor) -> Tensor:
        f = torch.floor(t)
        return f * duty + torch.minimum(t - f, torch.as_tensor(duty, dtype=t.dtype))

    return ((integral(x + 0.5 * w) - integral(x - 0.5 * w)) / w).clamp(0, 1)


def _texture(
    code: int, u: Tensor, v: Tensor, scale: Tensor, variant: Tensor, fw: Tensor, salt: Tensor
) -> tuple[Tensor, Tensor]:
    """One texture kind over n points: u, v surface coordinates (n,) in metres (v vertical on
    walls), scale (n,) pattern period in metres, variant (n,), fw (n,) pixel footprint in
    metres, salt (n,) int64 per material. Returns (mix (n,) in [0, 1]: weight of colour2,
    tint (n,) brightness factor)."""
    one = torch.ones_like(u)
    if code == 0:  # plain: paint with a faint mottle
        return torch.zeros_like(u), 0.92 + 0.16 * _fbm(u / 0.7, v / 0.7, salt, fw / 0.7, 2)
    if code == 1:  # brick: running bond, mortar lines, per-brick tint
        bw, bh = scale, scale * 0.42
        row = torch.floor(v / bh)
        uu = u / bw + 0.5 * torch.remainder(row, 2)
        brick = _pulse(uu + 0.04, 0.92, fw / bw) * _pulse(v / bh + 0.07, 0.86, fw / bh)
        fade = (1.5 - fw / bh * 2).clamp(0, 1)
        tint = 1 + (_hash2(torch.floor(uu).long(), row.long(), salt) - 0.5) * 0.35 * fade
        return 1 - brick, tint
    if code == 2:  # checkered
        su = 2 * _pulse(u / scale, 0.5, fw / scale) - 1
        sv = 2 * _pulse(v / scale, 0.5, fw / scale) - 1
        return 0.5 - 0.5 * su * sv, one
    if code == 3:  # striped: variant 0 horizontal bands, 1 vertical
        x = torch.where(variant > 0, u, v)
        return 1 - _pulse(x / scale, 0.5, fw / scale), one
    if code == 4:  # mottled
        n = _fbm(u / scale, v / scale, salt, fw / scale, 3)
        return ((n - 0.3) * 2.5).clamp(0, 1), one
    if code == 5:  # wooden planks along u, grain rings distorted by noise
        plank = torch.floor(v / scale)
        seam = 1 - _pulse(v / scale + 0.02, 0.96, fw / scale)
        off = _hash2(plank.long(), plank.long() * 7 + 3, salt) * 10
        warp = _value_noise(u * 0.8 + off, v / scale * 2, salt + 1) * 3
        rings = 0.5 + 0.5 * torch.sin(2 * math.pi * (u * 0.35 + warp + off))
        fade = (1.5 - fw * 6).clamp(0, 1)
        grain = 0.5 + (rings - 0.5) * fade
        tint = 0.9 + 0.2 * _hash2(plank.long(), plank.long() + 11, salt + 2) * fade.clamp(min=0.3)
        return (0.55 * grain + seam).clamp(0, 1), tint
    if code == 6:  # tiled: square tiles with grout, per-tile tint
        tile = _pulse(u / scale + 0.03, 0.94, fw / scale) * _pulse(
            v / scale + 0.03, 0.94, fw / scale
        )
        fade = (1.5 - fw / scale * 2).clamp(0, 1)
        h = _hash2(torch.floor(u / scale).long(), torch.floor(v / scale).long(), salt)
        return 1 - tile, 1 + (h - 0.5) * 0.25 * fade
    if code == 7:  # windowed facade: storeys of scale metres, window bays of 0.8 * scale
        bay = scale * 0.8
        win = _pulse(u / bay + 0.25, 0.5, fw / bay) * _pulse(v / scale + 0.2, 0.5, fw / scale)
        return win, one
    # sky: clouds of fractal noise on the ceiling plane
    n = _fbm(u / scale, v / scale, salt, fw / scale, 3)
    return ((n - 0.45) * 3).clamp(0, 1), one
