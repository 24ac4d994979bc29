"""Token embeddings of the DiT: patches, noise level, camera rays, 2D positions."""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn

from worldmem.geometry import plucker_patches, relative_poses, scale_intrinsics

__all__ = [
    "patchify",
    "unpatchify",
    "sincos_2d",
    "TimestepEmbedding",
    "CameraEmbedding",
    "camera_rays",
]


def patchify(x: Tensor, patch: int) -> Tensor:
    """``(B, F, C, h, w)`` -> ``(B, F, n, C * p * p)`` with n = (h / p) * (w / p)."""
    return rearrange(x, "b f c (y p) (x q) -> b f (y x) (c p q)", p=patch, q=patch)


def unpatchify(tokens: Tensor, patch: int, height: int, width: int) -> Tensor:
    """``(B, F, n, C * p * p)`` -> ``(B, F, C, h, w)`` (inverse of ``patchify``)."""
    return rearrange(
        tokens, "b f (y x) (c p q) -> b f c (y p) (x q)", p=patch, q=patch, y=height // patch
    )


def sincos_2d(dim: int, grid_h: int, grid_w: int) -> Tensor:
    """Fixed 2D sine-cosine position embedding ``(grid_h * grid_w, dim)`` (row-major)."""
    if dim % 4:
        raise ValueError(f"sincos_2d: dim must be divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(
        torch.arange(grid_h, dtype=torch.float64),
        torch.arange(grid_w, dtype=torch.float64),
        indexing="ij",
    )
    out = []
    for pos in (ys.reshape(-1), xs.reshape(-1)):
        ang = pos[:, None] * omega[None]  # (n, dim/4)
        out += [ang.sin(), ang.cos()]
    return torch.cat(out, 1).float()


class TimestepEmbedding(nn.Module):
    """Noise level sigma in [0, 1] (any shape) -> ``(..., hidden)`` via sinusoids and an MLP."""

    def __init__(self, hidden: int, freq_dim: int = 256, max_period: float = 10000.0):
        super().__init__()
        self.freq_dim = freq_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, sigma: Tensor) -> Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(
            -math.log(self.max_period) * torch.arange(half, device=sigma.device) / half
        )
        t = sigma.float()[..., None] * 1000.0 * freqs  # (..., half)
        emb = torch.cat([t.cos(), t.sin()], -1).to(self.mlp[0].weight.dtype)
        return self.mlp(emb)


def camera_rays(
    c2w: Tensor, K: Tensor, reference_c2w: Tensor, image_size: int, downsample: int, patch: int
) -> Tensor:
    """Pluecker rays per patch relative to a reference camera, on the model grid.

    c2w ``(B, F, 4, 4)``, K ``(B, F, 3, 3)`` for ``image_size`` pixels, reference_c2w
    ``(B, 4, 4)`` -> ``(B, F, n, 6 * patch * patch)`` with n = (image_size / downsample /
    patch) ** 2. The rays are those of the model grid (``K`` scaled by 1 / downsample).
    """
    size = image_size // downsample
    rel = relative_poses(c2w, reference_c2w)  # (B, F, 4, 4)
    Ks = scale_intrinsics(K, 1.0 / downsample) if downsample != 1 else K
    rays = plucker_patches(rel, Ks, size, size, patch)  # (B, F, 6pp, gh, gw)
    return rearrange(rays, "b f c y x -> b f (y x) c")


class CameraEmbedding(nn.Module):
    """Per-patch Pluecker ray bundle ``(..., 6 * p * p)`` -> ``(..., hidden)`` (two-layer MLP)."""

    def __init__(self, patch: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(6 * patch * patch, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )

    def forward(self, rays: Tensor) -> Tensor:
        return self.mlp(rays.to(self.mlp[0].weight.dtype))
