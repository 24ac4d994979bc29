"""Neural network modules: the model interface, the video DiT, its embeddings, text encoders
and latent codecs."""

from worldmem.models.codec import IdentityCodec, VaeCodec, build_codec
from worldmem.models.dit import KVCache, WorldDiT, WorldDiTOutput
from worldmem.models.interface import ROLES, ModelFrames, WorldModel, WorldModelOutput
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
    "WorldModel",
    "WorldModelOutput",
    "build_codec",
]
