"""World layouts: the enclosure, its materials and the objects placed in it, per world kind."""

from __future__ import annotations

import math

import numpy as np

from worldmem.data.synthetic.captions import _world_caption
from worldmem.data.synthetic.textures import PALETTE, Material
from worldmem.data.synthetic.world import SceneObject, World

WORLD_KINDS = ("room", "corridor", "plaza")

EYE_HEIGHT_M = 1.6  # camera height above the floor; the floor is the plane y = +EYE_HEIGHT_M

_WALL_COLOURS = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "beige")
_OBJECT_COLOURS = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "white")
_FLOOR_COLOURS = ("grey", "beige", "brown", "white", "navy", "olive", "maroon")
_CEILING_COLOURS = ("white", "beige", "grey")


def _pick(rng: np.random.Generator, options, exclude=()) -> str:
    left = [o for o in options if o not in exclude] or list(options)
    return left[int(rng.integers(len(left)))]


def _material(rng: np.random.Generator, texture: str, colour: str, colour2: str | None = None):
    """A Material with a period that suits its texture."""
    scales = {
        "plain": (1.0, 1.0),
        "brick": (0.25, 0.4),
        "checkered": (0.4, 0.9),
        "striped": (0.25, 0.6),
        "mottled": (0.3, 0.8),
        "wooden": (0.15, 0.3),
        "tiled": (0.3, 0.6),
        "windowed": (3.0, 3.6),
        "sky": (6.0, 10.0),
    }
    lo, hi = scales[texture]
    if colour2 is None:
        second = {
            "brick": "white" if colour != "white" else "grey",
            "tiled": "white" if colour in ("black", "navy", "maroon", "brown") else "black",
            "checkered": "white" if colour != "white" else "black",
            "windowed": "navy" if colour != "navy" else "black",
            "wooden": "brown",
        }
        colour2 = second.get(texture) or _pick(rng, PALETTE, exclude=(colour,))
    return Material(
        texture, colour, colour2, float(rng.uniform(lo, hi)), variant=int(rng.integers(2))
    )


class _Placer:
    """Rejection sampler of object footprints (discs in xz) that keep apart and off walls."""

    def __init__(self, rng, lo, hi, margin_m: float, gap_m: float):
        self.rng, self.lo, self.hi = rng, lo, hi
        self.margin, self.gap = margin_m, gap_m
        self.placed: list[tuple[float, float, float]] = []

    def place(self, radius: float, keep_clear=None, tries: int = 60):
        for _ in range(tries):
            x = self.rng.uniform(
                self.lo[0] + self.margin + radius, self.hi[0] - self.margin - radius
            )
            z = self.rng.uniform(
                self.lo[2] + self.margin + radius, self.hi[2] - self.margin - radius
            )
            if keep_clear is not None and keep_clear(x, z, radius):
                continue
            if all(math.hypot(x - a, z - b) > radius + r + self.gap for a, b, r in self.placed):
                self.placed.append((x, z, radius))
                return x, z
        return None


def _pillar(rng, x, z, top, bottom, colour, material, round_: bool) -> SceneObject:
    r = float(rng.uniform(0.18, 0.32))
    if round_:
        return SceneObject(
            "pillar", colour, cylinders=[(x, z, r, top, bottom)], materials=[material]
        )
    return SceneObject(
        "pillar", colour, boxes=[(x - r, top, z - r, x + r, bottom, z + r)], materials=[material]
    )


def _floor_box(name, colour, material, x, z, w, dpt, h, floor) -> SceneObject:
    """A box standing on the floor (y = ``floor``, y points down), centred on (x, z), ``w`` wide
    (x), ``dpt`` deep (z) and ``h`` high."""
    return SceneObject(
        name,
        colour,
        boxes=[(x - w / 2, floor - h, z - dpt / 2, x + w / 2, floor, z + dpt / 2)],
        materials=[material],
    )


