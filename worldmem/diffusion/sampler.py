"""Few-step generation of one chunk: Euler flow-matching steps with a diffusers scheduler.

The model is any ``WorldModel`` (``worldmem.models.interface``): ``WorldDiT`` or a backbone
adapter. The memory frames (context, keyframes) and the text go through its
``encode_context`` once per chunk; every denoising step then runs the targets against that
cache (``WorldDiT``: only the target tokens, against the cached keys and values). With
``guidance_scale != 1`` the conditional and unconditional branches (text, spatial memory and
keyframes dropped; the working memory kept) run as one batch of 2B:
v = v_uncond + g * (v_cond - v_uncond).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from torch import Tensor

from worldmem.data.batch import Conditioning
from worldmem.diffusion.flow import encode_hole_default, encode_memories
from worldmem.models.interface import ModelFrames, WorldModel

__all__ = ["WorldSampler"]


class WorldSampler:
    """Generate the frames a ``Conditioning`` asks for with ``steps`` Euler steps.

    model: a ``WorldModel`` (``WorldDiT`` or a backbone adapter); codec: its codec; shift:
    the scheduler's timestep shift (1 = none; > 1 spends more steps at high noise); use_cache:
    run the memory frames and text once per chunk (``encode_context``; identical results,
    fewer FLOPs); stochastic: at each step take the model's clean estimate
    x0 = x - sigma v and re-noise it to the next level with fresh noise (the scheduler's
    ``stochastic_sampling``) instead of a deterministic Euler step. With few steps this keeps
    the model's errors from accumulating along the path: measured on the tiny model at 4 steps,
    21.4 dB PSNR against ground truth instead of 18.7 dB for Euler.
    """

    def __init__(
        self,
        model: WorldModel,
        codec,
        steps: int = 4,
        guidance_scale: float = 1.0,
        shift: float = 1.0,
        use_cache: bool = True,
        stochastic: bool = True,
    ):
        if not isinstance(model, WorldModel):
            raise ValueError(
                f"WorldSampler: want a WorldModel (config, device, encode_text, encode_context, "
                f"called on target frames), got {type(model).__name__}"
            )
        if steps < 1:
            raise ValueError(f"WorldSampler: steps must be >= 1, got {steps}")
        if shift <= 0:
            raise ValueError(f"WorldSampler: shift must be > 0, got {shift}")
        self.model = model
        self.codec = codec
        self.steps = int(steps)
        self.guidance_scale = float(guidance_scale)
        self.shift = float(shift)
        self.use_cache = use_cache
        self.stochastic = bool(stochastic)

    def _check(self, conditioning: Conditioning) -> None:
        if not isinstance(conditioning, Conditioning):
            raise ValueError(
                f"generate: want a Conditioning (a WorldBatch gives its own as "
                f"batch.conditioning), got {type(conditioning).__name__}"
            )
        size = self.model.config.image_size
        H, W = conditioning.image_size
        if (H, W) != (size, size):
            raise ValueError(
                f"generate: the conditioning is for {H}x{W} frames, the model wants {size}x{size}"
            )
        if conditioning.num_targets == 0:
            raise ValueError("generate: the conditioning has no target cameras")

    @torch.no_grad()
    def generate(
        self, conditioning: Conditioning, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Generate a frame at each of ``conditioning``'s target cameras from its memories and
        caption (``data.inputs.assemble_inputs`` builds it from a world's memories; a
        training ``WorldBatch`` gives its own as ``batch.conditioning``).

        Returns (rgb ``(B, T, 3, H, W)`` in [0, 1], depth ``(B, T, 1, H, W)`` metres).
        ``generator`` makes the initial noise (and so the result) deterministic.
        """
        self._check(conditioning)
        model, codec = self.model, self.codec
        device = model.device
        cond = conditioning.to(device)
        B, T = cond.c2w.shape[:2]
        H = cond.image_size[1]
        h = H // codec.downsample

        # 1. memories in model space (cond, then uncond when guiding)
        context, keyframes, memory = encode_memories(codec, cond)
        hole = encode_hole_default(codec, cond)
        captions = list(cond.caption)
        guide = self.guidance_scale != 1.0
        if guide:
            hole = None if hole is None else torch.cat([hole, hole])
            context = context.cat(context)
            keyframes = keyframes.cat(replace(keyframes, valid=torch.zeros_like(keyframes.valid)))
            memory = torch.cat([memory, torch.zeros_like(memory)])
            captions = captions + [""] * B
        n = 2 * B if guide else B
        c2w = cond.c2w.repeat(n // B, 1, 1, 1)
        K = cond.K.repeat(n // B, 1, 1, 1)
        valid = cond.valid.bool().repeat(n // B, 1)
        text = model.encode_text(captions)
        cache = None
        if self.use_cache:
            cache = model.encode_context(context, keyframes, c2w[:, 0], text=text)

        # 2. steps from pure noise (sigma 1) to data (sigma 0)
        scheduler = FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=1000, shift=self.shift, stochastic_sampling=self.stochastic
        )
        # Uniform sigmas 1, (n-1)/n, ..., 1/n (then 0). The scheduler's default spacing ends at
        # sigma 1/1000, which spends the last model call on an almost clean input.
        sigmas = np.linspace(1.0, 1.0 / self.steps, self.steps)
        scheduler.set_timesteps(sigmas=sigmas, device=device)
        gen_device = generator.device if generator is not None else device
        shape = (B, T, codec.channels, h, h)
        x = torch.randn(shape, generator=generator, device=gen_device).to(device)
        for i, t in enumerate(scheduler.timesteps):
            sigma = scheduler.sigmas[i].to(device=device, dtype=x.dtype).expand(n, T)
            xin = x.repeat(n // B, 1, 1, 1, 1)
            target = ModelFrames(x=xin, sigma=sigma, c2w=c2w, K=K, valid=valid)
            # only a model that fills its render's holes takes what they tend to
            extra = {} if hole is None else {"hole_default": hole}
            if cache is not None:
                v = model(target, memory=memory, cache=cache, **extra).sample
            else:
                v = model(target, context, keyframes, memory=memory, text=text, **extra).sample
            if guide:
                v_cond, v_uncond = v.chunk(2)
                v = v_uncond + self.guidance_scale * (v_cond - v_uncond)
            x = scheduler.step(v, t, x, generator=generator).prev_sample

        # 3. back to pixels
        return codec.decode(x)
