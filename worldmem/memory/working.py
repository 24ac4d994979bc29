"""Working memory: the most recent frames, with their cameras and depth (a sliding window)."""

from __future__ import annotations

import torch
from torch import Tensor

from worldmem.memory._checks import check_cameras, check_step, check_tensor, expect

__all__ = ["WorkingMemory"]


class WorkingMemory:
    """The last ``num_frames`` pushed frames, oldest first.

    Frames keep the device and float dtype they were pushed with; all must share one size.
    """

    def __init__(self, num_frames: int):
        expect(
            isinstance(num_frames, int) and not isinstance(num_frames, bool) and num_frames >= 0,
            f"num_frames: expected a non-negative int, got {num_frames!r}",
        )
        self.num_frames = num_frames
        self._rgb: Tensor | None = None  # (n, 3, H, W)
        self._depth: Tensor | None = None  # (n, 1, H, W)
        self._c2w: Tensor | None = None  # (n, 4, 4)
        self._K: Tensor | None = None  # (n, 3, 3)
        self._steps: Tensor | None = None  # (n,) int64

    def __len__(self) -> int:
        return 0 if self._steps is None else self._steps.shape[0]

    def __repr__(self) -> str:
        return f"WorkingMemory(frames={len(self)}/{self.num_frames})"

    @property
    def steps(self) -> list[int]:
        """Steps of the held frames, oldest first."""
        return [] if self._steps is None else self._steps.tolist()

    def push(self, rgb: Tensor, depth: Tensor, c2w: Tensor, K: Tensor, step: int) -> None:
        """Append frames; only the newest ``num_frames`` are kept.

        rgb ``(N, 3, H, W)`` in [0, 1], depth ``(N, 1, H, W)``, c2w ``(N, 4, 4)``, K
        ``(N, 3, 3)``, step: the step of the first of the N frames (the others follow on).
        """
        check_tensor(rgb, "rgb", (None, 3, None, None))
        N, _, H, W = rgb.shape
        check_tensor(depth, "depth", (N, 1, H, W))
        check_cameras(c2w, K, N)
        step = check_step(step)
        if self._rgb is not None and len(self):
            h, w = self._rgb.shape[-2:]
            expect((H, W) == (h, w), f"rgb: expected frames of {h}x{w} like before, got {H}x{W}")
        dev = rgb.device
        steps = torch.arange(step, step + N, device=dev)
        keep = self.num_frames
        parts = (rgb, depth.to(dev), c2w.to(dev), K.to(dev), steps)
        if self._rgb is None or len(self) == 0:
            new = [p[max(0, N - keep) :].clone() for p in parts]
        else:
            old = (self._rgb, self._depth, self._c2w, self._K, self._steps)
            new = [torch.cat([o.to(dev), p])[-keep:] if keep else p[:0] for o, p in zip(old, parts)]
        self._rgb, self._depth, self._c2w, self._K, self._steps = new

    def frames(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(rgb ``(n, 3, H, W)``, depth ``(n, 1, H, W)``, c2w ``(n, 4, 4)``, K ``(n, 3, 3)``),
        oldest first, n <= num_frames. Before any push: empty tensors with H = W = 0."""
        if self._rgb is None:
            return (
                torch.zeros(0, 3, 0, 0),
                torch.zeros(0, 1, 0, 0),
                torch.zeros(0, 4, 4),
                torch.zeros(0, 3, 3),
            )
        return self._rgb, self._depth, self._c2w, self._K

    def clear(self) -> None:
        self._rgb = self._depth = self._c2w = self._K = self._steps = None

    def state_dict(self) -> dict:
        """Tensors (copies) and the window length, for an exact resume."""
        rgb, depth, c2w, K = self.frames()
        steps = self._steps if self._steps is not None else torch.zeros(0, dtype=torch.int64)
        return {
            "num_frames": self.num_frames,
            "rgb": rgb.clone(),
            "depth": depth.clone(),
            "c2w": c2w.clone(),
            "K": K.clone(),
            "steps": steps.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict`` (``ValueError`` on missing or inconsistent entries)."""
        need = ("num_frames", "rgb", "depth", "c2w", "K", "steps")
        missing = [k for k in need if k not in state]
        expect(not missing, f"state_dict: missing entries {missing}")
        check_tensor(state["rgb"], "state_dict rgb", (None, 3, None, None))
        n, _, H, W = state["rgb"].shape
        check_tensor(state["depth"], "state_dict depth", (n, 1, H, W))
        check_tensor(state["c2w"], "state_dict c2w", (n, 4, 4))
        check_tensor(state["K"], "state_dict K", (n, 3, 3))
        check_tensor(state["steps"], "state_dict steps", (n,), floating=False)
        num_frames = check_step(state["num_frames"], "state_dict num_frames")
        expect(n <= num_frames, f"state_dict: {n} frames exceed num_frames={num_frames}")
        self.num_frames = num_frames
        if n == 0 and H == 0:
            self.clear()
            return
        self._rgb = state["rgb"].clone()
        self._depth = state["depth"].clone()
        self._c2w = state["c2w"].clone()
        self._K = state["K"].clone()
        self._steps = state["steps"].long().clone()
