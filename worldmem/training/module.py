"""The LightningModule: batch -> loss -> log. Everything else (data, trainer) lives elsewhere."""

from __future__ import annotations

import copy
import math

import lightning as L
import torch

from worldmem.config import (
    ModelConfig,
    TrainRootConfig,
    from_dict,
    to_dict,
)
from worldmem.data.batch import WorldBatch
from worldmem.diffusion import FlowMatching, WorldSampler
from worldmem.models.backbones import build_world_model
from worldmem.models.codec import IdentityCodec
from worldmem.training.adversarial import (
    PatchDiscriminator,
    adversarial_losses,
    discriminator_channels,
)
from worldmem.training.perceptual import FeatureLoss

__all__ = ["WorldModule", "warmup_cosine"]


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up to 1 over ``warmup`` steps, then a cosine decay
    to ``min_ratio`` at ``total`` steps (held there after)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class WorldModule(L.LightningModule):
    """Trains a ``WorldDiT`` with the flow-matching loss; keeps EMA weights for sampling.
    With ``train.adv_weight > 0`` a patch discriminator (``training/adversarial.py``) trains
    beside it, in the same optimizer (alone for the first ``train.adv_start_step`` steps);
    only the model's EMA is ever exported. With ``train.perceptual_weight`` or
    ``train.style_weight > 0`` a frozen network's feature distance or texture distance over the
    render's holes (``training/perceptual.py``) between the model's clean estimate and the
    truth is added to the loss.

    Built from the resolved root config (stored in the checkpoint's hyper-parameters), so a
    checkpoint rebuilds itself with ``WorldModule.load_from_checkpoint(path)``.
    """

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})
        cfg: TrainRootConfig = from_dict(TrainRootConfig, config, "checkpoint config")
        self.cfg = cfg
        # WorldDiT from scratch, or a pretrained backbone (cfg.backbone) with its own VAE
        self.model, self.codec = build_world_model(cfg.model, cfg.backbone)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.flow = FlowMatching(
            cfg.train.timestep_logit_mean,
            cfg.train.timestep_logit_std,
            p_independent=cfg.train.p_independent,
            context_noise_max=cfg.train.context_noise_max,
        )
        t = cfg.train
        self.disc = None
        if t.adv_weight > 0:
            c = self.codec
            self.disc = PatchDiscriminator(discriminator_channels(c.rgb_channels, c.channels))
        self.features = FeatureLoss() if t.perceptual_weight > 0 or t.style_weight > 0 else None
        self.drop = {
            "working": t.p_drop_working,
            "episodic": t.p_drop_episodic,
            "spatial": t.p_drop_spatial,
            "text": t.p_drop_text,
            "cold": t.p_cold_start,
            "spatial_part": t.p_drop_spatial_part,
            "depthless_start": t.p_depthless_start,
        }

    def load_weights_from(self, pipeline_dir: str) -> None:
        """Start the model and its EMA from a pipeline folder's weights (``<dir>/model``).
        Its model config must equal this module's, but for one change: a model saved without
        ``memory_provenance`` may start one with it (the stem's new input channel, the
        observed mask, starts at zero, so the model starts as saved), and ``hole_prior`` and
        ``hole_tint`` may differ (they hold no weights). Any other mismatch is an error naming
        both."""
        from dataclasses import replace
        from pathlib import Path

        from safetensors.torch import load_file

        from worldmem.pipeline_files import read_pipeline_json

        path = Path(pipeline_dir)
        meta_path = path / "pipeline.json"
        weights = path / "model" / "diffusion_pytorch_model.safetensors"
        if not meta_path.is_file() or not weights.is_file():
            raise ValueError(f"init_from: {path} is not a pipeline folder (pipeline.json, model/)")
        saved = from_dict(ModelConfig, read_pipeline_json(path)["model"], str(meta_path))
        widen = not saved.memory_provenance and self.cfg.model.memory_provenance
        m = self.cfg.model
        saved = replace(saved, hole_prior=m.hole_prior, hole_tint=m.hole_tint)
        if (replace(saved, memory_provenance=True) if widen else saved) != self.cfg.model:
            raise ValueError(
                f"init_from: {path} holds a model of config {to_dict(saved)}, but this run "
                f"trains {to_dict(self.cfg.model)}"
            )
        state = load_file(str(weights))
        if widen:
            w = state["stem.inp.weight"]  # (out, Cin, k, k): the observed channel comes last
            state["stem.inp.weight"] = torch.cat([w, w.new_zeros(w.shape[0], 1, *w.shape[2:])], 1)
        self.model.load_state_dict(state)
        if self.cfg.train.init_reset_output:
            self.model.reset_output()
        self.ema.load_state_dict(self.model.state_dict())

    def training_step(self, batch: WorldBatch, batch_idx: int) -> torch.Tensor:
        out = self.flow.training_losses(
            self.model,
            self.codec,
            batch,
            drop=self.drop,
            depth_loss_weight=self.cfg.train.depth_loss_weight,
            depth_loss=self.cfg.train.depth_loss,
            hole_loss_weight=self.cfg.train.hole_loss_weight,
            return_outputs=self.disc is not None or self.features is not None,
        )
        bs = batch.batch_size
        if self.features is not None:
            out["loss"] = out["loss"] + self._perceptual(out, bs)
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=bs)
        self.log("train/loss_rgb", out["loss_rgb"], batch_size=bs)
        self.log("train/loss_depth", out["loss_depth"], batch_size=bs)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=bs)
        if self.disc is None:
            return out["loss"]
        if out["x0"] is None:
            raise ValueError("train.adv_weight > 0 needs a model that returns its x0 (WorldDiT)")
        inp = out["inputs"]
        adv = adversarial_losses(
            self.disc,
            out["x0"],
            inp.x0,
            inp.memory,
            inp.target.valid,
            out["loss"],
            self.cfg.train.adv_weight,
            self.codec.rgb_channels,
        )
        for k in ("g_raw", "d", "lam", "real_logit", "fake_logit"):
            self.log(f"train/adv_{k}", adv[k], batch_size=bs)
        if self.global_step < self.cfg.train.adv_start_step:  # the discriminator trains alone
            return out["loss"] + adv["d"]
        return out["loss"] + adv["g"] + adv["d"]

    def _perceptual(self, out: dict, bs: int) -> torch.Tensor:
        """``perceptual_weight`` x the feature distance of the valid target frames' rgb (the
        codec's pixel-space rgb, in [-1, 1]), plus ``style_weight`` x their texture distance
        over the render's holes times the frame's share of holes, averaged over those frames."""
        if out["x0"] is None or not isinstance(self.codec, IdentityCodec):
            raise ValueError(
                "train.perceptual_weight / style_weight > 0 need a pixel-space WorldDiT (its x0)"
            )
        inp = out["inputs"]
        keep = inp.target.valid.reshape(-1)
        if not bool(keep.any()):
            return out["x0"].sum() * 0.0
        x0 = out["x0"].flatten(0, 1)[keep][:, :3].float()
        truth = inp.x0.flatten(0, 1)[keep][:, :3].float()
        pred, want = (x0.clamp(-1, 1) + 1) / 2, (truth.clamp(-1, 1) + 1) / 2
        t = self.cfg.train
        holes = None
        if t.style_weight > 0:
            holes = 1.0 - inp.memory.flatten(0, 1)[keep][:, -1:].float()  # (N, 1, h, w)
        d, st = self.features.terms(pred, want, holes, aligned=t.perceptual_weight > 0)
        total = out["x0"].sum() * 0.0
        if d is not None:
            self.log("train/loss_perceptual", d.mean(), batch_size=bs)
            total = total + t.perceptual_weight * d.mean()
        if st is not None:
            st = (st * holes.mean((1, 2, 3))).mean()
            self.log("train/loss_style", st, batch_size=bs)
            total = total + t.style_weight * st
        return total

    def validation_step(self, batch: WorldBatch, batch_idx: int) -> None:
        g = torch.Generator(device=self.device).manual_seed(batch_idx)
        out = self.flow.training_losses(
            self.ema,
            self.codec,
            batch,
            drop=None,
            depth_loss_weight=self.cfg.train.depth_loss_weight,
            depth_loss=self.cfg.train.depth_loss,
            generator=g,
        )
        self.log(
            "val/loss", out["loss"], prog_bar=True, batch_size=batch.batch_size, sync_dist=True
        )

    @torch.no_grad()
    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        t = self.cfg.train
        # Short runs: let the average warm up instead of sticking to the random init.
        decay = min(t.ema_decay, (1 + self.global_step) / (t.ema_warmup_offset + self.global_step))
        for e, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            e.lerp_(p.detach(), 1 - decay)

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        """The model's and the discriminator's gradients are clipped each on its own, so the
        discriminator's never shrink the model's step."""
        if self.disc is None or gradient_clip_val is None:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        for net in (self.model, self.disc):
            torch.nn.utils.clip_grad_norm_(
                [p for p in net.parameters() if p.grad is not None], gradient_clip_val
            )

    def configure_optimizers(self):
        t = self.cfg.train
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
        groups = [
            {"params": decay, "weight_decay": t.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if self.disc is not None:
            groups.append({"params": list(self.disc.parameters()), "weight_decay": 0.0})
        opt = torch.optim.AdamW(groups, lr=t.lr, betas=(t.adam_beta1, t.adam_beta2))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: warmup_cosine(s, t.warmup_steps, t.max_steps, t.min_lr_ratio)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def sampler(self, steps: int = 4, guidance_scale: float = 1.0, use_ema: bool = True):
        """A sampler over the EMA (default) or raw weights."""
        return WorldSampler(self.ema if use_ema else self.model, self.codec, steps, guidance_scale)
