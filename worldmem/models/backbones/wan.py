"""Wan 2.x text-to-video transformer (diffusers ``WanTransformer3DModel``) as the world model.

Parameterisation: Wan is trained for rectified flow, ``x_t = (1 - s) x0 + s noise`` with the
transformer predicting ``noise - x0`` at timestep ``1000 s`` (diffusers'
``FlowMatchEulerDiscreteScheduler`` steps ``x + (s_next - s) * output``, and ``UniPC`` with
``prediction_type="flow_prediction"`` recovers ``x0 = x - s * output``). That is exactly the
world model's convention: latents and output pass through unchanged.

Per-frame noise levels: Wan accepts one timestep per token (``timestep (B, L)``, the
Wan 2.2 TI2V convention for a clean first frame), so memory frames are given at timestep 0
and every target frame at its own ``1000 s``. When every frame of every sample shares one
level, the per-sample path ``timestep (B,)`` is used, so the output is bit-identical to the
backbone's ordinary call.
"""

from __future__ import annotations

from diffusers import WanTransformer3DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.transformers.transformer_wan import WanAttention, WanAttnProcessor
from einops import rearrange
from torch import Tensor, nn

from worldmem.models.backbones.base import ADDED_LAYERS, BackboneWorldModel
from worldmem.models.backbones.lora import attention_projections

__all__ = ["WanWorldModel"]


class _MaskedRotary(tuple):
    """Wan's rotary tables ``(cos, sin)`` carrying the self-attention key mask along.

    Every block receives the rotary tables as an argument (also when it is recomputed under
    gradient checkpointing), so the mask travels with them to the attention processor.
    """

    key_mask: Tensor

    def __new__(cls, rotary: tuple[Tensor, Tensor], key_mask: Tensor):
        obj = super().__new__(cls, rotary)
        obj.key_mask = key_mask
        return obj


class _KeyMaskedWanAttnProcessor(WanAttnProcessor):
    """Wan's self-attention with the key mask the rotary tables carry (``_MaskedRotary``)."""

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None
    ):
        if attention_mask is None and encoder_hidden_states is None:
            attention_mask = getattr(rotary_emb, "key_mask", None)
        return super().__call__(
            attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb
        )


class WanWorldModel(BackboneWorldModel):
    """A pretrained ``WanTransformer3DModel`` (text-to-video) as a ``WorldModel``.

    backbone_config: the transformer's config; image_size: frame side in pixels;
    latent_downsample: the VAE's spatial factor; latent_channels: 2 x the VAE's latent
    channels (rgb | depth); max_frames: longest frame sequence; text_encoder_path: a local
    UMT5 folder (pipeline root or ``text_encoder/``) or None; text_max_tokens: 512 for Wan;
    lora_rank / lora_alpha: LoRA on every attention projection (0: none);
    gradient_checkpointing: recompute each block in backward; weight_dtype: the precision the
    backbone was loaded in (``from_pretrained`` restores it); backbone: an already loaded
    transformer (not saved in the config; ``from_backbone`` passes it).
    """

    _keep_in_fp32_modules = [*WanTransformer3DModel._keep_in_fp32_modules, *ADDED_LAYERS]
    backbone_class = WanTransformer3DModel

    @register_to_config
    def __init__(
        self,
        backbone_config: dict,
        image_size: int = 480,
        latent_downsample: int = 8,
        latent_channels: int = 32,
        max_frames: int = 16,
        text_encoder_path: str | None = None,
        text_max_tokens: int = 512,
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

    def _backbone_geometry(self) -> tuple[int, int, int, int]:
        cfg = self.backbone.config
        p_t, p_h, p_w = cfg.patch_size
        if p_t != 1 or p_h != p_w:
            raise ValueError(
                f"WanWorldModel: want patch_size (1, p, p) (one latent frame per token), "
                f"got {tuple(cfg.patch_size)}"
            )
        if cfg.image_dim is not None or cfg.added_kv_proj_dim is not None:
            raise ValueError("WanWorldModel: image-to-video Wan checkpoints are not supported")
        if cfg.in_channels != cfg.out_channels:
            raise ValueError(
                f"WanWorldModel: want a text-to-video checkpoint (in_channels == out_channels), "
                f"got {cfg.in_channels} in, {cfg.out_channels} out"
            )
        width = cfg.num_attention_heads * cfg.attention_head_dim
        return p_h, cfg.in_channels, width, cfg.text_dim

    def _text_padding(self) -> str:
        return "zeros"

    def _lora_targets(self) -> list[str]:
        return attention_projections(self.backbone, (WanAttention,))

    def _register_hooks(self) -> None:
        bb = self.backbone
        bb.patch_embedding.register_forward_hook(self._add_extra_tokens)
        bb.rope.register_forward_hook(self._attach_key_mask)
        bb.proj_out.register_forward_pre_hook(self._capture_features)
        for block in bb.blocks:
            block.attn1.set_processor(_KeyMaskedWanAttnProcessor())

    def _add_extra_tokens(self, module: nn.Module, args: tuple, out: Tensor) -> Tensor | None:
        # out: patch embedding (B, D, F, h', w'); tokens are flattened in (F, h', w') order
        if self._pass is None:
            return None
        extra = rearrange(self._pass.extra, "b f (y x) d -> b d f y x", y=out.shape[-2])
        return out + extra.to(out.dtype)

    def _attach_key_mask(self, module: nn.Module, args: tuple, out: tuple) -> tuple | None:
        if self._pass is None or self._pass.key_mask is None:
            return None
        return _MaskedRotary(out, self._pass.key_mask)

    def _capture_features(self, module: nn.Module, args: tuple) -> None:
        if self._pass is not None:
            self._pass.features = args[0]  # (B, F n, D): normalised, modulated last states

    def _native_inputs(self, seq: dict) -> tuple[Tensor, Tensor]:
        c = self.rgb_latent_channels
        sigma = seq["sigma"].float()  # (B, F)
        t = sigma * 1000.0
        if bool((sigma == sigma[:, :1]).all()):
            timesteps = t[:, 0]  # (B,): one level for the whole sample
        else:
            timesteps = t.repeat_interleave(self.tokens_per_frame, 1)  # (B, F n)
        return seq["x"][:, :, :c], timesteps

    def _backbone_pass(
        self, latents: Tensor, timesteps: Tensor, text_states: Tensor, key_valid: Tensor | None
    ) -> Tensor:
        bb = self.backbone
        dtype = bb.patch_embedding.weight.dtype
        if key_valid is not None:
            keys = key_valid.repeat_interleave(self.tokens_per_frame, 1)  # (B, F n)
            self._pass.key_mask = keys[:, None, None, :]
        out = bb(
            hidden_states=rearrange(latents, "b f c h w -> b c f h w").to(dtype),
            timestep=timesteps,
            encoder_hidden_states=text_states.to(dtype),
            return_dict=False,
        )[0]
        return rearrange(out, "b c f h w -> b f c h w")

    def _to_velocity(self, pred: Tensor, latents: Tensor, sigma: Tensor) -> Tensor:
        return pred  # Wan already predicts noise - x0
