"""Memory benchmark: insert and render throughput, and per-chunk cost over a long walk.

    python benchmarks/memory.py            # full run (a few minutes: rendering the walk
                                           # with the synthetic world dominates)
    python benchmarks/memory.py --quick    # a short walk, fewer sizes

Prints four tables:

0. memory fidelity: a memory filled with 1, 2, 5, 20 and 100 true frames of a held-out
   synthetic walk (64 px), rendered at those cameras and at novel cameras between them, beside
   a brute-force per-pixel reprojection (a z-buffer of every observed pixel's point, nearest
   depth wins, independent of SpatialMemory) and the old fusion (running mean of position and
   colour in 4 cm voxels, splatted with the old fixed 1 px-at-1 m footprint): PSNR and
   coverage (fraction of pixels drawn);

1. insert and render throughput of ``SpatialMemory`` at 64, 128 and 256 px (chunks of two
   frames of a synthetic room, inserted into a memory that already holds other views);
2. the torch z-buffer splat of one million points at 256 x 256, as ``SpatialMemory`` draws
   them (footprints, surface pass), against the previous simple splat (fixed 1 px at 1 m;
   kept in ``benchmarks/previous_splat.py``) timed in the same process, runs interleaved;
3. the cost per chunk of two 64 px frames (spatial render + episodic retrieval + spatial
   insert + keyframe test + working push) along a revisiting walk, early (around frame 100)
   and late (around the last frame), once with the sample cap the shipped pipeline runs with
   (``checkpoints/worldmem-tiny/pipeline.json``) and once with ``MemoryConfig``'s default
   (``--max-points`` picks others); with the default cap, beside the "rebuild from every
   frame so far" baseline
   (a fresh cloud fused from all frames before each chunk, as the reference implementation
   of the spatial-memory paper rebuilds its TSDF), timed at a few points in the same process
   until it exceeds its time budget.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if str(Path(__file__).resolve().parent) not in sys.path:  # previous_splat, beside this file
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from previous_splat import previous_splat  # noqa: E402

from worldmem.config import MemoryConfig  # noqa: E402
from worldmem.data.synthetic import generate_episode, make_trajectory, make_world  # noqa: E402
from worldmem.geometry import intrinsics_from_fov, look_at  # noqa: E402
from worldmem.memory import EpisodicMemory, SpatialMemory, WorkingMemory  # noqa: E402
from worldmem.memory.render import splat_points  # noqa: E402

FOV_DEG = 75.0
CHUNK = 2  # frames per generated chunk
MAX_POINTS = MemoryConfig().max_points  # the library default cap
SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "worldmem-tiny" / "pipeline.json"
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


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float((a - b).square().mean()) + 1e-12)


def brute_force_reprojection(rgb, depth, c2w, K, t_c2w, t_K, size):
    """Every observed pixel's point projected to its nearest target pixel; the nearest depth
    wins. Plain torch, no SpatialMemory: (rgb (V, 3, S, S), coverage (V,))."""
    from worldmem.geometry.camera import se3_inverse, unproject_depth

    pts = unproject_depth(depth[:, 0], c2w, K).reshape(-1, 3)  # (M, 3)
    cols = rgb.permute(0, 2, 3, 1).reshape(-1, 3)
    out, cover = [], []
    for cw, k in zip(t_c2w, t_K):
        cam = pts @ se3_inverse(cw)[:3, :3].T + se3_inverse(cw)[:3, 3]
        z = cam[:, 2]
        uv = cam @ k.T
        u = torch.floor(uv[:, 0] / z).long()
        v = torch.floor(uv[:, 1] / z).long()
        ok = (z > 0.05) & (u >= 0) & (u < size) & (v >= 0) & (v < size)
        pix = v[ok] * size + u[ok]
        key = (z[ok].view(torch.int32).long() << 32) | torch.arange(int(ok.sum()))
        buf = torch.full((size * size,), torch.iinfo(torch.int64).max)
        buf.scatter_reduce_(0, pix, key, "amin")
        hit = buf != torch.iinfo(torch.int64).max
        img = torch.zeros(size * size, 3)
        img[hit] = cols[ok][buf[hit] & 0xFFFFFFFF]
        out.append(img.T.reshape(3, size, size))
        cover.append(float(hit.float().mean()))
    return torch.stack(out), cover


def voxel_mean_render(rgb, depth, c2w, K, t_c2w, t_K, size, voxel_m=0.04):
    """The old fusion: mean position and colour of the pixels in each 4 cm voxel, splatted
    with the old footprint rule (1 px at 1 m, clamp [0.5, 4], hole fill 0.75 px)."""
    from worldmem.geometry.camera import unproject_depth

    pts = unproject_depth(depth[:, 0], c2w, K).reshape(-1, 3)
    cols = rgb.permute(0, 2, 3, 1).reshape(-1, 3)
    _, group = torch.unique(torch.floor(pts / voxel_m).long(), dim=0, return_inverse=True)
    n = int(group.max()) + 1
    cnt = torch.zeros(n).index_add_(0, group, torch.ones(len(group)))[:, None]
    xyz = torch.zeros(n, 3).index_add_(0, group, pts) / cnt
    col = torch.zeros(n, 3).index_add_(0, group, cols) / cnt
    rgb_out, _, mask = previous_splat(xyz, col, t_c2w, t_K, size, size, 1.0, 1.0, 4, 0.75, 0.1)
    return rgb_out, mask.flatten(1).mean(1).tolist()


def fidelity(counts: list[int], size: int = 64) -> list[dict]:
    """Fill memories from the even frames of a held-out walk; the odd frames between them are
    the novel cameras."""
    need = 2 * max(counts)
    print(f"  rendering a {need}-frame held-out walk at {size} px ...", flush=True)
    ep = generate_episode(777, need, size)
    rgb = torch.as_tensor(ep.rgb).permute(0, 3, 1, 2).float() / 255
    depth = torch.as_tensor(ep.depth)[:, None].float()
    c2w, K = torch.as_tensor(ep.c2w), torch.as_tensor(ep.K)
    rows = []
    for n in counts:
        obs = list(range(0, 2 * n, 2))
        novel = list(range(1, 2 * n - 1, 2)) or [1]
        sm = SpatialMemory(MemoryConfig(max_depth_m=100.0))
        t = clock()
        for i in range(0, n, CHUNK):
            s = obs[i : i + CHUNK]
            sm.insert(rgb[s], depth[s], c2w[s], K[s])
        t_fill = clock() - t
        row = dict(frames=n, samples=sm.num_points, fill_ms=1e3 * t_fill / n)
        o = obs
        for name, cams in (("own", obs), ("novel", novel)):
            r = sm.render(c2w[cams], K[cams], size, size)
            bf, bf_cov = brute_force_reprojection(
                rgb[o], depth[o], c2w[o], K[o], c2w[cams], K[cams], size
            )
            vm, vm_cov = voxel_mean_render(rgb[o], depth[o], c2w[o], K[o], c2w[cams], K[cams], size)
            truth = rgb[cams]
            row[name] = dict(
                new=statistics.mean(psnr(r.rgb[i], truth[i]) for i in range(len(cams))),
                new_min=min(psnr(r.rgb[i], truth[i]) for i in range(len(cams))),
                new_cov=float(r.mask.mean()),
                bf=statistics.mean(psnr(bf[i], truth[i]) for i in range(len(cams))),
                bf_cov=statistics.mean(bf_cov),
                old=statistics.mean(psnr(vm[i], truth[i]) for i in range(len(cams))),
                old_cov=statistics.mean(vm_cov),
            )
        rows.append(row)
    return rows


def million_points(repeats: int) -> tuple[list[tuple[str, float, float, float, float]], bool]:
    """1M points on the walls of a 6 x 3 x 6 m room, seen from inside at 256 x 256, drawn by
    the previous simple splat (``benchmarks/previous_splat.py``), by ``splat_points`` with the
    same fixed radius, and by ``splat_points`` as ``SpatialMemory`` uses it (per-sample
    footprints, provenance ranks, surface pass), in turn, ``repeats`` times in this process.
    Returns rows (name, best ms, median ms, median / the previous splat's, pixels covered)
    and whether ``splat_points`` with the fixed radius draws the previous splat's image."""
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
    # the SpatialMemory path: per-sample footprints (as if seen from 3 m at 256 px: 0.75 px
    # here), provenance ranks and the surface pass
    f = float(K[0, 0, 0])
    new_kw = dict(
        kw,
        radius_m=torch.full((n,), cfg.splat_footprint_scale * 3.0 / f),
        observed=torch.rand(n, generator=g) < 0.5,
        surface_tol_rel=cfg.surface_tol_rel,
    )
    args = (xyz, rgb, c2w, K, 256, 256)
    variants = (
        ("previous splat, fixed 1 px at 1 m (baseline)", lambda: previous_splat(*args, **kw)),
        ("splat_points, the same fixed radius", lambda: splat_points(*args, **kw)),
        ("splat_points, footprints + surface pass", lambda: splat_points(*args, **new_kw)),
    )
    outs = {name: fn() for name, fn in variants}  # warm-up, and the images compared below
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    for _ in range(repeats):  # interleaved, so a slow spell of the machine hits all three
        for name, fn in variants:
            times[name].append(timed(fn)[1])
    base = statistics.median(times[variants[0][0]])
    masks = [out[2] if isinstance(out, tuple) else out.mask for out in outs.values()]
    rows = [
        (
            name,
            1e3 * min(times[name]),
            1e3 * statistics.median(times[name]),
            statistics.median(times[name]) / base,
            float(mask.mean()),
        )
        for (name, _), mask in zip(variants, masks)
    ]
    old, same_radius = outs[variants[0][0]], outs[variants[1][0]]
    same = all(
        torch.equal(o, getattr(same_radius, f)) for o, f in zip(old, ("rgb", "depth", "mask"))
    )
    return rows, same


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


def walk_frames(world, num_frames: int, loops: int, per_loop: int, size: int):
    """``loops`` different loops of ``per_loop`` frames through one room, cycled to
    ``num_frames`` (late frames revisit early places): rgb, depth, c2w, K stacks."""
    cams = walk_cameras(world, loops, per_loop)
    print(f"  rendering {len(cams)} walk frames at {size} px ...", flush=True)
    rgb, depth = render_world(world, cams, size)
    reps = math.ceil(num_frames / len(cams))  # cycle the loops if asked for more frames
    rgb, depth, cams = (
        x.repeat(reps, *[1] * (x.ndim - 1))[:num_frames] for x in (rgb, depth, cams)
    )
    K = intrinsics_from_fov(FOV_DEG, size, size)[None].expand(num_frames, 3, 3).contiguous()
    return rgb, depth, cams, K


def walk(frames, cfg: MemoryConfig, size: int, rebuild_at, budget_s):
    """The chunk loop of the pipeline over the walk ``frames`` with memories of ``cfg``."""
    rgb, depth, cams, K = frames
    num_frames = len(cams)
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


def print_splat_table(repeats: int) -> None:
    print(
        f"\n2. Torch z-buffer splat, 1,000,000 points to 256 x 256 (one view); {repeats} runs "
        "of each, interleaved\n"
    )
    rows, same = million_points(repeats)
    print("| splat | best ms | median ms | median / previous splat | pixels covered |")
    print("|---|---:|---:|---:|---:|")
    for name, best, med, ratio, cover in rows:
        print(f"| {name} | {best:.1f} | {med:.1f} | {ratio:.2f}x | {cover:.0%} |")
    verdict = "yes, bit for bit" if same else "NO"
    print(f"\nsplat_points with the fixed radius draws the previous splat's image: {verdict}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short walk, 64 and 128 px only")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--frames", type=int, default=0, help="walk length (default 2000; quick 400)")
    p.add_argument("--rebuild-budget-s", type=float, default=0.0, help="baseline time budget")
    p.add_argument("--skip-fidelity", action="store_true", help="skip table 0")
    p.add_argument("--only-fidelity", action="store_true", help="table 0 only")
    p.add_argument("--only-splat", action="store_true", help="table 2 only")
    p.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with process CPU time instead of wall time (use with --threads 1 when "
        "other jobs share the cores)",
    )
    p.add_argument(
        "--max-points",
        type=int,
        nargs="+",
        default=None,
        help="spatial-memory caps for table 3 (default: the shipped pipeline's, then "
        "MemoryConfig's default)",
    )
    args = p.parse_args(argv)
    if args.max_points is None:  # the cap the shipped pipeline runs with, then the default
        shipped = json.loads(SHIPPED.read_text())["memory"]["max_points"]
        args.max_points = [shipped, MAX_POINTS] if shipped != MAX_POINTS else [MAX_POINTS]
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
    if args.only_splat:
        print_splat_table(5 if quick else 11)
        return
    world = make_world(0, "room")

    if not args.skip_fidelity:
        print("\n0. Memory fidelity, 64 px held-out walk (PSNR dB, mean over views; coverage)\n")
        rows = fidelity([1, 2, 5, 20] if quick else [1, 2, 5, 20, 100])
        print(
            "| frames | samples | views | SpatialMemory dB (min) | brute-force dB "
            "| old voxel-mean dB | coverage new / brute / old |"
        )
        print("|---:|---:|---|---:|---:|---:|---|")
        for r in rows:
            for name in ("own", "novel"):
                v = r[name]
                print(
                    f"| {r['frames']} | {r['samples']:,} | {name} | {v['new']:.1f} "
                    f"({v['new_min']:.1f}) | {v['bf']:.1f} | {v['old']:.1f} "
                    f"| {v['new_cov']:.3f} / {v['bf_cov']:.3f} / {v['old_cov']:.3f} |"
                )

    if args.only_fidelity:
        return
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

    print_splat_table(5 if quick else 11)

    early = 100
    late = frames - 20
    loops, per_loop = (2, 200) if quick else (4, 250)
    walk_set = walk_frames(world, frames, loops, per_loop, 64)
    for cap in args.max_points:
        print(
            f"\n3. Per-chunk memory cost over a {frames}-frame revisiting walk at 64 px, "
            f"max_points {cap:,}\n"
        )
        rebuild_at = sorted({early, frames // 4, frames // 2, late}) if cap == MAX_POINTS else []
        log, rebuilt = walk(walk_set, MemoryConfig(max_points=cap), 64, rebuild_at, budget)
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
        if not rebuilt:
            continue
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
