"""How well a pipeline's first-frame bank finds, for a held-out world's caption, a frame of a
world like it: judged on the synthetic worlds' own parameters (kind, wall texture and colours,
floor), not on the words.

    python benchmarks/first_frame_retrieval.py --checkpoint checkpoints/worldmem-tiny

For each of ``--worlds`` held-out worlds (seeds from ``--seed``), the frame the bank draws for
its caption with the world's seed, and its most probable frame, are compared with that world;
beside them a frame of the bank drawn at
random (what a caption that steers nothing gets) and the best match the bank holds (the most
retrieval could reach). Then the freely phrased prompts of the walk evaluation and what they
find.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from worldmem.data.manifest import read_manifest
from worldmem.data.synthetic import make_world
from worldmem.eval.studies import FREE_PROMPTS
from worldmem.models.first_frame_bank import FOLDER, FirstFrameBank

WALLS = ("z+", "x+", "z-", "x-")


def attributes(world) -> dict:
    walls = [world.faces[f] for f in WALLS]
    floor = world.faces["floor"]
    return {
        "kind": world.kind,
        "wall texture": walls[0].texture,
        "wall colours": {w.colour for w in walls},
        "floor": (floor.texture, floor.colour),
    }


def agreement(a: dict, b: dict) -> dict:
    """Per attribute: 1 if the same (wall colours: the Jaccard index of the two sets)."""
    out = {k: float(a[k] == b[k]) for k in ("kind", "wall texture", "floor")}
    out["wall colours"] = len(a["wall colours"] & b["wall colours"]) / len(
        a["wall colours"] | b["wall colours"]
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="checkpoints/worldmem-tiny")
    ap.add_argument("--data", default="data/synthetic", help="the root the bank was built from")
    ap.add_argument("--worlds", type=int, default=100)
    ap.add_argument("--seed", type=int, default=105_000, help="first held-out world")
    args = ap.parse_args()
    bank = FirstFrameBank.from_pretrained(Path(args.checkpoint) / FOLDER)
    seeds = {e["path"]: e["seed"] for e in read_manifest(args.data)}
    bank_worlds = [attributes(make_world(seeds[s.split(":")[0]])) for s in bank.sources]
    g = torch.Generator().manual_seed(0)
    rows = {
        "drawn, as start(prompt, seed) draws": [],
        "the most probable": [],
        "a bank frame at random": [],
        "best in the bank": [],
    }
    for i in range(args.worlds):
        world = make_world(args.seed + i)
        want = attributes(world)
        scores = [agreement(want, b) for b in bank_worlds]
        seed = args.seed + i
        picks = {
            "drawn, as start(prompt, seed) draws": bank.choose(
                world.caption, torch.Generator().manual_seed(seed)
            ),
            "the most probable": int(bank.probabilities(world.caption).argmax()),
            "a bank frame at random": int(torch.randint(len(bank), (1,), generator=g)),
            "best in the bank": max(range(len(bank)), key=lambda j: sum(scores[j].values())),
        }
        for name, j in picks.items():
            rows[name].append(scores[j])
    table = Table(title=f"{args.worlds} held-out worlds' captions against a bank of {len(bank)}")
    table.add_column("frame")
    keys = list(rows["best in the bank"][0])
    for k in keys:
        table.add_column(k, justify="right")
    for name, scores in rows.items():
        table.add_row(name, *[f"{sum(s[k] for s in scores) / len(scores):.2f}" for k in keys])
    console = Console()
    console.print(table)
    free = Table(title="freely phrased prompts")
    for col in ("prompt", "similarity", "most probable caption"):
        free.add_column(col)
    for prompt in FREE_PROMPTS:
        p = bank.probabilities(prompt)
        j = int(p.argmax())
        free.add_row(prompt, f"{float(bank.similarity(prompt)[j]):.3f}", bank.captions[j])
    console.print(free)


if __name__ == "__main__":
    main()
