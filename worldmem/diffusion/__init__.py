"""Flow-matching training objective and the few-step sampler."""

from worldmem.diffusion.flow import (
    DROP_KEYS,
    FlowInputs,
    FlowMatching,
    drop_memories,
    encode_frames,
)
from worldmem.diffusion.sampler import WorldSampler

__all__ = [
    "DROP_KEYS",
    "FlowInputs",
    "FlowMatching",
    "WorldSampler",
    "drop_memories",
    "encode_frames",
]
