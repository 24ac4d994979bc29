"""The three memories of the world model.

* ``WorkingMemory``: the last few frames (a sliding window).
* ``EpisodicMemory``: a bounded set of keyframes, retrieved by frustum coverage.
* ``SpatialMemory``: a bounded, voxel-fused point cloud, rendered at the target cameras.
"""

from worldmem.memory.episodic import EpisodicMemory, Keyframe
from worldmem.memory.render import MemoryRender
from worldmem.memory.spatial import SpatialMemory
from worldmem.memory.working import WorkingMemory

__all__ = ["SpatialMemory", "EpisodicMemory", "WorkingMemory", "MemoryRender", "Keyframe"]
