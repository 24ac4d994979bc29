"""The hostile-input campaign (benchmarks/hostile_inputs.py): its classifier tells each
failure apart, and its quick sample of every boundary ends with no failing case."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "hostile_inputs.py"

pytestmark = pytest.mark.timeout(600)  # a hung campaign fails the test instead of the run


@pytest.fixture(scope="module")
def campaign():
    """The campaign's machinery (benchmarks/hostile/core.py)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from hostile import core
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return core


@pytest.fixture
def alarm(campaign):
    """The campaign's per-case alarm, in this (the main) thread."""
    old = signal.signal(signal.SIGALRM, campaign.on_alarm)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


def _classify(campaign, tmp_path, fn, expect=(), timeout=5.0):
    """The outcome ``run_case`` gives a case whose runner is ``fn``."""
    campaign.make_victim(tmp_path / "victim")
    campaign.RUNNERS["probe"] = fn
    case = campaign.Case("probe", "probe", "probe", (), expect)
    try:
        return campaign.run_case(campaign.Context(tmp_path), case, 0, timeout)
    finally:
        del campaign.RUNNERS["probe"]


def test_the_classifier_tells_every_outcome_apart(campaign, tmp_path, alarm):
    def refuse(ctx, folder):
        campaign.refused_on(lambda: int("x"), ValueError)

    def crash(ctx, folder):
        return {}["missing"]

    def hang(ctx, folder):
        time.sleep(30)

    def write_outside(ctx, folder):
        (ctx.victim / "secret.txt").write_text("overwritten")

    def corrupt_on_refusal(ctx, folder):
        (folder / "kept.txt").write_text("mine")
        with campaign.guarded(folder):
            (folder / "kept.txt").write_text("changed")
            raise campaign.Refused("refused")

    def accept_invalid(ctx, folder):
        raise campaign.Invalid("a NaN limit")

    assert _classify(campaign, tmp_path, refuse, (r"invalid literal",)).outcome == campaign.CLEAN
    assert _classify(campaign, tmp_path, refuse, (r"names the field",)).outcome == campaign.VAGUE
    assert _classify(campaign, tmp_path, lambda c, f: "fine").outcome == campaign.ACCEPTED
    assert _classify(campaign, tmp_path, accept_invalid).outcome == campaign.INVALID
    crashed = _classify(campaign, tmp_path, crash)
    assert crashed.outcome == campaign.UNCAUGHT and "KeyError" in crashed.tail
    assert _classify(campaign, tmp_path, hang, timeout=0.5).outcome == campaign.HANG
    lost = _classify(campaign, tmp_path, write_outside)
    assert lost.outcome == campaign.DATA_LOSS and "victim/secret.txt changed" in lost.message
    changed = _classify(campaign, tmp_path, corrupt_on_refusal)
    assert changed.outcome == campaign.DATA_LOSS and "kept.txt changed" in changed.message


def test_a_command_line_traceback_is_uncaught(campaign, tmp_path):
    script = tmp_path / "tool.py"
    script.write_text("import sys\nif sys.argv[1] == 'bad':\n    {}['k']\nsys.exit('error: no')\n")
    code, out, err = campaign.run_cli([str(script), "bad"], tmp_path)
    with pytest.raises(campaign.Uncaught, match="KeyError"):
        campaign.cli_outcome(code, out, err)
    code, out, err = campaign.run_cli([str(script), "good"], tmp_path)
    with pytest.raises(campaign.Refused, match="exit 1: error: no"):
        campaign.cli_outcome(code, out, err)


def test_the_quick_campaign_finds_no_failing_case(tmp_path):
    report = tmp_path / "hostile.md"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(report)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,
    )
    with open(report.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    boundaries = {r["boundary"] for r in rows}
    assert len(rows) > 100 and len(boundaries) >= 11, sorted(boundaries)
    failing = [r for r in rows if r["outcome"] not in ("clean error", "accepted")]
    assert not failing, "\n".join(
        f"{r['outcome']}: {r['boundary']}: {r['case']}: {r['message']}" for r in failing
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
