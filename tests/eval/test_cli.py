"""The evaluation command line and the performance report, on a tiny random-weight pipeline."""

import csv
import re

import pytest
from conftest import tiny_model_config

from worldmem.eval import report
from worldmem.eval.__main__ import main
from worldmem.eval.report import perf_summary, walk_keys
from worldmem.eval.revisit import MEMORY_RENDER_ROW


def test_revisit_command_prints_an_estimate_and_writes_results(tiny_pipeline_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["revisit", "--checkpoint", str(tiny_pipeline_dir), "--episodes", "1", "--device",
            "cpu", "--horizons", "short", "--modes", "working,all", "--revisit-frames", "1",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "estimated time:" in text and "LPIPS skipped" in text
    assert text.index("estimated time:") < text.index("[1/1]")
    for name in ("summary.md", "summary.csv", "frames.csv", "revisit_gt.png", "run.json"):
        assert (out / name).is_file()
    # every generated frame is compared with the ground truth once: the estimate counts them all
    promised = int(re.search(r"estimated time: (\d+) generated frames", text).group(1))
    frames = list(csv.DictReader(open(out / "frames.csv")))
    model_rows = [r for r in frames if r["mode"] != MEMORY_RENDER_ROW]
    assert promised == sum(r["reference"] == "gt" for r in model_rows) == 6
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert {(r["protocol"], r["mode"]) for r in rows} == {
        (p, m) for p in ("gt", "recall") for m in ("working", "all")
    } | {("gt", MEMORY_RENDER_ROW)}


def test_revisit_command_rejects_unknown_choices(tiny_pipeline_dir):
    with pytest.raises(SystemExit, match="--protocols: vmem not in gt, recall"):
        main(["revisit", "--checkpoint", str(tiny_pipeline_dir), "--protocols", "gt,vmem"])
    with pytest.raises(SystemExit, match="no pipeline.json"):
        main(["revisit", "--checkpoint", str(tiny_pipeline_dir.parent / "missing")])


def test_perf_command_writes_the_report(tiny_pipeline_dir, tmp_path, capsys):
    out = tmp_path / "perf"
    argv = ["perf", "--checkpoint", str(tiny_pipeline_dir), "--device", "cpu", "--frames", "8",
            "--train-steps", "0", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "estimated time:" in text and "generation frames/s" in text
    rows = list(csv.DictReader(open(out / "perf_chunks.csv")))
    assert [int(r["frames"]) for r in rows] == [2, 4, 6, 8]
    points = [int(r["points"]) for r in rows]
    assert points[0] > 0 and points == sorted(points)  # an exploring walk keeps adding
    assert (out / "perf_chunks.png").read_bytes()[:4] == b"\x89PNG"


def test_perf_summary_compares_chunk_10_with_chunk_250():
    rows = [
        dict(chunk=i, frames=2 * (i + 1), total_s=0.1 if i < 100 else 0.2, memory_s=0.02,
             model_s=0.08 if i < 100 else 0.18, points=10 * i, keyframes=1)
        for i in range(300)
    ]  # fmt: skip
    s = perf_summary(rows, {"stored": 44 * 2990, "resident": 60 * 2990}, max_points=5000)
    assert (s["chunk_early"], s["chunk_late"]) == (10, 250)
    assert s["late_over_early"] == pytest.approx(2.0)
    assert s["frames_per_s"] == pytest.approx(600 / (100 * 0.1 + 200 * 0.2))
    assert s["memory_share_first"] == pytest.approx(0.2)
    assert s["memory_share_last"] == pytest.approx(0.1)
    assert s["stored_bytes_per_point"] == pytest.approx(44.0)
    assert s["model_s_early"] == pytest.approx(0.08) and s["model_s_late"] == pytest.approx(0.18)
    assert s["late_over_early_drift_removed"] == pytest.approx(2.0 / (0.18 / 0.08))


def test_a_machine_slowing_down_is_not_read_as_the_memory_growing():
    def rows(slow: float, memory_late: float) -> list[dict]:
        out = []
        for i in range(300):
            f = slow if i >= 100 else 1.0  # every part of a chunk slower by f late in the run
            mem = (memory_late if i >= 100 else 0.02) * f
            out.append(dict(chunk=i, frames=2 * (i + 1), total_s=mem + 0.08 * f, memory_s=mem,
                            model_s=0.08 * f, points=10 * i, keyframes=1))  # fmt: skip
        return out

    mem_bytes = {"stored": 1, "resident": 1}
    steady = perf_summary(rows(1.5, 0.02), mem_bytes, max_points=5000)
    assert steady["late_over_early"] == pytest.approx(1.5)
    assert steady["late_over_early_drift_removed"] == pytest.approx(1.0)
    growing = perf_summary(rows(1.5, 0.04), mem_bytes, max_points=5000)
    assert growing["late_over_early_drift_removed"] == pytest.approx(0.12 / 0.10)


def test_walk_keys_are_seeded_and_exploring():
    keys = walk_keys(200, seed=3)
    assert keys == walk_keys(200, seed=3) and len(keys) == 200
    assert {"w", "left", "right"} <= set(keys)


def test_training_throughput_without_the_benchmark_script(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "_BENCHMARK", tmp_path / "missing.py")
    value, how = report.training_samples_per_s(tiny_model_config(), train_steps=1)
    assert value > 0 and "measured here" in how


def test_depth_scale_command_fits_and_writes_the_scale(tiny_pipeline_dir, tmp_path, capsys):
    """``depth-scale --write`` stores in pipeline.json the scale ``fit_start_depth_scale``
    finds on the same worlds, and fitting again at that scale finds it again (the median of
    true / given depth is then 1)."""
    import shutil

    from worldmem.eval.studies import CALIBRATION_SEED, fit_start_depth_scale
    from worldmem.pipeline import WorldPipeline

    folder = tmp_path / "p"
    shutil.copytree(tiny_pipeline_dir, folder)
    seeds = list(range(CALIBRATION_SEED, CALIBRATION_SEED + 3))
    want, _ = fit_start_depth_scale(WorldPipeline.from_pretrained(folder, device="cpu"), seeds)
    argv = ["depth-scale", "--checkpoint", str(folder), "--device", "cpu", "--worlds", "3",
            "--write"]  # fmt: skip
    assert main(argv) == 0
    assert "start_depth_scale 1 ->" in capsys.readouterr().out
    pipe = WorldPipeline.from_pretrained(folder, device="cpu")
    assert pipe.start_depth_scale == pytest.approx(want, rel=1e-3) and want != 1.0
    again, ratios = fit_start_depth_scale(pipe, seeds)
    assert again == pytest.approx(pipe.start_depth_scale, rel=1e-4)
    assert float(ratios.median()) == pytest.approx(1.0, rel=1e-4)
