"""Procedural 3D worlds, rendered by vectorised ray casting, with revisiting camera paths.

A world is one closed axis-aligned enclosure (the room, the corridor, or the plaza with its
building facades and a sky ceiling) plus obstacles inside it: axis-aligned boxes (pillars,
crates, tables, doors, paintings, kiosks), vertical capped cylinders (pillars, tree trunks,
fountains, lamp posts) and spheres. Every ray meets the enclosure, so every pixel gets a finite
depth. Rendering intersects all pixels of a chunk of frames with all primitives at once
(analytic ray-primitive tests), textures are procedural functions of the world-space hit point
(bricks, checkers, stripes, value noise, wood grain, tiles, windows, sky), box-filtered by the
pixel footprint so distant patterns do not alias, and shading is Lambert with a key light that
casts shadows from the obstacles (the enclosure casts none), a fill light and ambient.

Conventions are those of ``worldmem.geometry``: OpenCV cameras (x right, y down, z forward),
the world y axis points DOWN. The floor is the plane y = +``EYE_HEIGHT_M`` and cameras walk at
y = 0, so "up" is -y. Depth is z-depth in metres. Everything is deterministic per seed.

``make_world(seed, kind)`` builds a world, ``make_trajectory(world, kind, num_frames, seed)``
a camera path that stays in free space (and, for every kind, comes back to where it began),
``generate_episode(seed, num_frames, ...)`` both, rendered.

Modules (each depends only on those above it):

- ``textures``: the named colours (``PALETTE``), ``Material`` and the procedural textures.
- ``raycast``: obstacle tables, frustum culling and the analytic ray-primitive tests.
- ``world``: ``SceneObject`` and ``World`` (free-space tests, shading, ``render``).
- ``captions``: the words a world's caption is made of.
- ``layouts``: ``make_world``: enclosure, materials and objects per world kind.
- ``trajectories``: ``make_trajectory``: the revisiting camera paths (their shapes from
  ``worldmem.geometry.trajectory.revisit_paths``), and ``free_start_camera``.
- ``episodes``: ``generate_episode``: a world and a trajectory, rendered.
"""

from worldmem.data.synthetic.episodes import SyntheticEpisode, generate_episode
from worldmem.data.synthetic.layouts import EYE_HEIGHT_M, WORLD_KINDS, make_world
from worldmem.data.synthetic.textures import PALETTE, TEXTURES, Material
from worldmem.data.synthetic.trajectories import (
    CLEARANCE_M,
    LOOK_AHEAD_M,
    MAX_SPEED_M,
    MAX_TURN_DEG,
    TRAJECTORY_KINDS,
    free_start_camera,
    make_trajectory,
)
from worldmem.data.synthetic.world import RAYS_PER_CHUNK, SceneObject, World

__all__ = [
    "WORLD_KINDS",
    "TRAJECTORY_KINDS",
    "TEXTURES",
    "PALETTE",
    "EYE_HEIGHT_M",
    "CLEARANCE_M",
    "MAX_SPEED_M",
    "LOOK_AHEAD_M",
    "MAX_TURN_DEG",
    "RAYS_PER_CHUNK",
    "Material",
    "SceneObject",
    "World",
    "SyntheticEpisode",
    "make_world",
    "make_trajectory",
    "free_start_camera",
    "generate_episode",
]