def _room_objects(rng, lo, hi, kind: str) -> list[SceneObject]:
    """Free-standing objects for rooms and corridors."""
    floor, ceil = hi[1], lo[1]
    objs: list[SceneObject] = []
    used: set[str] = set()
    if kind == "corridor":
        long_axis = 0 if hi[0] - lo[0] > hi[2] - lo[2] else 2
        placer = _Placer(rng, lo, hi, margin_m=0.0, gap_m=0.6)
    else:
        long_axis = None
        placer = _Placer(rng, lo, hi, margin_m=0.3, gap_m=0.9)

    def obj_colour():
        c = _pick(rng, _OBJECT_COLOURS, exclude=used)
        used.add(c)
        return c

    # pillars: one colour and shape per world
    n_pillars = int(rng.integers(0, 3)) if kind == "room" else int(rng.integers(2, 7))
    if n_pillars:
        pc = obj_colour()
        pm = _material(rng, _pick(rng, ("plain", "striped", "mottled", "tiled")), pc)
        round_ = bool(rng.integers(2))
        for i in range(n_pillars):
            if kind == "corridor":
                # along the side walls, alternating sides, leaving the middle free
                length = hi[long_axis] - lo[long_axis]
                along = lo[long_axis] + (i + 0.5 + rng.uniform(-0.2, 0.2)) * length / n_pillars
                other = 2 - long_axis
                side = (lo[other] + 0.45) if i % 2 == 0 else (hi[other] - 0.45)
                x, z = (along, side) if long_axis == 0 else (side, along)
                placer.placed.append((x, z, 0.35))
            else:
                spot = placer.place(0.35)
                if spot is None:
                    continue
                x, z = spot
            objs.append(_pillar(rng, x, z, ceil, floor, pc, pm, round_))

    def corridor_clear(x, z, r):
        if long_axis is None:
            return False
        other = 2 - long_axis
        centre = 0.5 * (lo[other] + hi[other])
        c = z if other == 2 else x
        return abs(c - centre) < r + 0.55  # keep a walking lane down the middle

    n_things = int(rng.integers(2, 5))
    for _ in range(n_things):
        what = _pick(rng, ("sphere", "crate", "table", "statue", "sphere"))
        colour = obj_colour()
        if what == "sphere":
            r = float(rng.uniform(0.25, 0.6))
            spot = placer.place(r, corridor_clear)
            if spot is None:
                continue
            tex = _pick(rng, ("plain", "striped", "checkered", "mottled"))
            cy = floor - r if rng.uniform() < 0.6 else floor - r - float(rng.uniform(0.5, 1.2))
            m = _material(rng, tex, colour)
            objs.append(
                SceneObject("sphere", colour, spheres=[(spot[0], cy, spot[1], r)], materials=[m])
            )
        elif what == "crate":
            h = float(rng.uniform(0.45, 1.0))
            spot = placer.place(h * 0.75, corridor_clear)
            if spot is None:
                continue
            x, z = spot
            m = _material(rng, _pick(rng, ("wooden", "plain", "striped")), colour)
            objs.append(_floor_box("crate", colour, m, x, z, h, h, h, floor))
        elif what == "table":
            w, dpt, h = float(rng.uniform(0.8, 1.6)), float(rng.uniform(0.6, 0.9)), 0.75
            spot = placer.place(0.5 * math.hypot(w, dpt), corridor_clear)
            if spot is None:
                continue
            x, z = spot
            if rng.integers(2):
                w, dpt = dpt, w
            m = _material(rng, _pick(rng, ("wooden", "plain", "checkered")), colour)
            objs.append(_floor_box("table", colour, m, x, z, w, dpt, h, floor))
        else:  # statue: a pedestal box with a sphere on top
            r = float(rng.uniform(0.2, 0.35))
            spot = placer.place(0.45, corridor_clear)
            if spot is None:
                continue
            x, z = spot
            ph = float(rng.uniform(0.9, 1.3))
            mp = _material(rng, "plain", "white" if colour != "white" else "grey")
            ms = _material(rng, _pick(rng, ("plain", "mottled", "striped")), colour)
            objs.append(
                SceneObject(
                    "statue",
                    colour,
                    boxes=[(x - 0.3, floor - ph, z - 0.3, x + 0.3, floor, z + 0.3)],
                    spheres=[(x, floor - ph - r, z, r)],
                    materials=[mp, ms],
                )
            )
    return objs


