"""Write the bundled demo start: a held-out synthetic world's first frame, its depth, its
caption and its camera path (a walk that comes back), for ``make demo``.

    python datasets/demo_start.py --out worldmem/assets/demo
    python datasets/demo_start.py --figure outputs/sample/job_000 --png docs/sample.png

The first writes the files; the second sets the truth beside what ``make demo`` generated
(``side_by_side.mp4`` of the job: generated | memory render | depth) at a few frames of the
walk: rows are frames, columns truth | generated | memory render | depth.

The world seed is in the held-out range the evaluation uses (never trained on); the files are
``start.png`` (the first frame), ``start_depth.npy`` (float32 metres, H x W), ``caption.txt``
and ``trajectory.json`` (the camera of every frame; the first is the start frame's).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from worldmem.data.synthetic import generate_episode
from worldmem.geometry.trajectory import Trajectory

DEMO_SEED = 100_013  # held out: the evaluation's worlds start at seed 100,000


def figure(job_dir: Path, png: Path, seed: int, frames: int, size: int, kind: str) -> Path:
    """Truth | generated | memory render | depth at a few frames of the demo walk."""
    import av

    with av.open(str(job_dir / "side_by_side.mp4")) as c:
        sbs = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    ep = generate_episode(seed, frames, image_size=size, traj_kind=kind)
    n = min(len(sbs), frames)
    picks = np.linspace(0, n - 1, 7).round().astype(int)
    gap = np.full((size, 2, 3), 255, np.uint8)
    rows = [np.concatenate([ep.rgb[i].numpy(), gap, sbs[i]], 1) for i in picks]
    grid = np.concatenate(
        [np.concatenate([r, np.full((2, r.shape[1], 3), 255, np.uint8)]) for r in rows]
    )
    img = Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST)
    png.parent.mkdir(parents=True, exist_ok=True)
    img.save(png)
    print(f"{png}: frames {picks.tolist()} (truth | generated | memory render | depth)")
    return png


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="worldmem/assets/demo")
    p.add_argument("--figure", default=None, help="a job folder of make demo: write --png")
    p.add_argument("--png", default="docs/sample.png")
    p.add_argument("--seed", type=int, default=DEMO_SEED)
    p.add_argument("--frames", type=int, default=96)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--kind", default="out_and_back", help="trajectory kind of the synthetic walk")
    a = p.parse_args(argv)
    if a.figure:
        return figure(Path(a.figure), Path(a.png), a.seed, a.frames, a.size, a.kind)
    ep = generate_episode(a.seed, a.frames, image_size=a.size, traj_kind=a.kind)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ep.rgb[0].numpy()).save(out / "start.png")
    np.save(out / "start_depth.npy", ep.depth[0].numpy().astype(np.float32))
    (out / "caption.txt").write_text(ep.caption + "\n")
    Trajectory(ep.c2w, ep.K, a.size, a.size).save_json(out / "trajectory.json")
    print(f"{out}: seed {a.seed} ({ep.world_kind}, {ep.traj_kind}): {ep.caption}")
    return out


if __name__ == "__main__":
    main()
