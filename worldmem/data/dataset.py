"""Training samples for the world model, cut from episodes on disk.

A sample is one target chunk with everything the model is given at generation time:
the working-memory frames just before it, keyframes retrieved from an episodic memory of the
earlier frames, and a spatial memory fused from the earlier frames and rendered at the target
cameras. With probability ``revisit_ratio`` the target is drawn from the mined revisits (chunks
that look again at views seen at least ``min_revisit_gap_frames`` earlier), so the model sees
many samples where memory is the only way to get the answer right.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from worldmem.config import DataConfig, MemoryConfig
from worldmem.data.batch import WorldBatch, collate_world_batches
from worldmem.data.episode import (
    MANIFEST_NAME,
    Episode,
    EpisodeError,
    episode_folder,
    read_manifest,
)
from worldmem.data.inputs import assemble_inputs, padded_frames
from worldmem.data.revisits import REVISITS_NAME, find_revisits, read_revisit_index
from worldmem.geometry import fov_from_intrinsics, scale_intrinsics
from worldmem.memory import EpisodicMemory, SpatialMemory
from worldmem.memory.fill import gaussian_blur
from worldmem.memory.layout import BoxLayout

__all__ = [
    "WorldDataset",
    "WorldDataModule",
    "EpisodeFrames",
    "GeneratedLook",
    "RolloutHistory",
    "read_episode_frames",
    "runs_along",
]

log = logging.getLogger(__name__)


@dataclass
class EpisodeFrames:
    """A decoded episode at the training resolution (kept in a small per-worker cache).

    rgb uint8 ``(N, 3, S, S)``, depth float16 ``(N, 1, S, S)``, c2w ``(N, 4, 4)``, K ``(N, 3, 3)``.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    c2w: torch.Tensor
    K: torch.Tensor
    caption: str

    @property
    def num_frames(self) -> int:
        return self.rgb.shape[0]


def runs_along(ep: Episode, num_frames: int, c2w: torch.Tensor) -> bool:
    """Whether ``ep`` has ``num_frames`` frames along the cameras ``c2w`` ``(N, 4, 4)``: a
    rollout of the episode they come from (datasets/rollouts.py writes the same cameras)."""
    return ep.num_frames == num_frames and torch.allclose(ep.c2w.float(), c2w.float(), atol=1e-4)


def read_episode_frames(ep: Episode, size: int) -> EpisodeFrames:
    """Every frame of ``ep`` resized to ``size`` x ``size`` (rgb by area, depth by nearest
    sample), with its intrinsics scaled to match."""
    idx = list(range(ep.num_frames))
    rgb = ep.read_rgb(idx)  # (N, 3, H, W) in [0, 1]
    depth = ep.read_depth(idx)  # (N, 1, H, W)
    K = ep.K.float()
    H, W = rgb.shape[-2:]
    if (H, W) != (size, size):
        rgb = F.interpolate(rgb, size=(size, size), mode="area")
        depth = F.interpolate(depth, size=(size, size), mode="nearest")
        K = scale_intrinsics(K, size / W, size / H)
    return EpisodeFrames(
        rgb=(rgb * 255).round().to(torch.uint8),
        depth=depth.to(torch.float16),
        c2w=ep.c2w.float(),
        K=K,
        caption=ep.caption,
    )


