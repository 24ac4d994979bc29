"""Train ``DetailNet`` (``worldmem/models/detail_net.py``) or ``DetailFlow``
(``worldmem/models/detail_flow.py``) on the world model's own rollouts.

    python -m worldmem.training.detail_net collect --checkpoint checkpoints/worldmem-tiny \\
        --seeds 0:180 --out runs/detail/rollouts.npz
    python -m worldmem.training.detail_net train --rollouts runs/detail/rollouts.npz \\
        --out runs/detail/net --minutes 60
    python -m worldmem.training.detail_net train --kind flow --rollouts runs/detail/rollouts.npz \\
        --out runs/flow1 --minutes 55 --batch 32 --lr 5e-4

``collect`` runs a pipeline (without its detail net) along one walk
(``worldmem.eval.walk.walk_path``: turning, loops, out and back, looking up and down) in each
synthetic world of ``--seeds`` from its true first
frame and depth, and keeps every generated frame with its memory render's mask and the true
frame at the same camera. These are the frames the net is given at run time (the model fed its
own history), so no corruption has to be simulated.

``train`` (``--kind gan``, the default) fits the net to draw, inside each frame's holes (where
the memory render held nothing), detail the critic cannot tell from the true frame's: a hinge
loss against a ``PatchCritic`` that compares what the true frame and the net's show inside the
holes, each patch weighted by its share of holes; and an L1 between the two frames' 4 x 4 block
means over the holes, so colours and layout follow the truth (detail is the high frequencies,
not a new guess at the layout). Frames with fewer than ``--min-holes`` of their pixels in holes
are not sampled. The worlds of the last ``--val-worlds`` seeds are held out: every
``--val-every`` steps the log records PSNR over their holes (model frame and net) and the
sharpness there (the squared Laplacian against the truth's; 1 is right), a preview figure is
written, and the net is saved in ``--out`` (``DetailNet.save_pretrained``; ``step_N/`` every
``--keep-every``).

``train --kind flow`` fits a ``DetailFlow`` instead, by regression alone (``flow_loss``: the
truth's high band, noised to a uniform flow time, predicted back over the holes); the EMA of
its weights is what is evaluated (at ``--flow-steps`` sampling steps) and saved.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from worldmem.eval.metrics import geometric_mean, masked_sharpness_ratio
from worldmem.models.detail_net import DetailNet, DetailNetConfig, PatchCritic

__all__ = ["collect", "Rollouts", "detail_losses", "train_detail_net", "main"]

WALKS = ("turn", "loop", "out_and_back", "turn", "loop", "look_up_down")  # by seed
WALK_SEED_OFFSET = 7  # world s is walked with walk_path(..., seed=s + 7)
BLOCK = 4  # the L1 compares 4 x 4 block means


def collect(pipe, seeds: list[int], frames: int, log=print) -> dict[str, np.ndarray]:
    """Roll ``pipe`` along one walk (``WALKS[seed % 6]``, ``frames`` long) in each world of
    ``seeds`` from its true first frame and depth -> arrays: model ``(M, 3, S, S)`` and
    truth uint8, holes ``(M, 1, S, S)`` bool (the memory render held nothing), seed ``(M,)``."""
    from worldmem.data.synthetic import make_world
    from worldmem.eval.walk import walk_path

    S, out = pipe.size, {"model": [], "truth": [], "holes": [], "seed": []}
    t0 = time.perf_counter()
    for seed in seeds:
        world = make_world(seed)
        kind = WALKS[seed % len(WALKS)]
        c2w = walk_path(world, kind, frames, seed + WALK_SEED_OFFSET)
        K = pipe.K.cpu().expand(frames, 3, 3).contiguous()
        rgb, depth = world.render(c2w, K, S, S)
        pipe.start(prompt=world.caption, image=rgb[0], depth=depth[0], c2w=c2w[0], seed=seed)
        chunk = pipe.step(c2w[1:], K[1:])
        out["model"].append(_to_u8(chunk.rgb.cpu()))
        out["truth"].append(_to_u8(rgb[1:]))
        out["holes"].append((chunk.memory_mask.cpu() <= 0.5).numpy())
        out["seed"].append(np.full(frames - 1, seed))
        log(f"world {seed}: {kind}, {frames} frames ({time.perf_counter() - t0:.0f} s)")
    return {k: np.concatenate(v) for k, v in out.items()}


def _to_u8(x: torch.Tensor) -> np.ndarray:
    return (x.float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()


class Rollouts:
    """Frames of one or more ``collect`` files, split by world into train and val."""

    def __init__(self, paths: list[str | Path], val_worlds: int, min_holes: float):
        parts = []
        for p in paths:
            try:
                with np.load(p) as z:
                    parts.append({k: z[k] for k in ("model", "truth", "holes", "seed")})
            except (OSError, KeyError, ValueError) as e:
                raise ValueError(f"{p}: not a rollouts file written by collect ({e})") from None
        arr = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        share = arr["holes"].reshape(len(arr["holes"]), -1).mean(1)
        seeds = np.unique(arr["seed"])
        if len(seeds) <= val_worlds:
            raise ValueError(f"rollouts: {len(seeds)} worlds, need more than --val-worlds "
                             f"{val_worlds}")  # fmt: skip
        val = np.isin(arr["seed"], seeds[-val_worlds:]) if val_worlds else share < 0
        use = share >= min_holes
        self.arr = arr
        self.train = np.flatnonzero(use & ~val)
        self.val = np.flatnonzero(use & val)
        if not len(self.train):
            raise ValueError(f"rollouts: no training frame has {min_holes:.0%} of it in holes")

    def get(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(model frame, holes, truth) float ``(B, 3|1|3, S, S)`` of frames ``idx``."""
        a = self.arr
        model = torch.from_numpy(a["model"][idx]).float() / 255
        truth = torch.from_numpy(a["truth"][idx]).float() / 255
        holes = torch.from_numpy(a["holes"][idx]).float()
        return model, holes, truth