def _wall_decor(rng, lo, hi, name: str, count: int, colours) -> list[SceneObject]:
    """Thin panels on the walls (doors from the floor, paintings at eye height)."""
    floor = hi[1]
    objs = []
    walls = [(0, lo[0]), (0, hi[0]), (2, lo[2]), (2, hi[2])]
    for i in range(count):
        axis, pos = walls[int(rng.integers(4))]
        other = 2 - axis
        span = hi[other] - lo[other]
        if span < 2.0:
            continue
        w = 1.0 if name == "door" else float(rng.uniform(0.6, 1.2))
        c = float(rng.uniform(lo[other] + 0.5 + w / 2, hi[other] - 0.5 - w / 2))
        if name == "door":
            y0, y1 = floor - 2.1, floor
        else:
            ph = float(rng.uniform(0.5, 0.9))
            y0, y1 = -ph / 2 - 0.2, ph / 2 - 0.2
        t0, t1 = (pos, pos + 0.04) if pos == lo[axis] else (pos - 0.04, pos)
        colour = colours[i % len(colours)]
        tex = "wooden" if name == "door" else _pick(rng, ("striped", "checkered", "mottled"))
        m = _material(rng, tex, colour)
        if axis == 0:
            box = (t0, y0, c - w / 2, t1, y1, c + w / 2)
        else:
            box = (c - w / 2, y0, t0, c + w / 2, y1, t1)
        objs.append(SceneObject(name, colour, boxes=[box], materials=[m]))
    return objs


def _plaza_objects(rng, lo, hi) -> list[SceneObject]:
    floor = hi[1]
    placer = _Placer(rng, lo, hi, margin_m=2.0, gap_m=2.0)
    objs: list[SceneObject] = []
    trunk = _material(rng, "wooden", "brown")
    n_trees = int(rng.integers(2, 6))
    crown_colour = _pick(rng, ("green", "olive", "teal", "orange"))
    crown = _material(rng, "mottled", crown_colour, "green" if crown_colour != "green" else "olive")
    for _ in range(n_trees):
        spot = placer.place(1.4)
        if spot is None:
            continue
        x, z = spot
        h, r = float(rng.uniform(2.2, 3.2)), float(rng.uniform(1.0, 1.5))
        objs.append(
            SceneObject(
                "tree",
                crown_colour,
                cylinders=[(x, z, float(rng.uniform(0.14, 0.24)), floor - h - 0.5, floor)],
                spheres=[(x, floor - h - r * 0.6, z, r)],
                materials=[trunk, crown],
            )
        )
    if rng.uniform() < 0.7:
        spot = placer.place(2.0)
        if spot is not None:
            x, z = spot
            colour = _pick(rng, ("white", "grey", "beige", "blue"))
            r = float(rng.uniform(1.2, 1.9))
            basin = _material(rng, "tiled", colour)
            water = _material(rng, "mottled", "teal", "blue")
            objs.append(
                SceneObject(
                    "fountain",
                    colour,
                    cylinders=[
                        (x, z, r, floor - 0.5, floor),
                        (x, z, 0.25, floor - 1.6, floor - 0.5),
                    ],
                    spheres=[(x, floor - 1.85, z, 0.3)],
                    materials=[basin, _material(rng, "plain", colour), water],
                )
            )
    for _ in range(int(rng.integers(1, 4))):
        spot = placer.place(1.6)
        if spot is None:
            continue
        x, z = spot
        colour = _pick(rng, _OBJECT_COLOURS)
        w, dpt, h = (
            float(rng.uniform(1.6, 2.6)),
            float(rng.uniform(1.6, 2.6)),
            float(rng.uniform(2.2, 3.0)),
        )
        m = _material(rng, _pick(rng, ("striped", "plain", "brick")), colour)
        objs.append(_floor_box("kiosk", colour, m, x, z, w, dpt, h, floor))
    n_lamps = int(rng.integers(0, 5))
    lamp_colour = _pick(rng, ("black", "grey", "navy"))
    for _ in range(n_lamps):
        spot = placer.place(0.6)
        if spot is None:
            continue
        x, z = spot
        objs.append(
            SceneObject(
                "lamp post",
                lamp_colour,
                cylinders=[(x, z, 0.08, floor - 3.6, floor)],
                spheres=[(x, floor - 3.8, z, 0.22)],
                materials=[_material(rng, "plain", lamp_colour), _material(rng, "plain", "yellow")],
            )
        )
    return objs


