"""A first frame for a prompt, retrieved: real frames of the training worlds with their depth,
chosen by how near their captions are to the prompt.

The world model draws a chunk from its memories; with none (a prompt alone) it draws a smooth
blur, and a caption-conditioned generator trained on this budget draws noise (the README's
results). Retrieval needs no training: the bank holds one level view (no pitch, no roll) of
each training episode with its depth and caption, and ``draw`` picks, for a prompt, one of
the ``top_k`` captions nearest to it (``similarity``: each of the prompt's tokens matched to
the caption's most similar, in the frozen MiniLM encoder's token states), with probability
``softmax(similarity / temperature)`` from a seeded generator, so the nearest wins most draws
and seeds still vary. The world then begins from that frame and its depth as from a start
image with depth. An empty prompt draws from the whole bank alike.

What it cannot do: show a world no training caption is near. A prompt always gets a real
frame of the nearest world the bank holds, never a new one; how near is ``similarity``.

Saved as ``config.json`` (captions, episodes, frame indices, ``top_k``, ``temperature``) and
``bank.npz`` (``rgb`` uint8 ``(N, S, S, 3)``, ``depth`` float16 ``(N, S, S)`` metres, ``K``
float32 ``(3, 3)``: every frame shares one camera). Built by
``python -m worldmem.models.first_frame_bank --data <episode root> --pipeline <folder>``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["FirstFrameBank", "level_frames"]

CONFIG_FILE = "config.json"
ARRAYS_FILE = "bank.npz"
FOLDER = "first_frame_bank"


def level_frames(c2w: Tensor, max_tilt_deg: float) -> Tensor:
    """Indices of the cameras ``c2w`` ``(N, 4, 4)`` (OpenCV, world "up" is -y) whose pitch
    and roll are both within ``max_tilt_deg`` of level."""
    forward, right = c2w[:, :3, 2], c2w[:, :3, 0]
    pitch = torch.rad2deg(torch.asin(forward[:, 1].clamp(-1, 1))).abs()
    roll = torch.rad2deg(torch.asin(right[:, 1].clamp(-1, 1))).abs()
    return torch.nonzero((pitch <= max_tilt_deg) & (roll <= max_tilt_deg))[:, 0]


class FirstFrameBank:
    """Frames ``rgb`` uint8 ``(N, 3, S, S)``, their ``depth`` ``(N, 1, S, S)`` metres (0:
    unknown), one intrinsics ``K`` ``(3, 3)`` and ``captions`` (N); ``sources`` names where
    each frame came from (episode and frame)."""

    kind = "first-frame bank"

    def __init__(
        self,
        rgb: Tensor,
        depth: Tensor,
        K: Tensor,
        captions: list[str],
        sources: list[str] | None = None,
        top_k: int = 4,
        temperature: float = 0.02,
    ):
        N = len(captions)
        if N == 0:
            raise ValueError(f"{self.kind}: no frames")
        if rgb.dtype != torch.uint8 or rgb.ndim != 4 or rgb.shape[:2] != (N, 3):
            raise ValueError(
                f"{self.kind}: rgb must be uint8 ({N}, 3, S, S), got {rgb.dtype} {tuple(rgb.shape)}"
            )
        if tuple(depth.shape) != (N, 1, *rgb.shape[2:]):
            raise ValueError(
                f"{self.kind}: depth must be ({N}, 1, {rgb.shape[2]}, {rgb.shape[3]}), got "
                f"{tuple(depth.shape)}"
            )
        if not bool(torch.isfinite(depth).all()) or bool((depth < 0).any()):
            raise ValueError(f"{self.kind}: depth must be finite and >= 0")
        if tuple(K.shape) != (3, 3) or not bool(torch.isfinite(K).all()):
            raise ValueError(f"{self.kind}: K must be a finite (3, 3), got {tuple(K.shape)}")
        if not all(isinstance(c, str) for c in captions):
            raise ValueError(f"{self.kind}: captions must be strings")
        if sources is not None and len(sources) != N:
            raise ValueError(f"{self.kind}: {len(sources)} sources for {N} frames")
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"{self.kind}: top_k must be an int >= 1, got {top_k!r}")
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"{self.kind}: temperature must be > 0, got {temperature!r}")
        self.rgb, self.depth = rgb, depth.float()
        self.K = K.float()
        self.captions = list(captions)
        self.sources = list(sources) if sources is not None else [""] * N
        self.top_k, self.temperature = top_k, float(temperature)
        self._states: tuple[Tensor, Tensor] | None = None

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def image_size(self) -> int:
        return int(self.rgb.shape[-1])

    def _caption_states(self) -> tuple[Tensor, Tensor]:
        """Every caption's token states, padded: ``(N, L, 384)`` and their mask ``(N, L)``
        (computed on first use, once per distinct caption)."""
        if self._states is None:
            from worldmem.models.first_frame import TEXT_DIM, caption_states

            table = {c: caption_states(c) for c in dict.fromkeys(self.captions)}
            L = max(1, *(len(t) for t in table.values()))
            states = torch.zeros(len(self), L, TEXT_DIM)
            mask = torch.zeros(len(self), L, dtype=torch.bool)
            for i, c in enumerate(self.captions):
                states[i, : len(table[c])] = table[c]
                mask[i, : len(table[c])] = True
            self._states = states, mask
        return self._states

    def similarity(self, prompt: str) -> Tensor:
        """How near ``prompt`` is to every caption ``(N,)``, in [-1, 1] (all 0 for a prompt
        without a word the encoder reads; -2 for a caption without one): late
        interaction over MiniLM token states (Khattab and Zaharia 2020), each token of the
        prompt matched to its most similar token of the caption, averaged; so a caption
        scores by whether it says what the prompt says ("crimson" finds "red", "hallway"
        finds "corridor"), not by its length."""
        sim = self._similarity(prompt)
        return torch.zeros(len(self)) if sim is None else sim

    def _similarity(self, prompt: str) -> Tensor | None:
        """``similarity``, or None for a prompt without a word the encoder reads."""
        from worldmem.models.first_frame import caption_states

        q = caption_states(prompt)  # (Lq, 384)
        if len(q) == 0:
            return None
        states, mask = self._caption_states()
        cos = torch.einsum("qd,nld->nql", q, states).masked_fill(~mask[:, None], -2.0)
        return cos.amax(2).mean(1)

    def probabilities(self, prompt: str) -> Tensor:
        """``(N,)``: what ``draw`` picks from: softmax(similarity / temperature) over the
        ``top_k`` nearest captions (0 elsewhere); for a prompt without a word the encoder
        reads ("", spaces) every frame alike."""
        N = len(self)
        sim = self._similarity(prompt)
        if sim is None:
            return torch.full((N,), 1.0 / N)
        top = sim.topk(min(self.top_k, N)).indices
        p = torch.zeros(N)
        p[top] = torch.softmax(sim[top] / self.temperature, 0)
        return p

    def choose(self, prompt: str, generator: torch.Generator | None = None) -> int:
        """The index of the frame ``draw`` gives ``prompt``, drawn from ``generator``."""
        return int(torch.multinomial(self.probabilities(prompt), 1, generator=generator))

    def draw(
        self, prompt: str, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, int]:
        """A frame for ``prompt`` -> (rgb ``(3, S, S)`` in [0, 1], depth ``(1, S, S)``
        metres, its index)."""
        i = self.choose(prompt, generator)
        return self.rgb[i].float() / 255, self.depth[i].clone(), i

    # -- building and saving -----------------------------------------------------------------

    @classmethod
    def from_episodes(
        cls,
        root: str | Path,
        split: str = "train",
        per_episode: int = 1,
        max_tilt_deg: float = 2.0,
        **kw,
    ) -> FirstFrameBank:
        """The bank of an episode root's ``split``: per episode with depth, its first
        ``per_episode`` level views (``level_frames``), spread evenly over its level frames.
        Episodes without depth or without a level view are left out; frames of another size
        or camera than the first kept are refused naming the episode."""
        from worldmem.data.episode import Episode
        from worldmem.data.manifest import episode_folder, read_manifest

        if per_episode < 1:
            raise ValueError(f"per_episode must be >= 1, got {per_episode}")
        rgb, depth, captions, sources, K = [], [], [], [], None
        for entry in read_manifest(root):
            if entry.get("split", "train") != split:
                continue
            ep = Episode.open(episode_folder(root, entry["path"], str(root)))
            try:
                level = level_frames(ep.c2w, max_tilt_deg)
                if not ep.has_depth or len(level) == 0:
                    continue
                pick = np.linspace(0, len(level) - 1, min(per_episode, len(level)))
                idx = [int(level[int(round(i))]) for i in pick]
                k = ep.K[idx[0]]
                if K is None:
                    K, size = k, (ep.height, ep.width)
                if (ep.height, ep.width) != size or not torch.allclose(
                    ep.K[idx], K.expand(len(idx), 3, 3), rtol=1e-3, atol=1e-3
                ):
                    raise ValueError(
                        f"{ep.folder}: frames {ep.width}x{ep.height} with K {ep.K[idx[0]].tolist()}"
                        f", the bank's are {size[1]}x{size[0]} with K {K.tolist()}"
                    )
                rgb.append((ep.read_rgb(idx) * 255).round().to(torch.uint8))
                depth.append(ep.read_depth(idx))
                captions += [ep.caption] * len(idx)
                sources += [f"{entry['path']}:{i}" for i in idx]
            finally:
                ep.close()
        if K is None:
            raise ValueError(
                f"{root}: no {split!r} episode with depth and a level view (within "
                f"{max_tilt_deg} degrees)"
            )
        return cls(torch.cat(rgb), torch.cat(depth), K, captions, sources, **kw)

    def save_pretrained(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = {
            "top_k": self.top_k,
            "temperature": self.temperature,
            "captions": self.captions,
            "sources": self.sources,
        }
        (path / CONFIG_FILE).write_text(json.dumps(cfg, indent=1) + "\n")
        np.savez_compressed(
            path / ARRAYS_FILE,
            rgb=self.rgb.permute(0, 2, 3, 1).contiguous().numpy(),
            depth=self.depth[:, 0].half().numpy(),
            K=self.K.numpy(),
        )
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path) -> FirstFrameBank:
        path = Path(path)
        try:
            cfg = json.loads((path / CONFIG_FILE).read_text())
            captions, sources = cfg["captions"], cfg["sources"]
            top_k, temperature = cfg["top_k"], cfg["temperature"]
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ValueError(f"{path / CONFIG_FILE}: not a {cls.kind} config: {e}") from None
        from worldmem.data.episode import NPZ_ERRORS

        try:
            with np.load(path / ARRAYS_FILE, allow_pickle=False) as z:
                rgb, depth, K = z["rgb"], z["depth"], z["K"]
        except NPZ_ERRORS as e:
            raise ValueError(f"{path / ARRAYS_FILE}: not a {cls.kind}: {e}") from None
        if rgb.ndim != 4 or depth.ndim != 3:
            raise ValueError(
                f"{path / ARRAYS_FILE}: rgb (N, S, S, 3) and depth (N, S, S) expected, got "
                f"{rgb.shape} and {depth.shape}"
            )
        try:
            return cls(
                torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous(),
                torch.from_numpy(depth.astype(np.float32))[:, None],
                torch.from_numpy(K),
                captions,
                sources,
                top_k,
                temperature,
            )
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def main(argv: list[str] | None = None) -> int:
    from worldmem.pipeline_files import read_pipeline_json, write_pipeline_json

    ap = argparse.ArgumentParser(
        prog="python -m worldmem.models.first_frame_bank",
        description="Build a pipeline's first-frame bank from an episode root's training "
        "episodes and make it what a prompt-only world starts from (sampler.prompt_start: "
        "bank).",
    )
    ap.add_argument("--data", required=True, help="episode root (manifest.jsonl)")
    ap.add_argument("--pipeline", required=True, help="pipeline folder to write it into")
    ap.add_argument("--split", default="train")
    ap.add_argument("--per-episode", type=int, default=1)
    ap.add_argument("--max-tilt-deg", type=float, default=2.0)
    ap.add_argument("--top-k", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.02)
    args = ap.parse_args(argv)
    folder = Path(args.pipeline)
    meta = read_pipeline_json(folder)
    size = meta["model"]["image_size"]
    bank = FirstFrameBank.from_episodes(
        args.data,
        args.split,
        args.per_episode,
        args.max_tilt_deg,
        top_k=args.top_k,
        temperature=args.temperature,
    )
    if bank.image_size != size:
        raise SystemExit(f"{args.data}: {bank.image_size} px frames, the model {size} px")
    bank.save_pretrained(folder / FOLDER)
    meta["sampler"]["prompt_start"] = "bank"
    write_pipeline_json(folder, meta)
    mb = sum(f.stat().st_size for f in (folder / FOLDER).iterdir()) / 2**20
    fov = 2 * math.degrees(math.atan(size / 2 / float(bank.K[0, 0])))
    print(f"{len(bank)} frames ({size} px, horizontal fov {fov:.1f} deg), {mb:.1f} MB -> {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
