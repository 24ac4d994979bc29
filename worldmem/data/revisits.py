"""Revisit mining: target chunks that look again at what the camera saw long before.

A revisit is a chunk of ``chunk_frames`` frames starting at ``target_start`` together with the
earlier frames (at least ``min_gap_frames`` before the chunk starts) that see at least
``min_overlap`` of it. Overlap is ``worldmem.geometry.frustum_overlap``: the fraction of points
sampled in the target frustum (on the visible surface when depth is given) that the source
camera sees (not hidden behind its own depth when that is given), averaged over the chunk.
Training draws such chunks often, so that the memories are the only way to get them right.

The index at a dataset root, ``revisits.jsonl``, holds one line per episode::

    {"path": <episode folder relative to the root>, "num_frames": N, "chunk_frames": 2,
     "min_gap_frames": 12, "min_overlap": 0.5, "depth_aware": true,
     "revisits": [{"target_start": 40, "source_frames": [3, 4], "overlap": 0.83,
                   "source_overlaps": [0.83, 0.71]}, ...]}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from worldmem.geometry.camera import check_c2w, check_K
from worldmem.geometry.frustum import frustum_overlap

__all__ = [
    "REVISITS_NAME",
    "Revisit",
    "find_revisits",
    "frame_overlaps",
    "read_revisit_index",
    "write_revisit_index",
]

REVISITS_NAME = "revisits.jsonl"
_TARGET_BLOCK = 32  # target frames per overlap call
_CAND_BLOCK = 256  # candidate frames per overlap call (bounds memory: T x C x samples points)


@dataclass
class Revisit:
    """One revisiting chunk: frames ``target_start .. target_start + chunk_frames - 1`` are seen
    by ``source_frames`` (sorted by overlap, best first; ``source_overlaps`` in the same order);
    ``overlap`` is the best source's overlap with the chunk."""

    target_start: int
    source_frames: list[int]
    overlap: float
    source_overlaps: list[float] = field(default_factory=list)


def frame_overlaps(
    c2w: Tensor,
    K: Tensor,
    height: int,
    width: int,
    min_gap_frames: int,
    depth: Tensor | None = None,
    num_samples: int = 256,
    near: float = 0.1,
    far: float = 10.0,
    seed: int = 0,
) -> Tensor:
    """Overlap of every frame with every frame at least ``min_gap_frames`` before it.

    c2w ``(N, 4, 4)``, K ``(N, 3, 3)``, depth ``(N, H, W)`` or None -> ``(N, N)`` float where
    entry ``[i, j]`` is the fraction of frame i's frustum that frame j sees, for
    ``j <= i - min_gap_frames``, and 0 elsewhere. Cost O(N^2 * num_samples), computed in
    blocks so memory stays bounded.
    """
    N = c2w.shape[0]
    out = torch.zeros(N, N)
    for a in range(min_gap_frames, N, _TARGET_BLOCK):
        b = min(N, a + _TARGET_BLOCK)
        n_cand = b - min_gap_frames  # sources of the last target in the block: j < n_cand
        for c0 in range(0, n_cand, _CAND_BLOCK):
            c1 = min(n_cand, c0 + _CAND_BLOCK)
            ov = frustum_overlap(
                c2w[a:b],
                K[a:b],
                c2w[c0:c1],
                K[c0:c1],
                height,
                width,
                num_samples=num_samples,
                near=near,
                far=far,
                target_depth=None if depth is None else depth[a:b],
                cand_depth=None if depth is None else depth[c0:c1],
                seed=seed,
            )
            out[a:b, c0:c1] = ov.float().cpu()
    # keep only j <= i - min_gap_frames
    return torch.tril(out, diagonal=-min_gap_frames)


