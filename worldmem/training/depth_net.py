"""Train ``DepthNet`` (``worldmem/models/depth_net.py``) on synthetic worlds rendered exactly.

    python -m worldmem.training.depth_net --data data/synthetic --out runs/depth_net --minutes 30

Every batch renders fresh views of the training split's worlds (``manifest.jsonl``, split
"train"; each episode's world rebuilt from its seed): half at cameras of the episodes' own
walks, half at each world's free start cameras (``free_start_camera``, what a walk begins
from) turned to a random heading and pitched up or down by up to ``--max-pitch-deg``. The
truth is the renderer's depth, so nothing is decoded and nothing is approximate. Validation:
the start view of every world of the validation split (AbsRel and delta < 1.25 against the
true depth), every ``--val-every`` steps; the weights with the lowest validation AbsRel are
kept in ``--out`` (``DepthNet.save_pretrained``), with ``log.csv`` beside them.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import time
from pathlib import Path

import torch

from worldmem.data.episode import EpisodeError, read_poses
from worldmem.data.manifest import read_manifest
from worldmem.data.synthetic import free_start_camera, make_world
from worldmem.eval.metrics import depth_abs_rel, depth_delta
from worldmem.geometry import intrinsics_from_fov, rotation_x, rotation_y
from worldmem.models.depth_net import DepthNet, DepthNetConfig, depth_net_loss

__all__ = ["TrainViews", "train_depth_net", "main"]


class TrainViews:
    """Renders batches of (rgb ``(B, 3, S, S)``, depth ``(B, 1, S, S)`` m) of the worlds of
    ``seeds`` (their episode cameras from ``episode_cams`` where given)."""

    def __init__(self, seeds: list[int], size: int, fov_deg: float, episode_cams=None,
                 max_pitch_deg: float = 20.0, seed: int = 0):  # fmt: skip
        if not seeds:
            raise ValueError("TrainViews: no worlds to render")
        self.seeds, self.size = list(seeds), size
        self.K = intrinsics_from_fov(fov_deg, size, size).float()
        self.episode_cams = episode_cams or {}
        self.max_pitch = math.radians(max_pitch_deg)
        self.rng = random.Random(seed)
        self._worlds: dict[int, object] = {}

    def world(self, seed: int):
        if seed not in self._worlds:
            self._worlds[seed] = make_world(seed)
        return self._worlds[seed]

    def cameras(self, seed: int, n: int) -> torch.Tensor:
        """n cameras ``(n, 4, 4)`` in world ``seed``: half from its episode, half turned
        start cameras."""
        world, cams = self.world(seed), []
        walk = self.episode_cams.get(seed)
        for i in range(n):
            if walk is not None and i % 2 == 0:
                cams.append(walk[self.rng.randrange(len(walk))])
                continue
            c2w = free_start_camera(world, self.rng.randrange(1 << 30)).clone()
            turn = rotation_y(self.rng.uniform(0, 2 * math.pi))
            pitch = rotation_x(self.rng.uniform(-self.max_pitch, self.max_pitch))
            c2w[:3, :3] = turn @ c2w[:3, :3] @ pitch
            cams.append(c2w)
        return torch.stack(cams)

    def batch(self, worlds: int, per_world: int) -> tuple[torch.Tensor, torch.Tensor]:
        rgbs, depths = [], []
        for seed in self.rng.sample(self.seeds, min(worlds, len(self.seeds))):
            c2w = self.cameras(seed, per_world)
            rgb, depth = self.world(seed).render(
                c2w, self.K.expand(per_world, 3, 3), self.size, self.size
            )
            rgbs.append(rgb)
            depths.append(depth)
        return torch.cat(rgbs), torch.cat(depths)


def start_views(seeds: list[int], size: int, fov_deg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The true start view (``free_start_camera(world, seed)``) of each world ``seeds`` ->
    rgb ``(P, 3, S, S)``, depth ``(P, 1, S, S)``."""
    K = intrinsics_from_fov(fov_deg, size, size).float()
    rgbs, depths = [], []
    for seed in seeds:
        world = make_world(seed)
        rgb, depth = world.render(free_start_camera(world, seed)[None], K[None], size, size)
        rgbs.append(rgb)
        depths.append(depth)
    return torch.cat(rgbs), torch.cat(depths)


