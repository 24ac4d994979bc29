"""The room the observed frames imply, completed where nothing was seen (a Manhattan box).

Indoor scenes and streets are mostly a floor, walls at right angles and a ceiling (or a
sky). Where the memory holds nothing, a view turned away from everything observed still
shows the same room: the floor below the horizon until it meets a wall, the ceiling above,
the walls between. ``BoxLayout`` is that room, fitted to the observed frames (rgb, depth,
camera) without learning:

- the walls' axes are the observed walls' (``texture.observed_surfaces``, as the laid texture's);
- the floor is the lowest plane the observed points facing up form, the ceiling the highest
  of those facing down (``texture.horizontal_plane``: of the planes holding at least a fifth
  of them; a crate's or a table's top faces up too, and may show more than the floor round
  it); the ceiling is never below the walls seen (a lamp's underside is not the sky), and one
  not seen is ``DEFAULT_EYE_HEIGHT_M`` above the cameras unless walls were seen rising higher;
- each of the four walls (+x, -x, +z, -z in those axes) stands at the ``EXTENT_QUANTILE`` of
  how far the observed points reach that way from the first frame's camera. A side nothing
  was seen towards mirrors the opposite side; with neither, it is ``DEFAULT_EXTENT_M`` away.
  A camera is always inside its room: a wall is moved out to at least ``CAMERA_MARGIN_M``
  beyond the camera that looks at it (a wall not seen ``UNSEEN_MARGIN_M``), the floor and the
  ceiling ``HEAD_ROOM_M``. Walls seen rising more than ``OPEN_RISE_M`` above the cameras (no
  room's do; a plaza's facades do) stand round an open space: there a wall not seen stands at
  least ``OPEN_EXTENT_M`` away and that far beyond any camera, so a walk into the open does
  not meet a guessed wall. A wall is ``seen`` when the observed frames show points of wall
  facing back along its axis (points merely reaching that way are the floor or a side wall
  running on), away from any outline (where normals mix two surfaces) and near where the
  points reach that way (within ``SEEN_AT_REACH_REL``: a wall hides what is behind it, a
  pillar's face does not);
- each surface takes the mean colour of the observed pixels of its kind: the floor and the
  ceiling those on their plane (not a crate's top), a wall the observed frames saw its own; a
  wall not seen, halfway (``UNSEEN_WALL_HUE``) between the seen walls' mean and a grey as
  bright as halfway (``UNSEEN_WALL_MIX``) between them and all that was seen. Rooms' walls
  often differ in colour, and a wrong hue costs more than a greyer one.

The colour of walls not seen is measured by the box fill it gives along the walk protocol's
walks (``benchmarks/room_guess.py``): over the seen walls' mean, +0.09 dB on 40 training
worlds (higher in 38) and +0.08 on 43 held-out ones (higher in 41), but -0.06 on the headline
protocol's two worlds, whose walls share one dark palette. The ceiling and the open space are
measured with the model on held-out plazas (``benchmarks/plaza_walks.py``).

``render`` casts each pixel's ray into the box: colour, z-depth and kind per pixel, the same
for the same point of the room from any camera. It is what a view turned away tends to far
from anything observed, in colour and in depth; objects inside the room it does not know.
``texture_points`` says where a generated frame's laid texture is read: on the box's walls
(a guessed depth's bulges would bend their pattern).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from worldmem.geometry import unproject_depth
from worldmem.memory.texture import (
    CEILING,
    FLOOR,
    PLANE_TOL_REL,
    WALL,
    edges,
    horizontal_plane,
    observed_surfaces,
    turn_about_y,
)

__all__ = [
    "BoxLayout",
    "CAMERA_MARGIN_M",
    "DEFAULT_EXTENT_M",
    "EXTENT_QUANTILE",
    "HEAD_ROOM_M",
    "OUTLINE_STEP",
    "SIDES",
    "UNSEEN_MARGIN_M",
]

EXTENT_QUANTILE = 0.95  # a wall stands where this share of the points seen that way are nearer
DEFAULT_EXTENT_M = 3.0  # a wall not seen, with nothing seen towards it or opposite it
# a wall not seen: UNSEEN_WALL_HUE of the seen walls' mean colour, the rest a grey as bright as
# UNSEEN_WALL_MIX of them and the rest of all that was seen
UNSEEN_WALL_HUE = 0.5
UNSEEN_WALL_MIX = 0.5
CAMERA_MARGIN_M = 1.0  # a wall is at least this far beyond any camera that renders the box
# ... and a wall not seen this far. 2 or 3 m put the box nearer the true depth on training
# worlds' walks on average (benchmarks/room_guess.py --margins), but farther than the near
# walls of a corridor or of the drift circuit: with the model, self-recall and the drift
# circuit fell more than the walks gained (docs/results/history.md)
UNSEEN_MARGIN_M = 1.0
WALL_TOP_QUANTILE = 0.01  # the walls seen rise this high: all but this share of them lower
# walls seen rising more than this above the cameras stand round an open space (no room's are
# this tall; a plaza's facades are): its walls not seen stand at least OPEN_EXTENT_M away, and
# that far beyond any camera
OPEN_RISE_M = 3.0
OPEN_EXTENT_M = 10.0
HEAD_ROOM_M = 0.1  # the floor and the ceiling are at least this far below and above a camera
DEFAULT_EYE_HEIGHT_M = 1.6  # an unseen floor is this far below the cameras, an unseen ceiling above
MIN_PIXELS = 8  # fewer observed pixels of a kind (or reaching a side) than this: not seen
SEEN_AT_REACH_REL = 0.1  # a wall's facing points lie within this of the side's reach
OUTLINE_STEP = 0.2  # neighbours' depths differing by more than this (in log depth): an outline
MIN_REACH_M = 0.05  # a point nearer than this to the camera along a side does not reach it
SIDES = ((0, 1), (0, -1), (2, 1), (2, -1))  # (axis, sign) of the walls at +x, -x, +z, -z


@dataclass
class BoxLayout:
    """A box room in the walls' axes (world axes turned by ``-yaw`` about y; y down, as the
    cameras'): floor and ceiling heights ``floor_y`` > ``ceiling_y``, the walls at
    ``anchor[axis] + sign * extent[(axis, sign)]``, and a colour ``(3,)`` for the floor, the
    ceiling and each wall."""

    yaw: float
    anchor: Tensor  # (3,) the first observed camera's position, turned
    floor_y: float
    ceiling_y: float
    extent: dict[tuple[int, int], float]
    floor_rgb: Tensor
    ceiling_rgb: Tensor
    wall_rgb: dict[tuple[int, int], Tensor]
    # whether the observed frames showed each wall (an unseen wall's place and colour are guesses)
    seen: dict[tuple[int, int], bool]
    # and the floor and the ceiling (one not seen stands DEFAULT_EYE_HEIGHT_M from the cameras)
    floor_seen: bool
    ceiling_seen: bool
    # how far beyond a camera that renders the box a wall not seen stands at least
    unseen_margin: float = UNSEEN_MARGIN_M
    # the last cast, (the box's planes and size, c2w, K, its result): a chunk's render,
    # seen_depth and texture_points cast the same cameras into the same box
    _last_cast: tuple | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_frames(cls, frames: list[tuple[Tensor, Tensor, Tensor, Tensor]]) -> BoxLayout | None:
        """Observed frames (c2w ``(4, 4)``, K ``(3, 3)``, rgb ``(3, H, W)``, depth ``(H, W)``
        metres with 0 where unknown), as ``SpatialMemory.observed_frames`` gives them -> their
        box, or None without any frame with depth."""
        frames = [f for f in frames if bool((f[3] > 0).any())]
        if not frames:
            return None
        surfaces, yaw = observed_surfaces(frames)  # in the walls' axes
        known = torch.cat([(f[3] > 0).flatten() for f in frames])
        pts = torch.cat([p.reshape(-1, 3) for p, _, _ in surfaces])[known]
        kinds = torch.cat([k.flatten() for _, k, _ in surfaces])[known]
        n = torch.cat([n.reshape(-1, 3) for _, _, n in surfaces])[known]
        # an outline's normals point anywhere: no evidence of a wall's facing
        clean = torch.cat([~edges(f[3], None, OUTLINE_STEP).flatten() for f in frames])[known]
        rgbs = torch.cat([f[2].double().reshape(3, -1).T for f in frames])[known]
        depths = torch.cat([f[3].double().flatten() for f in frames])[known]
        cams = turn_about_y(torch.stack([f[0][:3, 3].double() for f in frames]), -yaw)
        anchor = cams[0]
        eye_y = float(cams[:, 1].mean())

        def shown(kind: int) -> bool:
            return int((kinds == kind).sum()) >= MIN_PIXELS

        def plane(kind: int, fallback: float) -> float:
            return horizontal_plane(pts[kinds == kind, 1], kind) if shown(kind) else fallback

        floor_y = plane(FLOOR, eye_y + DEFAULT_EYE_HEIGHT_M)
        ceiling_plane = plane(CEILING, eye_y - DEFAULT_EYE_HEIGHT_M)
        ceiling_y = min(ceiling_plane, eye_y - HEAD_ROOM_M)
        walls = kinds == WALL
        wall_top = eye_y  # the walls seen rise to here
        if int(walls.sum()) >= MIN_PIXELS:
            wall_top = float(torch.quantile(pts[walls, 1], WALL_TOP_QUANTILE))
        ceiling_y = min(ceiling_y, wall_top)  # a ceiling is never below the walls seen
        open_space = eye_y - wall_top > OPEN_RISE_M
        offsets = pts - anchor
        every = rgbs.mean(0)
        facing_x = n[:, 0].abs() >= n[:, 2].abs()  # a wall point at +x faces -x

        def mean(m: Tensor, fallback: Tensor) -> Tensor:
            return rgbs[m].mean(0) if int(m.sum()) >= MIN_PIXELS else fallback

        def plane_mean(kind: int, y: float) -> Tensor:
            # the floor's or ceiling's own points, on its plane: a table's or a box's top faces
            # up too, and is not the floor
            on = (kinds == kind) & clean & ((pts[:, 1] - y).abs() <= PLANE_TOL_REL * depths)
            return mean(on, mean(kinds == kind, every))

        # a wall not seen: the seen walls' colour drawn towards a grey
        seen_walls = mean(walls, every)
        grey = (UNSEEN_WALL_MIX * seen_walls + (1 - UNSEEN_WALL_MIX) * every).mean()
        unseen_rgb = UNSEEN_WALL_HUE * seen_walls + (1 - UNSEEN_WALL_HUE) * grey
        reach, wall_rgb, seen = {}, {}, {}
        for axis, sign in SIDES:
            along = offsets[:, axis] * sign
            far = along > MIN_REACH_M
            big = int(far.sum()) >= MIN_PIXELS
            r = float(torch.quantile(along[far], EXTENT_QUANTILE)) if big else None
            reach[(axis, sign)] = r
            # the side's own wall: points of wall facing back along the axis, where the points
            # reach that way (facing points well before that are an object's, a pillar's face)
            at_reach = along >= (1 - SEEN_AT_REACH_REL) * r if big else far
            wall = walls & (facing_x if axis == 0 else ~facing_x) & far & clean & at_reach
            seen[(axis, sign)] = int(wall.sum()) >= MIN_PIXELS
            own = mean(wall, unseen_rgb) if seen[(axis, sign)] else unseen_rgb
            wall_rgb[(axis, sign)] = own.float()
        extent = {
            (axis, sign): reach[(axis, sign)] or reach[(axis, -sign)] or DEFAULT_EXTENT_M
            for axis, sign in SIDES
        }
        if open_space:  # the walls not seen are far: a plaza's other facades
            for side in SIDES:
                if not seen[side]:
                    extent[side] = max(extent[side], OPEN_EXTENT_M)
        return cls(
            yaw=yaw,
            anchor=anchor.float(),
            floor_y=floor_y,
            ceiling_y=ceiling_y,
            extent=extent,
            floor_rgb=plane_mean(FLOOR, floor_y).float(),
            ceiling_rgb=plane_mean(CEILING, ceiling_plane).float(),
            wall_rgb=wall_rgb,
            seen=seen,
            floor_seen=shown(FLOOR),
            ceiling_seen=shown(CEILING),
            unseen_margin=OPEN_EXTENT_M if open_space else UNSEEN_MARGIN_M,
        )

    def render(self, c2w: Tensor, K: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
        """The box seen from cameras c2w ``(N, 4, 4)``, K ``(N, 3, 3)`` at ``size`` px ->
        rgb ``(N, 3, size, size)``, z-depth ``(N, 1, size, size)`` metres, kind ``(N, size,
        size)`` long (``CEILING`` / ``WALL`` / ``FLOOR``). Each camera's walls are moved out to
        at least ``CAMERA_MARGIN_M`` beyond it, its floor and ceiling ``HEAD_ROOM_M``."""
        depth, kind, side = self._cast(c2w, K, size)
        rgb = torch.zeros((*kind.shape, 3), dtype=torch.float32, device=c2w.device)
        rgb[kind == FLOOR] = self.floor_rgb.to(c2w.device)
        rgb[kind == CEILING] = self.ceiling_rgb.to(c2w.device)
        for i, s in enumerate(SIDES):
            rgb[(kind == WALL) & (side == i)] = self.wall_rgb[s].to(c2w.device)
        return rgb.permute(0, 3, 1, 2), depth.float()[:, None], kind

    def seen_depth(self, c2w: Tensor, K: Tensor, size: int) -> tuple[Tensor, Tensor]:
        """The box's z-depth ``(N, 1, size, size)`` from cameras c2w ``(N, 4, 4)``, K ``(N, 3,
        3)``, and where it shows a surface the observed frames showed ``(N, 1, size, size)``
        bool: the floor or the ceiling seen, or a wall seen. There the depth continues a
        measured plane; on a wall not seen (where the points stopped, or the opposite side
        mirrored) it is a guess."""
        depth, kind, side = self._cast(c2w, K, size)
        seen = ((kind == FLOOR) & self.floor_seen) | ((kind == CEILING) & self.ceiling_seen)
        for i, s in enumerate(SIDES):
            if self.seen[s]:
                seen |= (kind == WALL) & (side == i)
        return depth.float()[:, None], seen[:, None]

    def texture_points(self, points: Tensor, c2w: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
        """Frames' world points ``(N, H, W, 3)`` (their depth unprojected) seen from cameras
        c2w ``(N, 4, 4)``, K ``(N, 3, 3)`` -> where each pixel takes its laid texture from
        (``texture.ExemplarTexture.band``) ``(N, H, W, 3)`` and the kind of surface the box
        shows there ``(N, H, W)``: where the box shows a wall, the point where the pixel's ray
        meets that wall (a guessed depth's bulges would bend the wall's pattern), elsewhere
        its own point."""
        depth, kind, _ = self._cast(c2w, K, points.shape[2])
        wall = kind == WALL
        if not bool(wall.any()):
            return points, kind
        on_box = unproject_depth(depth.to(points.dtype), c2w.to(points.dtype), K.to(points.dtype))
        return torch.where(wall[..., None], on_box, points), kind

    def _cast(self, c2w: Tensor, K: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
        """Each pixel's ray cast into the box -> z-depth ``(N, size, size)`` float64, kind and
        the index in ``SIDES`` of the wall it meets (0 off the walls) ``(N, size, size)``; the
        same box and cameras as the last call give back its result (not to be written to)."""
        planes = (self.yaw, self.floor_y, self.ceiling_y, tuple(self.anchor.tolist()))
        walls = (self.unseen_margin, tuple(sorted(self.seen.items())))  # each wall's margin
        planes = (*planes, *walls, tuple(sorted(self.extent.items())), size)
        last = self._last_cast
        if (
            last is not None
            and last[0] == planes
            and last[1].shape == c2w.shape
            and torch.equal(last[1], c2w)
            and torch.equal(last[2], K)
        ):
            return last[3]
        result = self._cast_rays(c2w, K, size)
        self._last_cast = (planes, c2w.clone(), K.clone(), result)
        return result

    def _cast_rays(self, c2w: Tensor, K: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
        dev = c2w.device
        N = c2w.shape[0]
        centres = torch.arange(size, device=dev, dtype=torch.float64) + 0.5
        Kd = K.double()
        dx = (centres[None, :] - Kd[:, 0, 2, None]) / Kd[:, 0, 0, None]  # (N, W)
        dy = (centres[None, :] - Kd[:, 1, 2, None]) / Kd[:, 1, 1, None]  # (N, H)
        one = torch.ones(1, 1, 1, dtype=torch.float64, device=dev)
        # (N, H, W, 3) in camera axes with z = 1: a distance along it is the z-depth
        ray = torch.stack(torch.broadcast_tensors(dx[:, None, :], dy[:, :, None], one), -1)
        R = c2w[:, :3, :3].double()
        ray = turn_about_y(torch.einsum("nij,nhwj->nhwi", R, ray), -self.yaw)
        origin = turn_about_y(c2w[:, :3, 3].double(), -self.yaw)  # (N, 3)
        anchor = self.anchor.double().to(dev)
        depth = torch.full((N, size, size), float("inf"), dtype=torch.float64, device=dev)
        kind = torch.full((N, size, size), WALL, dtype=torch.long, device=dev)
        side = torch.zeros((N, size, size), dtype=torch.long, device=dev)

        def meet(axis: int, at: Tensor, k: int, s: int) -> None:
            d = ray[..., axis]
            safe = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
            t = (at[:, None, None] - origin[:, None, None, axis]) / safe
            nearer = (t > 0) & (t < depth)
            depth.copy_(torch.where(nearer, t, depth))
            kind.copy_(torch.where(nearer, k, kind))
            side.copy_(torch.where(nearer, s, side))

        # a camera that rose through the ceiling or sank through the floor has it beyond it
        y = origin[:, 1]
        meet(1, (y + HEAD_ROOM_M).clamp(min=self.floor_y), FLOOR, 0)
        meet(1, (y - HEAD_ROOM_M).clamp(max=self.ceiling_y), CEILING, 0)
        for i, (axis, sign) in enumerate(SIDES):
            margin = CAMERA_MARGIN_M if self.seen[(axis, sign)] else self.unseen_margin
            beyond = sign * (origin[:, axis] - anchor[axis]) + margin
            extent = beyond.clamp(min=self.extent[(axis, sign)])
            meet(axis, anchor[axis] + sign * extent, WALL, i)
        return depth, kind, side
