"""Latent codecs: map posed RGB-D frames to and from the model space the DiT denoises.

* ``IdentityCodec``: pixel space. rgb [0, 1] -> [-1, 1]; depth -> inverse depth
  ``near / depth`` clamped to [0, 1], mapped to [-1, 1] (0 / unknown depth -> -1, which is
  also what infinitely far looks like). Channels (rgb 3, depth 1) = 4.
* ``VaeCodec``: a frozen diffusers ``AutoencoderKL`` loaded from a local folder. RGB and the
  inverse-depth map (replicated to 3 channels, as HunyuanWorld-Voyager does) are encoded
  separately and concatenated: channels = 2 * vae latent channels.

Both encode the spatial-memory render the same way as a frame and append the validity mask
(area-downsampled to the latent grid) as one more channel: memory channels = channels + 1.
Where the memory has no point the encoded rgb/depth are zeroed, so "no memory" is all zeros.
With ``provenance`` (``ModelConfig.memory_provenance``) one more channel follows: the part of
the render that was observed (a true frame) rather than generated, downsampled the same way.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from worldmem.config import ModelConfig

__all__ = [
    "IdentityCodec",
    "VaeCodec",
    "build_codec",
    "encode_inverse_depth",
    "decode_inverse_depth",
]

# Inverse depths below this decode to 0 ("unknown"): with near 0.25 m that is beyond 250 m.
_MIN_INVERSE_DEPTH = 1e-3


def _check_frames(rgb: Tensor, depth: Tensor, where: str) -> None:
    if rgb.dim() != 5 or rgb.shape[2] != 3:
        raise ValueError(f"{where}: rgb must be (B, T, 3, H, W), got {tuple(rgb.shape)}")
    want = (*rgb.shape[:2], 1, *rgb.shape[-2:])
    if tuple(depth.shape) != want:
        raise ValueError(f"{where}: depth must be {want}, got {tuple(depth.shape)}")


def _check_mask(rgb: Tensor, mask: Tensor, where: str) -> None:
    want = (*rgb.shape[:2], 1, *rgb.shape[-2:])
    if tuple(mask.shape) != want:
        raise ValueError(f"{where}: mask must be {want}, got {tuple(mask.shape)}")


def _observed(rgb: Tensor, m: Tensor, observed: Tensor | None, where: str) -> Tensor:
    """The observed channel in {0, 1} where the binary mask ``m`` is 1 (None: all observed)."""
    if observed is None:
        return m
    _check_mask(rgb, observed, f"{where} (observed)")
    return (observed > 0.5).to(m.dtype) * m


def encode_inverse_depth(depth: Tensor, near_m: float) -> Tensor:
    """Metric z-depth (any shape, 0 = unknown) -> inverse depth ``near / depth`` in [-1, 1]."""
    inv = torch.where(depth > 0, near_m / depth.clamp(min=1e-12), torch.zeros_like(depth))
    return inv.clamp(0.0, 1.0) * 2.0 - 1.0


def decode_inverse_depth(code: Tensor, near_m: float) -> Tensor:
    """Inverse of ``encode_inverse_depth``: codes in [-1, 1] -> metres (0 where ~infinitely far)."""
    inv = ((code + 1.0) * 0.5).clamp(0.0, 1.0)
    return torch.where(inv > _MIN_INVERSE_DEPTH, near_m / inv.clamp(min=_MIN_INVERSE_DEPTH), 0.0)


class IdentityCodec(nn.Module):
    """Pixel-space codec (no parameters). See the module docstring for the encoding."""

    def __init__(self, depth_near_m: float = 0.25, provenance: bool = False):
        super().__init__()
        if depth_near_m <= 0:
            raise ValueError(f"depth_near_m must be > 0, got {depth_near_m}")
        self.depth_near_m = float(depth_near_m)
        self.provenance = bool(provenance)
        self.channels = 4
        self.memory_channels = 5 + self.provenance
        self.downsample = 1
        self.rgb_channels = slice(0, 3)
        self.depth_channels = slice(3, 4)

    def encode(self, rgb: Tensor, depth: Tensor) -> Tensor:
        """rgb ``(B, T, 3, H, W)`` in [0, 1], depth ``(B, T, 1, H, W)`` metres ->
        ``(B, T, 4, H, W)`` in [-1, 1]."""
        _check_frames(rgb, depth, "IdentityCodec.encode")
        return torch.cat([rgb * 2.0 - 1.0, encode_inverse_depth(depth, self.depth_near_m)], 2)

    def decode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, T, 4, H, W)`` -> (rgb ``(B, T, 3, H, W)`` in [0, 1],
        depth ``(B, T, 1, H, W)`` metres)."""
        if x.dim() != 5 or x.shape[2] != self.channels:
            raise ValueError(f"IdentityCodec.decode: want (B, T, 4, H, W), got {tuple(x.shape)}")
        rgb = ((x[:, :, :3] + 1.0) * 0.5).clamp(0.0, 1.0)
        return rgb, decode_inverse_depth(x[:, :, 3:4], self.depth_near_m)

    def encode_memory(
        self, rgb: Tensor, depth: Tensor, mask: Tensor, observed: Tensor | None = None
    ) -> Tensor:
        """Memory render rgb ``(B, T, 3, H, W)``, depth, mask ``(B, T, 1, H, W)`` and observed
        (same shape; None: every point observed) -> ``(B, T, memory_channels, H, W)``.

        Channels: encoded rgb and depth (zero where mask is 0), the mask in {0, 1}, then with
        ``provenance`` observed in {0, 1} (0 where mask is 0).
        """
        _check_frames(rgb, depth, "IdentityCodec.encode_memory")
        _check_mask(rgb, mask, "IdentityCodec.encode_memory")
        m = (mask > 0.5).to(rgb.dtype)
        parts = [self.encode(rgb, depth) * m, m]
        if self.provenance:
            parts.append(_observed(rgb, m, observed, "IdentityCodec.encode_memory"))
        return torch.cat(parts, 2)

    def depth_known(self, depth: Tensor) -> Tensor:
        """Where ground-truth depth is known on the model grid: ``(B, T, 1, H, W)`` -> same."""
        return (depth > 0).to(depth.dtype)


