"""CogVideoX 1.0 text-to-video transformer (diffusers ``CogVideoXTransformer3DModel``).

Parameterisation. CogVideoX is a DDPM with v-prediction: ``x_t = a_t x0 + b_t noise``
(``a_t^2 = alphas_cumprod[t]``, ``a_t^2 + b_t^2 = 1``) and the transformer predicts
``v = a_t noise - b_t x0``. A flow state ``x_s = (1 - s) x0 + s noise`` is the same point
scaled by ``r = sqrt((1 - s)^2 + s^2)``: ``x_s / r = a x0 + b noise`` with ``a = (1 - s) / r``,
``b = s / r``. So the adapter feeds ``x_s / r`` at the DDPM timestep of equal signal-to-noise
ratio (``b_t / (a_t + b_t) = s``, interpolated in the scheduler's ``alphas_cumprod`` table,
which folds in CogVideoX's SNR shift and zero-terminal-SNR rescaling), and converts the
prediction exactly: with ``x0 = a x - b v`` and ``noise = b x + a v``,

    noise - x0 = (b - a) * x_s / r + (a + b) * v.

At initialisation the world model is thus the pretrained denoiser written in flow
coordinates; fine-tuning then continues under the flow-matching loss.

Per-frame noise levels. CogVideoX modulates every token with one timestep per sample, so
the whole sequence gets the timestep of the noisiest target frame; each frame's latent is
still scaled by its own ``r`` and each target's output converted with its own ``s``. Memory
frames enter clean, and the zero-initialised frame embedding (role and own noise level)
lets fine-tuning tell them apart from the noisy targets.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import CogVideoXDDIMScheduler, CogVideoXTransformer3DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from torch import Tensor, nn

from worldmem.models.backbones.base import ADDED_LAYERS, BackboneWorldModel
from worldmem.models.backbones.lora import attention_projections

__all__ = ["CogVideoXWorldModel", "COGVIDEOX_5B_NOISE_SCHEDULE"]

# The training noise schedule of CogVideoX-5b (its scheduler/scheduler_config.json); used
# when the backbone folder has no scheduler. CogVideoX-2b differs: snr_shift_scale 3.0.
COGVIDEOX_5B_NOISE_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "snr_shift_scale": 1.0,
}


def _flow_sigma_table(noise_schedule: dict) -> Tensor:
    """Flow noise level ``b_t / (a_t + b_t)`` of every DDPM timestep ``(num_train_timesteps,)``,
    float64, non-decreasing."""
    sched = CogVideoXDDIMScheduler.from_config(noise_schedule)
    if sched.config.prediction_type != "v_prediction":
        raise ValueError(
            "CogVideoXWorldModel: want a v_prediction noise schedule, got "
            f"{sched.config.prediction_type}"
        )
    ac = sched.alphas_cumprod.double().clamp(0.0, 1.0)
    a, b = ac.sqrt(), (1.0 - ac).sqrt()
    return b / (a + b)


class CogVideoXWorldModel(BackboneWorldModel):
    """A pretrained ``CogVideoXTransformer3DModel`` (1.0, text-to-video) as the world model.

    Arguments as ``WanWorldModel``, plus noise_schedule: the backbone's scheduler config (the
    DDPM it was trained with; default ``COGVIDEOX_5B_NOISE_SCHEDULE``); text_max_tokens: 226.
    """

    _keep_in_fp32_modules = ADDED_LAYERS
    backbone_class = CogVideoXTransformer3DModel

    @register_to_config
    def __init__(
        self,
        backbone_config: dict,
        noise_schedule: dict | None = None,
        image_size: int = 480,
        latent_downsample: int = 8,
        latent_channels: int = 32,
        max_frames: int = 16,
        text_encoder_path: str | None = None,
        text_max_tokens: int = 226,
        lora_rank: int = 0,
        lora_alpha: float | None = None,
        gradient_checkpointing: bool = False,
        weight_dtype: str = "float32",
        backbone: nn.Module | None = None,
    ):
        super().__init__()
        self._setup(
            backbone_config, image_size, latent_downsample, latent_channels, max_frames,
            text_encoder_path, text_max_tokens, lora_rank, lora_alpha, gradient_checkpointing,
            weight_dtype, backbone,
        )  # fmt: skip
        self._flow_table = _flow_sigma_table(noise_schedule or COGVIDEOX_5B_NOISE_SCHEDULE)

    @classmethod
    def _pretrained_settings(cls, path: str | Path) -> dict:
        """The noise schedule from the pipeline's ``scheduler/`` (next to ``transformer/``);
        without one (a bare transformer folder) the CogVideoX-5b schedule is used."""
        p = Path(path)
        if p.exists():
            found = [d for d in (p / "scheduler", p.parent / "scheduler") if d.is_dir()]
            if not found or not (found[0] / "scheduler_config.json").is_file():
                return {}
            cfg = CogVideoXDDIMScheduler.load_config(found[0])
        else:  # a hub id
            cfg = CogVideoXDDIMScheduler.load_config(str(path), subfolder="scheduler")
        return {"noise_schedule": {k: v for k, v in cfg.items() if not k.startswith("_")}}

    def _backbone_geometry(self) -> tuple[int, int, int, int]:
        cfg = self.backbone.config
        if cfg.patch_size_t is not None or cfg.ofs_embed_dim:
            raise ValueError(
                "CogVideoXWorldModel: CogVideoX 1.5 (temporal patches, ofs embedding) is not "
                "supported; use a CogVideoX 1.0 text-to-video checkpoint (2b or 5b)"
            )
        if cfg.in_channels != cfg.out_channels:
            raise ValueError(
                f"CogVideoXWorldModel: want a text-to-video checkpoint (in_channels == "
                f"out_channels), got {cfg.in_channels} in, {cfg.out_channels} out"
            )
        width = cfg.num_attention_heads * cfg.attention_head_dim
        return cfg.patch_size, cfg.in_channels, width, cfg.text_embed_dim

    def _text_padding(self) -> str:
        return "tokens"

    def _lora_targets(self) -> list[str]:
        return attention_projections(self.backbone, (Attention,))

    def _register_hooks(self) -> None:
        self.backbone.patch_embed.register_forward_hook(self._add_extra_tokens)
        self.backbone.proj_out.register_forward_pre_hook(self._capture_features)

    def _add_extra_tokens(self, module: nn.Module, args: tuple, out: Tensor) -> Tensor | None:
        # out: text tokens then video tokens (B, Lt + F n, D), video in (F, h', w') order
        if self._pass is None:
            return None
        extra = self._pass.extra.flatten(1, 2).to(out.dtype)  # (B, F n, D)
        Lt = out.shape[1] - extra.shape[1]
        return torch.cat([out[:, :Lt], out[:, Lt:] + extra], 1)

    def _capture_features(self, module: nn.Module, args: tuple) -> None:
        if self._pass is not None:
            self._pass.features = args[0]  # (B, F n, D): video tokens after the output norm

    def flow_sigma_to_timestep(self, sigma: Tensor) -> Tensor:
        """Flow noise level ``s`` (any shape) -> the DDPM timestep of equal SNR (float,
        linearly interpolated between the integer timesteps of the schedule)."""
        tab = self._flow_table.to(sigma.device)
        s = sigma.double().clamp(float(tab[0]), float(tab[-1]))
        hi = torch.searchsorted(tab, s).clamp(1, len(tab) - 1)
        lo_v, hi_v = tab[hi - 1], tab[hi]
        w = ((s - lo_v) / (hi_v - lo_v).clamp(min=1e-12)).clamp(0.0, 1.0)
        return ((hi - 1).double() + w).float()

    @staticmethod
    def _flow_to_ddpm(sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(r, a, b) for flow levels ``sigma`` (see the module docstring), float32."""
        s = sigma.float()
        r = ((1.0 - s) ** 2 + s**2).sqrt()
        return r, (1.0 - s) / r, s / r

    def _native_inputs(self, seq: dict) -> tuple[Tensor, Tensor]:
        c, T = self.rgb_latent_channels, seq["T"]
        r, _, _ = self._flow_to_ddpm(seq["sigma"])  # (B, F)
        latents = seq["x"][:, :, :c].float() / r[:, :, None, None, None]
        timesteps = self.flow_sigma_to_timestep(seq["sigma"][:, -T:].float().amax(1))  # (B,)
        return latents, timesteps

    def _rotary(self, frames: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """CogVideoX's 3D rotary tables for ``frames`` latent frames, as its pipeline builds
        them (the grid placed inside the training resolution)."""
        from diffusers.pipelines.cogvideo.pipeline_cogvideox import (
            get_resize_crop_region_for_grid,  # the pipeline's own placement of the grid
        )

        cfg = self.backbone.config
        g = self.grid // cfg.patch_size
        crops = get_resize_crop_region_for_grid(
            (g, g), cfg.sample_width // cfg.patch_size, cfg.sample_height // cfg.patch_size
        )
        return get_3d_rotary_pos_embed(
            embed_dim=cfg.attention_head_dim,
            crops_coords=crops,
            grid_size=(g, g),
            temporal_size=frames,
            device=device,
        )

    def _backbone_pass(
        self, latents: Tensor, timesteps: Tensor, text_states: Tensor, key_valid: Tensor | None
    ) -> Tensor:
        bb = self.backbone
        dtype = bb.patch_embed.proj.weight.dtype
        B, Fr = latents.shape[:2]
        rotary = None
        if bb.config.use_rotary_positional_embeddings:
            rotary = self._rotary(Fr, latents.device)
        attention_kwargs = None
        if key_valid is not None:
            text_keys = key_valid.new_ones(B, text_states.shape[1])
            keys = torch.cat([text_keys, key_valid.repeat_interleave(self.tokens_per_frame, 1)], 1)
            attention_kwargs = {"attention_mask": keys[:, None, None, :]}  # (B, 1, 1, Lt + F n)
        return bb(
            hidden_states=latents.to(dtype),
            encoder_hidden_states=text_states.to(dtype),
            timestep=timesteps,
            image_rotary_emb=rotary,
            attention_kwargs=attention_kwargs,
            return_dict=False,
        )[0]

    def _to_velocity(self, pred: Tensor, latents: Tensor, sigma: Tensor) -> Tensor:
        _, a, b = self._flow_to_ddpm(sigma)  # (B, T)
        a, b = a[:, :, None, None, None], b[:, :, None, None, None]
        return (b - a) * latents + (a + b) * pred