class WorldDataset(Dataset):
    """Map-style dataset of single-sample ``WorldBatch`` es (collate with
    ``collate_world_batches``). Deterministic per index: sample ``i`` is the same every time.

    Broken episodes raise ``EpisodeError`` naming the episode at construction; with
    ``cfg.skip_bad`` they are logged and left out instead.
    """

    def __init__(self, cfg: DataConfig, memory_cfg: MemoryConfig, split: str = "train"):
        self.cfg = cfg
        self.memory_cfg = memory_cfg
        self.split = split
        root = Path(cfg.root)
        entries = read_manifest(root)
        splits = {e.get("split", "train") for e in entries}
        if "val" not in splits:  # no val split on disk: hold out a deterministic fraction
            n_val = max(1, int(round(len(entries) * cfg.val_fraction))) if len(entries) > 1 else 0
            for j, e in enumerate(entries):
                e["split"] = "val" if j >= len(entries) - n_val else "train"
        self.episodes: list[Path] = []
        self.meta: list[tuple[int, torch.Tensor, torch.Tensor, int, int]] = []
        for e in entries:
            if e["split"] != split:
                continue
            path = episode_folder(root, e["path"], str(root / MANIFEST_NAME))
            try:
                ep = Episode.open(path)
                if ep.num_frames < cfg.chunk_frames + 1:
                    raise EpisodeError(
                        f"{path}: {ep.num_frames} frames, fewer than a chunk plus one context frame"
                    )
            except EpisodeError:
                if not cfg.skip_bad:
                    raise
                log.warning("skipping bad episode %s", path, exc_info=True)
                continue
            self.episodes.append(path)
            self.meta.append((ep.num_frames, ep.c2w.float(), ep.K.float(), ep.height, ep.width))
        if not self.episodes:
            raise ValueError(f"no usable '{split}' episodes under {root}")
        # Every target start of every episode: (episode, start). Start 0 has no context and an
        # empty memory: how a world generated from a prompt alone begins.
        T = cfg.chunk_frames
        self.starts = [(e, t) for e, m in enumerate(self.meta) for t in range(0, m[0] - T + 1)]
        self.revisits = self._mine_revisits(root)
        self.revisit_set = set(self.revisits)
        self._cache: OrderedDict[object, EpisodeFrames] = OrderedDict()
        self._cache_size = 16
        self.rollouts = self._find_rollouts() if split == "train" else {}

    def _find_rollouts(self) -> dict[int, Path]:
        """Episode index -> its rollout folder under ``data.rollout_root`` (same folder name;
        written by datasets/rollouts.py). Episodes without one never take a rollout history; a
        rollout whose cameras are not its episode's is an error naming both."""
        if not self.cfg.rollout_root:
            return {}
        out = {}
        for e, (path, (n, c2w, _K, _H, _W)) in enumerate(zip(self.episodes, self.meta)):
            folder = Path(self.cfg.rollout_root) / path.name
            if not folder.is_dir():
                continue
            ep = Episode.open(folder)
            if not runs_along(ep, n, c2w):
                raise EpisodeError(
                    f"{folder}: a rollout of {n} frames along the cameras of {path} expected, "
                    f"got {ep.num_frames} frames along other cameras"
                )
            out[e] = folder
        if not out:
            raise ValueError(f"data.rollout_root {self.cfg.rollout_root}: no rollout of any "
                             f"training episode under {self.cfg.root}")  # fmt: skip
        return out

    def field_of_view(self) -> tuple[float, float]:
        """The training frames' (horizontal, vertical) field of view in degrees: the median
        over every frame of every episode (frames are resized to a square, which keeps both).
        A model samples best at the cameras it was trained with, so its export keeps these."""
        fovs = [torch.stack(fov_from_intrinsics(K, W, H), -1) for _, _, K, H, W in self.meta]
        fx, fy = torch.cat(fovs).median(0).values.tolist()
        return fx, fy

    def _mine_revisits(self, root: Path) -> list[tuple[int, int]]:
        """(episode, target start) pairs that revisit: from ``root/revisits.jsonl`` when it was
        mined with these settings (datasets/mine_revisits.py), else mined from the cameras."""
        cfg = self.cfg
        index = {}
        if (root / REVISITS_NAME).is_file():
            index = read_revisit_index(root)
        out = []
        for e, (path, (_n, c2w, K, H, W)) in enumerate(zip(self.episodes, self.meta)):
            row = index.get(path.name)
            same = row is not None and (
                row.get("chunk_frames"),
                row.get("min_gap_frames"),
                row.get("min_overlap"),
            ) == (cfg.chunk_frames, cfg.min_revisit_gap_frames, cfg.revisit_min_overlap)
            found = (
                row["revisits"]
                if same
                else find_revisits(
                    c2w,
                    K,
                    H,
                    W,
                    chunk_frames=cfg.chunk_frames,
                    min_gap_frames=cfg.min_revisit_gap_frames,
                    min_overlap=cfg.revisit_min_overlap,
                )
            )
            out += [(e, r.target_start) for r in found if r.target_start >= 1]
        return out

    def __len__(self) -> int:
        return len(self.starts)

    def frames(self, e: int) -> EpisodeFrames:
        """The decoded episode ``e`` (cached, at most a few episodes per worker)."""
        return self._decoded(e, self.episodes[e])

    def rollout_frames(self, e: int) -> EpisodeFrames:
        """The model's rollout of episode ``e`` (``data.rollout_root``; cached likewise)."""
        return self._decoded(("rollout", e), self.rollouts[e])

    def _decoded(self, key, path: Path) -> EpisodeFrames:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        fr = read_episode_frames(Episode.open(path), self.cfg.image_size)
        self._cache[key] = fr
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return fr

    def __getitem__(self, i: int) -> WorldBatch:
        rng = np.random.default_rng([self.cfg.seed, i])
        if self.revisits and rng.random() < self.cfg.revisit_ratio:
            e, t = self.revisits[rng.integers(len(self.revisits))]
        else:
            e, t = self.starts[i]
        look = None
        if rng.random() < self.cfg.p_generated_history and self.split == "train":
            look = GeneratedLook(blur_px=rng.uniform(0.5, 1.5), contrast=rng.uniform(0.75, 1.0))
        if look is None and e in self.rollouts and rng.random() < self.cfg.p_rollout_history:
            look = RolloutHistory(self.rollout_frames(e))
        return self.sample(e, t, generated=look)

    def sample(
        self, e: int, t: int, generated: GeneratedLook | RolloutHistory | None = None
    ) -> WorldBatch:
        """The sample whose target chunk starts at frame ``t`` of episode ``e``.

        ``generated``: every history frame but frame 0 made to look like the model's own
        output (``GeneratedLook``) or replaced by it (``RolloutHistory``), and fused as
        generated, as a generation from a start frame holds it (frame 0 observed, and always
        in the spatial memory); None: the history as observed (true frames). Validation
        samples always take the true history."""
        cfg = self.cfg
        fr = self.frames(e)
        S = cfg.image_size
        T, Tc, Tk = cfg.chunk_frames, cfg.context_frames, cfg.keyframes
        tgt = list(range(t, t + T))
        ctx = list(range(max(0, t - Tc), t))
        history = list(range(0, t))[::-1][:: cfg.memory_stride_frames][: cfg.memory_max_frames][
            ::-1
        ]
        if generated is not None and history and history[0] != 0:
            history = [0, *history]  # a generation holds its start frame
        rgb = fr.rgb.float() / 255
        depth = fr.depth.float()
        target = (rgb[tgt], depth[tgt], fr.c2w[tgt], fr.K[tgt])
        made = sorted((set(history) | set(ctx)) - {0})  # the frames a generation made
        if generated is not None and made:
            rgb, depth = rgb.clone(), depth.clone()
            rgb[made], depth[made] = generated.apply_at(made, rgb[made], depth[made])

        # The memories a generation would hold after observing the history, filled the same
        # way (one insert of the history, then every history frame offered to the episodic
        # memory in order); the only difference is the stride and cap on the history, which
        # bound the cost of a sample. A generated-looking history goes in as a start frame
        # (observed) and then the generated frames.
        spatial = SpatialMemory(self.memory_cfg)
        episodic = EpisodicMemory(self.memory_cfg)
        if history:
            # a generated-looking history starts at frame 0 (see above)
            seen, made = (history, []) if generated is None else (history[:1], history[1:])
            for part, observed in ((seen, True), (made, False)):
                if part:
                    spatial.insert(
                        rgb[part],
                        depth[part],
                        fr.c2w[part],
                        fr.K[part],
                        step=part[-1],
                        observed=observed,
                    )
            for j in history:
                episodic.maybe_add(rgb[j], depth[j], fr.c2w[j], fr.K[j], step=j)
        working = (rgb[ctx], depth[ctx], fr.c2w[ctx], fr.K[ctx]) if ctx else None
        room = None
        if self.memory_cfg.layout == "box":  # fitted as the pipeline fits it
            layout = BoxLayout.from_frames(spatial.observed_frames())
            room = None if layout is None else layout.render(fr.c2w[tgt], fr.K[tgt], S)[:2]
        conditioning = assemble_inputs(
            fr.c2w[tgt],
            fr.K[tgt],
            S,
            mode="all",
            spatial=spatial,
            episodic=episodic,
            working=working,
            context_frames=Tc,
            keyframes=Tk,
            caption=fr.caption,
        )
        if room is not None:
            conditioning = replace(conditioning, hole_rgb=room[0][None], hole_depth=room[1][None])
        return WorldBatch.from_conditioning(
            conditioning,
            target=padded_frames(target, T, S, fr.K[0]),
            is_revisit=torch.tensor([(e, t) in self.revisit_set]),
        )