@torch.no_grad()
def evaluate(net: DepthNet, rgb: torch.Tensor, depth: torch.Tensor) -> dict[str, float]:
    net.eval()
    pred = net(rgb)
    net.train()
    return {
        "abs_rel": float(depth_abs_rel(pred, depth).nanmean()),
        "delta1": float(depth_delta(pred, depth).nanmean()),
    }


def _worlds(data: Path) -> tuple[list[dict], list[dict]]:
    """The train and val entries of ``data``'s manifest; each must name the seed its world
    is rebuilt from (``datasets/synthetic.py`` records it)."""
    try:
        entries = read_manifest(data)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    for e in entries:
        if not isinstance(e.get("seed"), int) or isinstance(e.get("seed"), bool):
            raise SystemExit(
                f"{data / 'manifest.jsonl'}: episode {e['path']!r} names no world seed; the "
                "depth net renders its views from the synthetic worlds (datasets/synthetic.py)"
            )
    train = [e for e in entries if e["split"] == "train"]
    val = [e for e in entries if e["split"] == "val"]
    if not train or not val:
        raise SystemExit(f"{data / 'manifest.jsonl'}: needs episodes in both splits (train, val)")
    return train, val


def _episode_cams(data: Path, entries: list[dict]) -> dict[int, torch.Tensor]:
    """Each entry's seed -> its episode's cameras c2w ``(N, 4, 4)``."""
    try:
        return {e["seed"]: read_poses(data / e["path"])[0] for e in entries}
    except EpisodeError as err:
        raise SystemExit(str(err)) from None


def train_depth_net(args, log=print) -> dict:
    torch.manual_seed(args.seed)
    data, out = Path(args.data), Path(args.out)
    train, val = _worlds(data)
    val_seeds = [e["seed"] for e in val]
    cfg = DepthNetConfig(image_size=args.size, fov_deg=args.fov_deg)
    views = TrainViews([e["seed"] for e in train], args.size, args.fov_deg,
                       _episode_cams(data, train), args.max_pitch_deg, args.seed)  # fmt: skip
    val_rgb, val_depth = start_views(val_seeds, args.size, args.fov_deg)
    net = DepthNet(cfg)
    if args.resume:
        net.load_state_dict(DepthNet.from_pretrained(args.resume).state_dict())
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.csv"
    rows, best = [], math.inf
    t0, step = time.perf_counter(), 0
    budget_s = args.minutes * 60
    while step < args.steps and time.perf_counter() - t0 < budget_s:
        frac = min(1.0, max((time.perf_counter() - t0) / budget_s, step / args.steps))
        lr = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        rgb, depth = views.batch(args.worlds_per_batch, args.views_per_world)
        loss = depth_net_loss(net.log_depth(rgb), depth)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % args.val_every == 0 or step == args.steps:
            m = evaluate(net, val_rgb, val_depth)
            row = {"step": step, "seconds": round(time.perf_counter() - t0, 1),
                   "lr": lr, "loss": float(loss.detach()), **m}  # fmt: skip
            rows.append(row)
            if m["abs_rel"] < best:
                best = m["abs_rel"]
                net.save_pretrained(out)
            with log_path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(row))
                w.writeheader()
                w.writerows(rows)
            log(f"step {step}  loss {row['loss']:.4f}  val AbsRel {m['abs_rel']:.3f}  "
                f"delta1 {m['delta1']:.3f}  ({row['seconds']:.0f} s)")  # fmt: skip
    return {"steps": step, "best_abs_rel": best}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/synthetic", help="a synthetic dataset folder")
    p.add_argument("--out", required=True, help="folder for the weights and log.csv")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--minutes", type=float, default=30.0, help="stop after this long")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--fov-deg", type=float, default=75.0)
    p.add_argument("--worlds-per-batch", type=int, default=4)
    p.add_argument("--views-per-world", type=int, default=8)
    p.add_argument("--max-pitch-deg", type=float, default=20.0)
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--resume", default=None, help="a DepthNet folder to start from")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = train_depth_net(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
