"""Train ``FirstFrameNet`` (``worldmem/models/first_frame.py``): first frames from captions.

    python -m worldmem.training.first_frame --data data/synthetic --out runs/first_frame \\
        --minutes 60

A conditional GAN on the frames of a dataset's training episodes, each with its episode's
caption: the hinge loss against a ``FirstFrameCritic`` (projection discriminator with the
batch's standard deviation as a feature, so a collapsed batch is told apart), Adam (beta1
0.5), and an exponential moving average of the generator's weights (what is saved and
sampled, its BatchNorm statistics recomputed for the averaged weights: ``standing_stats``).
A tenth of the captions are dropped to the empty caption (a zero embedding), so an empty
prompt still draws a world.

Every ``--val-every`` steps the average generator is saved to ``--out`` (``step_N/`` every
``--keep-every``), ``preview.png`` shows it on the validation episodes' captions beside their
true frames, and ``log.csv`` records the losses and the KID (EfficientNet-Lite0 features, as
the evaluation's) between frames drawn for the validation captions and those episodes' frames.
``--resume`` continues from a saved folder (the generator and its average; the critic and the
optimisers start anew).
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from worldmem.data.episode import Episode
from worldmem.data.manifest import episode_folder, read_manifest
from worldmem.models.first_frame import (
    FirstFrameConfig,
    FirstFrameCritic,
    FirstFrameNet,
    caption_embedding,
)

__all__ = ["load_frames", "hinge_losses", "gan_step", "standing_stats", "train", "main"]

LOG_FIELDS = ("step", "seconds", "d_loss", "g_loss", "d_real", "d_fake", "val_kid")


def load_frames(root: str | Path, split: str, every: int) -> tuple[torch.Tensor, list, np.ndarray]:
    """Every ``every``-th frame of the ``split`` episodes of the dataset at ``root``:
    frames ``(N, 3, S, S)`` uint8, the episodes' captions and each frame's episode ``(N,)``."""
    entries = [e for e in read_manifest(root) if e["split"] == split]
    if not entries:
        raise ValueError(f"{root}: no {split} episodes in the manifest")
    frames, captions, owner = [], [], []
    for i, e in enumerate(entries):
        ep = Episode.open(episode_folder(root, e["path"], str(root)))
        try:
            rgb = ep.read_rgb(list(range(0, ep.num_frames, every)))
        finally:
            ep.close()
        frames.append((rgb * 255).round().to(torch.uint8))
        captions.append(ep.caption)
        owner += [i] * len(rgb)
    return torch.cat(frames), captions, np.asarray(owner)


def hinge_losses(real_score: torch.Tensor, fake_score: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The critic's hinge loss ``mean(relu(1 - real)) + mean(relu(1 + fake))`` and the
    generator's ``-mean(fake)`` (computed on the same fake scores)."""
    d = F.relu(1 - real_score).mean() + F.relu(1 + fake_score).mean()
    return d, -fake_score.mean()


def gan_step(net, critic, opt_g, opt_d, real, cond, z) -> dict:
    """One step of each: the critic on ``real`` frames against the net's draws for ``cond``
    from noise ``z``, then the net against the updated critic. Returns the losses and the
    critic's mean scores of the real and drawn frames (before its update)."""
    fake = net(cond, z)
    d_real, d_fake = critic(real, cond), critic(fake.detach(), cond)
    d_loss, _ = hinge_losses(d_real, d_fake)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    _, g_loss = hinge_losses(d_real.detach(), critic(fake, cond))
    opt_d.zero_grad(set_to_none=True)  # the critic's gradients from the net's loss: unused
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {
        "d_loss": d_loss.item(),
        "g_loss": g_loss.item(),
        "d_real": d_real.mean().item(),
        "d_fake": d_fake.mean().item(),
    }


@torch.no_grad()
def standing_stats(net, text: torch.Tensor, batches: int = 16, batch: int = 32, seed: int = 0):
    """Set the BatchNorm running statistics of ``net`` to their mean over ``batches`` batches
    of draws for captions taken from ``text`` ``(E, 384)``: the statistics of these weights
    (an average of weights is not run with the statistics its last member trained with)."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not norms:
        return net
    was_training = net.training
    g = torch.Generator().manual_seed(seed)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative mean over the batches
    net.train()
    for _ in range(batches):
        cond = text[torch.randint(len(text), (batch,), generator=g)]
        net(cond, torch.randn(batch, net.cfg.z_dim, generator=g))
    for m in norms:
        m.momentum = 0.1
    return net.train(was_training)


def _ema(avg: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for a, p in zip(avg.parameters(), net.parameters()):
            a.lerp_(p, 1 - decay)
        for a, b in zip(avg.buffers(), net.buffers()):
            a.copy_(b)


def _preview(path: Path, *blocks: torch.Tensor, cols: int = 8) -> None:
    """Rows of ``cols`` frames: each block's first ``cols``, then its next ``cols``..."""
    from PIL import Image

    rows = []
    for block in [b[i : i + cols] for b in blocks for i in range(0, len(b), cols)]:
        if len(block) == cols:
            rows.append(torch.cat(list(block), 2))
    grid = torch.cat(rows, 1).permute(1, 2, 0).clamp(0, 1)
    img = Image.fromarray((grid * 255).round().byte().numpy())
    img.resize((img.width * 2, img.height * 2), Image.NEAREST).save(path)


