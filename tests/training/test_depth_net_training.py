"""``python -m worldmem.training.depth_net`` end to end on a tiny synthetic dataset."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pytest

from worldmem.models.depth_net import DepthNet
from worldmem.training.depth_net import main


def test_training_writes_loadable_weights_and_a_log(synthetic_root, tmp_path):
    out = tmp_path / "dn"
    args = ["--data", str(synthetic_root), "--out", str(out), "--steps", "4", "--val-every",
            "2", "--size", "32", "--worlds-per-batch", "2", "--views-per-world", "2"]  # fmt: skip
    assert main(args) == 0
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(0 < float(r["abs_rel"]) < 10 and 0 <= float(r["delta1"]) <= 1 for r in rows)
    # the learning rate follows its cosine down as the steps run out (steps 2 and 4 of 4 were
    # taken a quarter and three quarters of the way)
    for row, frac in zip(rows, (0.25, 0.75)):
        want = 2e-3 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        assert float(row["lr"]) == pytest.approx(want, rel=1e-4)
    net = DepthNet.from_pretrained(out)
    assert net.cfg.image_size == 32
    # resuming starts from those weights
    assert main([*args, "--out", str(tmp_path / "dn2"), "--resume", str(out)]) == 0


def test_a_manifest_without_world_seeds_is_refused_naming_it(synthetic_root, tmp_path):
    root = tmp_path / "copy"
    root.mkdir()
    lines = (synthetic_root / "manifest.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    for e in entries:
        e.pop("seed")
        shutil.copytree(synthetic_root / e["path"], root / e["path"])
    (root / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    with pytest.raises(SystemExit, match="episode 'ep_000' names no world seed"):
        main(["--data", str(root), "--out", str(tmp_path / "dn"), "--steps", "1"])
