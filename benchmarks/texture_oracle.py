"""What the model's frames lack in realism, and which texture gives it back.

    python benchmarks/texture_oracle.py --checkpoint checkpoints/worldmem-tiny [--threads 2]

The walk protocol's ten walks (``python -m worldmem.eval walk``: held-out worlds 100000 and
100001, five walks of 160 frames each from the true start frame and depth, every seventh frame
kept for KID) are generated without any laid texture (``texture_gain`` 0). Each kept frame is
then changed in one way, and every variant is compared with the true frames: PSNR (mean over
frames), sharpness (generated / true high-frequency energy, geometric mean) and KID on
EfficientNet-Lite0 features, paired against the model's own frames (1,000 permutations).

- ``+ true band``: the true frame's high band (the frame minus its 1.5 px Gaussian blur)
  added where the memory render held no observed sample: what a perfect texture would give.
- ``+ another view's true band``: the same from a true frame of another view, shuffled:
  real texture in the wrong place.
- ``+ start frame's band, same pixels``: the start frame's band at the same pixels: this
  world's texture, fixed to the screen (a video would swim).
- ``+ white noise``: noise of the band's spread (0.056): energy without texture.
- ``+ laid texture``: what ``sampler.texture_gain`` and ``wall_texture_gain`` draw
  (``worldmem/memory/texture.py``): the observed frames' texture by kind of surface, fixed to
  the world, at the checkpoint's gains or at the one gain given.
"""

from __future__ import annotations

import argparse

import torch
from texture_gain import all_walks  # beside this file
from texture_gain import band as laid_band

from worldmem.eval.metrics import (
    EfficientNetFeatures,
    geometric_mean,
    image_features,
    kid_paired_test,
    psnr,
    sharpness_ratio,
)
from worldmem.memory.texture import BAND_SIGMA_PX, LOD_LEVELS
from worldmem.models.detail_flow import high_band
from worldmem.pipeline import WorldPipeline

KEEP_EVERY, NOISE_SPREAD = 7, 0.056


def band(x: torch.Tensor) -> torch.Tensor:
    return high_band(x.double(), BAND_SIGMA_PX).float()


def kept(w: dict, gains: dict[int, float] | None) -> dict[str, torch.Tensor]:
    """A walk generated without texture (``texture_gain.walk``) -> each kept frame, its truth,
    the start frame, the pixels its memory render held no observed sample of, and the texture
    the pipeline lays there at ``gains`` by kind of surface (None: 1 on every kind)."""
    case = w["case"]
    laid = laid_band(w, LOD_LEVELS, gains)
    kept = torch.arange(1, case.num_frames, KEEP_EVERY)
    return {
        "model": w["rgb"][kept - 1],
        "holes": w["holes"][kept - 1],
        "laid": laid[kept - 1],
        "truth": case.rgb[kept].float(),
        "start": case.rgb[:1].float().expand(len(kept), -1, -1, -1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="checkpoints/worldmem-tiny")
    ap.add_argument(
        "--gain", type=float, default=None, help="of the laid texture (default: the checkpoint's)"
    )
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # the checkpoint's gains by kind of surface, or one gain on every kind
    gains = None
    if args.gain is None:
        gains = WorldPipeline.from_pretrained(args.checkpoint, device="cpu").texture_gains
    pipe = WorldPipeline.from_pretrained(
        args.checkpoint, device="cpu", texture_gain=0.0, wall_texture_gain=0.0
    )
    walks = [kept(w, gains) for w in all_walks(pipe)]
    laid_name = "+ laid texture, " + (
        "the checkpoint's gains" if gains is not None else f"gain {args.gain:g}"
    )
    d = {k: torch.cat([w[k] for w in walks]) for k in walks[0]}
    m, t, holes = d["model"], d["truth"], d["holes"]
    shuffled = t[torch.randperm(len(t), generator=torch.Generator().manual_seed(0))]
    noise = torch.randn(m.shape, generator=torch.Generator().manual_seed(1)) * NOISE_SPREAD
    variants = {
        "model (no texture)": m,
        "+ true band": m + holes * band(t),
        "+ another view's true band": m + holes * band(shuffled),
        "+ start frame's band, same pixels": m + holes * band(d["start"]),
        "+ white noise": m + holes * noise,
        laid_name: m + (1.0 if gains is not None else args.gain) * d["laid"],
    }
    features = EfficientNetFeatures().eval()
    f_truth, f_model = image_features(features, t), image_features(features, m)
    print(f"\n{len(t)} frames of {len(walks)} walks; held no observed sample: {holes.mean():.1%}")
    print("| variant | PSNR | sharpness | KID against the model's (p) |\n|---|---|---|---|")
    for name, x in variants.items():
        x = x.clamp(0, 1)
        mean_psnr = float(psnr(x, t).mean())
        sharp = geometric_mean(sharpness_ratio(x, t).clamp_min(1e-6).tolist())
        if x is m or name.startswith("model"):
            kid = "-"
        else:
            delta, p = kid_paired_test(image_features(features, x), f_model, f_truth)
            kid = f"{delta:+.4f} ({p:.3f})"
        print(f"| {name} | {mean_psnr:.2f} | {sharp:.2f} | {kid} |", flush=True)


if __name__ == "__main__":
    main()
