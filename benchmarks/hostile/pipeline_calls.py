"""Hostile pipeline calls: ``start``, ``step`` and ``observe`` with bad seeds, prompts, images,
depths, cameras far off the grid, absurd intrinsics and other worlds. A refused call must
leave the world exactly as it was: its next chunk equals that of an untouched twin."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

from hostile.core import (
    Case,
    Context,
    DataLoss,
    Invalid,
    Refused,
    runner,
    short,
)

# ============================================================================================
# Boundary: pipeline calls (start, step, observe) on a world in progress
# ============================================================================================


def pipeline_calls() -> dict[str, Callable]:
    """name -> call(ctx) of a hostile pipeline call on ``ctx.pipe``'s current world."""
    import numpy as np
    import torch

    S = 32
    calls: dict[str, Callable] = {}

    def eye(n=2, dtype=torch.float32):
        return torch.eye(4, dtype=dtype)[None].repeat(n, 1, 1)

    def K(n=2, entries=None):
        k = torch.tensor([[S * 0.8, 0, S / 2], [0, S * 0.8, S / 2], [0, 0, 1]], dtype=torch.float64)
        for (i, j), v in (entries or {}).items():
            k[i, j] = v
        return k[None].repeat(n, 1, 1)

    def poke(x, value, at=0):
        x = x.clone()
        x.view(-1)[at] = value
        return x

    seeds = [
        -1,
        2**64,
        2**70,
        1.5,
        math.nan,
        "1",
        None,
        True,
        np.int64(3),
        torch.tensor(3),
        -(2**63),
    ]
    for s in seeds:
        calls[f"start seed={s!r}"] = lambda c, s=s: c.pipe.start("x", seed=s)
    prompts = [
        5,
        None,
        b"bytes",
        ["a"],
        "\ud800",
        "a\udcffb",
        "\x00" * 10,
        "x" * 1_000_000,
        "\u202e\u0000\U0001f600",
        "a" * 100,
    ]
    for p in prompts:
        calls[f"start prompt={short(p, 30)}"] = lambda c, p=p: c.pipe.start(p)
    for m in ("most", "", None, 5, "ALL", "spatial "):
        calls[f"start memory={m!r}"] = lambda c, m=m: c.pipe.start("x", memory=m)
    images = {
        "NaN": lambda: poke(torch.rand(3, S, S), math.nan),
        "inf": lambda: poke(torch.rand(3, S, S), math.inf),
        "1e39 float64": lambda: poke(torch.rand(3, S, S, dtype=torch.float64), 1e39),
        "negative": lambda: -torch.rand(3, S, S),
        "above 1": lambda: 5 + torch.rand(3, S, S),
        "uint8": lambda: torch.randint(0, 255, (3, S, S), dtype=torch.uint8),
        "bool": lambda: torch.ones(3, S, S, dtype=torch.bool),
        "complex": lambda: torch.ones(3, S, S, dtype=torch.complex64),
        "HWC": lambda: torch.rand(S, S, 3),
        "batched": lambda: torch.rand(1, 3, S, S),
        "64 px": lambda: torch.rand(3, 64, 64),
        "1 channel": lambda: torch.rand(1, S, S),
        "empty": lambda: torch.rand(3, 0, 0),
        "numpy": lambda: np.random.rand(3, S, S).astype(np.float32),
        "a list": lambda: torch.rand(3, S, S).tolist(),
        "requires grad": lambda: torch.rand(3, S, S, requires_grad=True),
        "non-contiguous": lambda: torch.rand(3, S, S * 2)[:, :, ::2],
        "float16": lambda: torch.rand(3, S, S).half(),
        "meta": lambda: torch.empty(3, S, S, device="meta"),
    }
    for name, make in images.items():
        calls[f"start image {name}"] = lambda c, make=make: c.pipe.start("x", image=make())
    depths = {
        "NaN": lambda: poke(torch.ones(1, S, S), math.nan),
        "inf": lambda: poke(torch.ones(1, S, S), math.inf),
        "negative": lambda: -torch.ones(1, S, S),
        "1e39 float64": lambda: poke(torch.ones(1, S, S, dtype=torch.float64), 1e39),
        "1e30": lambda: torch.full((1, S, S), 1e30),
        "zeros": lambda: torch.zeros(1, S, S),
        "wrong shape": lambda: torch.ones(S, S),
        "int": lambda: torch.ones(1, S, S, dtype=torch.int64),
        "numpy": lambda: np.ones((1, S, S), np.float32),
    }
    for name, make in depths.items():
        calls[f"start depth {name}"] = lambda c, make=make: c.pipe.start(
            "x", image=c.image, depth=make()
        )
    calls["start depth without image"] = lambda c: c.pipe.start("x", depth=c.depth)
    poses = {
        "far 1e7": lambda: poke(torch.eye(4), 1e7, 3),
        "far 1e4": lambda: poke(torch.eye(4), 1e4, 3),
        "NaN": lambda: poke(torch.eye(4), math.nan, 5),
        "inf translation": lambda: poke(torch.eye(4), math.inf, 3),
        "1e39 float64": lambda: poke(torch.eye(4, dtype=torch.float64), 1e39, 3),
        "scaled": lambda: torch.diag(torch.tensor([2.0, 2, 2, 1])),
        "reflection": lambda: torch.diag(torch.tensor([-1.0, 1, 1, 1])),
        "zeros": lambda: torch.zeros(4, 4),
        "3x4": lambda: torch.eye(4)[:3],
        "batched": lambda: torch.eye(4)[None],
        "int": lambda: torch.eye(4, dtype=torch.int64),
        "numpy": lambda: np.eye(4, dtype=np.float32),
        "projective": lambda: poke(torch.eye(4), 1.0, 14),
    }
    for name, make in poses.items():
        calls[f"start c2w {name}"] = lambda c, make=make: c.pipe.start("x", c2w=make())
    cams = {
        **{f"far {t:g}": (lambda t=t: poke(eye(), t, 16 + 3)) for t in (1e3, 1e4, 1e7, 1e20, 1e38)},
        "translation overflows float32": lambda: poke(eye(2, torch.float64), 1e39, 16 + 3),
        "NaN": lambda: poke(eye(), math.nan),
        "inf": lambda: poke(eye(), math.inf, 16 + 7),
        "scaled": lambda: eye() * 2,
        "shear": lambda: poke(eye(), 0.5, 16 + 1),
        "reflection": lambda: poke(eye(), -1.0, 16),
        "no cameras": lambda: torch.zeros(0, 4, 4),
        "3x4": lambda: eye()[:, :3],
        "one camera 4x4": lambda: torch.eye(4),
        "int": lambda: eye().long(),
        "numpy": lambda: np.tile(np.eye(4, dtype=np.float32), (2, 1, 1)),
        "100001 cameras": lambda: torch.eye(4).expand(100_001, 4, 4),
        "float16": lambda: eye().half(),
        "requires grad": lambda: eye().requires_grad_(True),
    }
    for name, make in cams.items():
        calls[f"step cameras {name}"] = lambda c, make=make: c.pipe.step(make())
    keys = {
        "unknown key": ["w", "jump"],
        "empty list": [],
        "not strings": [1, 2],
        "None in list": ["w", None],
        "upper case": ["W"],
        "a string": "w",
        "100001 keys": ["w"] * 100_001,
        "a tuple": ("w", "left"),
        "nested": [["w"]],
        "a dict": {"w": 1},
        "lone surrogate": ["\ud800"],
        "a set": {"w"},
    }
    for name, k in keys.items():
        calls[f"step keys {name}"] = lambda c, k=k: c.pipe.step(k)
    intr = {
        "focal 1e39": {(0, 0): 1e39},
        "focal 1e9": {(1, 1): 1e9},
        "focal 0": {(0, 0): 0.0},
        "focal -25": {(0, 0): -25.0},
        "focal 1e-30": {(0, 0): 1e-30, (1, 1): 1e-30},
        "NaN": {(0, 2): math.nan},
        "inf": {(1, 2): math.inf},
        "skew 1e9": {(0, 1): 1e9},
        "K[2][2] = 5": {(2, 2): 5.0},
        "K[2][2] = 0": {(2, 2): 0.0},
        "cx 1e6": {(0, 2): 1e6},
        "cy -1e6": {(1, 2): -1e6},
        "K[1][0] = 3": {(1, 0): 3.0},
    }
    for name, entries in intr.items():
        calls[f"step K {name}"] = lambda c, e=entries: c.pipe.step(eye(), K=K(2, e))
    for name, make in {
        "3 intrinsics for 2 cameras": lambda: K(3),
        "2x2": lambda: torch.eye(2)[None].repeat(2, 1, 1),
        "int": lambda: K(2).long(),
        "numpy": lambda: K(2).numpy(),
        "one (3, 3)": lambda: K(1)[0],
    }.items():
        calls[f"step K {name}"] = lambda c, make=make: c.pipe.step(eye(), K=make())
    obs = {
        "NaN frame": lambda: (
            poke(torch.rand(2, 3, S, S), math.nan),
            torch.ones(2, 1, S, S),
            eye(),
        ),
        "inf depth": lambda: (
            torch.rand(2, 3, S, S),
            poke(torch.ones(2, 1, S, S), math.inf),
            eye(),
        ),
        "negative depth": lambda: (torch.rand(2, 3, S, S), -torch.ones(2, 1, S, S), eye()),
        "depth 1e30": lambda: (torch.rand(2, 3, S, S), torch.full((2, 1, S, S), 1e30), eye()),
        "camera off the grid": lambda: (
            torch.rand(2, 3, S, S),
            torch.ones(2, 1, S, S),
            poke(eye(), 1e7, 3),
        ),
        "NaN camera": lambda: (
            torch.rand(2, 3, S, S),
            torch.ones(2, 1, S, S),
            poke(eye(), math.nan),
        ),
        "counts differ": lambda: (torch.rand(3, 3, S, S), torch.ones(2, 1, S, S), eye()),
        "no frames": lambda: (torch.rand(0, 3, S, S), torch.ones(0, 1, S, S), eye(0)),
        "wrong size": lambda: (torch.rand(2, 3, 16, 16), torch.ones(2, 1, 16, 16), eye()),
        "uint8 frames": lambda: (
            torch.randint(0, 255, (2, 3, S, S), dtype=torch.uint8),
            torch.ones(2, 1, S, S),
            eye(),
        ),
        "numpy frames": lambda: (np.random.rand(2, 3, S, S), torch.ones(2, 1, S, S), eye()),
        "non-rigid camera": lambda: (torch.rand(2, 3, S, S), torch.ones(2, 1, S, S), eye() * 3),
    }
    for name, make in obs.items():
        calls[f"observe {name}"] = lambda c, make=make: c.pipe.observe(*make())
    calls["observe K NaN"] = lambda c: c.pipe.observe(
        torch.rand(2, 3, S, S), torch.ones(2, 1, S, S), eye(), K(2, {(0, 0): math.nan})
    )
    calls["observe K focal 1e9"] = lambda c: c.pipe.observe(
        torch.rand(2, 3, S, S), torch.ones(2, 1, S, S), eye(), K(2, {(1, 1): 1e9})
    )
    worlds = {"a dict": {}, "a string": "w", "another pipeline's world": "OTHER"}
    for name, w in worlds.items():

        def call(c, w=w):
            if w == "OTHER":
                from worldmem.world_state import WorldState

                w = WorldState.new(type(c.pipe.memory_cfg)(voxel_size_m=0.5))
            return c.pipe.step(["w"], world=w)

        calls[f"step world= {name}"] = call
    return calls


