"""The model on held-out plazas, where the box room it is given guesses the most: PSNR, sharpness
and KID of the model and of the non-learned box fill along the walk protocol's walks, and the
paired differences between two saved runs.

    python benchmarks/plaza_walks.py --checkpoint checkpoints/worldmem-tiny --save after.pt
    git worktree add /tmp/before <commit>
    PYTHONPATH=/tmp/before python benchmarks/plaza_walks.py \\
        --checkpoint /tmp/before/checkpoints/worldmem-tiny --save before.pt
    python benchmarks/plaza_walks.py --compare after.pt before.pt

A plaza's facades rise out of every view and its other facades stand tens of metres away, so
what the box room puts above and beyond the start frame fills much of each frame. A run walks
the first ``--plazas`` plazas from seed ``--first`` (each kind of ``--kinds``, 160 frames, from
the true start frame and depth), as ``python -m worldmem.eval walk`` does, and prints each
walk's PSNR over all frames for the model and the box fill (``warp, box fill``) and the
model's sharpness (generated / true high-frequency energy). ``--save`` keeps every fourth frame
of each row and the truth; ``--compare A B`` gives A - B walk by walk (the mean with its 95%
t-interval, and the walks higher) and KID against the true frames (EfficientNet-Lite0
features) of each row in each run, with the paired permutation test of A against B on the same
views. About 20 s per walk.
"""

from __future__ import annotations

import argparse
import math

import torch

from worldmem.data.synthetic import make_world
from worldmem.eval.metrics import (
    EfficientNetFeatures,
    geometric_mean,
    image_features,
    kid,
    kid_paired_test,
    mean_ci,
)
from worldmem.eval.walk import WALK_KINDS, run_walk, walk_case
from worldmem.eval.walk_report import summarize_walk

ROWS = ("model", "warp, box fill")
KEEP_EVERY = 4  # frames kept for KID


def plaza_seeds(first: int, count: int) -> list[int]:
    """The first ``count`` world seeds from ``first`` whose world is a plaza."""
    seeds, seed = [], first
    while len(seeds) < count:
        if make_world(seed).kind == "plaza":
            seeds.append(seed)
        seed += 1
    return seeds


def run(pipe, seeds: list[int], kinds: list[str], frames: int = 160) -> dict:
    """Each walk of each plaza: {"seed kind": {"psnr": {row: dB}, "sharpness": model's,
    "frames": {row or "truth": (n, 3, S, S) every ``KEEP_EVERY``-th frame}}}."""
    out = {}
    for seed in seeds:
        for kind in kinds:
            case = walk_case(make_world(seed), kind, frames, seed, pipe.size, pipe.K.float().cpu())
            res = run_walk(pipe, case, rows=ROWS, keep_every=KEEP_EVERY)
            rows = {r["row"]: r for r in summarize_walk(res.records)}
            out[f"{seed} {kind}"] = {
                "psnr": {r: rows[r]["psnr"] for r in ROWS},
                "sharpness": rows["model"]["sharpness"],
                "frames": {r: res.frames[r] for r in (*ROWS, "truth")},
            }
            got = out[f"{seed} {kind}"]
            print(
                f"world {seed} {kind}: model {got['psnr']['model']:.2f} dB, box fill "
                f"{got['psnr']['warp, box fill']:.2f}, sharpness {got['sharpness']:.2f}",
                flush=True,
            )
    return out


def summary(walks: dict) -> str:
    """One line: the mean PSNR of each row over the walks and the model's sharpness."""
    mean = {r: sum(w["psnr"][r] for w in walks.values()) / len(walks) for r in ROWS}
    sharp = geometric_mean([w["sharpness"] for w in walks.values()])
    return (
        f"{len(walks)} walks: model {mean['model']:.2f} dB, box fill "
        f"{mean['warp, box fill']:.2f} dB, model sharpness {sharp:.2f}"
    )


def compare(a: dict, b: dict, features=None) -> dict:
    """Run ``a`` against run ``b`` on the walks both have: per row, {"delta": (mean, lo, hi),
    "higher": walks where a is higher, "n", "kid": (a's, b's), "kid_delta": (a - b, p)}."""
    keys = [k for k in a if k in b]
    if not keys:
        raise ValueError("compare: the two runs share no walk")
    features = features or EfficientNetFeatures().eval()
    truth = image_features(features, torch.cat([a[k]["frames"]["truth"] for k in keys]))
    out = {}
    for r in ROWS:
        d = [a[k]["psnr"][r] - b[k]["psnr"][r] for k in keys]
        mean, lo, hi, n = mean_ci(d)
        fa = image_features(features, torch.cat([a[k]["frames"][r] for k in keys]))
        fb = image_features(features, torch.cat([b[k]["frames"][r] for k in keys]))
        out[r] = {
            "delta": (mean, lo, hi),
            "higher": sum(x > 0 for x in d),
            "n": n,
            "kid": (kid(fa, truth)[0], kid(fb, truth)[0]),
            "kid_delta": kid_paired_test(fa, fb, truth),
        }
    return out


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:+.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="checkpoints/worldmem-tiny")
    ap.add_argument("--first", type=int, default=100002, help="first world seed searched")
    ap.add_argument("--plazas", type=int, default=6)
    ap.add_argument("--kinds", default="out_and_back,loop,turn")
    ap.add_argument("--frames", type=int, default=160)
    ap.add_argument("--save", default="", help="keep the run here (torch.save)")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two saved runs: A - B")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.compare:
        a, b = (torch.load(p, weights_only=False) for p in args.compare)
        print(f"A: {summary(a)}\nB: {summary(b)}\n")
        print("| row | A - B, PSNR | walks higher | KID A | KID B | KID A - B (p) |")
        print("|---|---|---|---|---|---|")
        for r, c in compare(a, b).items():
            m, lo, hi = c["delta"]
            ka, kb = c["kid"]
            kd, p = c["kid_delta"]
            print(
                f"| {r} | {_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}] | {c['higher']} of {c['n']} "
                f"| {ka:.4f} | {kb:.4f} | {kd:+.4f} (p = {p:.3f}) |"
            )
        return
    kinds = args.kinds.split(",")
    for k in kinds:
        if k not in WALK_KINDS:
            raise SystemExit(f"--kinds: '{k}' is not one of {', '.join(WALK_KINDS)}")
    from worldmem.pipeline import WorldPipeline

    pipe = WorldPipeline.from_pretrained(args.checkpoint, device="cpu")
    walks = run(pipe, plaza_seeds(args.first, args.plazas), kinds, args.frames)
    print(summary(walks))
    if args.save:
        torch.save(walks, args.save)


if __name__ == "__main__":
    main()
