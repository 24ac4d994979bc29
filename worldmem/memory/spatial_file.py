"""The spatial memory's state and files: the check of a state dict, the safetensors file
(``SpatialMemory.save`` / ``load``) and the PLY export of the samples.

The safetensors file holds the tensors of ``SpatialMemory.state_dict()`` and, as metadata,
the format name, its version, the step counter, the voxel size and the ``MemoryConfig`` as
JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from worldmem.config import MemoryConfig
from worldmem.memory._checks import check_step, check_tensor, expect

__all__ = ["check_state", "read_memory_file", "write_memory_file", "write_ply"]

FORMAT = "worldmem.spatial_memory"
VERSION = 2  # 2: surface samples with footprint, quality, provenance (1: voxel means)
_SAMPLE_KEYS = (
    "xyz",
    "rgb",
    "confidence",
    "last_seen",
    "voxel_keys",
    "footprint",
    "quality",
    "observed",
    "splat_radius",
    "next_step",
)


def check_state(state: dict, voxel_size_m: float) -> tuple[int, int]:
    """Check the sample entries of a ``SpatialMemory.state_dict()`` for a memory of
    ``voxel_size_m``: all present, consistent shapes and types, the same voxel size. Returns
    the number of samples and the step counter; raises ``ValueError`` naming the entry."""
    missing = [k for k in _SAMPLE_KEYS if k not in state]
    expect(
        not missing,
        f"state_dict: missing entries {missing} (a state of the old voxel-mean memory, "
        "version 1, has no footprint, quality or observed; re-insert its frames)",
    )
    vs = float(state.get("voxel_size_m", voxel_size_m))
    expect(
        math.isclose(vs, voxel_size_m, rel_tol=1e-9),
        f"state_dict: saved with voxel_size_m={vs}, this memory has "
        f"{voxel_size_m}; voxel keys would not match",
    )
    n = state["xyz"].shape[0] if isinstance(state["xyz"], Tensor) else -1
    check_tensor(state["xyz"], "state_dict xyz", (n, 3))
    check_tensor(state["rgb"], "state_dict rgb", (n, 3))
    check_tensor(state["confidence"], "state_dict confidence", (n,))
    check_tensor(state["last_seen"], "state_dict last_seen", (n,), floating=False)
    check_tensor(state["voxel_keys"], "state_dict voxel_keys", (n,), floating=False)
    check_tensor(state["footprint"], "state_dict footprint", (n,))
    check_tensor(state["quality"], "state_dict quality", (n,))
    check_tensor(state["splat_radius"], "state_dict splat_radius", (n,))
    check_tensor(state["observed"], "state_dict observed", (n,), floating=False)
    expect(
        state["observed"].dtype == torch.bool,
        f"state_dict observed: expected bool, got {state['observed'].dtype}",
    )
    next_step = check_step(int(state["next_step"]), "state_dict next_step")
    return n, next_step


def write_memory_file(path: str | Path, state: dict, cfg: MemoryConfig) -> Path:
    """Write a state dict (its tensors, on the CPU) and the config to a safetensors file."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous().cpu() for k, v in state.items() if isinstance(v, Tensor)}
    meta = {
        "format": FORMAT,
        "version": str(VERSION),
        "next_step": str(state["next_step"]),
        "voxel_size_m": repr(state["voxel_size_m"]),
        "config": json.dumps(asdict(cfg)),
    }
    save_file(tensors, str(path), metadata=meta)
    return path


def read_memory_file(path: Path) -> tuple[dict[str, str], dict[str, Tensor]]:
    """The metadata and tensors of a file written by ``write_memory_file``. Raises
    ``ValueError`` for a missing or unreadable file, another format or another version."""
    from safetensors import safe_open

    expect(path.is_file(), f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
    expect(
        meta.get("format") == FORMAT,
        f"{path}: not a spatial memory file (format={meta.get('format')!r})",
    )
    expect(
        meta.get("version") == str(VERSION),
        f"{path}: spatial memory file version {meta.get('version')}, this worldmem reads "
        f"version {VERSION} (version 1 held voxel means, not surface samples: re-insert "
        "the frames it was filled from)",
    )
    return meta, tensors


def write_ply(
    path: str | Path,
    xyz: Tensor,
    rgb: Tensor,
    confidence: Tensor,
    footprint: Tensor,
    observed: Tensor,
) -> Path:
    """Write N samples (``xyz (N, 3)``, ``rgb (N, 3)`` in [0, 1], ``confidence, footprint
    (N,)``, ``observed (N,)`` bool) as a binary little-endian PLY: float x y z, uchar red
    green blue, float confidence, float footprint (metres), uchar observed (1: observed, 0:
    generated)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = xyz.shape[0]
    data = np.empty(
        n,
        dtype=[
            ("x", "<f4"),
            ("y", "<f4"),
            ("z", "<f4"),
            ("red", "u1"),
            ("green", "u1"),
            ("blue", "u1"),
            ("confidence", "<f4"),
            ("footprint", "<f4"),
            ("observed", "u1"),
        ],
    )
    xyz = xyz.cpu().numpy()
    rgb = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    data["x"], data["y"], data["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    data["red"], data["green"], data["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    data["confidence"] = confidence.cpu().numpy()
    data["footprint"] = footprint.cpu().numpy()
    data["observed"] = observed.cpu().numpy().astype(np.uint8)
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {n}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        "property float confidence\nproperty float footprint\n"
        "property uchar observed\nend_header\n"
    )
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(data.tobytes())
    return path
