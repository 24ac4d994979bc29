"""The dataset manifest, ``manifest.jsonl`` at the dataset root: one JSON object per episode,
``{"path": <folder relative to the root>, "split": "train" | "val" | "test", "num_frames": N,
"caption": ...}``; its writer, its reader and the check that an entry's folder stays inside
the root."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path, PurePosixPath

from worldmem.data.episode_format import MANIFEST_NAME, SPLITS
from worldmem.text_check import invalid_unicode, read_text

__all__ = ["episode_folder", "read_manifest", "update_manifest", "write_manifest"]


def _check_entry(entry, where: str) -> dict:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
    missing = [k for k in ("path", "split", "num_frames", "caption") if k not in entry]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")
    path = entry["path"]
    parts = PurePosixPath(path).parts if isinstance(path, str) else ()
    if (
        not parts
        or PurePosixPath(path).is_absolute()
        or Path(path).is_absolute()
        or any(p in ("..", ".") for p in parts)
        or "\\" in path
        or "\0" in path
        or invalid_unicode(path) is not None
    ):
        raise ValueError(
            f"{where}: 'path' must be a folder relative to the root, inside it (no '..'), "
            f"got {path!r}"
        )
    if entry["split"] not in SPLITS:
        raise ValueError(f"{where}: 'split' must be one of {SPLITS}, got {entry['split']!r}")
    n = entry["num_frames"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{where}: 'num_frames' must be a positive int, got {n!r}")
    if not isinstance(entry["caption"], str) or invalid_unicode(entry["caption"]) is not None:
        raise ValueError(
            f"{where}: 'caption' must be a string of valid Unicode text, got {entry['caption']!r}"
        )
    return entry


def episode_folder(root: str | os.PathLike, path: str, where: str) -> Path:
    """``root / path``, the folder of a manifest entry, when it stays inside ``root`` with
    symbolic links, ``..`` and absolute paths followed; else a ``ValueError`` beginning with
    ``where`` that names the path, where it leads and the root."""
    root = Path(root)
    folder = root / path
    resolved = folder.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValueError(
            f"{where}: 'path' {path!r} leads to {resolved}, outside the root {root}; "
            "episode folders must stay inside it"
        )
    return folder


def write_manifest(root: str | os.PathLike, entries: list[dict]) -> Path:
    """Write ``root/manifest.jsonl``: one line per entry
    ``dict(path=<relative folder>, split="train"|"val"|"test", num_frames=int, caption=str)``
    (extra keys are kept). Paths must be unique. Returns the manifest path."""
    root = Path(root)
    seen = set()
    for i, e in enumerate(entries):
        _check_entry(e, f"manifest entry {i}")
        episode_folder(root, e["path"], f"manifest entry {i}")
        if e["path"] in seen:
            raise ValueError(f"manifest entry {i}: path {e['path']!r} appears twice")
        seen.add(e["path"])
    root.mkdir(parents=True, exist_ok=True)
    path = root / MANIFEST_NAME
    # a new file of a name nobody chose (never a link or file already there), renamed over
    # the manifest (replacing a link, never writing through it)
    tmp = root / f".{MANIFEST_NAME}.{secrets.token_hex(8)}.tmp"
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write("".join(json.dumps(e) + "\n" for e in entries))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_manifest(root: str | os.PathLike) -> list[dict]:
    """Read ``root/manifest.jsonl`` -> list of entry dicts (see ``write_manifest``).

    Raises ``ValueError`` naming the file and line of a malformed entry, or of one whose
    folder leads out of ``root`` (see ``episode_folder``). Does not open the episodes
    (``Episode.open`` does that)."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(f"{path}: manifest not found")
    text = read_text(path)
    entries = []
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError) as e:  # JSON, nesting, huge integers
            raise ValueError(f"{path} line {n}: not JSON ({type(e).__name__}: {e})") from None
        entries.append(_check_entry(entry, f"{path} line {n}"))
        episode_folder(root, entry["path"], f"{path} line {n}")
    return entries


def update_manifest(root: str | os.PathLike, entries: list[dict]) -> Path:
    """Add ``entries`` to ``root/manifest.jsonl`` (created if missing), replacing existing
    entries with the same path. Returns the manifest path."""
    root = Path(root)
    old = read_manifest(root) if (root / MANIFEST_NAME).is_file() else []
    new_paths = {e["path"] for e in entries}
    return write_manifest(root, [e for e in old if e["path"] not in new_paths] + list(entries))
