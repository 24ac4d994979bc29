"""How many denoising steps: quality against the truth and speed, per step count.

    python benchmarks/sampling_steps.py --checkpoint checkpoints/worldmem-tiny [--steps 1,2,4,8]
        [--detail-flow <a DetailFlow folder> --detail-steps 1,2,4,8]

For each step count, the same pipeline walks the same held-out synthetic worlds (the walk
protocol of ``python -m worldmem.eval walk``: start from the true first frame and depth, every
frame compared with the world's true render) and prints PSNR over all frames and at start
revisits, the sharpness ratio (high-frequency energy, generated / truth: blur < 1 < noise),
KID on EfficientNet-Lite0 features against the true frames, and frames/s; the warp baseline
(start frame warped with its true depth, holes its mean colour) is the first row and the
same warp with its holes push-pull filled the second, so every row reads against results that
need no learning. With ``--detail-flow``, the model at the first of ``--steps`` is run again
with that flow drawing the high band where it invents, at each of ``--detail-steps``
(``worldmem/models/detail_flow.py``), in place of the laid texture (``sampler.texture_gain``,
which the model rows keep as the checkpoint's ``pipeline.json`` sets it). Speed is the median
of the walks' frames/s in this process; sharpness the geometric mean over frames, as in the
walk protocol.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from worldmem.data.synthetic import make_world
from worldmem.eval.metrics import EfficientNetFeatures, geometric_mean, image_features, kid
from worldmem.eval.revisit import HELD_OUT_SEED
from worldmem.eval.walk import run_walk, walk_case
from worldmem.pipeline import WorldPipeline


def _summary(records: list[dict]) -> dict:
    all_p = [r["psnr"] for r in records]
    rev = [r["psnr"] for r in records if r["start_revisit"]]
    sharp = [r["sharpness"] for r in records]
    return {
        "psnr": statistics.fmean(all_p),
        "revisit": statistics.fmean(rev) if rev else float("nan"),
        "sharpness": geometric_mean(sharp),  # as the walk protocol: robust to flat truths
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/worldmem-tiny")
    p.add_argument("--steps", default="1,2,4,8")
    p.add_argument("--kinds", default="out_and_back,turn")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--worlds", type=int, default=2)
    p.add_argument("--detail-flow", default=None, help="a DetailFlow folder to add rows for")
    p.add_argument("--detail-steps", default="1,2,4,8")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="first held-out world seed")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    steps = [int(s) for s in a.steps.split(",")]
    base = WorldPipeline.from_pretrained(a.checkpoint, device="cpu")
    cases = [
        walk_case(
            make_world(a.seed + w),
            kind,
            a.frames,
            a.seed + w,
            base.size,
            base.K.cpu(),
        )  # fmt: skip
        for w in range(a.worlds)
        for kind in a.kinds.split(",")
    ]
    features = EfficientNetFeatures()
    truth = torch.cat([c.rgb[1:] for c in cases])
    f_truth = image_features(features, truth)
    rows = []
    baselines = {"warp": "warp (no learning)", "warp, filled": "warp, holes filled"}
    base_runs = [run_walk(base, case, rows=tuple(baselines)) for case in cases]
    for key, name in baselines.items():
        recs = [r for res in base_runs for r in res.records if r["row"] == key]
        w = _summary(recs)
        frames = torch.cat([res.frames[key] for res in base_runs])
        w["kid"] = kid(image_features(features, frames), f_truth)[0]
        rows.append((name, w, float("nan")))
    runs = [(f"model, {n} step{'s' if n > 1 else ''}", {"steps": n}) for n in steps]
    if a.detail_flow:
        from dataclasses import replace

        from worldmem.models.detail_flow import DetailFlow

        flow = DetailFlow.from_pretrained(a.detail_flow)
        for n in (int(s) for s in a.detail_steps.split(",")):
            net = DetailFlow(replace(flow.cfg, steps=n))
            net.load_state_dict(flow.state_dict())
            flow_run = {"steps": steps[0], "detail_net": net.eval(), "texture_gain": 0.0}
            runs.append((f"+ detail flow, {n}", flow_run))  # in the laid texture's place
    for name, overrides in runs:
        pipe = WorldPipeline.from_pretrained(a.checkpoint, device="cpu", **overrides)
        records, frames, fps = [], [], []
        for case in cases:
            t0 = time.perf_counter()
            res = run_walk(pipe, case, rows=("model",))
            fps.append((case.num_frames - 1) / (time.perf_counter() - t0))
            records += res.records
            frames.append(res.frames["model"])
        s = _summary(records)
        s["kid"] = kid(image_features(features, torch.cat(frames)), f_truth)[0]
        rows.append((name, s, statistics.median(fps)))
    print(
        f"{len(cases)} walks of {a.frames} frames ({a.kinds}; {a.worlds} held-out worlds from "
        f"seed {a.seed})"
    )
    head = ("row", "PSNR all", "PSNR revisit", "sharpness", "KID", "frames/s")
    print(f"{head[0]:<22} {head[1]:>9} {head[2]:>13} {head[3]:>10} {head[4]:>8} {head[5]:>9}")
    for name, s, fps in rows:
        print(
            f"{name:<22} {s['psnr']:>9.2f} {s['revisit']:>13.2f} {s['sharpness']:>10.2f} "
            f"{s['kid']:>8.4f} {fps:>9.1f}"
        )


if __name__ == "__main__":
    main()
