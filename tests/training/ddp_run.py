"""Run by test_training.py: a few DDP steps on CPU (gloo); each rank saves its weights.

    python tests/training/ddp_run.py OUT_DIR key=value ...
Lightning's DDP launcher starts the second rank by running this same command again.
"""

import sys
from pathlib import Path

import torch

from worldmem.config import TrainRootConfig, load_config, to_dict
from worldmem.data.dataset import WorldDataModule
from worldmem.training.module import WorldModule
from worldmem.training.trainer import build_trainer

if __name__ == "__main__":
    out = Path(sys.argv[1])
    cfg = load_config(TrainRootConfig, overrides=sys.argv[2:])
    torch.manual_seed(0)
    trainer = build_trainer(cfg.train)
    module = WorldModule(to_dict(cfg))
    init = {k: v.clone() for k, v in module.model.state_dict().items()}
    trainer.fit(module, datamodule=WorldDataModule(cfg.data, cfg.memory))
    torch.save(module.model.state_dict(), out / f"rank{trainer.global_rank}.pt")
    torch.save(init, out / f"init{trainer.global_rank}.pt")
