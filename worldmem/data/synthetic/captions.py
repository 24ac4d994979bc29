"""Captions: what a world's caption says about its walls, floor, ceiling and objects."""

from __future__ import annotations

from worldmem.data.synthetic.textures import _TEXTURE_WORDS, Material
from worldmem.data.synthetic.world import SceneObject

_NUMBERS = ("no", "a", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _a(phrase: str) -> str:
    """The phrase with its indefinite article."""
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def _count_phrase(count: int, colour: str, name: str) -> str:
    plural = name + ("es" if name.endswith(("ch", "sh", "s")) else "s")
    if count == 1:
        return _a(f"{colour} {name}")
    word = _NUMBERS[count] if count < len(_NUMBERS) else str(count)
    return f"{word} {colour} {plural}"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _objects_phrase(objects: list[SceneObject]) -> list[str]:
    """Counted object phrases, grouped by (name, colour), in first-appearance order."""
    counts: dict[tuple[str, str], int] = {}
    for o in objects:
        if o.name in ("door", "painting"):
            continue
        counts[(o.name, o.colour)] = counts.get((o.name, o.colour), 0) + 1
    return [_count_phrase(c, col, name) for (name, col), c in counts.items()]


def _walls_phrase(faces: dict[str, Material]) -> str:
    """E.g. "red, blue, green and yellow brick walls" (walls share a texture kind)."""
    walls = [faces[f] for f in ("z+", "x+", "z-", "x-")]
    colours = list(dict.fromkeys(w.colour for w in walls))
    return f"{_join(colours)} {_TEXTURE_WORDS[walls[0].texture]} walls"


def _world_caption(
    kind: str,
    floor_area_m2: float,
    faces: dict[str, Material],
    objects: list[SceneObject],
    wall_colours: list[str],
) -> str:
    """The caption of a world of ``kind`` ("room", "corridor" or "plaza"): its walls (the
    ``wall_colours`` name the buildings of a plaza), floor, ceiling (rooms), counted objects,
    doors (corridors) and paintings (rooms); a room is "large" or "small" by its floor area."""
    floor_mat, ceiling = faces["floor"], faces["ceiling"]
    size = (
        "large "
        if kind == "room" and floor_area_m2 > 55
        else ("small " if kind == "room" and floor_area_m2 < 35 else "")
    )
    walls = _walls_phrase(faces)
    things = _objects_phrase(objects)
    doors = sum(o.name == "door" for o in objects)
    paintings = sum(o.name == "painting" for o in objects)
    if kind == "room":
        head = (
            f"{_a(size + 'room')} with {walls}, {_a(floor_mat.phrase())} floor, "
            f"{_a(ceiling.phrase())} ceiling"
        )
        if paintings:
            things.append(f"{_NUMBERS[paintings]} painting{'s' if paintings > 1 else ''}")
    elif kind == "corridor":
        head = f"a long corridor with {walls}, {_a(floor_mat.phrase())} floor"
        if doors:
            things.append(f"{_NUMBERS[doors]} door{'s' if doors > 1 else ''}")
    else:
        buildings = _join(list(dict.fromkeys(wall_colours)))
        head = (
            f"an open plaza surrounded by {buildings} buildings with windows, "
            f"{_a(floor_mat.phrase())} ground"
        )
    return head + (", " + _join(things) if things else "")
