"""Memory benchmark: insert and render throughput, and per-chunk cost over a long walk.

    python benchmarks/memory.py            # full run (a few minutes: rendering the walk
                                           # with the synthetic world dominates)
    python benchmarks/memory.py --quick    # a short walk, fewer sizes

Prints three tables:

1. insert and render throughput of ``SpatialMemory`` at 64, 128 and 256 px (chunks of two
   frames of a synthetic room, inserted into a memory that already holds other views);
2. the torch z-buffer splat of one million points at 256 x 256;
3. the cost per chunk of two 64 px frames (spatial render + episodic retrieval + spatial
   insert + keyframe test + working push) along a revisiting walk, early (around frame 100)
   and late (around the last frame), beside the "rebuild from every frame so far" baseline
   (a fresh cloud fused from all frames before each chunk, as the reference implementation
   of the spatial-memory paper rebuilds its TSDF), timed at a few points in the same process
   until it exceeds its time budget.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worldmem.config import MemoryConfig  # noqa: E402
from worldmem.data.synthetic import make_trajectory, make_world  # noqa: E402
from worldmem.geometry import intrinsics_from_fov, look_at  # noqa: E402
from worldmem.memory import EpisodicMemory, SpatialMemory, WorkingMemory  # noqa: E402
from worldmem.memory.render import splat_points  # noqa: E402

FOV_DEG = 75.0
CHUNK = 2  # frames per generated chunk
clock = time.perf_counter  # --cpu-time switches to process CPU time (for busy machines)


def timed(fn, *args, **kwargs):
    t = clock()
    out = fn(*args, **kwargs)
    return out, clock() - t


def walk_cameras(world, loops: int, frames_per_loop: int) -> torch.Tensor:
    """Several different loops through the same room: a walk that keeps coming back."""
    return torch.cat(
        [make_trajectory(world, "loop", frames_per_loop, seed=s) for s in range(loops)]
    )


def render_world(world, c2w: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    K = intrinsics_from_fov(FOV_DEG, size, size)[None].expand(len(c2w), 3, 3).contiguous()
    rgb, depth = world.render(c2w, K, size, size, shadows=False)
    return rgb, depth


def throughput(world, sizes: list[int], frames: int) -> list[dict]:
    rows = []
    cams = walk_cameras(world, 1, 60)[:: max(1, 60 // frames)][:frames]
    for size in sizes:
        rgb, depth = render_world(world, cams, size)
        K = intrinsics_from_fov(FOV_DEG, size, size)[None].expand(len(cams), 3, 3).contiguous()
        sm = SpatialMemory(MemoryConfig())
        warm = frames // 2
        sm.insert(rgb[:warm], depth[:warm], cams[:warm], K[:warm])
        ins = []
        for i in range(warm, frames - CHUNK + 1, CHUNK):
            s = slice(i, i + CHUNK)
            _, dt = timed(sm.insert, rgb[s], depth[s], cams[s], K[s])
            ins.append(dt)
        rend = []
        for i in range(0, frames - CHUNK + 1, CHUNK):
            s = slice(i, i + CHUNK)
            _, dt = timed(sm.render, cams[s], K[s], size, size)
            rend.append(dt)
        t_ins, t_ren = statistics.median(ins), statistics.median(rend)
        rows.append(
            dict(
                size=size,
                points=sm.num_points,
                insert_fps=CHUNK / t_ins,
                insert_pts=CHUNK * size * size / t_ins,
                insert_ms=1e3 * t_ins,
                render_fps=CHUNK / t_ren,
                render_pts=CHUNK * sm.num_points / t_ren,
                render_ms=1e3 * t_ren,
            )
        )
    return rows


def million_points(repeats: int) -> tuple[float, float]:
    """1M points on the walls of a 6 x 3 x 6 m room, seen from inside at 256 x 256."""
    g = torch.Generator().manual_seed(0)
    n = 1_000_000
    a = torch.rand(n, generator=g) * 6 - 3
    y = torch.rand(n, generator=g) * 3 - 1.5
    face = torch.randint(0, 4, (n,), generator=g)
    side = torch.where(face % 2 == 0, 3.0, -3.0)
    xyz = torch.where(
        (face < 2)[None],
        torch.stack([a, y, side]),
        torch.stack([side, y, a]),
    ).T  # (N, 3) view of (3, N) rows, the layout SpatialMemory keeps
    rgb = torch.rand(n, 3, generator=g)
    c2w = look_at(torch.tensor([[0.5, 0.0, 0.5]]), torch.tensor([[0.0, 0.0, 3.0]]))
    K = intrinsics_from_fov(FOV_DEG, 256, 256)[None]
    cfg = MemoryConfig()
    kw = dict(
        radius_px=1.0,  # the old fixed rule: 1 px at 1 m
        ref_depth_m=1.0,
        max_radius_px=cfg.max_splat_radius_px,
        min_radius_px=cfg.min_splat_radius_px,
        near_m=cfg.near_m,
    )
    times, out = [], None
    for _ in range(repeats):
        out, dt = timed(splat_points, xyz, rgb, c2w, K, 256, 256, **kw)
        times.append(dt)
    return 1e3 * min(times), 1e3 * statistics.median(times), float(out.mask.mean())


def rebuild(frames, upto: int, size: int) -> float:
    """Seconds to fuse a fresh cloud from frames [0, upto) (in batches of 16) and render the
    next chunk: the per-chunk cost of a memory rebuilt from every frame so far."""
    rgb, depth, c2w, K = frames
    t = clock()
    sm = SpatialMemory(MemoryConfig())
    for i in range(0, upto, 16):
        s = slice(i, min(i + 16, upto))
        sm.insert(rgb[s], depth[s], c2w[s], K[s])
    s = slice(upto, upto + CHUNK)
    sm.render(c2w[s], K[s], size, size)
    return clock() - t


def walk(world, num_frames: int, loops: int, per_loop: int, size: int, rebuild_at, budget_s):
    """The chunk loop of the pipeline over ``loops`` different loops of ``per_loop`` frames
    through one room, cycled to ``num_frames`` (late frames revisit early places)."""
    cams = walk_cameras(world, loops, per_loop)
    print(f"  rendering {len(cams)} walk frames at {size} px ...", flush=True)
    rgb, depth = render_world(world, cams, size)
    reps = math.ceil(num_frames / len(cams))  # cycle the loops if asked for more frames
    rgb, depth, cams = (
        x.repeat(reps, *[1] * (x.ndim - 1))[:num_frames] for x in (rgb, depth, cams)
    )
    K = intrinsics_from_fov(FOV_DEG, size, size)[None].expand(num_frames, 3, 3).contiguous()
    cfg = MemoryConfig()
    sm, em, wm = SpatialMemory(cfg), EpisodicMemory(cfg), WorkingMemory(cfg.working_frames)
    log = []
    for i in range(0, num_frames - CHUNK + 1, CHUNK):
        s = slice(i, i + CHUNK)
        t0 = clock()
        r = sm.render(cams[s], K[s], size, size)
        t1 = clock()
        em.retrieve(cams[s], K[s], size, size, depth=r.depth[:, 0])
        wm.frames()
        t2 = clock()
        sm.insert(rgb[s], depth[s], cams[s], K[s], step=i)
        t3 = clock()
        for j in range(i, i + CHUNK):
            em.maybe_add(rgb[j], depth[j], cams[j], K[j], j)
        wm.push(rgb[s], depth[s], cams[s], K[s], i)
        t4 = clock()
        log.append(
            dict(
                frame=i + CHUNK,
                render=t1 - t0,
                retrieve=t2 - t1,
                insert=t3 - t2,
                add=t4 - t3,
                total=t4 - t0,
                points=sm.num_points,
                keyframes=len(em),
            )
        )
    frames = (rgb, depth, cams, K)
    rebuilt = {}
    spent = 0.0
    for f in rebuild_at:
        if f + CHUNK > num_frames:
            continue
        if spent > budget_s:
            rebuilt[f] = None
            continue
        dt = rebuild(frames, f, size)
        rebuilt[f] = dt
        spent += dt
    return log, rebuilt


def window(log: list[dict], centre: int, half: int = 20) -> dict:
    rows = [r for r in log if abs(r["frame"] - centre) <= half]
    out = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "frame"}
    out["points"] = rows[-1]["points"]
    out["keyframes"] = rows[-1]["keyframes"]
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short walk, 64 and 128 px only")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--frames", type=int, default=0, help="walk length (default 2000; quick 400)")
    p.add_argument("--rebuild-budget-s", type=float, default=0.0, help="baseline time budget")
    p.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with process CPU time instead of wall time (use with --threads 1 when "
        "other jobs share the cores)",
    )
    args = p.parse_args(argv)
    global clock
    if args.cpu_time:
        clock = time.process_time
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    frames = args.frames or (400 if quick else 2000)
    budget = args.rebuild_budget_s or (20.0 if quick else 120.0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {load:.1f}, {'quick' if quick else 'full'} run, "
        f"{'CPU' if args.cpu_time else 'wall'} time"
    )
    world = make_world(0, "room")

    print("\n1. SpatialMemory throughput (chunks of 2 frames; default MemoryConfig)\n")
    sizes = [64, 128] if quick else [64, 128, 256]
    rows = throughput(world, sizes, frames=8 if quick else 12)
    print(
        "| px | cloud points | insert ms/chunk | insert frames/s | insert pixels/s "
        "| render ms/chunk | render frames/s | render points/s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['size']} | {r['points']:,} | {r['insert_ms']:.1f} | {r['insert_fps']:.0f} "
            f"| {r['insert_pts']:.2e} | {r['render_ms']:.1f} | {r['render_fps']:.0f} "
            f"| {r['render_pts']:.2e} |"
        )

    print("\n2. Torch z-buffer splat, 1,000,000 points to 256 x 256 (one view)\n")
    best, med, cover = million_points(3 if quick else 10)
    print("| best ms | median ms | pixels covered |")
    print("|---:|---:|---:|")
    print(f"| {best:.1f} | {med:.1f} | {cover:.0%} |")

    print(f"\n3. Per-chunk memory cost over a {frames}-frame revisiting walk at 64 px\n")
    early = 100
    late = frames - 20
    rebuild_at = sorted({early, frames // 4, frames // 2, late})
    loops, per_loop = (2, 200) if quick else (4, 250)
    log, rebuilt = walk(world, frames, loops, per_loop, 64, rebuild_at, budget)
    e, l_ = window(log, early), window(log, late)
    print(
        "| around frame | cloud points | keyframes | render ms | retrieve ms | insert ms "
        "| keyframe+window ms | total ms/chunk |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f, w in ((early, e), (late, l_)):
        print(
            f"| {f} | {w['points']:,} | {w['keyframes']} | {1e3 * w['render']:.1f} "
            f"| {1e3 * w['retrieve']:.1f} | {1e3 * w['insert']:.1f} | {1e3 * w['add']:.1f} "
            f"| {1e3 * w['total']:.1f} |"
        )
    ratio = l_["total"] / e["total"]
    print(f"\nincremental, late / early: {ratio:.2f}x (target <= 1.2x)\n")
    print(
        "| frames so far | incremental ms/chunk | rebuild-from-all-frames ms/chunk "
        "| rebuild / incremental |"
    )
    print("|---:|---:|---:|---:|")
    for f in rebuild_at:
        if f not in rebuilt:
            continue
        inc = window(log, f)["total"]
        rb = rebuilt[f]
        rb_s = "over budget" if rb is None else f"{1e3 * rb:.0f}"
        ratio_s = "-" if rb is None else f"{rb / inc:.0f}x"
        print(f"| {f} | {1e3 * inc:.1f} | {rb_s} | {ratio_s} |")


if __name__ == "__main__":
    main()
