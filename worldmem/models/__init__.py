"""Neural network modules: the video DiT, its embeddings, text encoders and latent codecs."""

from worldmem.models.codec import IdentityCodec, VaeCodec, build_codec
from worldmem.models.dit import ROLES, KVCache, ModelFrames, WorldDiT, WorldDiTOutput
from worldmem.models.text import ByteTextEncoder, HFTextEncoder, TextStates

__all__ = [
    "ROLES",
    "ByteTextEncoder",
    "HFTextEncoder",
    "IdentityCodec",
    "KVCache",
    "ModelFrames",
    "TextStates",
    "VaeCodec",
    "WorldDiT",
    "WorldDiTOutput",
    "build_codec",
]