@runner
def pipeline_call(ctx: Context, folder: Path, name: str) -> str:
    """A hostile pipeline call on a world in progress: refused with ValueError and the next
    chunk equal to an untouched twin's, or accepted and the world still steps."""
    import torch

    call = pipeline_calls()[name]
    world = ctx.fresh_world()
    try:
        call(ctx)
    except ValueError as e:
        differs = ctx.same_as_twin(world)
        if differs:
            raise DataLoss(f"refused ({e}), but {differs}") from e
        raise Refused(f"{type(e).__name__}: {e}") from e
    try:
        chunk = ctx.pipe.step(["w", "right"])
    except Exception as e:  # noqa: BLE001 - an accepted call that breaks the world
        raise Invalid(f"accepted, then the next step failed: {type(e).__name__}: {e}") from e
    if not (torch.isfinite(chunk.rgb).all() and torch.isfinite(chunk.depth).all()):
        raise Invalid("accepted, then the next chunk was not finite")
    return "accepted; the world still steps"


def cases_pipeline(rng: random.Random) -> list[Case]:
    cases = []
    names = {
        "start seed": r"seed",
        "start prompt": r"prompt",
        "start memory": r"memory",
        "start image": r"image",
        "start depth": r"depth",
        "start c2w": r"c2w",
        "step cameras": r"cameras",
        "step keys": r"cameras|key",
        "step K": r"\bK\b",
        "observe": r"rgb|depth|c2w|\bK\b",
        "step world": r"world",
    }
    for name in pipeline_calls():
        what = next(v for k, v in names.items() if name.startswith(k))
        expect = (what,)
        cases.append(
            Case(
                "pipeline calls",
                name,
                "pipeline_call",
                (name,),
                expect,
                always=name in ("step cameras far 1e7", "start prompt=\\ud800"),
                detail=name,
            )
        )
    return cases
