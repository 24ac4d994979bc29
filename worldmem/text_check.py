"""Text that every part of worldmem can take: a string UTF-8 can encode.

A JSON escape such as ``"\\ud800"`` (or a file name decoded with ``surrogateescape``) gives a
Python string with a lone surrogate, which no file, video container or text encoder takes.
Everything that accepts text from outside (captions, prompts, job fields, config values,
client messages) refuses it here, at the entry, with the field's name.
"""

from __future__ import annotations

__all__ = ["check_text", "invalid_unicode"]


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
