"""build_trainer(cfg) and the training callbacks (sample videos, loss curve)."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from worldmem.config import TrainConfig
from worldmem.data.batch import WorldBatch

__all__ = [
    "build_trainer",
    "SampleVideoCallback",
    "plot_loss_curve",
    "find_last_checkpoint",
    "metrics_files",
]


class SampleVideoCallback(Callback):
    """Every ``every_steps`` steps, generates the targets of a fixed batch with the EMA weights
    and writes ``samples/step_XXXXXX.mp4`` (rows: ground truth | memory render | generated) to
    the log folder, and the same frames as an image to TensorBoard."""

    def __init__(self, batch: WorldBatch, every_steps: int, out_dir: str | Path, steps: int = 4):
        self.batch = batch
        self.every = every_steps
        self.out_dir = Path(out_dir) / "samples"
        self.steps = steps

    @torch.no_grad()
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.every <= 0 or step == 0 or step % self.every or not trainer.is_global_zero:
            return
        from worldmem.io import write_video  # video I/O is only needed here

        b = self.batch.to(module.device)
        g = torch.Generator(device=module.device).manual_seed(0)
        rgb, _ = module.sampler(steps=self.steps).generate(b.conditioning, generator=g)
        # (B, T, 3, H, W) x 3 -> frames (T, 3*H, B*W, 3)
        rows = torch.stack([b.target.rgb, b.memory_rgb, rgb.clamp(0, 1)], 2)  # (B, T, 3, 3, H, W)
        B, T, R, C, H, W = rows.shape
        frames = rows.permute(1, 2, 4, 0, 5, 3).reshape(T, R * H, B * W, C)
        frames = (frames.cpu().numpy() * 255).round().astype(np.uint8)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_video(self.out_dir / f"step_{step:06d}.mp4", frames, fps=4)
        for lg in trainer.loggers:
            if isinstance(lg, TensorBoardLogger):
                lg.experiment.add_image("samples", frames[0], step, dataformats="HWC")


def metrics_files(out_dir: str | Path) -> list[Path]:
    """The CSV metrics of every run under ``out_dir`` (resumes included), oldest first."""
    runs = (Path(out_dir) / "logs").glob("version_*/metrics.csv")
    return sorted(runs, key=lambda p: int(p.parent.name.split("_")[1]))


def find_last_checkpoint(out_dir: str | Path) -> Path | None:
    """The ``last.ckpt`` under ``out_dir/checkpoints``, if any."""
    p = Path(out_dir) / "checkpoints" / "last.ckpt"
    return p if p.is_file() else None


def _strategy(cfg: TrainConfig):
    """``cfg.strategy``, or for fsdp with ``fsdp_wrap_modules`` an FSDP strategy that shards
    each module of those class names (e.g. each transformer block) as one unit."""
    if cfg.strategy != "fsdp" or not cfg.fsdp_wrap_modules:
        return cfg.strategy
    from functools import partial

    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

    names = frozenset(cfg.fsdp_wrap_modules)
    policy = partial(lambda_auto_wrap_policy, lambda_fn=lambda m: type(m).__name__ in names)
    return FSDPStrategy(auto_wrap_policy=policy)


def build_trainer(cfg: TrainConfig, callbacks: list[Callback] = ()) -> L.Trainer:
    """A Lightning Trainer from ``TrainConfig``: step-based checkpoints (keeping ``last.ckpt``
    for resume), CSV + TensorBoard logs under ``out_dir``, strategy from config (ddp, fsdp)."""
    out = Path(cfg.out_dir)
    ckpt = ModelCheckpoint(
        dirpath=out / "checkpoints",
        every_n_train_steps=cfg.ckpt_every_steps,
        save_last=True,
        save_top_k=-1 if cfg.ckpt_every_steps > 0 else 0,
        filename="step_{step:06d}",
        auto_insert_metric_name=False,
    )
    loggers = [
        CSVLogger(out, name="logs"),  # a version_N folder per run: a resume never overwrites
        TensorBoardLogger(out, name="tb", version="", default_hp_metric=False),
    ]
    return L.Trainer(
        max_steps=cfg.max_steps,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=_strategy(cfg),
        precision=cfg.precision,
        gradient_clip_val=cfg.grad_clip if cfg.grad_clip > 0 else None,
        log_every_n_steps=cfg.log_every_steps,
        val_check_interval=cfg.val_every_steps,
        check_val_every_n_epoch=None,
        limit_val_batches=cfg.val_batches,
        num_sanity_val_steps=0,
        callbacks=[ckpt, TQDMProgressBar(refresh_rate=10), *callbacks],
        logger=loggers,
        default_root_dir=out,
        enable_model_summary=False,
    )


def plot_loss_curve(metrics_csvs: list[str | Path], out_png: str | Path, smooth: int = 25) -> Path:
    """Plot train loss (raw and smoothed) and val loss from Lightning's CSV logs (one file per
    run of a resumed training, in order) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, loss, vsteps, vloss = [], [], [], []
    for path in metrics_csvs:
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get("train/loss"):
                    steps.append(int(row["step"]))
                    loss.append(float(row["train/loss"]))
                if row.get("val/loss"):
                    vsteps.append(int(row["step"]))
                    vloss.append(float(row["val/loss"]))
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(steps, loss, alpha=0.3, color="C0", label="train (per log step)")
    if len(loss) >= smooth:
        k = np.ones(smooth) / smooth
        ax.plot(
            steps[smooth - 1 :], np.convolve(loss, k, "valid"), color="C0", label="train (smoothed)"
        )
    if vloss:
        ax.plot(vsteps, vloss, "o-", color="C1", label="val (EMA)")
    ax.set_xlabel("step")
    ax.set_ylabel("flow-matching loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)
