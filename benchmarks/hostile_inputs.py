"""Hostile-input campaign: thousands of malformed or malicious inputs at every boundary a user
reaches, each run under a time limit and classified.

    python benchmarks/hostile_inputs.py                      # the full campaign
    python benchmarks/hostile_inputs.py --quick              # a small sample of every boundary
    python benchmarks/hostile_inputs.py --boundary episodes --boundary states
    python benchmarks/hostile_inputs.py --seed 3 --out hostile.md   # + hostile.csv

Boundaries: jobs files (``load_jobs``), sample.py / train.py / ``worldmem explore`` on the
command line, config files and ``key=value`` overrides (``load_config``), the trajectory
language, camera files (JSON and RealEstate10K), the episode reader and dataset manifests,
the dataset importers (RealEstate10K, COLMAP, generic folders, Minecraft), world state files,
the pipeline's ``start`` / ``step`` / ``observe`` / ``load_state`` / ``save_state``, and the
interactive server's websocket messages. Inputs are generated here, from ``--seed``; the model
is the tests' tiny random one (``tests/conftest.py``), so nothing is downloaded.

Every case ends in one outcome:

    clean error       refused with an expected exception type (or a non-zero exit and one
                      message line) that names the field, file, key or message
    accepted          accepted, and what came out passed the case's validity checks
    VAGUE ERROR       refused, but the message does not name what was wrong
    ACCEPTED INVALID  accepted, but what came out is not valid (a NaN limit in a config, a
                      reader that followed a symbolic link out of its folder, ...)
    UNCAUGHT          an exception of an unexpected type, a traceback on the command line, or
                      a server-side failure
    HANG              the case did not finish within its time limit
    DATA LOSS         a file that existed before changed or vanished, a file was written
                      outside the output folder, a refused call left a partial output behind,
                      or a refused pipeline call changed the world (the next chunk differs
                      from that of an untouched twin)

Cases run in worker processes forked from a server that has imported torch and worldmem:
command-line cases one process each (the script's ``__main__`` block, its exit code and its
stderr), the others in batches, in-process under a per-case alarm; a worker that stops
answering is killed and its case counted as a HANG. Workers run with a 12 GiB address-space
limit, so an input that asks for a huge allocation fails there instead of taking the machine.
Exit code 1 when any case fails.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from hostile import (  # noqa: E402 - after the path that finds them
    cameras,
    configs,
    episodes,
    importers,
    jobs,
    pipeline_calls,
    states,
    websocket,
)
from hostile.core import (  # noqa: E402
    BOUNDARY_MODULES,
    CASE_TIMEOUT_S,
    CLI_TIMEOUT_S,
    DATASETS,
    FAILING,
    OUTCOMES,
    QUICK_CASES,
    QUICK_CLI_CASES,
    TESTS,
    UNCAUGHT,
    Case,
    Result,
    execute,
    make_victim,
    short,
)

sys.path[:0] = [str(TESTS), str(DATASETS)]


GENERATORS: list[Callable[[random.Random], list[Case]]] = [
    jobs.cases_jobs,
    jobs.cases_sample_cli,
    configs.cases_config,  # the boundaries "config overrides" and "config files"
    configs.cases_config_cli,
    cameras.cases_trajectory,
    cameras.cases_camera_files,
    episodes.cases_episodes,
    importers.cases_importers,
    states.cases_states,
    pipeline_calls.cases_pipeline,
    websocket.cases_websocket,
]


def make_cases(seed: int, quick: bool, only: list[str]) -> list[Case]:
    """Every case, from ``seed``; only the boundaries in ``only`` (all when empty); with
    ``quick`` a sample of each boundary (and the cases marked always)."""
    cases: list[Case] = []
    for make in GENERATORS:
        cases += make(random.Random(f"{seed}:{make.__name__}"))
    unknown = set(only) - {c.boundary for c in cases}
    if unknown:
        known = ", ".join(dict.fromkeys(c.boundary for c in cases))
        raise ValueError(f"unknown boundary {sorted(unknown)}; known: {known}")
    if only:
        cases = [c for c in cases if c.boundary in only]
    if quick:
        picked = []
        for b in dict.fromkeys(c.boundary for c in cases):
            group = [c for c in cases if c.boundary == b]
            n = QUICK_CLI_CASES if group[0].cli else QUICK_CASES
            keep = [c for c in group if c.always]
            rest = [c for c in group if not c.always]
            keep += random.Random(f"{seed}:quick:{b}").sample(rest, min(n, len(rest)))
            picked += [c for c in group if any(c is k for k in keep)]
        cases = picked
    return cases


def run_campaign(cases: list[Case], root: Path, timeout: float, progress=None) -> list[Result]:
    """Run every case; returns one Result per case, in order."""
    results: list[Result | None] = [None] * len(cases)

    def report(i: int, r: Result) -> None:
        results[i] = r
        if progress:
            progress(i, cases[i], r)

    mpctx = mp.get_context("forkserver")
    mpctx.set_forkserver_preload(
        [
            "torch",
            "numpy",
            "av",
            "PIL.Image",
            "conftest",
            "worldmem.pipeline",
            "worldmem.sampling",
            "worldmem.data.episode",
            "worldmem.interactive.server",
            "fastapi.testclient",
            "worldmem.models.backbones",
            "rich.console",
            "tqdm",
            *(f"hostile.{m}" for m in BOUNDARY_MODULES),
        ]
    )
    # the in-process cases in one worker (it builds the tiny pipeline once), then each
    # command line in a process of its own
    execute(mpctx, [(i, c) for i, c in enumerate(cases) if not c.cli], root, timeout, report)
    for i, case in enumerate(cases):
        if case.cli:
            execute(mpctx, [(i, case)], root, CLI_TIMEOUT_S, report)
    return [r if r is not None else Result(UNCAUGHT, "no result") for r in results]


def prepare(root: Path) -> None:
    """The campaign's folder: the victim files and the tiny pipeline sample.py loads."""
    from conftest import make_tiny_pipeline

    make_victim(root / "victim")
    make_tiny_pipeline().save_pretrained(root / "tiny_pipeline")