def make_world(seed: int, kind: str | None = None) -> World:
    """A procedural world, deterministic in (seed, kind).

    kind: "room", "corridor", "plaza", or None to pick one from the seed.
    Returns a World whose ``caption`` names the wall colours and texture, the floor, and the
    counted objects, e.g. "a large room with red, blue, green and yellow brick walls, a grey
    tiled floor, a white ceiling, two blue pillars and a red sphere".
    """
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"make_world: seed must be an int, got {type(seed).__name__}")
    if kind is not None and kind not in WORLD_KINDS:
        raise ValueError(f"make_world: kind must be one of {WORLD_KINDS} or None, got {kind!r}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 17])
    if kind is None:
        kind = WORLD_KINDS[int(rng.integers(len(WORLD_KINDS)))]
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 1 + WORLD_KINDS.index(kind)])
    floor = EYE_HEIGHT_M

    wall_tex = _pick(rng, ("brick", "striped", "plain", "tiled", "mottled", "wooden", "checkered"))
    wall_colours = list(rng.choice(_WALL_COLOURS, size=4, replace=False))
    if kind == "room":
        sx, sz, h = rng.uniform(5, 10), rng.uniform(5, 10), rng.uniform(2.8, 4.0)
    elif kind == "corridor":
        w, length, h = rng.uniform(2.4, 4.0), rng.uniform(18, 34), rng.uniform(2.6, 3.5)
        sx, sz = (length, w) if rng.integers(2) else (w, length)
    else:
        sx, sz, h = rng.uniform(24, 40), rng.uniform(24, 40), 30.0
        wall_tex = "windowed"
    cx, cz = rng.uniform(-3, 3), rng.uniform(-3, 3)
    lo = (cx - sx / 2, floor - h, cz - sz / 2)
    hi = (cx + sx / 2, floor, cz + sz / 2)
    lo, hi = tuple(float(a) for a in lo), tuple(float(a) for a in hi)

    wall_mats = {}
    for face, colour in zip(("z+", "x+", "z-", "x-"), wall_colours):
        if wall_tex == "windowed":
            wall_mats[face] = _material(rng, "windowed", colour)
        else:
            wall_mats[face] = _material(rng, wall_tex, colour)
    floor_tex = _pick(rng, ("tiled", "checkered", "wooden", "mottled", "brick"))
    floor_mat = _material(rng, floor_tex, _pick(rng, _FLOOR_COLOURS))
    if kind == "plaza":
        ceiling = Material("sky", "blue", "white", float(rng.uniform(6, 10)))
    else:
        ceiling = _material(rng, _pick(rng, ("plain", "tiled")), _pick(rng, _CEILING_COLOURS))
    faces = dict(wall_mats, floor=floor_mat, ceiling=ceiling)

    if kind == "plaza":
        objects = _plaza_objects(rng, lo, hi)
    else:
        objects = _room_objects(rng, lo, hi, kind)
        decor_colours = [c for c in _OBJECT_COLOURS if c not in wall_colours]
        rng.shuffle(decor_colours)
        if kind == "corridor":
            objects += _wall_decor(rng, lo, hi, "door", int(rng.integers(2, 6)), decor_colours)
        else:
            objects += _wall_decor(rng, lo, hi, "painting", int(rng.integers(1, 4)), decor_colours)

    az = rng.uniform(0, 2 * math.pi)
    elev = rng.uniform(math.radians(35), math.radians(65))
    light = (math.cos(elev) * math.cos(az), math.sin(elev), math.cos(elev) * math.sin(az))
    ambient = float(rng.uniform(0.35, 0.5))

    caption = _world_caption(kind, sx * sz, faces, objects, wall_colours)
    return World(kind, int(seed), lo, hi, faces, objects, light, ambient, caption)
