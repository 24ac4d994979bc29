"""The files a ``WorldPipeline`` reads and writes.

* A pipeline folder (``save_pretrained`` / ``from_pretrained``) holds ``model/`` (the model's
  weights and config) and ``pipeline.json`` (format version, model and memory configs,
  sampler settings, the camera field of view the model was trained with).
* A world state file (``save_state`` / ``load_state``, ``torch.load(weights_only=True)``)
  holds the format version, the sha256 of the payload and the payload: a world's serialized
  state dict, tensors and plain values only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import torch

__all__ = [
    "FORMAT_VERSION",
    "STATE_FORMAT_VERSION",
    "read_pipeline_json",
    "read_state_file",
    "state_path",
    "write_pipeline_json",
    "write_state_file",
]

FORMAT_VERSION = 1  # of a pipeline folder (pipeline.json)
# the objects pipeline.json holds, and the entries each must have
_PIPELINE_KEYS = {
    "model": (),
    "memory": (),
    "sampler": ("steps", "guidance_scale", "stochastic"),
    "camera": ("fov_deg",),
}
STATE_FORMAT_VERSION = 2  # of a world state file (2: checksummed payload; 1: a bare dict)


def read_pipeline_json(path: Path) -> dict:
    """The ``pipeline.json`` of the pipeline folder ``path``, checked to be of this
    ``FORMAT_VERSION``; ``FileNotFoundError`` when the folder has none."""
    meta_path = path / "pipeline.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{path} is not a worldmem pipeline folder (no pipeline.json). Train one with "
            "train.py, or pass the folder it exported (<out_dir>/pipeline)."
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # JSON, UTF-8, nesting, huge integers
        raise ValueError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: pipeline format version {version!r}, but this worldmem reads version "
            f"{FORMAT_VERSION}; re-export it with a matching worldmem"
        )
    for key, inner in _PIPELINE_KEYS.items():
        if not isinstance(meta.get(key), dict):
            raise ValueError(f"{meta_path}: {key!r} must be an object, got {meta.get(key)!r}")
        missing = [k for k in inner if k not in meta[key]]
        if missing:
            raise ValueError(f"{meta_path}: {key!r} lacks {', '.join(map(repr, missing))}")
    return meta


def write_pipeline_json(path: Path, meta: dict) -> None:
    """Write ``path/pipeline.json``: the ``FORMAT_VERSION``, then ``meta``'s entries."""
    meta = {"format_version": FORMAT_VERSION, **meta}
    (path / "pipeline.json").write_text(json.dumps(meta, indent=2))


def state_path(path: str | Path) -> Path:
    """``path`` as a ``Path``; a ``ValueError`` for anything but a str or Path without NUL."""
    if not isinstance(path, str | Path):
        raise ValueError(f"path: expected a str or Path, got {type(path).__name__}")
    if "\0" in str(path):
        raise ValueError(f"path: contains a NUL character: {str(path)!r}")
    if Path(path).name in ("", ".", ".."):
        raise ValueError(f"path: expected a file path, got {str(path)!r}")
    return Path(path)


def write_state_file(path: Path, state: dict) -> Path:
    """Write ``state`` (tensors moved to the CPU) to ``path``. The file is written to a
    temporary file next to ``path`` and renamed over it when complete, so an interrupted
    write leaves the previous file as it was."""
    buf = io.BytesIO()
    torch.save(_to_cpu(state), buf)
    payload = buf.getvalue()
    wrapper = {
        "format_version": STATE_FORMAT_VERSION,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(wrapper, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_state_file(path: Path) -> dict:
    """The state dict in a file written by ``write_state_file``, after checking the format
    version and the checksum. Raises ``FileNotFoundError`` or ``ValueError`` naming the file
    and what is wrong with it."""
    if not path.is_file():
        raise FileNotFoundError(f"world state not found: {path}")
    try:
        wrapper = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling raises many types for a damaged file
        raise ValueError(f"{path}: not a world state file ({type(e).__name__}: {e})") from None
    if not isinstance(wrapper, dict):
        raise ValueError(f"{path}: not a world state file (a {type(wrapper).__name__})")
    version = wrapper.get("format_version")
    if version != STATE_FORMAT_VERSION:
        raise ValueError(f"{path}: world state format {version!r}, expected {STATE_FORMAT_VERSION}")
    _exact_keys(wrapper, {"format_version", "sha256", "payload"}, path)
    payload = wrapper["payload"]
    if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
        raise ValueError(f"{path}: 'payload' must be a uint8 tensor")
    data = payload.contiguous().numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != wrapper["sha256"]:
        raise ValueError(f"{path}: checksum mismatch: the file is damaged or was edited")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: payload could not be read ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: payload is a {type(state).__name__}, not a dict")
    return state


def _exact_keys(d: dict, want: set, path: Path) -> None:
    """``d`` has exactly the keys ``want``; else a ``ValueError`` naming the file and the
    missing and unknown keys."""
    missing = sorted(map(str, set(want) - set(d)))
    unknown = sorted(map(str, set(d) - set(want)))
    parts = []
    if missing:
        parts.append("missing key(s) " + ", ".join(map(repr, missing)))
    if unknown:
        parts.append("unknown key(s) " + ", ".join(map(repr, unknown)))
    if parts:
        raise ValueError(f"{path}: {'; '.join(parts)}")


def _to_cpu(value):
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value.cpu() if isinstance(value, torch.Tensor) else value
