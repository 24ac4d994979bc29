"""The backbones' own video VAEs (``AutoencoderKLWan``, ``AutoencoderKLCogVideoX``) as codecs.

Same interface and encoding as ``worldmem.models.codec.VaeCodec``: rgb and the inverse-depth
map (replicated to 3 channels) are encoded separately and concatenated (channels = 2 x the
VAE's latent channels); the spatial-memory render is encoded like a frame, zeroed where no
pixel of a latent cell is covered, and the covered fraction appended (memory channels =
channels + 1).

Temporal compression. These VAEs are causal in time: a clip of ``1 + 4k`` frames becomes
``1 + k`` latent frames, the first frame alone and each later latent summarising 4 frames.
The world model gives every frame its own camera, memory render and depth, and generates
chunk after chunk; so each frame is encoded as a clip of one frame (the VAE's first-frame
path: spatial compression only). One video frame is one latent frame, ``chunk_frames``
counts both, and no causal state has to be carried across chunk boundaries
(docs/backbones.md discusses the trade-off).

Latent scaling follows each pipeline: per-channel ``(z - latents_mean) / latents_std`` when
the VAE config has them (Wan), else ``(z - shift_factor) * scaling_factor`` (CogVideoX).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from einops import rearrange
from torch import Tensor, nn

from worldmem.models.codec import VaeCodec

__all__ = ["VideoVaeCodec", "VIDEO_VAES"]

VIDEO_VAES = ("AutoencoderKLWan", "AutoencoderKLCogVideoX")


class VideoVaeCodec(VaeCodec):
    """A frozen diffusers video VAE applied frame by frame (see the module docstring).

    path: a local VAE folder (its ``config.json``), a pipeline folder holding ``vae/``, or a
    hub id of a pipeline (network permitting); depth_near_m: inverse-depth scale;
    frames_per_call: frames encoded or decoded per VAE call (bounds activation memory);
    torch_dtype: the VAE's weight dtype.
    """

    def __init__(
        self,
        path: str | Path,
        depth_near_m: float = 0.25,
        frames_per_call: int = 8,
        torch_dtype: torch.dtype = torch.float32,
    ):
        nn.Module.__init__(self)  # VaeCodec.__init__ loads an AutoencoderKL; this loads a video VAE
        import diffusers

        from worldmem.models.backbones.base import resolve_component

        if depth_near_m <= 0:
            raise ValueError(f"VideoVaeCodec: depth_near_m must be > 0, got {depth_near_m}")
        if frames_per_call < 1:
            raise ValueError(f"VideoVaeCodec: frames_per_call must be >= 1, got {frames_per_call}")
        where, sub = resolve_component(path, "vae")
        if sub is None:
            name = json.loads((Path(where) / "config.json").read_text()).get("_class_name")
            if name not in VIDEO_VAES:
                raise ValueError(
                    f"VideoVaeCodec: {where} holds a {name}, want one of {', '.join(VIDEO_VAES)}"
                )
            cls = getattr(diffusers, name)
        else:
            name = diffusers.AutoencoderKLWan.load_config(where, subfolder=sub)["_class_name"]
            cls = getattr(diffusers, name)
        vae = cls.from_pretrained(where, subfolder=sub, torch_dtype=torch_dtype)
        cfg = vae.config
        lc = cfg.z_dim if hasattr(cfg, "z_dim") else cfg.latent_channels
        if hasattr(cfg, "scale_factor_spatial"):
            downsample = cfg.scale_factor_spatial
        else:
            downsample = 2 ** (len(cfg.block_out_channels) - 1)
        self._init_common(vae, depth_near_m, lc, downsample)
        self.frames_per_call = int(frames_per_call)
        mean, std = getattr(cfg, "latents_mean", None), getattr(cfg, "latents_std", None)
        if mean is not None and std is not None:  # per channel (Wan)
            mean, scale = torch.tensor(mean), 1.0 / torch.tensor(std)
        else:  # one factor (CogVideoX)
            mean = torch.tensor([float(getattr(cfg, "shift_factor", None) or 0.0)])
            scale = torch.tensor([float(cfg.scaling_factor)])
        self.register_buffer("_mean", mean.view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("_scale", scale.view(1, -1, 1, 1, 1), persistent=False)

    def _encode_images(self, img: Tensor) -> Tensor:
        """Images ``(B, T, 3, H, W)`` in [-1, 1] -> scaled latents ``(B, T, lc, h, w)``."""
        B = img.shape[0]
        clips = rearrange(img, "b t c h w -> (b t) c 1 h w").to(self.vae.dtype)
        zs = []
        for part in clips.split(self.frames_per_call):
            z = self.vae.encode(part).latent_dist.mode()  # (n, lc, 1, h, w)
            zs.append((z.float() - self._mean) * self._scale)
        return rearrange(torch.cat(zs), "(b t) c 1 h w -> b t c h w", b=B).to(img.dtype)

    def _decode_images(self, z: Tensor) -> Tensor:
        """Scaled latents ``(B, T, lc, h, w)`` -> images ``(B, T, 3, H, W)`` in about [-1, 1]."""
        B = z.shape[0]
        clips = rearrange(z.float(), "b t c h w -> (b t) c 1 h w") / self._scale + self._mean
        imgs = [
            self.vae.decode(part.to(self.vae.dtype)).sample.float()
            for part in clips.split(self.frames_per_call)
        ]
        return rearrange(torch.cat(imgs), "(b t) c 1 h w -> b t c h w", b=B).to(z.dtype)
