"""Write the model's own rollouts of a dataset's episodes: the history a generation feeds back.

    python datasets/rollouts.py --root data/synthetic --out data/rollouts \
        --checkpoint checkpoints/worldmem-tiny --episodes 100

For each training episode, the pipeline starts from its true first frame and depth at its
first camera and generates every later frame along its cameras, as ``sample.py`` would. The
episode written under ``--out`` has the same folder name, cameras and caption; frame 0 is the
true frame and frames 1.. are the generated frames and their generated depth. Training reads
them with ``data.rollout_root=<out> data.p_rollout_history=<p>``: such a sample's history is
what the model made of it (fused as generated), while its targets stay the truth, so the model
learns to correct its own errors instead of only ever seeing clean memories.

Episodes already under ``--out`` with the same cameras are kept (a stopped run goes on where
it stopped); ``OUT/manifest.jsonl`` lists every rollout written so far.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from worldmem.data.dataset import read_episode_frames, runs_along
from worldmem.data.episode import (
    Episode,
    EpisodeError,
    episode_folder,
    read_manifest,
    write_episode,
    write_manifest,
)


def rollout(pipe, frames, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pipeline's generation along ``frames`` (``EpisodeFrames`` at the model's size) from
    its true first frame and depth -> rgb uint8 ``(N, S, S, 3)`` and depth ``(N, S, S)``
    metres, frame 0 the true one."""
    rgb = frames.rgb.float() / 255
    depth = frames.depth.float()
    pipe.start(prompt=frames.caption, image=rgb[0], depth=depth[0], c2w=frames.c2w[0], seed=seed)
    chunk = pipe.step(frames.c2w[1:], frames.K[1:])
    out_rgb = torch.cat([rgb[:1], chunk.rgb.detach().cpu().float().clamp(0, 1)])
    out_depth = torch.cat([depth[:1], chunk.depth.detach().cpu().float()])
    return (out_rgb * 255).round().to(torch.uint8).permute(0, 2, 3, 1), out_depth[:, 0]


def _done(folder: Path, frames) -> bool:
    """Whether ``folder`` already holds a rollout of these cameras."""
    try:
        ep = Episode.open(folder)
    except EpisodeError:
        return False
    return runs_along(ep, frames.num_frames, frames.c2w)


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--root", default="data/synthetic", help="the dataset (manifest.jsonl)")
    p.add_argument("--out", default="data/rollouts")
    p.add_argument("--checkpoint", default="checkpoints/worldmem-tiny")
    p.add_argument("--episodes", type=int, default=0, help="first N training episodes (0: all)")
    p.add_argument("--seed", type=int, default=0, help="noise seed of the first episode's rollout")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from worldmem.pipeline import WorldPipeline

    root, out = Path(a.root), Path(a.out)
    pipe = WorldPipeline.from_pretrained(a.checkpoint, device="cpu")
    size = pipe.model.config.image_size
    entries = [e for e in read_manifest(root) if e.get("split", "train") == "train"]
    if a.episodes:
        entries = entries[: a.episodes]
    out.mkdir(parents=True, exist_ok=True)
    written, t0 = [], time.time()
    for i, entry in enumerate(entries):
        src = episode_folder(root, entry["path"], str(root / "manifest.jsonl"))
        frames = read_episode_frames(Episode.open(src), size)
        dst = out / src.name
        if not _done(dst, frames):
            rgb, depth = rollout(pipe, frames, a.seed + i)
            write_episode(dst, rgb, frames.c2w, frames.K, frames.caption, depth=depth)
        written.append(
            dict(path=src.name, split="train", num_frames=frames.num_frames, caption=frames.caption)
        )
        write_manifest(out, written)  # after every episode: a stopped run keeps what it made
        print(f"{i + 1}/{len(entries)} {src.name} ({time.time() - t0:.0f} s)", flush=True)
    return out


if __name__ == "__main__":
    main()
