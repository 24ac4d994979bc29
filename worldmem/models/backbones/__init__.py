"""Pretrained diffusers video transformers (Wan, CogVideoX) adapted as the world model.

See ``base`` for how the world model's inputs reach a backbone and docs/backbones.md for the
fine-tuning guide.
"""

from worldmem.models.backbones.base import BackboneContext, BackboneWorldModel, resolve_component
from worldmem.models.backbones.codec import VIDEO_VAES, VideoVaeCodec
from worldmem.models.backbones.cogvideox import COGVIDEOX_5B_NOISE_SCHEDULE, CogVideoXWorldModel
from worldmem.models.backbones.factory import (
    BACKBONES,
    build_backbone_codec,
    build_world_model,
)
from worldmem.models.backbones.lora import TRAINABLE_MODES
from worldmem.models.backbones.text import T5TextEncoder
from worldmem.models.backbones.wan import WanWorldModel
from worldmem.models.loading import load_world_model

__all__ = [
    "BACKBONES",
    "COGVIDEOX_5B_NOISE_SCHEDULE",
    "TRAINABLE_MODES",
    "VIDEO_VAES",
    "BackboneContext",
    "BackboneWorldModel",
    "CogVideoXWorldModel",
    "T5TextEncoder",
    "VideoVaeCodec",
    "WanWorldModel",
    "build_backbone_codec",
    "build_world_model",
    "load_world_model",
    "resolve_component",
]
