"""Input checks shared by the memories: every public entry validates before it mutates."""

from __future__ import annotations

import operator

from torch import Tensor

from worldmem.config import MemoryConfig
from worldmem.geometry.camera import check_c2w, check_K


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def check_tensor(x, name: str, shape: tuple, floating: bool = True) -> None:
    """``shape`` holds ints or None (any size); raises ``ValueError`` naming got and wanted."""
    expect(isinstance(x, Tensor), f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    ok = x.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, x.shape))
    expect(ok, f"{name}: expected shape {want}, got {tuple(x.shape)}")
    if floating:
        expect(x.is_floating_point(), f"{name}: expected a float tensor, got {x.dtype}")


def check_cameras(c2w: Tensor, K: Tensor, n: int | None = None, batched: bool = True) -> None:
    """c2w ``(n, 4, 4)`` rigid and K ``(n, 3, 3)`` pinhole (or unbatched ``(4, 4)``, ``(3, 3)``)."""
    lead = (n,) if batched else ()
    check_tensor(c2w, "c2w", (*lead, 4, 4))
    check_tensor(K, "K", (*lead, 3, 3))
    check_c2w(c2w, "c2w")
    check_K(K, "K", pinhole=True)


def check_size(height, width) -> tuple[int, int]:
    ok = all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in (height, width))
    expect(ok, f"height, width: expected positive ints, got {height!r}, {width!r}")
    return int(height), int(width)


def check_step(step, name: str = "step") -> int:
    """A non-negative integer (Python, numpy or 0-d integer tensor) as an int."""
    try:
        value = operator.index(step)
    except TypeError:
        value = None
    ok = value is not None and not isinstance(step, bool) and value >= 0
    expect(ok, f"{name}: expected a non-negative int, got {step!r}")
    return int(value)


def check_memory_config(cfg: MemoryConfig) -> None:
    """The spatial memory's fields of a ``MemoryConfig`` in range; ``ValueError`` names the first
    one that is not."""
    expect(isinstance(cfg, MemoryConfig), f"cfg: expected MemoryConfig, got {type(cfg).__name__}")
    checks = [
        (cfg.voxel_size_m > 0, "voxel_size_m must be > 0"),
        (cfg.max_points > 0, "max_points must be > 0"),
        (cfg.max_generated_points >= 0, "max_generated_points must be >= 0"),
        (cfg.carve_margin_rel >= 0, "carve_margin_rel must be >= 0"),
        (0 <= cfg.carve_factor <= 1, "carve_factor must be in [0, 1]"),
        (0 <= cfg.min_confidence < 1, "min_confidence must be in [0, 1) (a new point has 1)"),
        (cfg.max_confidence >= 1, "max_confidence must be >= 1"),
        (cfg.max_depth_m > 0, "max_depth_m must be > 0"),
        (cfg.splat_footprint_scale > 0, "splat_footprint_scale must be > 0"),
        (cfg.surface_tol_rel > 0, "surface_tol_rel must be > 0"),
        (cfg.dedup_radius_px >= 0, "dedup_radius_px must be >= 0"),
        (cfg.dedup_colour_tol >= 0, "dedup_colour_tol must be >= 0"),
        (0 < cfg.replace_quality_ratio <= 1, "replace_quality_ratio must be in (0, 1]"),
        (cfg.max_splat_radius_px >= 0, "max_splat_radius_px must be >= 0"),
        (
            0.5 <= cfg.min_splat_radius_px <= max(cfg.max_splat_radius_px, 0.5),
            "min_splat_radius_px must be in [0.5, max(max_splat_radius_px, 0.5)]",
        ),
        (cfg.near_m > 0, "near_m must be > 0"),
        (cfg.free_space_views >= 0, "free_space_views must be >= 0"),
    ]
    for ok, msg in checks:
        expect(ok, f"MemoryConfig: {msg}")


def parse_views(
    state: dict, prefix: str, what: str, maps: dict[str, int], device, capacity: int
) -> list[tuple[Tensor, ...]]:
    """Views stored in a ``state_dict`` as ``<prefix>_c2w (F, 4, 4)``, ``<prefix>_K (F, 3,
    3)``, ``<prefix>_size (F, 2)`` (H, W) and, for each ``name: channels`` of ``maps``,
    ``<prefix>_<name>`` (each view's ``(channels, H, W)`` map flattened, the views
    concatenated), checked -> the latest ``capacity`` views as (c2w, K, one map per name:
    ``(H, W)`` for one channel, else ``(channels, H, W)``), float32 on ``device``. A state
    with none of these entries (saved before ``what`` was kept) has no views; one with some of
    them, or with shapes, counts or values that do not fit, raises ``ValueError`` naming the
    entry. Nothing changes."""
    import torch

    keys = [f"{prefix}_{k}" for k in ("c2w", "K", "size", *maps)]
    present = [k for k in keys if k in state]
    if not present:
        return []
    expect(
        len(present) == len(keys),
        f"state_dict: {what} entries {present} without {[k for k in keys if k not in state]}",
    )
    size = state[f"{prefix}_size"]
    check_tensor(size, f"state_dict {prefix}_size", (None, 2), floating=False)
    n = size.shape[0]
    check_tensor(state[f"{prefix}_c2w"], f"state_dict {prefix}_c2w", (n, 4, 4))
    check_tensor(state[f"{prefix}_K"], f"state_dict {prefix}_K", (n, 3, 3))
    expect(bool((size > 0).all()), f"state_dict {prefix}_size: sizes must be > 0")
    counts = (size[:, 0] * size[:, 1]).tolist()
    split = {}
    for name, channels in maps.items():
        key = f"{prefix}_{name}"
        values = state[key]
        check_tensor(values, f"state_dict {key}", (None,))
        need = channels * sum(counts)
        expect(
            values.numel() == need,
            f"state_dict {key}: {values.numel()} values for sizes needing {need}",
        )
        split[name] = values.to(device, torch.float32).split([channels * c for c in counts])
    for key in keys:
        if not key.endswith("_size"):
            expect(bool(state[key].isfinite().all()), f"state_dict {key}: non-finite values")
    views = []
    for i, (h, w) in enumerate(size.tolist()):
        shaped = [
            split[name][i].reshape(h, w) if c == 1 else split[name][i].reshape(c, h, w)
            for name, c in maps.items()
        ]
        c2w, K = (state[f"{prefix}_{k}"][i].to(device, torch.float32) for k in ("c2w", "K"))
        views.append((c2w, K, *shaped))
    return views[max(0, len(views) - capacity) :] if capacity else []