def find_revisits(
    c2w: Tensor,
    K: Tensor,
    height: int,
    width: int,
    chunk_frames: int,
    min_gap_frames: int,
    min_overlap: float,
    depth: Tensor | None = None,
    *,
    stride_frames: int = 1,
    num_samples: int = 256,
    near: float = 0.1,
    far: float = 10.0,
    seed: int = 0,
) -> list[Revisit]:
    """Chunks that look again at views seen at least ``min_gap_frames`` frames before.

    c2w ``(N, 4, 4)`` OpenCV camera-to-world, K ``(N, 3, 3)`` pixel intrinsics for
    ``height x width`` images, depth ``(N, H, W)`` z-depth (0 or non-finite = unknown) or None.
    Every chunk start ``s`` (every ``stride_frames``-th, from ``min_gap_frames``) with
    ``s + chunk_frames <= N`` is a candidate target; a source is a frame ``j <= s -
    min_gap_frames`` whose overlap with the chunk (mean over the chunk's frames of the fraction
    of each frame's frustum j sees) is at least ``min_overlap``. Without depth the frusta are
    sampled between ``near`` and ``far`` (world units); with depth, on the visible surface and
    with occlusion. Returns the revisiting chunks in order of ``target_start``.
    """
    if not isinstance(c2w, Tensor) or not isinstance(K, Tensor):
        raise ValueError(f"c2w and K: expected tensors, got {type(c2w)} and {type(K)}")
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"c2w: expected shape (N, 4, 4), got {tuple(c2w.shape)}")
    N = c2w.shape[0]
    if tuple(K.shape) != (N, 3, 3):
        raise ValueError(f"K: expected shape {(N, 3, 3)}, got {tuple(K.shape)}")
    c2w, K = c2w.float(), K.float()
    check_c2w(c2w)
    check_K(K)
    if depth is not None:
        if not isinstance(depth, Tensor) or tuple(depth.shape) != (N, height, width):
            raise ValueError(
                f"depth: expected a tensor of shape {(N, height, width)}, got "
                f"{tuple(getattr(depth, 'shape', ()))}"
            )
        depth = depth.float()
    for name, v, lo in (
        ("chunk_frames", chunk_frames, 1),
        ("min_gap_frames", min_gap_frames, 1),
        ("stride_frames", stride_frames, 1),
        ("height", height, 1),
        ("width", width, 1),
    ):
        if not isinstance(v, int) or v < lo:
            raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
    if not 0 < min_overlap <= 1:
        raise ValueError(f"min_overlap: expected a value in (0, 1], got {min_overlap}")
    if N < min_gap_frames + chunk_frames:
        return []

    per_frame = frame_overlaps(
        c2w, K, height, width, min_gap_frames, depth, num_samples, near, far, seed
    )  # (N, N)
    out = []
    for s in range(min_gap_frames, N - chunk_frames + 1, stride_frames):
        n_src = s - min_gap_frames + 1  # sources j in [0, s - min_gap_frames]
        chunk = per_frame[s : s + chunk_frames, :n_src].mean(0)  # (n_src,)
        good = (chunk >= min_overlap).nonzero().flatten()
        if good.numel() == 0:
            continue
        order = chunk[good].argsort(descending=True, stable=True)
        src = good[order]
        ov = chunk[src]
        out.append(
            Revisit(
                target_start=s,
                source_frames=src.tolist(),
                overlap=round(float(ov[0]), 4),
                source_overlaps=[round(v, 4) for v in ov.tolist()],
            )
        )
    return out


def write_revisit_index(root: str | os.PathLike, episodes: list[dict]) -> Path:
    """Write ``root/revisits.jsonl``; each item is ``dict(path=..., num_frames=...,
    chunk_frames=..., min_gap_frames=..., min_overlap=..., depth_aware=...,
    revisits=list[Revisit])``. Returns the index path."""
    path = Path(root) / REVISITS_NAME
    lines = []
    for e in episodes:
        row = dict(e)
        row["revisits"] = [asdict(r) for r in e["revisits"]]
        lines.append(json.dumps(row) + "\n")
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(lines))
    tmp.replace(path)
    return path


def read_revisit_index(root: str | os.PathLike) -> dict[str, dict]:
    """Read ``root/revisits.jsonl`` -> {episode path: row} with ``row["revisits"]`` a list of
    ``Revisit``. Raises ``ValueError`` naming the file and line of a malformed row."""
    path = Path(root) / REVISITS_NAME
    if not path.is_file():
        raise ValueError(f"{path}: revisit index not found (run datasets/mine_revisits.py)")
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            row["revisits"] = [Revisit(**r) for r in row["revisits"]]
            out[row["path"]] = row
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path} line {n}: malformed revisit row ({e})") from None
    return out
