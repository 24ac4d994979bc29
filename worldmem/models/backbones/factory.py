"""Build or load the world model and its codec: the from-scratch ``WorldDiT`` or a backbone.

``build_world_model(model_cfg, backbone_cfg)`` is what training calls; a saved folder is
rebuilt by ``worldmem.models.loading.load_world_model``, which imports this module only for a
backbone's folder.
"""

from __future__ import annotations

from torch import nn

from worldmem.config import BackboneConfig, ModelConfig
from worldmem.models.backbones.base import WEIGHT_DTYPES, BackboneWorldModel
from worldmem.models.backbones.codec import VideoVaeCodec
from worldmem.models.backbones.cogvideox import CogVideoXWorldModel
from worldmem.models.backbones.wan import WanWorldModel
from worldmem.models.codec import build_codec
from worldmem.models.dit import WorldDiT

__all__ = ["BACKBONES", "build_world_model", "build_backbone_codec"]

BACKBONES: dict[str, type[BackboneWorldModel]] = {
    "wan": WanWorldModel,
    "cogvideox": CogVideoXWorldModel,
}


def build_backbone_codec(model_cfg: ModelConfig) -> VideoVaeCodec:
    """The backbone's video VAE from ``model_cfg.codec_path``, checked against the model's
    channel and downsample fields."""
    if model_cfg.codec != "vae" or not model_cfg.codec_path:
        raise ValueError(
            "a backbone needs its own VAE: set model.codec=vae and model.codec_path to the VAE "
            f"folder (got codec={model_cfg.codec!r}, codec_path={model_cfg.codec_path!r})"
        )
    if model_cfg.memory_provenance:
        raise ValueError(
            "model.memory_provenance is a WorldDiT option: a backbone takes the memory render "
            "without the observed channel (set it to false)"
        )
    codec = VideoVaeCodec(model_cfg.codec_path, model_cfg.depth_near_m)
    if (
        codec.channels != model_cfg.latent_channels
        or codec.downsample != model_cfg.latent_downsample
    ):
        raise ValueError(
            f"ModelConfig: the VAE at {model_cfg.codec_path} gives {codec.channels} channels at "
            f"downsample {codec.downsample}, but latent_channels={model_cfg.latent_channels}, "
            f"latent_downsample={model_cfg.latent_downsample}"
        )
    return codec


def _backbone_settings(model_cfg: ModelConfig) -> dict:
    if model_cfg.text_encoder != "hf":
        raise ValueError(
            "a backbone reads T5 states: set model.text_encoder=hf and model.text_encoder_path "
            "to its text encoder folder (or null for no text)"
        )
    return dict(
        image_size=model_cfg.image_size,
        latent_downsample=model_cfg.latent_downsample,
        latent_channels=model_cfg.latent_channels,
        max_frames=model_cfg.max_frames,
        text_encoder_path=model_cfg.text_encoder_path,
        text_max_tokens=model_cfg.text_max_tokens,
        gradient_checkpointing=model_cfg.gradient_checkpointing,
    )


def build_world_model(
    model_cfg: ModelConfig, backbone_cfg: BackboneConfig | None = None
) -> tuple[nn.Module, nn.Module]:
    """(model, codec) for training: a fresh ``WorldDiT`` when ``backbone_cfg.kind`` is "none",
    else the pretrained backbone at ``backbone_cfg.path`` wrapped as the world model, with
    ``backbone_cfg.trainable`` applied (the other parameters frozen)."""
    if backbone_cfg is None or backbone_cfg.kind == "none":
        return WorldDiT.from_model_config(model_cfg), build_codec(model_cfg)
    if backbone_cfg.kind not in BACKBONES:
        raise ValueError(
            f"backbone.kind '{backbone_cfg.kind}' is not one of none, {', '.join(BACKBONES)}"
        )
    if not backbone_cfg.path:
        raise ValueError(f"backbone.kind={backbone_cfg.kind} needs backbone.path (a local folder)")
    codec = build_backbone_codec(model_cfg)
    cls = BACKBONES[backbone_cfg.kind]
    p = model_cfg.patch_size
    full = backbone_cfg.trainable == "full"  # everything trains: float32 master weights
    model = cls.from_backbone(
        backbone_cfg.path,
        torch_dtype=WEIGHT_DTYPES["float32" if full else backbone_cfg.weight_dtype],
        lora_rank=backbone_cfg.lora_rank if backbone_cfg.trainable == "lora" else 0,
        lora_alpha=backbone_cfg.lora_alpha,
        **_backbone_settings(model_cfg),
    )
    if model.patch != p:
        raise ValueError(
            f"ModelConfig.patch_size {p} differs from the backbone's patch size {model.patch}"
        )
    model.set_trainable(backbone_cfg.trainable)
    return model, codec