class VaeCodec(nn.Module):
    """A frozen diffusers ``AutoencoderKL`` from a local folder (see the module docstring).

    Latents are ``(mean - shift_factor) * scaling_factor`` of the encoder posterior (no
    sampling, so encoding is deterministic).
    """

    def __init__(self, path: str | Path, depth_near_m: float = 0.25, provenance: bool = False):
        super().__init__()
        from diffusers import AutoencoderKL

        path = Path(path)
        if not (path / "config.json").is_file():
            raise ValueError(
                f"VaeCodec: {path} is not a diffusers AutoencoderKL folder (no config.json); "
                "set model.codec_path to a local folder saved with save_pretrained"
            )
        vae = AutoencoderKL.from_pretrained(path, local_files_only=True)
        cfg = vae.config
        self._init_common(
            vae,
            depth_near_m,
            cfg.latent_channels,
            2 ** (len(cfg.block_out_channels) - 1),
            provenance,
        )
        self.scaling_factor = float(cfg.scaling_factor)
        shift = getattr(cfg, "shift_factor", None)
        self.shift_factor = float(shift) if shift is not None else 0.0

    def _init_common(
        self,
        vae: nn.Module,
        depth_near_m: float,
        latent_channels: int,
        downsample: int,
        provenance: bool = False,
    ):
        """The frozen VAE and the channel layout shared by every VAE codec."""
        self.vae = vae.requires_grad_(False).eval()
        self.depth_near_m = float(depth_near_m)
        lc = int(latent_channels)
        self.latent_channels = lc
        self.channels = 2 * lc
        self.provenance = bool(provenance)
        self.memory_channels = 2 * lc + 1 + self.provenance
        self.downsample = int(downsample)
        self.rgb_channels = slice(0, lc)
        self.depth_channels = slice(lc, 2 * lc)

    def train(self, mode: bool = True) -> VaeCodec:
        super().train(mode)
        self.vae.eval()  # frozen: never in training mode
        return self

    def _encode_images(self, img: Tensor) -> Tensor:
        B = img.shape[0]
        flat = rearrange(img, "b t c h w -> (b t) c h w")
        z = self.vae.encode(flat.to(self.vae.dtype)).latent_dist.mode()
        z = (z - self.shift_factor) * self.scaling_factor
        return rearrange(z, "(b t) c h w -> b t c h w", b=B).to(img.dtype)

    def _decode_images(self, z: Tensor) -> Tensor:
        B = z.shape[0]
        flat = rearrange(z, "b t c h w -> (b t) c h w") / self.scaling_factor + self.shift_factor
        img = self.vae.decode(flat.to(self.vae.dtype)).sample
        return rearrange(img, "(b t) c h w -> b t c h w", b=B).to(z.dtype)

    @torch.no_grad()
    def encode(self, rgb: Tensor, depth: Tensor) -> Tensor:
        """rgb ``(B, T, 3, H, W)`` [0, 1], depth ``(B, T, 1, H, W)`` metres ->
        ``(B, T, 2 lc, H / d, W / d)`` (lc: VAE latent channels, d: downsample)."""
        _check_frames(rgb, depth, f"{type(self).__name__}.encode")
        if rgb.shape[-1] % self.downsample or rgb.shape[-2] % self.downsample:
            raise ValueError(
                f"{type(self).__name__}.encode: H, W must be divisible by {self.downsample}, "
                f"got {tuple(rgb.shape[-2:])}"
            )
        d3 = encode_inverse_depth(depth, self.depth_near_m).expand(-1, -1, 3, -1, -1)
        return torch.cat([self._encode_images(rgb * 2.0 - 1.0), self._encode_images(d3)], 2)

    @torch.no_grad()
    def decode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, T, 2 lc, h, w)`` -> (rgb ``(B, T, 3, h d, w d)`` in [0, 1],
        depth ``(B, T, 1, h d, w d)`` metres)."""
        if x.dim() != 5 or x.shape[2] != self.channels:
            raise ValueError(
                f"{type(self).__name__}.decode: want (B, T, {self.channels}, h, w), "
                f"got {tuple(x.shape)}"
            )
        lc = self.latent_channels
        rgb = ((self._decode_images(x[:, :, :lc]) + 1.0) * 0.5).clamp(0.0, 1.0)
        d = self._decode_images(x[:, :, lc:]).mean(2, keepdim=True)
        return rgb, decode_inverse_depth(d, self.depth_near_m)

    def _downsample_mask(self, mask: Tensor, mode: str) -> Tensor:
        B = mask.shape[0]
        m = rearrange(mask, "b t c h w -> (b t) c h w")
        if mode == "mean":
            m = F.avg_pool2d(m, self.downsample)
        else:  # "all": 1 only where every pixel of the cell is 1
            m = -F.max_pool2d(-m, self.downsample)
        return rearrange(m, "(b t) c h w -> b t c h w", b=B)

    @torch.no_grad()
    def encode_memory(
        self, rgb: Tensor, depth: Tensor, mask: Tensor, observed: Tensor | None = None
    ) -> Tensor:
        """Memory render (as ``encode``; mask and observed ``(B, T, 1, H, W)``, observed None:
        every point observed) -> ``(B, T, memory_channels, h, w)``.

        The render is encoded as a frame; latents are zeroed where no pixel of the cell is
        covered, and the area-downsampled mask (fraction covered) is appended, then with
        ``provenance`` the fraction of the cell covered by observed points.
        """
        where = f"{type(self).__name__}.encode_memory"
        _check_frames(rgb, depth, where)
        _check_mask(rgb, mask, where)
        m = (mask > 0.5).to(rgb.dtype)
        z = self.encode(rgb * m, depth * m)
        frac = self._downsample_mask(m, "mean")
        parts = [z * (frac > 0).to(z.dtype), frac]
        if self.provenance:
            parts.append(self._downsample_mask(_observed(rgb, m, observed, where), "mean"))
        return torch.cat(parts, 2)

    def depth_known(self, depth: Tensor) -> Tensor:
        """Latent cells whose every pixel has known depth: ``(B, T, 1, H, W)`` ->
        ``(B, T, 1, h, w)``."""
        return self._downsample_mask((depth > 0).to(depth.dtype), "all")


def build_codec(cfg: ModelConfig) -> IdentityCodec | VaeCodec:
    """The codec named by ``cfg.codec``, checked against the model's channel/downsample fields."""
    if cfg.codec == "identity":
        codec = IdentityCodec(cfg.depth_near_m, cfg.memory_provenance)
    elif cfg.codec == "vae":
        if not cfg.codec_path:
            raise ValueError("ModelConfig.codec='vae' needs codec_path (a local VAE folder)")
        codec = VaeCodec(cfg.codec_path, cfg.depth_near_m, cfg.memory_provenance)
    else:
        raise ValueError(f"ModelConfig.codec: '{cfg.codec}' is not one of identity, vae")
    if codec.channels != cfg.latent_channels or codec.downsample != cfg.latent_downsample:
        raise ValueError(
            f"ModelConfig: codec '{cfg.codec}' gives {codec.channels} channels at downsample "
            f"{codec.downsample}, but latent_channels={cfg.latent_channels}, "
            f"latent_downsample={cfg.latent_downsample}"
        )
    return codec
