"""FirstFrameBank: level views picked from analytic cameras, a bank built from real episode
files (its frames and depth those the episode decodes to), retrieval by meaning with the real
MiniLM encoder, seeded draws from the top-k, saving and loading, and the CLI that puts a bank
into a pipeline folder."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from worldmem.data.episode import Episode
from worldmem.geometry import look_at
from worldmem.models.first_frame_bank import FirstFrameBank, level_frames, main

CAPTIONS = [
    "a long corridor with red brick walls, a grey tiled floor and two doors",
    "an open plaza surrounded by yellow buildings with windows, a sand ground and two trees",
    "a small room with blue tiled walls, a white wooden floor and a green crate",
    "a large room with purple painted walls, a black checkered floor and three paintings",
]


def bank_of(captions, size=8, **kw) -> FirstFrameBank:
    """Frame i is the flat grey level 10 * i, its depth i + 1 metres."""
    N = len(captions)
    rgb = (torch.arange(N) * 10).to(torch.uint8).view(N, 1, 1, 1).expand(N, 3, size, size)
    depth = (torch.arange(N) + 1.0).view(N, 1, 1, 1).expand(N, 1, size, size)
    K = torch.tensor([[size / 2, 0, size / 2], [0, size / 2, size / 2], [0, 0, 1.0]])
    return FirstFrameBank(rgb.contiguous(), depth.contiguous(), K, captions, **kw)


def test_level_frames_are_the_cameras_without_pitch_or_roll():
    """Cameras looking level, 10 degrees down, 1.5 degrees up, and rolled by 5 degrees."""
    eye = torch.tensor([1.0, -1.5, 2.0])

    def pitched(deg):  # positive: looking down (world y points down)
        a = math.radians(deg)
        return look_at(eye, eye + torch.tensor([0.0, math.sin(a), math.cos(a)]))

    roll = math.radians(5)
    rolled = look_at(eye, eye + torch.tensor([0.0, 0.0, 1.0]),
                     up=torch.tensor([math.sin(roll), -math.cos(roll), 0.0]))  # fmt: skip
    c2w = torch.stack([pitched(0), pitched(10), pitched(-1.5), rolled])
    assert level_frames(c2w, 2.0).tolist() == [0, 2]
    assert level_frames(c2w, 12.0).tolist() == [0, 1, 2, 3]


def test_a_bank_from_episodes_holds_their_level_frames_and_depth(synthetic_root, tmp_path):
    """The training split only; each frame and depth equal to what the episode decodes to at
    the frame it names; every camera level (an episode with no level view is left out); an
    episode of another camera is refused by name."""
    bank = FirstFrameBank.from_episodes(synthetic_root, per_episode=2)
    manifest = [json.loads(line) for line in (synthetic_root / "manifest.jsonl").open()]
    train = {e["path"]: e for e in manifest if e["split"] == "train"}
    levels = {n: level_frames(Episode.open(synthetic_root / n).c2w, 2.0) for n in train}
    assert {n: len(v) > 0 for n, v in levels.items()} == {"ep_000": True, "ep_001": False}
    # two views of ep_000, spread over its level frames
    assert bank.sources == ["ep_000:0", f"ep_000:{int(levels['ep_000'][-1])}"]
    for i, source in enumerate(bank.sources):
        name, frame = source.split(":")
        assert name in train
        ep = Episode.open(synthetic_root / name)
        k = int(frame)
        assert len(level_frames(ep.c2w[k : k + 1], 2.0)) == 1
        assert torch.equal(bank.rgb[i], (ep.read_rgb([k])[0] * 255).round().to(torch.uint8))
        torch.testing.assert_close(bank.depth[i], ep.read_depth([k])[0])
        assert bank.captions[i] == ep.caption
        torch.testing.assert_close(bank.K, ep.K[k])
        ep.close()
    assert len(set(bank.sources)) == len(bank)

    # an episode seen with another camera: refused naming it
    root = tmp_path / "mixed"
    shutil.copytree(synthetic_root, root)
    shutil.copytree(root / "ep_000", root / "ep_009")
    cams = json.loads((root / "ep_009" / "cameras.json").read_text())
    for f in cams["frames"]:
        f["K"][0][0] *= 1.5
    (root / "ep_009" / "cameras.json").write_text(json.dumps(cams))
    with (root / "manifest.jsonl").open("a") as f:
        f.write(json.dumps({**train["ep_000"], "path": "ep_009"}) + "\n")
    with pytest.raises(ValueError, match="ep_009: frames 32x32 with K"):
        FirstFrameBank.from_episodes(root)
    with pytest.raises(ValueError, match="no 'test' episode with depth and a level view"):
        FirstFrameBank.from_episodes(synthetic_root, split="test")


def test_retrieval_finds_the_caption_that_says_what_the_prompt_says():
    """The real all-MiniLM-L6-v2 token states: free phrasings and other words for the same
    things find their caption; "" is no nearer to any."""
    bank = bank_of(CAPTIONS)
    for prompt, want in [
        ("a crimson brick hallway", 0),
        ("a sunny square with trees and yellow houses", 1),
        ("a little blue room with a crate", 2),
        ("a big violet hall with pictures on the walls", 3),
    ]:
        sim = bank.similarity(prompt)
        assert int(sim.argmax()) == want, (prompt, sim)
        assert float(sim[want] - sim.topk(2).values[1]) > 0.01, (prompt, sim)
    assert torch.equal(bank.similarity(""), torch.zeros(4))
    assert float(bank.similarity(CAPTIONS[2])[2]) == pytest.approx(1.0, abs=1e-5)


def test_draws_come_from_the_top_k_by_softmax_and_follow_the_seed():
    bank = bank_of(CAPTIONS, top_k=2, temperature=0.05)
    prompt = "a red brick corridor"
    sim = bank.similarity(prompt)
    p = bank.probabilities(prompt)
    top = sim.topk(2).indices
    assert int((p > 0).sum()) == 2 and set(torch.nonzero(p)[:, 0].tolist()) == set(top.tolist())
    torch.testing.assert_close(p[top], torch.softmax(sim[top] / 0.05, 0))
    g = torch.Generator().manual_seed(0)
    picks = [bank.choose(prompt, g) for _ in range(2000)]
    for i in top.tolist():  # the empirical frequencies match within 4 sigma
        f = picks.count(i) / len(picks)
        assert abs(f - float(p[i])) < 4 * math.sqrt(float(p[i] * (1 - p[i])) / len(picks))
    # the same seed, the same frame and depth; "" draws from the whole bank alike
    a = bank.draw(prompt, torch.Generator().manual_seed(7))
    b = bank.draw(prompt, torch.Generator().manual_seed(7))
    assert a[2] == b[2] and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(a[0], torch.full((3, 8, 8), 10 * a[2] / 255))
    assert torch.equal(a[1], torch.full((1, 8, 8), a[2] + 1.0))
    for empty in ("", "   ", "\u200b"):  # nothing the encoder reads: the whole bank alike
        torch.testing.assert_close(bank.probabilities(empty), torch.full((4,), 0.25))


def test_save_and_load_round_trip_and_bad_banks_are_refused(tmp_path):
    bank = bank_of(CAPTIONS, top_k=3, temperature=0.1)
    bank.sources = [f"ep_{i}:0" for i in range(4)]
    bank.save_pretrained(tmp_path / "b")
    back = FirstFrameBank.from_pretrained(tmp_path / "b")
    assert torch.equal(back.rgb, bank.rgb) and torch.equal(back.depth, bank.depth)
    assert torch.equal(back.K, bank.K)
    assert (back.captions, back.sources, back.top_k, back.temperature) == (
        bank.captions, bank.sources, 3, 0.1
    )  # fmt: skip

    with pytest.raises(ValueError, match="top_k must be an int >= 1, got 0"):
        bank_of(CAPTIONS, top_k=0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        bank_of(CAPTIONS, temperature=0.0)
    with pytest.raises(ValueError, match="depth must be finite"):
        FirstFrameBank(bank.rgb, bank.depth * math.nan, bank.K, CAPTIONS)
    with pytest.raises(ValueError, match="rgb must be uint8"):
        FirstFrameBank(bank.rgb.float(), bank.depth, bank.K, CAPTIONS)
    with pytest.raises(ValueError, match="3 sources for 4 frames"):
        FirstFrameBank(bank.rgb, bank.depth, bank.K, CAPTIONS, ["a", "b", "c"])
    with pytest.raises(ValueError, match="no frames"):
        FirstFrameBank(bank.rgb[:0], bank.depth[:0], bank.K, [])

    cfg = tmp_path / "b" / "config.json"
    cfg.write_text("{not json")
    with pytest.raises(ValueError, match=r"b/config.json: not a first-frame bank config"):
        FirstFrameBank.from_pretrained(tmp_path / "b")
    bank.save_pretrained(tmp_path / "b")
    (tmp_path / "b" / "bank.npz").write_bytes(b"PK\x03\x04 cut off")
    with pytest.raises(ValueError, match=r"b/bank.npz: not a first-frame bank"):
        FirstFrameBank.from_pretrained(tmp_path / "b")
    bank.save_pretrained(tmp_path / "b")
    with np.load(tmp_path / "b" / "bank.npz") as z:
        arrays = dict(z)
    np.savez_compressed(tmp_path / "b" / "bank.npz", **{**arrays, "depth": arrays["depth"][:3]})
    with pytest.raises(ValueError, match=r"depth must be \(4, 1, 8, 8\), got \(3, 1, 8, 8\)"):
        FirstFrameBank.from_pretrained(tmp_path / "b")


def test_the_cli_puts_a_bank_into_a_pipeline_folder(synthetic_root, tiny_pipeline_dir, tmp_path):
    """The folder's pipeline then starts a prompt-only world from the bank (see
    tests/test_pipeline.py for what that start does)."""
    from worldmem.pipeline import WorldPipeline

    folder = tmp_path / "p"
    shutil.copytree(tiny_pipeline_dir, folder)
    assert main(["--data", str(synthetic_root), "--pipeline", str(folder), "--top-k", "2"]) == 0
    meta = json.loads((folder / "pipeline.json").read_text())
    assert meta["sampler"]["prompt_start"] == "bank"
    pipe = WorldPipeline.from_pretrained(folder, device="cpu")
    assert isinstance(pipe.first_frame, FirstFrameBank) and pipe.first_frame.top_k == 2
    assert pipe.first_frame.captions[0] == Episode.open(synthetic_root / "ep_000").caption
