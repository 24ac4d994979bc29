"""The top-down map the page shows beside the frame: the spatial memory seen from above, with
the camera path and heading."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from worldmem.memory import SpatialMemory
from worldmem.memory._checks import check_tensor, expect

__all__ = ["topdown_map"]


def topdown_map(
    memory: SpatialMemory,
    size_px: int = 256,
    cameras_c2w: Tensor | None = None,
    margin_rel: float = 0.05,
) -> np.ndarray:
    """A top-down picture of the memory's samples: ``(size_px, size_px, 3)`` uint8.

    The x-z plane seen from above (world up is -y): image right is +x, image up is +z.
    Each cell shows the colour of its highest sample (smallest y). ``cameras_c2w (N, 4, 4)``
    adds a path through the camera positions, a dot per camera and its heading (the
    camera z axis on the ground plane); the last camera is drawn brighter.
    """
    expect(isinstance(size_px, int) and size_px >= 8, f"size_px: expected int >= 8, {size_px!r}")
    S = size_px
    img = np.full((S, S, 3), 24, dtype=np.uint8)
    cams = None
    if cameras_c2w is not None:
        check_tensor(cameras_c2w, "cameras_c2w", (None, 4, 4))
        cams = cameras_c2w.detach().to("cpu", torch.float64)
    xyz = memory.xyz
    xz = [xyz[:, [0, 2]].double().cpu()]
    if cams is not None:
        xz.append(cams[:, [0, 2], 3])
    xz = torch.cat(xz)
    if xz.shape[0] == 0:
        return img
    lo, hi = xz.amin(0), xz.amax(0)
    centre = (lo + hi) / 2
    half = float((hi - lo).max()) / 2 * (1 + 2 * margin_rel) + 1e-3
    cell = 2 * half / S

    def to_px(x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        col = ((x - (centre[0] - half)) / cell).floor().long()
        row = (((centre[1] + half) - z) / cell).floor().long()
        return col, row

    n = memory.num_points
    if n:
        col, row = to_px(xyz[:, 0].double().cpu(), xyz[:, 2].double().cpu())
        ok = (col >= 0) & (col < S) & (row >= 0) & (row < S)
        y = xyz[:, 1].float().cpu().contiguous()
        bits = y.view(torch.int32)
        ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).long()  # orders like y
        key = (ordered << 32) | torch.arange(n)
        buf = torch.full((S * S + 1,), torch.iinfo(torch.int64).max, dtype=torch.int64)
        buf.scatter_reduce_(0, torch.where(ok, row * S + col, S * S), key, "amin")
        win = buf[: S * S]
        hit = win != torch.iinfo(torch.int64).max
        colours = (memory.rgb.float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
        flat = img.reshape(-1, 3)
        flat[hit.numpy()] = colours[(win[hit] & 0xFFFFFFFF)].numpy()
    if cams is not None and cams.shape[0]:
        _draw_cameras(img, cams, to_px, cell)
    return img


def _draw_cameras(img: np.ndarray, cams: Tensor, to_px, cell: float) -> None:
    """Paint the path, heading ticks and positions of ``cams (N, 4, 4)`` float64 into ``img
    (S, S, 3)``; ``to_px(x, z)`` gives pixel columns and rows, ``cell`` is metres per pixel."""
    S = img.shape[0]

    def paint(col: Tensor, row: Tensor, colour) -> None:
        ok = (col >= 0) & (col < S) & (row >= 0) & (row < S)
        img[row[ok].numpy(), col[ok].numpy()] = colour

    pos = cams[:, [0, 2], 3]
    fwd = torch.nn.functional.normalize(cams[:, [0, 2], 2], dim=-1, eps=1e-9)
    if pos.shape[0] > 1:  # the path
        t = torch.linspace(0, 1, 16, dtype=pos.dtype)[None, :, None]
        seg = pos[:-1, None] + (pos[1:, None] - pos[:-1, None]) * t
        paint(*to_px(seg[..., 0].flatten(), seg[..., 1].flatten()), (90, 90, 200))
    length = max(6, S // 24) * cell  # heading ticks
    t = torch.linspace(0, 1, 2 * max(6, S // 24), dtype=pos.dtype)[None, :, None]
    tick = pos[:, None] + fwd[:, None] * length * t
    paint(*to_px(tick[..., 0].flatten(), tick[..., 1].flatten()), (255, 220, 40))
    col, row = to_px(pos[:, 0], pos[:, 1])
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            paint(col + dc, row + dr, (230, 60, 60))
    paint(col[-1:], row[-1:], (255, 255, 255))
