import json
import logging
import re

import pytest
import torch
from conftest import spy_inserts, tiny_memory_config, write_synthetic_dataset
from torch.utils.data import DataLoader

from worldmem.config import DataConfig
from worldmem.data.batch import collate_world_batches
from worldmem.data.dataset import GeneratedLook, WorldDataModule, WorldDataset
from worldmem.data.episode import Episode, EpisodeError
from worldmem.memory import SpatialMemory


def _data(root, **kw):
    base = dict(
        root=str(root),
        image_size=32,
        chunk_frames=2,
        context_frames=2,
        keyframes=2,
        batch_size=2,
        num_workers=0,
        min_revisit_gap_frames=6,
    )
    base.update(kw)
    return DataConfig(**base)


def test_sample_holds_the_right_frames_and_a_consistent_memory_render(synthetic_root):
    ds = WorldDataset(_data(synthetic_root), tiny_memory_config(), "train")
    e, t = 0, 14
    s = ds.sample(e, t)
    ep = Episode.open(ds.episodes[e])
    gt = ep.read_rgb([t, t + 1])
    assert s.target.rgb.shape == (1, 2, 3, 32, 32)
    assert torch.allclose(s.target.rgb[0], gt, atol=1 / 255 + 1e-6)
    assert torch.allclose(s.target.c2w[0], ep.c2w[t : t + 2].float())
    assert torch.allclose(s.context.c2w[0], ep.c2w[t - 2 : t].float())
    assert s.context.valid.all()
    # Keyframes are earlier frames (every earlier frame is offered to the episodic memory, as
    # a generation does; the working window's frames may be retrieved too).
    for slot in range(2):
        if s.keyframes.valid[0, slot]:
            d = (ep.c2w[:t].float() - s.keyframes.c2w[0, slot]).abs().flatten(1).amax(1)
            assert d.min() < 1e-5
    # The spatial memory render (built from earlier frames with their depth) agrees with the
    # ground-truth target where it has points: the geometry is right.
    m = s.memory_mask[0, :, 0] > 0
    assert m.float().mean() > 0.3
    err = (s.memory_rgb[0] - s.target.rgb[0]).abs().mean(1)[m]
    assert err.median() < 0.08
    assert s.caption == [ep.caption]


def test_first_chunk_has_padding_context_and_empty_memory(synthetic_root):
    ds = WorldDataset(_data(synthetic_root), tiny_memory_config(), "train")
    s = ds.sample(0, 1)
    assert s.context.valid.tolist() == [[True, False]]
    assert s.keyframes.valid.sum() <= 1  # at most frame 0 itself
    cold = ds.sample(0, 0)  # the very first chunk: nothing at all
    assert not cold.context.valid.any() and not cold.keyframes.valid.any()
    assert not cold.memory_mask.any()


def test_samples_are_deterministic_and_batch_with_workers(synthetic_root):
    cfg = _data(synthetic_root, revisit_ratio=0.5)
    ds = WorldDataset(cfg, tiny_memory_config(), "train")
    a, b = ds[5], ds[5]
    assert torch.equal(a.target.rgb, b.target.rgb) and torch.equal(a.memory_rgb, b.memory_rgb)
    # spawned workers, as WorldDataModule makes them: a fork taken after torch's thread pool
    # has run crashes or hangs the child (seen here: a segmentation fault in a worker)
    loader = DataLoader(
        ds,
        batch_size=2,
        num_workers=2,
        collate_fn=collate_world_batches,
        multiprocessing_context="spawn",
        timeout=300,
    )
    batch = next(iter(loader))
    assert batch.target.rgb.shape == (2, 2, 3, 32, 32)
    assert len(batch.caption) == 2
    dm = WorldDataModule(cfg, tiny_memory_config())
    dm.setup()
    assert len(dm.val_set) > 0 and dm.val_set.episodes != dm.train_set.episodes


def test_revisit_samples_are_mixed_in_at_the_configured_ratio(synthetic_root):
    ds = WorldDataset(_data(synthetic_root, revisit_ratio=0.5), tiny_memory_config(), "train")
    assert ds.revisits, "out-and-back episodes must contain revisits"
    flags = [bool(ds[i].is_revisit) for i in range(len(ds))]
    assert 0.35 < sum(flags) / len(flags) < 0.9
    none = WorldDataset(_data(synthetic_root, revisit_ratio=0.0), tiny_memory_config(), "train")
    natural = sum(bool(none[i].is_revisit) for i in range(len(none))) / len(none)
    assert sum(flags) / len(flags) > natural


