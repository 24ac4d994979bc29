"""Size and speed of the world model's DiT presets.

    python benchmarks/model.py [--train-steps 5] [--threads 2]

For every preset in configs/model/ prints parameters and forward FLOPs per frame (counted
with ``torch.utils.flop_counter`` on the meta device, for one sample of 2 context frames,
2 keyframes and ``chunk_frames`` targets; one denoising step, divided by all frames). Then,
for the tiny preset on this machine: training samples/s (AdamW, batch 8, 2 + 2 + 2 frames)
and sampling frames/s (4 steps, chunks of 2 frames, batch 1) with the context KV cache and,
as the baseline in the same process, without it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from worldmem.config import TrainRootConfig, load_config
from worldmem.diffusion import FlowMatching, WorldSampler
from worldmem.diffusion.dummy import dummy_world_batch
from worldmem.models import ModelFrames, WorldDiT, build_codec

PRESETS = Path(__file__).resolve().parents[1] / "configs" / "model"


def _frames(B: int, N: int, cfg, device) -> ModelFrames:
    g = cfg.image_size // cfg.latent_downsample
    eye4 = torch.eye(4, device=device).expand(B, N, 4, 4)
    K = torch.tensor(
        [
            [cfg.image_size, 0, cfg.image_size / 2],
            [0, cfg.image_size, cfg.image_size / 2],
            [0, 0, 1],
        ],
        device=device,
    ).expand(B, N, 3, 3)
    return ModelFrames(
        x=torch.zeros(B, N, cfg.latent_channels, g, g, device=device),
        sigma=torch.zeros(B, N, device=device),
        c2w=eye4,
        K=K,
        valid=torch.ones(B, N, dtype=torch.bool, device=device),
    )


def size_and_flops(name: str) -> dict:
    cfg = load_config(TrainRootConfig, [PRESETS / f"{name}.yaml"]).model
    cfg.gradient_checkpointing = False
    with torch.device("meta"):
        model = WorldDiT.from_model_config(cfg)
        T, n_mem = cfg.chunk_frames, 2
        tgt = _frames(1, T, cfg, "meta")
        ctx, kf = _frames(1, n_mem, cfg, "meta"), _frames(1, n_mem, cfg, "meta")
        g = cfg.image_size // cfg.latent_downsample
        mem = torch.zeros(1, T, cfg.latent_channels + 1, g, g)
        with FlopCounterMode(display=False) as full:
            model(tgt, ctx, kf, mem, ["a corridor with red brick walls"])
        with FlopCounterMode(display=False) as encode:
            cache = model.encode_context(ctx, kf, tgt.c2w[:, 0], [""])
        with FlopCounterMode(display=False) as step:
            model(tgt, memory=mem, cache=cache)
    params = sum(p.numel() for p in model.parameters())
    frames = T + 2 * n_mem
    return dict(
        name=name,
        params=params,
        tokens=model.tokens_per_frame,
        frames=f"{n_mem}+{n_mem}+{T}",
        gflop_frame=full.get_total_flops() / frames / 1e9,
        gflop_step=step.get_total_flops() / 1e9,
        gflop_cache=encode.get_total_flops() / 1e9,
    )


def _best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_gflops() -> float:
    """Baseline: fp32 1024^3 matrix multiply throughput in this process."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    return 2 * 1024**3 / _best_of(lambda: a @ b, 5) / 1e9


def tiny_speed(train_steps: int, sample_repeats: int) -> dict:
    cfg = load_config(TrainRootConfig, [PRESETS / "tiny.yaml"]).model
    torch.manual_seed(0)
    model = WorldDiT.from_model_config(cfg)
    codec = build_codec(cfg)
    fm = FlowMatching()
    batch = dummy_world_batch(8, 2, 2, 2, cfg.image_size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    drop = dict(working=0.1, episodic=0.2, spatial=0.2, text=0.1)

    def train_step():
        loss = fm.training_losses(model, codec, batch, drop)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        train_step()
    step_s = _best_of(train_step, train_steps)
    out = {
        "train_step_s": step_s,
        "train_samples_s": 8 / step_s,
        "train_gflops": counter.get_total_flops() / step_s / 1e9,
    }
    model.eval()
    one = dummy_world_batch(1, 2, 2, 2, cfg.image_size).conditioning
    for guidance in (1.0, 3.0):
        for cache in (True, False):
            s = WorldSampler(model, codec, steps=4, guidance_scale=guidance, use_cache=cache)
            gen = torch.Generator()
            chunk_s = _best_of(lambda s=s, g=gen: s.generate(one, g.manual_seed(0)), sample_repeats)
            out[(guidance, cache)] = 2 / chunk_s
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--sample-repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    print(
        "| preset | params | tokens/frame | frames (ctx+kf+tgt) | fwd GFLOP/frame "
        "| GFLOP/denoising step (cached) | GFLOP/context cache |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in ("tiny", "small", "base"):
        r = size_and_flops(name)
        print(
            f"| {r['name']} | {r['params'] / 1e6:.1f}M | {r['tokens']} | {r['frames']} "
            f"| {r['gflop_frame']:.2f} | {r['gflop_step']:.2f} | {r['gflop_cache']:.2f} |"
        )
    base = matmul_gflops()
    s = tiny_speed(args.train_steps, args.sample_repeats)
    load = os.getloadavg()[0]
    print(f"\ntiny on {args.threads} threads (best of runs; load average {load:.1f}):")
    print("| measure | value |")
    print("|---|---|")
    print(f"| baseline: fp32 1024^3 matmul | {base:.0f} GFLOP/s |")
    print(f"| AdamW step, batch 8 (2+2+2 frames) | {s['train_step_s']:.2f} s |")
    print(f"| training samples/s | {s['train_samples_s']:.1f} |")
    print(
        f"| training throughput / matmul baseline | {s['train_gflops']:.0f} GFLOP/s "
        f"({s['train_gflops'] / base:.2f}) |"
    )
    for guidance in (1.0, 3.0):
        c, u = s[(guidance, True)], s[(guidance, False)]
        print(
            f"| sampling frames/s, 4 steps, chunk 2, guidance {guidance:g}: cached / uncached "
            f"| {c:.1f} / {u:.1f} (x{c / u:.2f}) |"
        )


if __name__ == "__main__":
    main()
