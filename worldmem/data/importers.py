"""What the import scripts in ``datasets/`` share: the errors a damaged input file raises,
a context that names the file in them, and the command-line wrapper that prints one line
(``error: <file>: <problem>``, exit code 1) instead of a traceback."""

from __future__ import annotations

import contextlib
import os
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import av
from PIL import Image

__all__ = ["INPUT_ERRORS", "inside", "reading", "run_importer"]

# What reading a damaged or hostile image, video, JSON or .npy/.npz file may raise
# (OSError covers PIL's UnidentifiedImageError and missing files).
INPUT_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    KeyError,
    IndexError,
    NotImplementedError,  # zipfile: an unknown compression method in a damaged .npz
    zlib.error,
    zipfile.BadZipFile,
    av.FFmpegError,
    Image.DecompressionBombError,
)


@contextlib.contextmanager
def reading(path: str | os.PathLike) -> Iterator[None]:
    """Re-raise an input error inside the block as ``ValueError`` beginning with ``path``
    (kept as it is when its message already begins with it)."""
    try:
        yield
    except INPUT_ERRORS as e:
        text = str(e)
        if text.startswith(str(path)):
            raise
        raise ValueError(f"{path}: cannot read ({type(e).__name__}: {text})") from None


def inside(root: Path, relative, where: str) -> Path:
    """``root / relative`` when ``relative`` is a relative path that stays inside ``root``
    (symbolic links resolved), else a ``ValueError`` naming ``where``."""
    if not isinstance(relative, str) or not relative or "\0" in relative:
        raise ValueError(f"{where}: expected a relative file path, got {relative!r}")
    path = root / relative
    if Path(relative).is_absolute() or not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{where}: {relative!r} is outside {root}; paths must stay inside it")
    return path


def run_importer(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run an importer's ``main``: bad input prints ``error: ...`` and returns 1."""
    try:
        return main(argv)
    except INPUT_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