@dataclass(frozen=True)
class GeneratedLook:
    """How the model's own frames differ from true ones, to train on a history that looks
    like what a generation feeds back: its colours and depth blurred (a Gaussian of
    ``blur_px`` pixels) and its colour contrast shrunk towards each frame's mean (a model that
    is unsure paints the mean)."""

    blur_px: float
    contrast: float

    def apply(self, rgb: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """rgb ``(N, 3, S, S)`` in [0, 1], depth ``(N, 1, S, S)`` -> both degraded."""

        def blur(img: torch.Tensor) -> torch.Tensor:
            return gaussian_blur(img, self.blur_px, padding="replicate")

        mean = rgb.mean((2, 3), keepdim=True)
        rgb = (mean + self.contrast * (blur(rgb) - mean)).clamp(0, 1)
        return rgb, blur(depth)

    def apply_at(self, idx: list[int], rgb: torch.Tensor, depth: torch.Tensor):
        """Frames ``idx`` of an episode (their true rgb and depth given) as generated."""
        return self.apply(rgb, depth)


@dataclass(frozen=True)
class RolloutHistory:
    """What the model itself generated along the episode from its true first frame and depth
    (datasets/rollouts.py): its frames stand in for the true history."""

    frames: EpisodeFrames

    def apply_at(self, idx: list[int], rgb: torch.Tensor, depth: torch.Tensor):
        """Frames ``idx`` of the episode as the model generated them (the truth is not used)."""
        return self.frames.rgb[idx].float() / 255, self.frames.depth[idx].float()


def _one_thread(_worker_id: int) -> None:
    """Each data worker computes on one thread (the trainer owns the other cores)."""
    torch.set_num_threads(1)


class WorldDataModule(L.LightningDataModule):
    """Train/val ``WorldDataset`` s with workers; batches are ``WorldBatch``."""

    def __init__(self, cfg: DataConfig, memory_cfg: MemoryConfig):
        super().__init__()
        self.cfg = cfg
        self.memory_cfg = memory_cfg
        self.train_set: WorldDataset | None = None
        self.val_set: WorldDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = WorldDataset(self.cfg, self.memory_cfg, "train")
            self.val_set = WorldDataset(self.cfg, self.memory_cfg, "val")

    def _loader(self, ds: WorldDataset, shuffle: bool) -> DataLoader:
        w = self.cfg.num_workers
        # Workers are spawned, not forked: a fork taken after torch's intra-op thread pool has
        # started can deadlock in the child (seen as a hung DataLoader on a loaded machine).
        return DataLoader(
            ds,
            batch_size=self.cfg.batch_size,
            shuffle=shuffle,
            num_workers=w,
            collate_fn=collate_world_batches,
            persistent_workers=w > 0,
            drop_last=shuffle,
            prefetch_factor=2 if w > 0 else None,
            multiprocessing_context="spawn" if w > 0 else None,
            worker_init_fn=_one_thread if w > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)

    def transfer_batch_to_device(self, batch: WorldBatch, device, dataloader_idx: int):
        return batch.to(device)
