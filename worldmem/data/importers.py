"""What the import scripts in ``datasets/`` share: the errors a damaged input file raises,
a context that names the file in them, the check of an episode folder name, the check of the
dataset root before anything is written, and the command-line wrapper that prints one line
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

from worldmem.data.episode_format import MANIFEST_NAME
from worldmem.data.manifest import read_manifest

__all__ = [
    "INPUT_ERRORS",
    "MAX_NAME_BYTES",
    "check_out",
    "episode_name",
    "inside",
    "reading",
    "run_importer",
]

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


MAX_NAME_BYTES = 255  # longest folder name (UTF-8 bytes) that common file systems allow


def episode_name(name, where: str) -> str:
    """``name`` when it is one folder name, so that ``<out>/<name>`` stays inside ``<out>``:
    not empty, ``.`` or ``..``; no ``/`` or ``\\``, NUL or other control character; at most
    ``MAX_NAME_BYTES`` bytes in UTF-8. Else a ``ValueError`` beginning with ``where`` that
    names it. The importers check every name before they write anything."""
    if not isinstance(name, str) or not name:
        problem = "it is empty" if name == "" else f"it is a {type(name).__name__}"
    elif name in (".", ".."):
        problem = "it names a folder above or at the dataset root"
    elif "/" in name or "\\" in name:
        problem = "it contains a path separator"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "it contains a NUL or other control character"
    elif len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        problem = f"it is longer than {MAX_NAME_BYTES} bytes"
    else:
        return name
    raise ValueError(
        f"{where}: episode name {name!r} is not a single folder name ({problem}); "
        "episodes are written to <out>/<name>"
    )


def check_out(out: Path, names: list[str]) -> None:
    """What an importer checks of its dataset root ``out`` before it writes anything: ``out``
    is a folder (a symbolic link to one is followed) or not there yet; a manifest already in
    it is a regular file that reads; each episode folder ``out/<name>`` is a folder or not
    there yet, and not a symbolic link (the import would write through it, wherever it leads).
    Else a ``ValueError`` naming what is in the way."""
    if out.is_symlink() and not out.is_dir():
        raise ValueError(
            f"--out {out} is a symbolic link to {os.readlink(out)}, which is not a folder"
        )
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    manifest = out / MANIFEST_NAME
    if manifest.is_symlink() or (manifest.exists() and not manifest.is_file()):
        raise ValueError(
            f"{manifest} is not a regular file (a symbolic link, a folder or a FIFO); the "
            "importer rewrites it"
        )
    if manifest.exists():
        read_manifest(out)  # an error naming the line, before any episode is written
    for name in names:
        folder = out / name
        if folder.is_symlink():
            raise ValueError(
                f"{folder} is a symbolic link to {os.readlink(folder)}; the import would write "
                "through it: remove it or choose another --name"
            )
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder} exists and is not a folder")


def run_importer(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run an importer's ``main``: bad input prints ``error: ...`` and returns 1."""
    try:
        return main(argv)
    except INPUT_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