def test_broken_episode_fails_with_its_name_or_is_skipped(tmp_path, caplog):
    root = write_synthetic_dataset(tmp_path, episodes=3, frames=12)
    cams = root / "ep_001" / "cameras.json"
    data = json.loads(cams.read_text())
    data["frames"] = data["frames"][:5]  # too few poses for the video
    cams.write_text(json.dumps(data))
    with pytest.raises(EpisodeError, match="ep_001"):
        WorldDataset(_data(root), tiny_memory_config(), "train")
    with caplog.at_level(logging.WARNING):
        ds = WorldDataset(_data(root, skip_bad=True), tiny_memory_config(), "train")
    assert [p.name for p in ds.episodes] == ["ep_000"]
    assert "ep_001" in caplog.text


def test_an_episode_linked_from_outside_the_root_is_refused_even_when_skipping_bad(tmp_path):
    elsewhere = write_synthetic_dataset(tmp_path / "elsewhere", episodes=2, frames=12)
    root = tmp_path / "root"
    root.mkdir()
    for name in ["ep_000", "ep_001"]:
        (root / name).symlink_to(elsewhere / name)
    (root / "manifest.jsonl").write_text((elsewhere / "manifest.jsonl").read_text())
    for skip_bad in (False, True):
        with pytest.raises(
            ValueError, match=rf"'ep_000' leads to .* outside the root {re.escape(str(root))}"
        ):
            WorldDataset(_data(root, skip_bad=skip_bad), tiny_memory_config(), "train")


def test_field_of_view_is_the_training_frames_median(synthetic_root, tmp_path):
    """The synthetic worlds are 75 degrees square; wide non-square frames (90 x 60 degrees, one
    episode of three at 50 x 40) give their median, whatever size they are resized to."""
    from worldmem.data.episode import write_episode, write_manifest
    from worldmem.geometry import intrinsics_from_fov

    fx, fy = WorldDataset(_data(synthetic_root), tiny_memory_config()).field_of_view()
    assert fx == pytest.approx(75.0, abs=1e-4) and fy == pytest.approx(75.0, abs=1e-4)

    g = torch.Generator().manual_seed(0)
    entries = []
    for i, (fov_x, fov_y, n) in enumerate([(90.0, 60.0, 6), (90.0, 60.0, 6), (50.0, 40.0, 6)]):
        K = intrinsics_from_fov(fov_x, 40, 24, fov_y)[None].expand(n, 3, 3)
        c2w = torch.eye(4).expand(n, 4, 4).clone()
        c2w[:, 2, 3] = torch.arange(n) * 0.1
        rgb = torch.randint(0, 256, (n, 24, 40, 3), generator=g, dtype=torch.uint8)
        write_episode(tmp_path / f"ep{i}", rgb, c2w, K, "wide", depth=torch.ones(n, 24, 40))
        entries.append(dict(path=f"ep{i}", split="train", num_frames=n, caption="wide"))
    write_manifest(tmp_path, entries)
    fx, fy = WorldDataset(_data(tmp_path), tiny_memory_config()).field_of_view()
    assert fx == pytest.approx(90.0, abs=1e-3) and fy == pytest.approx(60.0, abs=1e-3)


def test_generated_look_is_a_gaussian_blur_and_a_contrast_shrink():
    from scipy.ndimage import gaussian_filter

    g = torch.Generator().manual_seed(0)
    rgb, depth = torch.rand(2, 3, 20, 24, generator=g), 1 + torch.rand(2, 1, 20, 24, generator=g)
    look = GeneratedLook(blur_px=1.2, contrast=0.8)
    out_rgb, out_depth = look.apply(rgb, depth)
    # the reference: scipy's Gaussian (edge pixels repeated, cut at 3 sigma, as apply does)
    blur = lambda a: gaussian_filter(a.numpy(), (0, 0, 1.2, 1.2), mode="nearest", truncate=3.0)  # noqa: E731
    mean = rgb.mean((2, 3), keepdim=True).numpy()
    want = (mean + 0.8 * (blur(rgb) - mean)).clip(0, 1)
    assert abs(out_rgb.numpy() - want).max() < 1e-5
    assert abs(out_depth.numpy() - blur(depth)).max() < 1e-5


