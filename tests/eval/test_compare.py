"""The paired comparison of two walk runs, against differences known by construction."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from worldmem.eval.__main__ import main as eval_main
from worldmem.eval.compare import paired_differences, read_walk_frames
from worldmem.eval.metrics import t_quantile

FIELDS = ["episode", "kind", "row", "frame", "psnr", "ssim", "sharpness", "start_overlap",
          "start_revisit", "psnr_seen", "recall_psnr", "recall_frame"]  # fmt: skip


def _records(shift: dict[str, float], sharp: float = 1.0, seed: int = 0) -> list[dict]:
    """Two worlds x three kinds x 6 frames of a 'model' and a 'warp' row; the model's PSNR
    is the base plus ``shift[kind]``; frames 4 and 5 are start revisits."""
    rng = np.random.default_rng(seed)
    out = []
    for ep in ("world1", "world2"):
        for kind in ("loop", "turn", "strafe"):
            base = rng.uniform(15, 25, 6)
            for row in ("model", "warp"):
                for f in range(6):
                    psnr = base[f] + (shift[kind] if row == "model" else 0.0)
                    out.append(
                        {
                            "episode": ep, "kind": kind, "row": row, "frame": f + 1,
                            "psnr": psnr, "ssim": 0.5,
                            "sharpness": (sharp if row == "model" else 1.0) * (0.5 + f / 10),
                            "start_overlap": 0.0, "start_revisit": int(f >= 4),
                            "psnr_seen": psnr + 3 if f >= 4 else math.nan,
                            "recall_psnr": math.nan, "recall_frame": -1,
                        }
                    )  # fmt: skip
    return out


def _write(path, records):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(records)
    return path


def test_paired_differences_recover_a_known_shift_on_every_walk(tmp_path):
    a = _records({"loop": 0.0, "turn": 0.0, "strafe": 0.0})
    b = _records({"loop": 1.0, "turn": -0.5, "strafe": 0.25}, sharp=2.0)
    pa = _write(tmp_path / "a.csv", a)
    rb = tmp_path / "run_b"
    rb.mkdir()
    _write(rb / "walk_frames.csv", b)
    r = paired_differences(read_walk_frames(pa), read_walk_frames(rb))
    assert r["walks"] == sorted(
        (e, k) for e in ("world1", "world2") for k in ("loop", "turn", "strafe")
    )
    want = {"loop": 1.0, "turn": -0.5, "strafe": 0.25}
    for (_, kind), d, ds, dl in zip(
        r["walks"], r["diff"]["psnr"], r["diff"]["psnr_seen"], r["diff"]["log_sharpness"]
    ):
        assert d == pytest.approx(want[kind], abs=1e-9)
        assert ds == pytest.approx(want[kind], abs=1e-9)  # the same shift at the revisits
        assert dl == pytest.approx(math.log(2.0), abs=1e-9)  # sharpness ratio 2 on every frame
    # the same model row against the baseline row of one run: the shift again
    r2 = paired_differences(read_walk_frames(pa), read_walk_frames(rb), "warp", "model")
    assert r2["diff"]["psnr"] == pytest.approx(r["diff"]["psnr"], abs=1e-9)


def test_compare_command_prints_the_pooled_t_interval(tmp_path, capsys):
    shifts = {"loop": 1.0, "turn": -0.5, "strafe": 0.25}
    pa = _write(tmp_path / "a.csv", _records({k: 0.0 for k in shifts}))
    pb = _write(tmp_path / "b.csv", _records(shifts))
    assert eval_main(["compare", str(pa), str(pb)]) == 0
    out = capsys.readouterr().out
    d = np.array([1.0, -0.5, 0.25] * 2)
    half = t_quantile(0.975, 5) * d.std(ddof=1) / math.sqrt(6)
    line = next(x for x in out.splitlines() if x.startswith("| Δ PSNR |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert float(cells[1]) == pytest.approx(d.mean(), abs=1e-3)
    assert float(cells[2]) == pytest.approx(d.mean() - half, abs=1e-3)
    assert float(cells[3]) == pytest.approx(d.mean() + half, abs=1e-3)
    assert cells[4] == "6"
    assert "B is higher in PSNR on 4 of 6 walks." in out  # the loops and strafes gained


def test_runs_that_do_not_pair_are_refused_by_name(tmp_path):
    a = _records({"loop": 0.0, "turn": 0.0, "strafe": 0.0})
    fewer = [r for r in a if r["kind"] != "turn"]
    shorter = [r for r in a if r["frame"] != 6]
    pa = _write(tmp_path / "a.csv", a)
    for name, recs, msg in (
        ("fewer", fewer, "different walks"),
        ("shorter", shorter, "different frames"),
    ):
        pb = _write(tmp_path / f"{name}.csv", recs)
        with pytest.raises(SystemExit, match=msg):
            eval_main(["compare", str(pa), str(pb)])
    with pytest.raises(SystemExit, match="no row 'memory'"):
        eval_main(["compare", str(pa), str(pa), "--row", "memory"])
    with pytest.raises(SystemExit, match="not found"):
        eval_main(["compare", str(pa), str(tmp_path / "missing")])
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit, match="is not a walk_frames.csv"):
        eval_main(["compare", str(pa), str(tmp_path / "other.csv")])


def test_compare_tests_kid_on_the_runs_saved_features(tmp_path, capsys):
    import torch

    from worldmem.eval.compare import FEATURES_FILE
    from worldmem.eval.metrics import kid_paired_test

    g = torch.Generator().manual_seed(0)
    truth = torch.randn(40, 8, generator=g)
    near = truth + 0.1 * torch.randn(40, 8, generator=g)  # B's model: near the true frames
    far = truth + 1.5 * torch.randn(40, 8, generator=g)
    runs = []
    for name, model in (("a", far), ("b", near)):
        run = tmp_path / name
        run.mkdir()
        _write(run / "walk_frames.csv", _records({"loop": 0.0, "turn": 0.0, "strafe": 0.0}))
        torch.save({"truth": truth, "rows": {"model": model}}, run / FEATURES_FILE)
        runs.append(run)
    assert eval_main(["compare", str(runs[0]), str(runs[1])]) == 0
    delta, p = kid_paired_test(near.double(), far.double(), truth)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("KID B - A"))
    assert f"{delta:+.4f} (p = {p:.3f}" in line and delta < 0 and p < 0.01
    # a run without features: no KID line; features of other true frames: refused by name
    (runs[0] / FEATURES_FILE).unlink()
    assert eval_main(["compare", str(runs[0]), str(runs[1])]) == 0
    assert "KID B - A" not in capsys.readouterr().out
    torch.save({"truth": truth + 1, "rows": {"model": far}}, runs[0] / FEATURES_FILE)
    with pytest.raises(SystemExit, match="different true frames"):
        eval_main(["compare", str(runs[0]), str(runs[1])])