def summarize(cases: list[Case], results: list[Result]) -> tuple[list[list[str]], Counter]:
    totals: Counter = Counter()
    rows = []
    for b in dict.fromkeys(c.boundary for c in cases):
        counts = Counter(r.outcome for c, r in zip(cases, results) if c.boundary == b)
        totals.update(counts)
        rows.append([b, *(str(counts.get(o, 0)) for o in OUTCOMES), str(sum(counts.values()))])
    rows.append(["total", *(str(totals.get(o, 0)) for o in OUTCOMES), str(sum(totals.values()))])
    return rows, totals


def write_report(path: Path, cases, results, rows, seconds: float, args) -> None:
    header = ["boundary", *OUTCOMES, "cases"]
    lines = [
        "# Hostile-input campaign",
        "",
        f"`python benchmarks/hostile_inputs.py {' '.join(args)}`: {len(cases)} cases in "
        f"{seconds:.0f} s.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]
    failing = [(i, c, r) for i, (c, r) in enumerate(zip(cases, results)) if r.outcome in FAILING]
    lines += ["## Failing cases", ""] if failing else ["No failing cases.", ""]
    for i, c, r in failing:
        lines += [
            f"### {i}. {c.boundary}: {c.name} - {r.outcome}",
            "",
            f"- input: `{c.detail or short(c.args)}`",
            f"- {r.message}",
            "",
        ]
        if r.tail:
            lines += ["```", r.tail, "```", ""]
    path.write_text("\n".join(lines), encoding="utf-8", errors="backslashreplace")
    with open(path.with_suffix(".csv"), "w", newline="", errors="backslashreplace") as f:
        w = csv.writer(f)
        w.writerow(["index", "boundary", "case", "outcome", "seconds", "input", "message"])
        for i, (c, r) in enumerate(zip(cases, results)):
            w.writerow([i, c.boundary, c.name, r.outcome, f"{r.seconds:.3f}", c.detail, r.message])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a small sample of every boundary")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated inputs")
    p.add_argument("--out", type=Path, default=None, help="write a markdown report (+ .csv)")
    p.add_argument("--boundary", action="append", default=[], help="only this boundary")
    p.add_argument("--timeout", type=float, default=CASE_TIMEOUT_S, help="seconds per case")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--keep", action="store_true", help="keep the campaign's temporary folder")
    a = p.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False, width=160)
    try:
        cases = make_cases(a.seed, a.quick, a.boundary)
    except ValueError as e:
        p.error(str(e))
    if a.list:
        for i, c in enumerate(cases):
            print(f"{i:5d}  {c.boundary:20s}  {c.name}")
        return 0
    root = Path(tempfile.mkdtemp(prefix="worldmem_hostile_"))
    t0 = time.perf_counter()
    try:
        prepare(root)
        counts: Counter = Counter()

        def progress(i, case, r):
            counts[r.outcome] += 1
            if r.outcome in FAILING:
                what = short(f"{case.boundary}: {case.name}: {r.message}", 150)
                console.print(f"{r.outcome} {what}", markup=False)
            done = sum(counts.values())
            if done % 250 == 0:
                console.print(f"{done}/{len(cases)} cases, {time.perf_counter() - t0:.0f} s")

        results = run_campaign(cases, root, a.timeout, progress)
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    seconds = time.perf_counter() - t0
    rows, totals = summarize(cases, results)
    table = Table(title=f"hostile inputs: {len(cases)} cases in {seconds:.0f} s (seed {a.seed})")
    for col in ["boundary", *OUTCOMES, "cases"]:
        table.add_column(col, justify="left" if col == "boundary" else "right")
    for r in rows:
        table.add_row(*r)
    console.print(table)
    failing = [(c, r) for c, r in zip(cases, results) if r.outcome in FAILING]
    for c, r in failing:
        console.print(f"\n[bold]{r.outcome}[/bold] {c.boundary}: {c.name}")
        console.print(f"  input: {short(c.detail or c.args, 150)}", markup=False)
        console.print(f"  {short(r.message, 300)}", markup=False)
        if r.tail:
            console.print("    " + r.tail.replace("\n", "\n    "), markup=False)
    if a.out:
        write_report(
            a.out, cases, results, rows, seconds, argv if argv is not None else sys.argv[1:]
        )
        console.print(f"report: {a.out} and {a.out.with_suffix('.csv')}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