def _block_mean(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, BLOCK)


def detail_losses(out, holes, truth, critic, *, rec_weight: float, adv_weight: float):
    """The net's loss for its frame ``out`` with ``holes`` -> (total, {name: value}): the
    holes' block-mean L1 to the truth (``rec_weight``) and the critic's hinge score over
    patches weighted by their holes (``adv_weight``)."""
    w4 = _block_mean(holes)
    err = (_block_mean(out) - _block_mean(truth)).abs() * w4
    rec = err.sum() / (3 * w4.sum()).clamp(min=1e-6)
    score = critic(out, holes)
    wp = _patch_weight(holes, score)
    adv = -(score * wp).sum() / wp.sum().clamp(min=1e-6)
    parts = {"rec": float(rec.detach()), "adv": float(adv.detach())}
    return rec_weight * rec + adv_weight * adv, parts


def _patch_weight(holes: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    return F.adaptive_avg_pool2d(holes, score.shape[-2:])


def critic_loss(critic, out, holes, truth) -> torch.Tensor:
    """Hinge loss of the critic: the true frame's holes against the net's frame ``out``'s,
    patches weighted by their holes."""
    s_real, s_fake = critic(truth, holes), critic(out.detach(), holes)
    wp = _patch_weight(holes, s_real)
    n = wp.sum().clamp(min=1e-6)
    return ((F.relu(1 - s_real) + F.relu(1 + s_fake)) * wp).sum() / n


@torch.no_grad()
def evaluate(net: DetailNet, data: Rollouts, idx: np.ndarray, seed: int = 0) -> dict[str, float]:
    """PSNR over the holes of the held-out frames ``idx`` (model frame and net) and the
    sharpness there (geometric mean over frames)."""
    g = torch.Generator().manual_seed(seed)
    sums = {"se_model": 0.0, "se_net": 0.0, "n": 0.0}
    sharp_model, sharp_net = [], []
    for i in range(0, len(idx), 64):
        model, holes, truth = data.get(idx[i : i + 64])
        out = net(model, holes, generator=g)
        sums["se_model"] += float((((model - truth) ** 2) * holes).sum())
        sums["se_net"] += float((((out - truth) ** 2) * holes).sum())
        sums["n"] += 3 * float(holes.sum())
        sharp_model += masked_sharpness_ratio(model, truth, holes > 0.5).tolist()
        sharp_net += masked_sharpness_ratio(out, truth, holes > 0.5).tolist()

    def db(se: float) -> float:
        return 10 * math.log10(sums["n"] / max(se, 1e-12))

    return {
        "psnr_holes_model": db(sums["se_model"]),
        "psnr_holes_net": db(sums["se_net"]),
        "sharp_holes_model": geometric_mean(sharp_model),
        "sharp_holes_net": geometric_mean(sharp_net),
    }


def preview(net: DetailNet, data: Rollouts, idx: np.ndarray, path: Path, seed: int = 0) -> None:
    """A PNG of held-out frames ``idx``: rows model frame | net | truth | holes."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    model, holes, truth = data.get(idx)
    with torch.no_grad():
        out = net(model, holes, generator=g)
    rows = [model, out, truth, holes.expand_as(model)]
    grid = torch.cat([torch.cat(list(r), 2) for r in rows], 1)  # (3, 4S, n S)
    img = (grid.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    Image.fromarray(img).resize((img.shape[1] * 2, img.shape[0] * 2), Image.NEAREST).save(path)


def _train_loop(args, data: Rollouts, rng, net, saved, step_fn, log) -> dict:
    """The loop both kinds share: batches of ``--batch`` training frames (mirrored half the
    time) to ``step_fn(model, holes, truth) -> {name: loss}``, at least one step and then
    until ``--steps`` or ``--minutes``; every ``--val-every`` steps, and at the last,
    ``saved`` (the net, or its EMA) is evaluated on the held-out frames, previewed and saved
    to ``--out`` (``step_N/`` every ``--keep-every``) and a row added to ``log.csv``."""
    val = data.val if len(data.val) else data.train[:64]
    show = val[np.linspace(0, len(val) - 1, min(8, len(val))).astype(int)]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"{len(data.train)} training frames, {len(data.val)} held out; "
        f"{sum(p.numel() for p in net.parameters()):,} parameters")  # fmt: skip
    rows, t0, step = [], time.perf_counter(), 0

    def checkpoint(losses: dict) -> None:
        training = saved.training
        saved.eval()
        m = evaluate(saved, data, val)
        preview(saved, data, show, out_dir / "preview.png")
        saved.save_pretrained(out_dir)
        if step % args.keep_every == 0:
            saved.save_pretrained(out_dir / f"step_{step:06d}")
        saved.train(training)
        row = {"step": step, "seconds": round(time.perf_counter() - t0, 1), **losses, **m}
        rows.append(row)
        with (out_dir / "log.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            w.writeheader()
            w.writerows(rows)
        log("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                      for k, v in row.items()))  # fmt: skip

    budget_s = args.minutes * 60
    net.train()
    losses = {}
    while step < args.steps and (step == 0 or time.perf_counter() - t0 < budget_s):
        model, holes, truth = data.get(rng.choice(data.train, args.batch))
        if rng.random() < 0.5:  # a mirrored world is as likely
            model, holes, truth = model.flip(-1), holes.flip(-1), truth.flip(-1)
        losses = step_fn(model, holes, truth)
        step += 1
        if step % args.val_every == 0:
            checkpoint(losses)
    if step and step % args.val_every:  # stopped by --steps or --minutes between checkpoints
        checkpoint(losses)
    return {"steps": step}


def train_detail_net(args, log=print) -> dict:
    """``train`` (``--kind gan``): the net against a ``PatchCritic`` (see the module)."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = Rollouts(args.rollouts, args.val_worlds, args.min_holes)
    size = data.arr["model"].shape[-1]
    net = DetailNet(DetailNetConfig(size, tuple(args.widths), args.noise_channels))
    if args.resume:
        net.load_state_dict(DetailNet.from_pretrained(args.resume).state_dict())
    critic = PatchCritic()
    opt_g = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(critic.parameters(), lr=args.lr_critic, betas=(0.5, 0.999))

    def step_fn(model, holes, truth):
        out = net(model, holes)
        loss_d = critic_loss(critic, out, holes, truth)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g, parts = detail_losses(
            out, holes, truth, critic, rec_weight=args.rec_weight, adv_weight=args.adv_weight
        )
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return {"loss_d": float(loss_d.detach()), **parts}

    return _train_loop(args, data, rng, net, net, step_fn, log)


def flow_noise(shape, rng: np.random.Generator, generator: torch.Generator) -> torch.Tensor:
    """Unit Gaussian noise ``shape`` ``(B, 3, S, S)`` like the surface noise the pipeline
    feeds: half the frames white, half value noise whose cells span 1.5-4 pixels (a surface
    near the camera), bilinearly interpolated and rescaled to unit spread."""
    B, C, H, W = shape
    z = torch.randn(shape, generator=generator)
    for b in np.flatnonzero(rng.random(B) < 0.5):
        cell = rng.uniform(1.5, 4.0)
        h, w = max(2, round(H / cell)), max(2, round(W / cell))
        coarse = torch.randn((1, C, h, w), generator=generator)
        z[b] = F.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False)[0]
        z[b] = (z[b] - z[b].mean()) / z[b].std().clamp(min=1e-6)
    return z


