"""The adversarial term: what makes a one-step frame sharp instead of the mean of its guesses.

The sampler takes one step from pure noise, so the model's clean estimate ``x0`` is all it
generates, and a squared-error loss makes that estimate the conditional mean: where the
memory holds nothing, a smooth average of every plausible room. A conditional patch
discriminator (pix2pix; adversarial diffusion distillation does the same for one-step
diffusion) judges each target frame beside the memory render it was drawn from, so a frame is
"real" only if its texture looks like the synthetic worlds' and it continues what the memory
shows. Only the patches that hold holes of the render count, each by its share of hole
pixels: where the render is valid the model passes it through and the truth is the render,
so those patches are the same in both and would only teach the discriminator to say 0.

Hinge losses (SAGAN), spectral norm on every convolution of the discriminator. Both terms are
one loss for one optimizer: the discriminator sees the generated frame detached, and the
generator's term runs the discriminator with its parameters frozen, so each network gets only
its own gradient. The generator's term is scaled so that, at the model's output, its gradient
is ``weight`` times the norm of the reconstruction loss's gradient (the adaptive weight of
VQGAN, taken at the output instead of the last layer): one ``weight`` keeps its meaning as the
reconstruction error falls. Its failure mode: a discriminator that cannot tell the frames
apart has a vanishing input gradient, so the scale grows and the model chases noise (logged as
``train/adv_lam``; ``checkpoints/worldmem-tiny/README.md`` has a run where it did).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = [
    "PatchDiscriminator",
    "adversarial_losses",
    "discriminator_channels",
    "discriminator_input",
]

_MAX_LAMBDA = 1e4  # the adaptive weight's ceiling (a vanishing adversarial gradient)


class PatchDiscriminator(nn.Module):
    """A logit per patch of ~22 px: ``(N, in_channels, H, W)`` -> ``(N, 1, H / 4, W / 4)``."""

    def __init__(self, in_channels: int, widths: tuple[int, ...] = (64, 128, 256)):
        super().__init__()
        w0, w1, w2 = widths
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(in_channels, w0, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(w0, w1, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(w1, w2, 3, 1, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(w2, 1, 3, 1, 1)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def discriminator_channels(rgb: slice, channels: int) -> int:
    """The discriminator's input channels for a codec whose frames have ``channels`` channels,
    its rgb ones ``rgb`` (3 in pixel space, the latent channels of a VAE): twice those and the
    render's validity."""
    return 2 * len(range(channels)[rgb]) + 1


def discriminator_input(frames: Tensor, memory: Tensor, rgb: slice, channels: int) -> Tensor:
    """What the discriminator judges: frames ``(N, C, h, w)`` (model space) beside their memory
    render ``(N, memory_channels, h, w)`` -> ``(N, discriminator_channels(rgb, C), h, w)``: the
    frame's rgb channels, the render's rgb channels and the render's validity (its channel
    ``channels``)."""
    return torch.cat([frames[:, rgb], memory[:, rgb], memory[:, channels : channels + 1]], 1)


def adversarial_losses(
    disc: PatchDiscriminator,
    x0: Tensor,
    x0_true: Tensor,
    memory: Tensor,
    valid: Tensor,
    rec_loss: Tensor,
    weight: float,
    rgb: slice,
) -> dict[str, Tensor]:
    """The adversarial terms of one batch.

    x0 ``(B, T, C, h, w)``: the model's clean estimate (in the graph); x0_true: the truth;
    memory ``(B, T, memory_channels, h, w)``: the render each was drawn from; valid ``(B, T)``
    bool: the target frames that count; rec_loss: the reconstruction loss (a scalar in x0's
    graph); weight: the adversarial gradient's norm at x0 as a fraction of rec_loss's.

    Returns dict(g: ``lambda * generator hinge``, for the model only; d: the discriminator's
    hinge loss, for the discriminator only; g_raw, lam, real_logit, fake_logit: for logs),
    each the mean over patches weighted by their share of the render's holes.
    """
    C = x0.shape[2]
    keep = valid.reshape(-1)
    if not bool(keep.any()):  # no frame to judge
        return _zero_terms(x0, disc)
    fake = x0.flatten(0, 1)[keep]
    real = x0_true.flatten(0, 1)[keep]
    mem = memory.flatten(0, 1)[keep].to(fake.dtype)
    fake_in = discriminator_input(fake, mem, rgb, C)
    real_in = discriminator_input(real, mem, rgb, C)
    # the generator's term: the discriminator frozen, so only the model gets its gradient
    disc.requires_grad_(False)
    try:
        fake_g = disc(fake_in)
    finally:
        disc.requires_grad_(True)
    holes = F.adaptive_avg_pool2d(1.0 - mem[:, C : C + 1], fake_g.shape[-2:])  # per patch
    if not bool((holes > 0).any()):  # the render is whole everywhere: nothing to judge
        return _zero_terms(x0, disc)
    w = holes / holes.sum()
    g_raw = -(w * fake_g).sum()
    (g_rec,) = torch.autograd.grad(rec_loss, x0, retain_graph=True)
    (g_adv,) = torch.autograd.grad(g_raw, x0, retain_graph=True)
    lam = (weight * g_rec.norm() / (g_adv.norm() + 1e-12)).clamp(max=_MAX_LAMBDA).detach()
    # the discriminator's term: the generated frames detached, so only it gets the gradient
    real_logit = disc(real_in)
    fake_logit = disc(fake_in.detach())
    d = (w * (F.relu(1.0 - real_logit) + F.relu(1.0 + fake_logit))).sum()
    return {
        "g": lam * g_raw,
        "d": d,
        "g_raw": g_raw.detach(),
        "lam": lam,
        "real_logit": (w * real_logit).sum().detach(),
        "fake_logit": (w * fake_logit).sum().detach(),
    }


def _zero_terms(x0: Tensor, disc: nn.Module) -> dict[str, Tensor]:
    """Zero terms that still touch both networks (so every parameter gets a gradient)."""
    zero = x0.sum() * 0.0 + sum(p.sum() for p in disc.parameters()) * 0.0
    return dict.fromkeys(("g", "d", "g_raw", "lam", "real_logit", "fake_logit"), zero)