def test_a_generated_looking_history_keeps_the_start_observed_and_the_rest_generated(
    synthetic_root, monkeypatch
):
    ds = WorldDataset(_data(synthetic_root), tiny_memory_config(), "train")
    look = GeneratedLook(blur_px=1.0, contrast=0.8)
    inserts = spy_inserts(monkeypatch)
    e, t = 0, 14
    plain = ds.sample(e, t)
    assert [o for _, o in inserts] == [True]  # true history: every frame observed
    inserts.clear()
    made = ds.sample(e, t, generated=look)
    true = ds.frames(e).rgb[:t].float() / 255
    (start, start_obs), (rest, rest_obs) = inserts
    assert start_obs and not rest_obs
    assert torch.equal(start, true[:1])  # the start frame stays as it was
    # the rest (every memory_stride_frames-th frame back from t - 1) looks generated
    hist = list(range(t))[::-1][:: ds.cfg.memory_stride_frames][::-1]
    assert hist[0] != 0  # frame 0 is not on the stride, but a generation holds it
    want, _ = look.apply(true[hist], torch.ones(len(hist), 1, 32, 32))
    assert torch.allclose(rest, want, atol=1e-5)
    # the render says which of its pixels came from the observed start frame
    assert torch.equal(plain.memory_observed, (plain.memory_mask > 0.5).float())
    assert torch.all(made.memory_observed <= made.memory_mask)
    fr = ds.frames(e)
    start = SpatialMemory(tiny_memory_config())
    start.insert(fr.rgb[:1].float() / 255, fr.depth[:1].float(), fr.c2w[:1], fr.K[:1], step=0,
                 observed=True)  # fmt: skip
    for t in range(2, 12):  # where the targets see what frame 0 saw, it is what was observed
        seen = start.render(fr.c2w[t : t + 2], fr.K[t : t + 2], 32, 32).mask > 0.5
        if seen.sum() > 50:
            break
    obs = ds.sample(e, t, generated=look).memory_observed[0] > 0.5
    assert 0.9 < (obs & seen).sum() / (obs | seen).sum()
    # targets are the truth either way; the context is the degraded frames
    assert torch.equal(made.target.rgb, plain.target.rgb)
    assert not torch.allclose(made.context.rgb, plain.context.rgb, atol=0.02)
    # a sample drawn with p_generated_history=0 is the plain one
    off = WorldDataset(_data(synthetic_root), tiny_memory_config(), "train")
    on = WorldDataset(_data(synthetic_root, p_generated_history=1.0), tiny_memory_config(), "train")
    i = next(i for i, (e, t) in enumerate(off.starts) if t >= 4)
    assert not torch.equal(on[i].context.rgb, off[i].context.rgb)
    assert torch.equal(on[i].target.rgb, off[i].target.rgb)
    val_on = WorldDataset(
        _data(synthetic_root, p_generated_history=1.0), tiny_memory_config(), "val"
    )
    val_off = WorldDataset(_data(synthetic_root), tiny_memory_config(), "val")
    j = next(i for i, (e, t) in enumerate(val_off.starts) if t >= 4)
    assert torch.equal(val_on[j].context.rgb, val_off[j].context.rgb)  # validation: the truth


def test_with_the_room_a_sample_carries_what_its_holes_tend_to(synthetic_root):
    """With ``memory.layout: box`` a sample carries the box room fitted to its observed
    history, seen from its targets (as the pipeline gives it): its floor is the episode's true
    floor, its render otherwise as without it; a cold sample has none, and a batch of both
    gives that one zeros (its render is empty, which takes no prior)."""
    from worldmem.geometry import unproject_depth
    from worldmem.memory.texture import FLOOR

    plain_cfg = tiny_memory_config(render_colour="resample")
    plain = WorldDataset(_data(synthetic_root), plain_cfg, "train")
    room_cfg = tiny_memory_config(layout="box", render_colour="resample")
    ds = WorldDataset(_data(synthetic_root), room_cfg, "train")
    e, t = 0, 14
    s, p = ds.sample(e, t), plain.sample(e, t)
    assert p.hole_rgb is None and s.hole_rgb.shape == (1, 2, 3, 32, 32)
    assert torch.equal(s.memory_rgb, p.memory_rgb) and torch.equal(s.memory_mask, p.memory_mask)
    # where the room shows floor and the truth is floor (the synthetic floor plane), their
    # depths agree: the floor was fitted to the observed history's floor points
    ep = Episode.open(ds.episodes[e])
    history = list(range(t))
    frames = ds.frames(e)
    rgb, depth = frames.rgb.float() / 255, frames.depth.float()
    seen = [(frames.c2w[j], frames.K[j], rgb[j], depth[j, 0]) for j in history]
    from worldmem.memory.layout import BoxLayout

    _, _, kind = BoxLayout.from_frames(seen).render(s.target.c2w[0], s.target.K[0], 32)
    true_y = unproject_depth(s.target.depth[0, :, 0], s.target.c2w[0], s.target.K[0])[..., 1]
    floor_y = float(true_y.amax())  # y points down: the lowest surface seen is the floor
    both = (kind == FLOOR) & ((true_y - floor_y).abs() < 0.01)
    assert int(both.sum()) > 50
    rel = (s.hole_depth[0, :, 0] - s.target.depth[0, :, 0]).abs() / s.target.depth[0, :, 0]
    assert float(rel[both].median()) < 0.01
    assert ep.caption == s.caption[0]

    cold = ds.sample(0, 0)
    assert cold.hole_rgb is None and not cold.memory_mask.any()
    batch = collate_world_batches([s, cold])
    assert torch.equal(batch.hole_rgb[0], s.hole_rgb[0]) and not batch.hole_rgb[1].any()
    assert torch.equal(batch.hole_depth[0], s.hole_depth[0]) and not batch.hole_depth[1].any()
    assert collate_world_batches([cold, cold]).hole_rgb is None