def flow_loss(net, model, holes, truth, rng: np.random.Generator, generator: torch.Generator):
    """The flow's regression loss: the truth's high band (in units of ``band_scale``), noised
    to a uniform flow time, predicted back over the holes (mean squared error per hole
    pixel and colour)."""
    from worldmem.models.detail_flow import high_band

    cfg = net.cfg
    band = high_band(truth, cfg.band_sigma_px) / cfg.band_scale
    noise = flow_noise(band.shape, rng, generator)
    t = torch.rand(band.shape[0], generator=generator)
    tt = t.view(-1, 1, 1, 1)
    z = (1 - tt) * band + tt * noise
    hole = (holes > 0.5).to(model.dtype)
    err = (net.predict(model, hole, z, t) - band) ** 2 * hole
    return err.sum() / (3 * hole.sum()).clamp(min=1.0)


def train_detail_flow(args, log=print) -> dict:
    """``train --kind flow``: a ``DetailFlow`` fitted by regression on the rollouts (see its
    module); its EMA (decay ``--ema``) is what is evaluated and saved."""
    from worldmem.models.detail_flow import DetailFlow, DetailFlowConfig

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    data = Rollouts(args.rollouts, args.val_worlds, args.min_holes)
    size = data.arr["model"].shape[-1]
    cfg = DetailFlowConfig(size, tuple(args.widths), steps=args.flow_steps,
                           band_sigma_px=args.band_sigma, band_scale=args.band_scale)  # fmt: skip
    net = DetailFlow(cfg)
    if args.resume:
        net.load_state_dict(DetailFlow.from_pretrained(args.resume).state_dict())
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.0)
    done = 0

    def step_fn(model, holes, truth):
        nonlocal done
        loss = flow_loss(net, model, holes, truth, rng, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        decay = min(args.ema, (1 + done) / (10 + done))  # short runs: the EMA warms up
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.lerp_(p, 1 - decay)
        done += 1
        return {"loss": float(loss.detach())}

    return _train_loop(args, data, rng, net, ema, step_fn, log)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="roll a pipeline along walks; keep frames and truth")
    c.add_argument("--checkpoint", default="checkpoints/worldmem-tiny")
    c.add_argument("--seeds", default="0:180", help="worlds a:b (b excluded) or a,b,c")
    c.add_argument("--frames", type=int, default=64)
    c.add_argument("--out", required=True, help="an .npz file")
    t = sub.add_parser("train", help="train the net on collected rollouts")
    t.add_argument("--rollouts", nargs="+", required=True, help=".npz files from collect")
    t.add_argument("--out", required=True, help="folder for the weights, log.csv, preview.png")
    t.add_argument("--steps", type=int, default=1_000_000)
    t.add_argument("--minutes", type=float, default=60.0, help="stop after this long")
    t.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128])
    t.add_argument("--noise-channels", type=int, default=4)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--lr-critic", type=float, default=2e-4)
    t.add_argument("--rec-weight", type=float, default=30.0)
    t.add_argument("--adv-weight", type=float, default=1.0)
    t.add_argument("--min-holes", type=float, default=0.02)
    t.add_argument("--val-worlds", type=int, default=10)
    t.add_argument("--val-every", type=int, default=250)
    t.add_argument("--keep-every", type=int, default=1000)
    t.add_argument("--resume", default=None, help="a net folder of the same kind to start from")
    t.add_argument(
        "--kind",
        choices=("gan", "flow"),
        default="gan",
        help="gan: DetailNet against a critic; flow: DetailFlow by regression",
    )
    t.add_argument("--ema", type=float, default=0.998, help="flow: the saved weights' EMA decay")
    t.add_argument("--flow-steps", type=int, default=4, help="flow: Euler steps at sampling")
    t.add_argument("--band-sigma", type=float, default=1.5, help="flow: the band's blur, px")
    t.add_argument(
        "--band-scale", type=float, default=0.056, help="flow: the band's spread (its unit)"
    )
    for a in (c, t):
        a.add_argument("--threads", type=int, default=1)
        a.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.cmd == "collect":
        from worldmem.pipeline import WorldPipeline

        seeds = _parse_seeds(args.seeds)
        # the frames the net will be given: the model's, before any detail net or texture
        # draws on them
        pipe = WorldPipeline.from_pretrained(
            args.checkpoint, device="cpu", detail_net=None, texture_gain=0.0, wall_texture_gain=0.0
        )
        arrays = collect(pipe, seeds, args.frames)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.out, **arrays)
        print(json.dumps({"frames": len(arrays["seed"]), "worlds": len(seeds)}))
        return 0
    train = train_detail_flow if args.kind == "flow" else train_detail_net
    print(json.dumps(train(args)))
    return 0


def _parse_seeds(text: str) -> list[int]:
    try:
        if ":" in text:
            a, b = text.split(":")
            return list(range(int(a), int(b)))
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise SystemExit(f"--seeds: expected a:b or a,b,c, got {text!r}") from None


if __name__ == "__main__":
    raise SystemExit(main())
