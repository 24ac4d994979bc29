"""Text that every part of worldmem can take: a string UTF-8 can encode.

A JSON escape such as ``"\\ud800"`` (or a file name decoded with ``surrogateescape``) gives a
Python string with a lone surrogate, which no file, video container or text encoder takes.
Everything that accepts text from outside (captions, prompts, job fields, config values,
client messages) refuses it here, at the entry, with the field's name.
The text files worldmem reads (manifests, jobs files, camera files) are decoded by
``read_text``, which names the file and the first byte that is not UTF-8.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["check_text", "invalid_unicode", "read_text"]


def invalid_unicode(text: str) -> str | None:
    """Why UTF-8 cannot encode ``text``: ``"not valid Unicode text (a lone surrogate at
    character i)"`` for the first such character i; None when it can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"not valid Unicode text (a lone surrogate at character {e.start})"
    return None


def check_text(text, name: str) -> str:
    """``text`` when it is a string UTF-8 can encode; else a ``ValueError`` beginning with
    ``name`` (``"caption: not valid Unicode text (...)"``, ``"prompt: expected a string, got
    int"``)."""
    if not isinstance(text, str):
        raise ValueError(f"{name}: expected a string, got {type(text).__name__}")
    problem = invalid_unicode(text)
    if problem is not None:
        raise ValueError(f"{name}: {problem}")
    return text


def read_text(path: str | Path) -> str:
    """The text of the UTF-8 file ``path``; a file that is not UTF-8 is a ``ValueError``
    naming it and the first bad byte (``"x.jsonl: not UTF-8 text (invalid start byte at byte
    3)"``)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
