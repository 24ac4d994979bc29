"""Rectified-flow (flow-matching) training objective with per-frame noise levels.

    x_sigma = (1 - sigma) * x0 + sigma * noise,    target velocity v = noise - x0

sigma is drawn from a logit-normal distribution (SD3). Memory frames (context, keyframes)
stay clean (sigma = 0). Target frames of a sample share one sigma, except that with
probability ``p_independent`` a sample draws an independent sigma per target frame
(diffusion forcing): shared sigmas are what the sampler uses, independent ones teach the
model to read partially denoised neighbours, which later lets a sampler run frames at
different noise levels (rolling or pyramid schedules) at no extra training cost.

Memory dropout (per sample) trains the model to work with any subset of its memories and
provides the unconditional branch for classifier-free guidance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from worldmem.config import DEPTH_LOSSES
from worldmem.data.batch import Conditioning, FrameSet, WorldBatch
from worldmem.models.interface import ModelFrames, WorldModel

__all__ = [
    "FlowMatching",
    "FlowInputs",
    "DROP_KEYS",
    "encode_frames",
    "encode_memories",
    "encode_hole_default",
    "drop_memories",
]

DROP_KEYS = ("working", "episodic", "spatial", "text", "cold", "spatial_part", "depthless_start")
_JOINT_KEYS = DROP_KEYS[:6]  # drawn together, one row each; the others only when asked for


def encode_frames(codec, frames: FrameSet, sigma: Tensor | None = None) -> ModelFrames:
    """A ``FrameSet`` (rgb ``(B, N, 3, H, W)`` ...) -> ``ModelFrames`` through the codec.

    sigma ``(B, N)`` or None (clean frames, sigma 0).
    """
    B, N = frames.rgb.shape[:2]
    if N == 0:
        h = frames.rgb.shape[-1] // codec.downsample
        x = frames.rgb.new_zeros(B, 0, codec.channels, h, h)
    else:
        x = codec.encode(frames.rgb, frames.depth)
    if sigma is None:
        sigma = frames.rgb.new_zeros(B, N)
    return ModelFrames(x=x, sigma=sigma, c2w=frames.c2w, K=frames.K, valid=frames.valid.bool())


def encode_memories(codec, conditioning: Conditioning) -> tuple[ModelFrames, ModelFrames, Tensor]:
    """The memories of ``conditioning`` in model space, clean: (context ``ModelFrames``,
    keyframes ``ModelFrames``, memory render ``(B, T, codec.memory_channels, h, w)``: its frame
    channels, validity, and with the codec's provenance what was observed), as training and
    generation give them to the model."""
    c = conditioning
    context = encode_frames(codec, c.context)
    keyframes = encode_frames(codec, c.keyframes)
    memory = codec.encode_memory(c.memory_rgb, c.memory_depth, c.memory_mask, c.memory_observed)
    return context, keyframes, memory


def encode_hole_default(codec, conditioning: Conditioning) -> Tensor | None:
    """What ``conditioning``'s render holes tend to (its room), in model space ``(B, T, C, h,
    w)``, as training and generation give it to the model (``hole_default``); None without."""
    c = conditioning
    return None if c.hole_rgb is None else codec.encode(c.hole_rgb, c.hole_depth)


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device, normal=False):
    gen_device = generator.device if generator is not None else device
    fn = torch.randn if normal else torch.rand
    return fn(shape, generator=generator, device=gen_device).to(device)


def drop_memories(
    batch: WorldBatch, drop: dict[str, float] | None, generator: torch.Generator | None = None
) -> WorldBatch:
    """Per-sample memory dropout; returns a new batch (the input is not modified).

    drop maps "working" (context frames -> valid False), "episodic" (keyframes -> valid
    False), "spatial" (memory render rgb, depth and mask -> 0), "text" (caption -> ""),
    "cold" (all three memories at once: how a world started from a prompt alone begins),
    "spatial_part" (the render emptied on one side, left, right, top or bottom, over 30-90% of
    the view, at every target: what a camera that has turned or pitched away from everything
    its memory holds is given) and "depthless_start" (a world begun from an image without
    depth: the context frames keep their rgb but their depth is unknown, and there are no
    keyframes or spatial memory, which would carry depth) to a probability in [0, 1].
    """
    if not drop:
        return batch
    unknown = set(drop) - set(DROP_KEYS)
    if unknown:
        raise ValueError(f"drop: unknown keys {sorted(unknown)}; want a subset of {DROP_KEYS}")
    for k, p in drop.items():
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"drop['{k}']: want a probability in [0, 1], got {p}")
    B = batch.batch_size
    device = batch.target.rgb.device
    u = _rand((len(_JOINT_KEYS), B), generator, device)  # one draw per key, fixed order
    hit = {k: u[i] < float(drop.get(k, 0.0)) for i, k in enumerate(_JOINT_KEYS)}
    p_depthless = float(drop.get("depthless_start", 0.0))
    depthless = torch.zeros_like(hit["cold"])
    if p_depthless > 0:  # drawn only when asked for: the other draws stay as they were
        depthless = (_rand((B,), generator, device) < p_depthless) & ~hit["cold"]
    for k in ("working", "episodic", "spatial"):
        hit[k] = hit[k] | hit["cold"]
    for k in ("episodic", "spatial"):
        hit[k] = hit[k] | depthless
    unknown_depth = depthless.to(batch.context.depth.dtype)[:, None, None, None, None]
    context = replace(
        batch.context,
        valid=batch.context.valid & ~hit["working"][:, None],
        depth=batch.context.depth * (1 - unknown_depth),
    )
    keyframes = replace(batch.keyframes, valid=batch.keyframes.valid & ~hit["episodic"][:, None])
    keep = (~hit["spatial"]).to(batch.memory_rgb.dtype)[:, None, None, None, None]
    if float(drop.get("spatial_part", 0.0)) > 0:
        keep = keep * _side_kept(batch.memory_rgb.shape[-2:], hit["spatial_part"], generator)
    captions = ["" if h else c for c, h in zip(batch.caption, hit["text"].tolist())]
    return replace(
        batch,
        context=context,
        keyframes=keyframes,
        memory_rgb=batch.memory_rgb * keep,
        memory_depth=batch.memory_depth * keep,
        memory_mask=batch.memory_mask * keep,
        memory_observed=None if batch.memory_observed is None else batch.memory_observed * keep,
        caption=captions,
    )


def _side_kept(size: tuple[int, int], hit: Tensor, generator: torch.Generator | None) -> Tensor:
    """``(B, 1, 1, H, W)``: 0 over one side of the view (left, right, top or bottom, chosen
    per sample) covering 30-90% of it where ``hit`` ``(B,)``, else 1."""
    B, (H, W) = hit.shape[0], size
    u = _rand((2, B), generator, hit.device)
    side = (u[0] * 4).long().clamp(max=3)[:, None, None]
    frac = (0.3 + 0.6 * u[1])[:, None, None]
    y = ((torch.arange(H, device=hit.device) + 0.5) / H)[None, :, None].expand(B, H, W)
    x = ((torch.arange(W, device=hit.device) + 0.5) / W)[None, None, :].expand(B, H, W)
    pos = torch.where(side < 2, x, y)
    pos = torch.where(side % 2 == 1, 1 - pos, pos)  # distance from the emptied edge
    empty = (pos < frac) & hit[:, None, None]
    return (~empty).to(torch.float32)[:, None, None]


@dataclass
class FlowInputs:
    """What the model sees in one training step, plus the regression target.

    target/context/keyframes: ``ModelFrames``; memory ``(B, T, codec.memory_channels, h, w)``;
    captions; x0, noise, velocity ``(B, T, C, h, w)``; depth_known ``(B, T, 1, h, w)`` float;
    hole ``(B, T, C, h, w)`` or None: what the render's holes tend to (the batch's room,
    encoded), given to the model as ``hole_default``.
    """

    target: ModelFrames
    context: ModelFrames
    keyframes: ModelFrames
    memory: Tensor
    captions: list[str]
    x0: Tensor
    noise: Tensor
    velocity: Tensor
    depth_known: Tensor
    hole: Tensor | None = None


class FlowMatching:
    """Rectified flow with logit-normal sigmas and per-frame noise levels (see module doc)."""

    def __init__(
        self,
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        p_independent: float = 0.25,
        context_noise_max: float = 0.0,
    ):
        if not 0.0 <= context_noise_max < 1.0:
            raise ValueError(f"FlowMatching: context_noise_max in [0, 1), got {context_noise_max}")
        self.context_noise_max = float(context_noise_max)
        if logit_std <= 0:
            raise ValueError(f"FlowMatching: logit_std must be > 0, got {logit_std}")
        if not 0.0 <= p_independent <= 1.0:
            raise ValueError(f"FlowMatching: p_independent in [0, 1], got {p_independent}")
        self.logit_mean = float(logit_mean)
        self.logit_std = float(logit_std)
        self.p_independent = float(p_independent)

    def sample_sigmas(
        self, B: int, T: int, generator: torch.Generator | None = None, device=None
    ) -> Tensor:
        """Noise levels ``(B, T)`` in (0, 1): shared per sample, or per frame w.p. p_independent."""
        z = _rand((B, T), generator, device, normal=True)
        shared = z[:, :1].expand(B, T)
        indep = _rand((B,), generator, device) < self.p_independent
        z = torch.where(indep[:, None], z, shared)
        return torch.sigmoid(self.logit_mean + self.logit_std * z)

    @staticmethod
    def add_noise(x0: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
        """x0, noise ``(B, T, C, h, w)``, sigma ``(B, T)`` -> ``(1 - sigma) x0 + sigma noise``."""
        s = sigma[:, :, None, None, None].to(x0.dtype)
        return (1.0 - s) * x0 + s * noise

    def _noise_memory_frames(
        self, frames: ModelFrames, generator: torch.Generator | None
    ) -> ModelFrames:
        """Noise augmentation of clean memory frames (GameNGen / diffusion forcing): each
        sample's frames get one noise level in [0, context_noise_max), given to the model as
        their sigma, so the model learns not to copy its context's errors."""
        B, N = frames.x.shape[:2]
        if N == 0:
            return frames
        level = _rand((B, 1), generator, frames.x.device) * self.context_noise_max
        level = level.expand(B, N).to(frames.x.dtype)
        noise = _rand(tuple(frames.x.shape), generator, frames.x.device, normal=True)
        return replace(
            frames, x=self.add_noise(frames.x, noise.to(frames.x.dtype), level), sigma=level
        )

    def prepare(
        self,
        codec,
        batch: WorldBatch,
        drop: dict[str, float] | None = None,
        generator: torch.Generator | None = None,
    ) -> FlowInputs:
        """Dropout, encoding and noising of one batch (no model call)."""
        if not isinstance(batch, WorldBatch):
            raise ValueError(f"prepare: want a WorldBatch, got {type(batch).__name__}")
        batch = drop_memories(batch, drop, generator)
        B, T = batch.target.rgb.shape[:2]
        device = batch.target.rgb.device
        with torch.no_grad():
            x0 = codec.encode(batch.target.rgb, batch.target.depth)
            context, keyframes, memory = encode_memories(codec, batch.conditioning)
            hole = encode_hole_default(codec, batch.conditioning)
            depth_known = codec.depth_known(batch.target.depth)
            if self.context_noise_max > 0:
                context = self._noise_memory_frames(context, generator)
                keyframes = self._noise_memory_frames(keyframes, generator)
        sigma = self.sample_sigmas(B, T, generator, device).to(x0.dtype)
        noise = _rand(tuple(x0.shape), generator, device, normal=True).to(x0.dtype)
        target = ModelFrames(
            x=self.add_noise(x0, noise, sigma),
            sigma=sigma,
            c2w=batch.target.c2w,
            K=batch.target.K,
            valid=batch.target.valid.bool(),
        )
        return FlowInputs(
            target=target,
            context=context,
            keyframes=keyframes,
            memory=memory,
            captions=list(batch.caption),
            x0=x0,
            noise=noise,
            velocity=noise - x0,
            depth_known=depth_known,
            hole=hole,
        )

    def training_losses(
        self,
        model: WorldModel,
        codec,
        batch: WorldBatch,
        drop: dict[str, float] | None = None,
        depth_loss_weight: float = 0.5,
        generator: torch.Generator | None = None,
        hole_loss_weight: float = 0.0,
        return_outputs: bool = False,
        depth_loss: str = "l2",
    ) -> dict:
        """Flow-matching loss of ``model`` on ``batch``.

        Returns dict(loss, loss_rgb, loss_depth) of scalars: loss_rgb is the MSE of the
        clean-frame estimate x0 (models whose output has ``x0``, e.g. ``WorldDiT``) or of the
        velocity (the backbone adapters) on the codec's rgb channels, loss_depth on its depth
        channels where the ground-truth depth is known (its absolute error with
        ``depth_loss="l1"``: where the depth cannot be known the estimate becomes the median
        inverse depth, not the mean, which is nearer than most of what it averages); both over
        valid target frames only. loss = loss_rgb + depth_loss_weight * loss_depth. Where the
        spatial-memory render is empty every error counts ``1 + hole_loss_weight`` times: what
        the model must invent is a small part of most targets, and the part that passing
        memory through cannot get.
        ``return_outputs``: the dict also holds "x0" (the model's estimate, in the graph; None
        for velocity models) and "inputs" (the ``FlowInputs``), for terms added on top.
        """
        if depth_loss not in DEPTH_LOSSES:
            raise ValueError(f"depth_loss must be one of {DEPTH_LOSSES}, got {depth_loss!r}")
        inp = self.prepare(codec, batch, drop, generator)
        extra = {} if inp.hole is None else {"hole_default": inp.hole}  # as the sampler does
        out = model(
            inp.target,
            context=inp.context,
            keyframes=inp.keyframes,
            memory=inp.memory,
            captions=inp.captions,
            **extra,
        )
        if out.x0 is not None:
            # x0-parameterised models: regress the clean frame (the velocity error / sigma^2
            # would explode at small sigma)
            diff = out.x0.float() - inp.x0.float()  # (B, T, C, h, w)
        else:
            diff = out.sample.float() - inp.velocity.float()
        err = diff**2
        # per-pixel weights (B, T, 1, h, w): valid target frames, holes of the render counted more
        w = inp.target.valid.float()[:, :, None, None, None].expand(
            *err.shape[:2], 1, *err.shape[3:]
        )
        if hole_loss_weight:
            mask = inp.memory[:, :, -1:].float()  # the render's valid mask
            w = w * (1.0 + hole_loss_weight * (1.0 - mask))
        rgb_err = err[:, :, codec.rgb_channels]
        loss_rgb = (rgb_err * w).sum() / (w.sum() * rgb_err.shape[2]).clamp(min=1.0)
        d_err = (diff.abs() if depth_loss == "l1" else err)[:, :, codec.depth_channels]
        d_w = inp.depth_known.float() * w  # (B, T, 1, h, w), broadcasts over channels
        loss_depth = (d_err * d_w).sum() / (d_w.sum() * d_err.shape[2]).clamp(min=1.0)
        loss = loss_rgb + depth_loss_weight * loss_depth
        losses = {"loss": loss, "loss_rgb": loss_rgb, "loss_depth": loss_depth}
        if return_outputs:
            losses.update(x0=out.x0, inputs=inp)
        return losses
