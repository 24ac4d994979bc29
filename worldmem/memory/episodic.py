"""Episodic memory: a bounded set of keyframes, retrieved by how much of the targets they see.

Overlap between two cameras is ``worldmem.geometry.frustum_overlap``: points sampled on the
first camera's visible surface (its depth; uniform in [near_m, far_m] where depth is unknown),
counted when inside the second camera's frustum and not hidden behind its depth.
``overlap[i, j]`` is the fraction of keyframe i that keyframe j sees (not symmetric).

* ``maybe_add`` keeps a frame when every stored keyframe sees less than
  ``keyframe_novelty_overlap`` of it. When the set is over capacity the most redundant pair
  (highest mean overlap of the two directions) is merged by dropping its older keyframe.
* ``retrieve`` samples the target frusta (on the target surfaces when their depth is given,
  through the frustum volume otherwise), scores every keyframe by the fraction of samples it
  sees, drops those under ``retrieve_min_overlap``, and picks up to k greedily by the samples
  they newly cover. Sampling uses ``cfg.seed``, so retrieval is deterministic.

All keyframes of one memory share a frame size (the first frame's); targets may differ.
Cost: ``maybe_add`` is O(C samples) and O(C^2) only on the rare merge; ``retrieve`` is
O(C V samples). C <= ``keyframe_capacity``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worldmem.config import MemoryConfig
from worldmem.geometry.camera import project_points
from worldmem.geometry.frustum import (
    frustum_overlap,
    project_to_cameras,
    sample_frustum_points,
    visible_from,
)
from worldmem.memory._checks import check_cameras, check_size, check_step, check_tensor, expect

__all__ = ["Keyframe", "EpisodicMemory"]


@dataclass
class Keyframe:
    """One stored frame: rgb ``(3, H, W)`` in [0, 1], depth ``(1, H, W)`` metres (0 where
    unknown), c2w ``(4, 4)``, K ``(3, 3)``, and the step it was taken at."""

    rgb: Tensor
    depth: Tensor
    c2w: Tensor
    K: Tensor
    step: int


class EpisodicMemory:
    """A bounded keyframe set with coverage-based retrieval (see the module docstring)."""

    def __init__(self, cfg: MemoryConfig | None = None, device: str | torch.device = "cpu"):
        cfg = MemoryConfig() if cfg is None else cfg
        expect(isinstance(cfg, MemoryConfig), f"cfg: expected MemoryConfig, got {type(cfg)}")
        expect(cfg.keyframe_capacity >= 1, "MemoryConfig: keyframe_capacity must be >= 1")
        expect(cfg.overlap_samples >= 1, "MemoryConfig: overlap_samples must be >= 1")
        expect(0 < cfg.near_m < cfg.far_m, "MemoryConfig: need 0 < near_m < far_m")
        self.cfg = cfg
        self.device = torch.device(device)
        self._clear()

    def _clear(self) -> None:
        dev = self.device
        self._rgb = torch.zeros(0, 3, 0, 0, device=dev)
        self._depth = torch.zeros(0, 1, 0, 0, device=dev)
        self._c2w = torch.zeros(0, 4, 4, device=dev)
        self._K = torch.zeros(0, 3, 3, device=dev)
        self._steps = torch.zeros(0, dtype=torch.int64, device=dev)
        self._overlap = torch.zeros(0, 0, device=dev)  # (C, C): of i, j sees

    def __len__(self) -> int:
        return self._steps.shape[0]

    def __repr__(self) -> str:
        return f"EpisodicMemory(keyframes={len(self)}/{self.cfg.keyframe_capacity})"

    @property
    def keyframes(self) -> list[Keyframe]:
        """The stored keyframes, oldest first (views of the memory's tensors: do not edit)."""
        return [self._keyframe(i) for i in range(len(self))]

    @property
    def overlap(self) -> Tensor:
        """``(C, C)``: entry (i, j) is the fraction of keyframe i that keyframe j sees."""
        return self._overlap

    def _keyframe(self, i: int) -> Keyframe:
        return Keyframe(self._rgb[i], self._depth[i], self._c2w[i], self._K[i], int(self._steps[i]))

    def _overlap_fn(self, tc2w, tK, tdepth, cc2w, cK, cdepth, H, W) -> Tensor:
        cfg = self.cfg
        return frustum_overlap(
            tc2w,
            tK,
            cc2w,
            cK,
            H,
            W,
            num_samples=cfg.overlap_samples,
            near=cfg.near_m,
            far=cfg.far_m,
            target_depth=tdepth,
            cand_depth=cdepth,
            depth_tolerance=cfg.overlap_depth_tolerance_rel,
            seed=cfg.seed,
        )

    # ------------------------------------------------------------------ adding
    def maybe_add(self, rgb: Tensor, depth: Tensor, c2w: Tensor, K: Tensor, step: int) -> bool:
        """Keep the frame as a keyframe if it shows enough that no keyframe sees.

        rgb ``(3, H, W)`` in [0, 1], depth ``(1, H, W)`` metres (non-finite or <= 0: unknown),
        c2w ``(4, 4)``, K ``(3, 3)``, step int -> True when added. ``ValueError`` on bad input
        (the memory is unchanged).
        """
        check_tensor(rgb, "rgb", (3, None, None))
        H, W = rgb.shape[-2:]
        check_tensor(depth, "depth", (1, H, W))
        check_cameras(c2w, K, batched=False)
        step = check_step(step)
        if len(self):
            h, w = self._rgb.shape[-2:]
            expect(
                (H, W) == (h, w),
                f"rgb: expected frames of {h}x{w} like the stored keyframes, got {H}x{W}",
            )
        dev = self.device
        rgb = rgb.to(dev, torch.float32).clamp(0, 1)
        depth = depth.to(dev, torch.float32)
        depth = torch.where(torch.isfinite(depth) & (depth > 0), depth, 0.0)
        c2w = c2w.to(dev, torch.float32)
        K = K.to(dev, torch.float32)

        C = len(self)
        if C:
            seen = self._overlap_fn(
                c2w[None], K[None], depth, self._c2w, self._K, self._depth[:, 0], H, W
            )[0]  # (C,): how much of the new frame each keyframe sees
            if bool((seen >= self.cfg.keyframe_novelty_overlap).any()):
                return False
            back = self._overlap_fn(
                self._c2w, self._K, self._depth[:, 0], c2w[None], K[None], depth, H, W
            )[:, 0]  # (C,): how much of each keyframe the new frame sees
        else:
            seen = back = torch.zeros(0, device=dev)
            self._rgb = self._rgb.new_zeros(0, 3, H, W)
            self._depth = self._depth.new_zeros(0, 1, H, W)

        ov = torch.zeros(C + 1, C + 1, device=dev)
        ov[:C, :C] = self._overlap
        ov[:C, C] = back
        ov[C, :C] = seen
        ov[C, C] = 1.0
        self._rgb = torch.cat([self._rgb, rgb[None]])
        self._depth = torch.cat([self._depth, depth[None]])
        self._c2w = torch.cat([self._c2w, c2w[None]])
        self._K = torch.cat([self._K, K[None]])
        self._steps = torch.cat([self._steps, torch.tensor([step], device=dev)])
        self._overlap = ov
        if len(self) > self.cfg.keyframe_capacity:
            self._merge_most_redundant()
        return True

    def _merge_most_redundant(self) -> None:
        """Drop the older keyframe of the pair with the highest mean overlap (ties: the first
        pair in row-major order; equal steps: the lower index)."""
        C = len(self)
        pair = (self._overlap + self._overlap.T) / 2
        pair.fill_diagonal_(-1.0)
        flat = int(torch.argmax(pair))  # first maximum
        i, j = divmod(flat, C)
        si, sj = int(self._steps[i]), int(self._steps[j])
        drop = i if (si, i) < (sj, j) else j
        keep = torch.ones(C, dtype=torch.bool, device=self.device)
        keep[drop] = False
        self._rgb, self._depth = self._rgb[keep], self._depth[keep]
        self._c2w, self._K, self._steps = self._c2w[keep], self._K[keep], self._steps[keep]
        self._overlap = self._overlap[keep][:, keep]

    # ------------------------------------------------------------------ retrieval
    def coverage(
        self,
        c2w: Tensor,
        K: Tensor,
        height: int,
        width: int,
        depth: Tensor | None = None,
    ) -> Tensor:
        """Which target samples each keyframe sees: ``(C, V * overlap_samples)`` bool.

        c2w ``(V, 4, 4)``, K ``(V, 3, 3)`` target cameras of ``height x width`` pixels, depth
        ``(V, H, W)`` or ``(V, 1, H, W)`` metres (0 where unknown) or None. Where the depth
        is known, samples lie on the target surfaces and count when inside a keyframe's frustum
        and not hidden by its depth; elsewhere they fill the target frusta between near_m and
        far_m and count when inside a keyframe's frustum (volume overlap).
        """
        height, width = check_size(height, width)
        check_cameras(c2w, K, None)
        V = c2w.shape[0]
        expect(
            V >= 1 and K.shape[0] == V, f"c2w, K: expected V >= 1 views each, got {V}, {K.shape[0]}"
        )
        dev = self.device
        if depth is not None:
            if depth.ndim == 4:
                check_tensor(depth, "depth", (V, 1, height, width))
                depth = depth[:, 0]
            check_tensor(depth, "depth", (V, height, width))
            depth = depth.to(dev, torch.float32)
            depth = torch.where(torch.isfinite(depth) & (depth > 0), depth, 0.0)
        c2w = c2w.to(dev, torch.float32)
        K = K.to(dev, torch.float32)
        C = len(self)
        S = self.cfg.overlap_samples
        if C == 0:
            return torch.zeros(0, V * S, dtype=torch.bool, device=dev)
        g = torch.Generator(device=dev).manual_seed(self.cfg.seed)
        pts = sample_frustum_points(
            c2w, K, height, width, S, self.cfg.near_m, self.cfg.far_m, depth, g
        )  # (V, S, 3)
        h, w = self._rgb.shape[-2:]
        pts = pts.reshape(1, V * S, 3)
        # Samples on a known target surface are occlusion-tested against the keyframes' depth;
        # volume samples (no target depth at their pixel) only against the keyframe frusta:
        # a keyframe's wall hiding a volume sample says nothing about what the target sees.
        common = dict(near=self.cfg.near_m, depth_tolerance=self.cfg.overlap_depth_tolerance_rel)
        uv, z = project_to_cameras(pts, self._c2w, self._K)  # once for both tests
        free = visible_from(uv, z, h, w, far=self.cfg.far_m, **common)[0]
        if depth is None:
            return free  # (C, V*S)
        occ = visible_from(uv, z, h, w, depth=self._depth[:, 0], **common)
        on_surface = self._on_surface(pts.view(V, S, 3), c2w, K, depth).reshape(1, V * S)
        return torch.where(on_surface, occ[0], free)

    @staticmethod
    def _on_surface(pts: Tensor, c2w: Tensor, K: Tensor, depth: Tensor) -> Tensor:
        """Whether each sample ``(V, S, 3)`` came from a pixel with known target depth
        ``(V, H, W)``: ``(V, S)`` bool (found by projecting it back into its camera)."""
        H, W = depth.shape[-2:]
        uv, _ = project_points(pts, c2w, K)  # (V, S, 2)
        iu = uv[..., 0].floor().long().clamp(0, W - 1)
        iv = uv[..., 1].floor().long().clamp(0, H - 1)
        return depth.flatten(1).gather(1, iv * W + iu) > 0

    def retrieve(
        self,
        c2w: Tensor,
        K: Tensor,
        height: int,
        width: int,
        k: int | None = None,
        depth: Tensor | None = None,
    ) -> list[Keyframe]:
        """Up to k keyframes that together see most of the target views.

        c2w ``(V, 4, 4)``, K ``(V, 3, 3)``, height, width of the targets, k (default
        ``cfg.retrieve_k``), depth ``(V, H, W)`` or None -> keyframes, best first. Each pick
        adds the most not-yet-covered samples (ties: higher total coverage, then newer);
        keyframes seeing less than ``retrieve_min_overlap`` of the samples are never picked,
        and picking stops when nothing new would be covered. With ``retrieve_anchor`` the slots
        left free then go to the oldest keyframes (a world's start frame first): a view that has
        turned away from everything the memory holds still sees what the world looks like.
        """
        k = self.cfg.retrieve_k if k is None else k
        expect(
            isinstance(k, int) and not isinstance(k, bool) and k >= 0,
            f"k: expected a non-negative int, got {k!r}",
        )
        vis = self.coverage(c2w, K, height, width, depth)  # (C, S)
        C = vis.shape[0]
        if C == 0 or k == 0:
            return []
        score = vis.float().mean(1)
        eligible = (score >= self.cfg.retrieve_min_overlap).tolist()
        score_l = score.tolist()
        steps = self._steps.tolist()
        covered = torch.zeros(vis.shape[1], dtype=torch.bool, device=vis.device)
        picked: list[int] = []
        for _ in range(min(k, C)):
            gain = (vis & ~covered).sum(1).tolist()
            cands = [c for c in range(C) if eligible[c] and c not in picked and gain[c] > 0]
            if not cands:
                break
            best = max(cands, key=lambda c: (gain[c], score_l[c], steps[c], -c))
            picked.append(best)
            covered |= vis[best]
        if self.cfg.retrieve_anchor:
            oldest = sorted(range(C), key=lambda c: (steps[c], c))
            picked += [c for c in oldest if c not in picked][: k - len(picked)]
        return [self._keyframe(i) for i in picked]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Tensors (copies) for an exact resume."""
        return {
            "rgb": self._rgb.clone(),
            "depth": self._depth.clone(),
            "c2w": self._c2w.clone(),
            "K": self._K.clone(),
            "steps": self._steps.clone(),
            "overlap": self._overlap.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict``; ``ValueError`` on missing or inconsistent entries (the
        memory is then unchanged). More keyframes than ``keyframe_capacity`` are merged down."""
        need = ("rgb", "depth", "c2w", "K", "steps", "overlap")
        missing = [k for k in need if k not in state]
        expect(not missing, f"state_dict: missing entries {missing}")
        rgb = state["rgb"]
        check_tensor(rgb, "state_dict rgb", (None, 3, None, None))
        C, _, H, W = rgb.shape
        check_tensor(state["depth"], "state_dict depth", (C, 1, H, W))
        check_tensor(state["c2w"], "state_dict c2w", (C, 4, 4))
        check_tensor(state["K"], "state_dict K", (C, 3, 3))
        check_tensor(state["steps"], "state_dict steps", (C,), floating=False)
        check_tensor(state["overlap"], "state_dict overlap", (C, C))
        dev = self.device
        self._rgb = rgb.to(dev, torch.float32).clone()
        self._depth = state["depth"].to(dev, torch.float32).clone()
        self._c2w = state["c2w"].to(dev, torch.float32).clone()
        self._K = state["K"].to(dev, torch.float32).clone()
        self._steps = state["steps"].to(dev, torch.int64).clone()
        self._overlap = state["overlap"].to(dev, torch.float32).clone()
        while len(self) > self.cfg.keyframe_capacity:
            self._merge_most_redundant()
