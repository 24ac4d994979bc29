"""Train the world model.

    python train.py --config configs/train/tiny.yaml [key=value ...]

``key=value`` overrides use the config schema's dotted names (``train.max_steps=100``); a
misspelt key is an error naming the valid keys. ``train.resume=last`` continues the run in
``train.out_dir`` from its last checkpoint (same step, same optimizer state).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worldmem.config import ConfigError, TrainRootConfig, load_config


def parse_args(argv: list[str] | None = None) -> TrainRootConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", action="append", default=[], help="YAML preset (repeatable)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.max_steps=100")
    a = p.parse_args(argv)
    return load_config(TrainRootConfig, a.config, a.overrides)


def main(cfg: TrainRootConfig) -> Path:
    """Train, write the loss curve, and export the EMA model as a pipeline folder.

    Returns the exported pipeline folder (``<out_dir>/pipeline``).
    """
    import lightning as L
    import torch

    from worldmem.config import to_dict
    from worldmem.data.batch import collate_world_batches
    from worldmem.data.dataset import WorldDataModule
    from worldmem.pipeline import WorldPipeline
    from worldmem.training.module import WorldModule
    from worldmem.training.trainer import (
        SampleVideoCallback,
        build_trainer,
        find_last_checkpoint,
        metrics_files,
        plot_loss_curve,
    )

    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    L.seed_everything(cfg.train.seed, workers=True)
    out = Path(cfg.train.out_dir)
    dm = WorldDataModule(cfg.data, cfg.memory)
    dm.setup("fit")
    module = WorldModule(to_dict(cfg))
    if cfg.train.init_from:
        module.load_weights_from(cfg.train.init_from)
        print(f"model and EMA weights from {cfg.train.init_from}")
    preview = collate_world_batches([dm.val_set[i] for i in range(min(2, len(dm.val_set)))])
    callbacks = [SampleVideoCallback(preview, cfg.train.sample_every_steps, out)]
    trainer = build_trainer(cfg.train, callbacks)
    ckpt = cfg.train.resume
    if ckpt == "last":
        ckpt = find_last_checkpoint(out)
        print(f"resuming from {ckpt}" if ckpt else "no checkpoint to resume; starting fresh")
    done = _read_checkpoint(ckpt) if ckpt else None
    if done is not None and done["global_step"] >= cfg.train.max_steps:
        # nothing left to train (a run stopped early and exported at its checkpoint):
        # Lightning refuses to resume a finished mid-epoch run, so take its weights directly
        print(f"{ckpt} is at step {done['global_step']} >= max_steps: exporting it")
        module.load_state_dict(done["state_dict"])
    else:
        # weights_only: Lightning reads the checkpoint again, and never unpickles code either
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
    del done
    export = out / "pipeline"
    if trainer.is_global_zero:
        if metrics_files(out):
            plot_loss_curve(metrics_files(out), out / "loss_curve.png")
        if dm.train_set is None:
            dm.setup("fit")
        fov_x, fov_y = dm.train_set.field_of_view()  # the cameras it learned from
        WorldPipeline.from_module(module, fov_x, fov_y).save_pretrained(export)
        print(f"exported the EMA model to {export}")
    return export


def _read_checkpoint(path) -> dict:
    """A Lightning checkpoint to resume (mmap: only the step and the weights are read, not the
    optimizer state). It is read with ``weights_only=True``: plain dicts, lists, numbers,
    strings and tensors, which is all the checkpoints of this project hold, and never code. A
    file that is not one is a ``ValueError`` naming it."""
    import pickle
    import re

    import torch

    try:
        done = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # a damaged file raises many types
        if isinstance(e, pickle.UnpicklingError) and str(e).startswith("Weights only load failed"):
            # torch's message suggests weights_only=False; say only what the file holds
            found = re.search(r"GLOBAL (\S+)", str(e))
            raise ValueError(
                f"train.resume: {path} is not a checkpoint this project wrote: it holds objects "
                f"that are not allowed ({found.group(1) if found else 'not plain data'}), and "
                "nothing in it was run. To start from a run's weights without its optimizer "
                "state, use train.init_from=<its exported pipeline folder>"
            ) from None
        raise ValueError(
            f"train.resume: {path} is not a Lightning checkpoint ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(done, dict) or not {"global_step", "state_dict"} <= set(done):
        raise ValueError(f"train.resume: {path} is not a Lightning checkpoint (no global_step)")
    return done


if __name__ == "__main__":
    try:
        cfg = parse_args()
    except ConfigError as e:
        sys.exit(f"config error: {e}")
    try:
        main(cfg)
    except (ValueError, OSError) as e:  # a missing dataset, a damaged checkpoint: one line
        sys.exit(f"error: {e}")