def train(args) -> dict:
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames, captions, owner = load_frames(args.data, "train", args.every)
    val_frames, val_captions, val_owner = load_frames(args.data, "val", args.every)
    text = caption_embedding(captions)  # (E, 384), one per episode
    val_text = caption_embedding(val_captions)
    print(f"{len(frames)} training frames of {len(captions)} episodes; {len(val_frames)} val")

    if args.resume:
        net = FirstFrameNet.from_pretrained(args.resume).train()
    else:
        cfg = FirstFrameConfig(
            image_size=frames.shape[-1], widths=tuple(args.widths), norm=args.norm
        )
        net = FirstFrameNet(cfg)
    avg = copy.deepcopy(net).eval().requires_grad_(False)
    critic = FirstFrameCritic(batch_std=args.batch_std)
    betas = (args.beta1, 0.999)
    opt_g = torch.optim.Adam(net.parameters(), lr=args.lr, betas=betas)
    opt_d = torch.optim.Adam(critic.parameters(), lr=args.lr_critic, betas=betas)

    features = None
    if args.kid:
        from worldmem.eval.metrics import EfficientNetFeatures, image_features

        features = EfficientNetFeatures().eval()
        pick = torch.randperm(len(val_frames), generator=torch.Generator().manual_seed(0))
        val_real = val_frames[pick[: args.kid_frames]].float() / 255
        real_feats = image_features(features, val_real)
        val_cond = val_text[torch.as_tensor(val_owner[pick[: args.kid_frames].numpy()])]
    z_fixed = torch.randn(16, net.cfg.z_dim, generator=torch.Generator().manual_seed(1))
    prev_text = val_text[torch.arange(16) % len(val_text)]
    prev_real = (
        torch.stack(
            [val_frames[int(np.flatnonzero(val_owner == i % len(val_text))[0])] for i in range(8)]
        ).float()
        / 255
    )

    log_path = out / "log.csv"
    new_log = not log_path.exists()
    log = open(log_path, "a", newline="")
    writer = csv.DictWriter(log, LOG_FIELDS)
    if new_log:
        writer.writeheader()
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    row = {}
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(frames), (args.batch,), generator=g)
        real = frames[idx].float() / 255
        cond = text[torch.as_tensor(owner[idx.numpy()])]
        drop = torch.rand(args.batch, generator=g) < args.p_uncond
        cond = torch.where(drop[:, None], torch.zeros_like(cond), cond)
        z = torch.randn(args.batch, net.cfg.z_dim, generator=g)
        losses = gan_step(net, critic, opt_g, opt_d, real, cond, z)
        _ema(avg, net, args.ema if step > args.ema_start else 0.0)
        row = {"step": step, "seconds": round(time.perf_counter() - t0, 1)}
        row.update({k: round(v, 4) for k, v in losses.items()}, val_kid="")
        done = step == args.steps or time.perf_counter() - t0 > args.minutes * 60
        if step % args.val_every == 0 or done:
            standing_stats(avg, text)
            with torch.no_grad():
                shown = avg(prev_text, z_fixed)
                raw = net.eval()(prev_text[:8], z_fixed[:8])
                net.train()
                if features is not None:
                    from worldmem.eval.metrics import image_features, kid

                    zg = torch.Generator().manual_seed(2)
                    drawn = avg(val_cond, torch.randn(len(val_cond), net.cfg.z_dim, generator=zg))
                    row["val_kid"] = round(kid(image_features(features, drawn), real_feats)[0], 4)
            _preview(out / "preview.png", shown, raw, prev_real)
            avg.save_pretrained(out)
            if step % args.keep_every == 0:
                avg.save_pretrained(out / f"step_{step}")
            print(row, flush=True)
        if step % args.log_every == 0 or row["val_kid"] != "" or done:
            writer.writerow(row)
            log.flush()
        if done:
            break
    log.close()
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/synthetic")
    p.add_argument("--out", required=True, help="folder for the weights, log.csv, preview.png")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--minutes", type=float, default=60.0, help="stop after this long")
    p.add_argument("--every", type=int, default=2, help="take every n-th frame of an episode")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--widths", type=int, nargs="+", default=[128, 64, 32, 16])
    p.add_argument("--norm", default="batch", choices=("batch", "pixel", "group"))
    p.add_argument("--batch-std", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--lr-critic", type=float, default=2e-4)
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--ema-start", type=int, default=500, help="copy the weights until then")
    p.add_argument("--p-uncond", type=float, default=0.1, help="captions dropped to empty")
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--keep-every", type=int, default=2000)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--kid", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--kid-frames", type=int, default=200)
    p.add_argument("--resume", default=None, help="a FirstFrameNet folder to start from")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch < 2 or not math.isfinite(args.minutes) or args.minutes <= 0:
        raise SystemExit("--steps must be >= 1, --batch >= 2 and --minutes > 0")
    torch.set_num_threads(args.threads)
    train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
