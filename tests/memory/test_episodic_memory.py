"""EpisodicMemory on scripted walks through an analytic box room."""

from __future__ import annotations

import pytest
import torch
from memory_scenes import (
    box_room,
    intrinsics,
    one_thread,  # noqa: F401 (autouse fixture)
    yaw_camera,
)

from worldmem.config import MemoryConfig
from worldmem.memory import EpisodicMemory, Keyframe

SIZE = 32
OUT = 40  # frames on the way out; the way back retraces them


@pytest.fixture(scope="module")
def out_and_back():
    """Walk along x while turning from facing -x to facing +x, then walk the same path back
    (slightly offset). Frame j >= OUT stands where out-frame 2 * OUT - 1 - j stood."""
    out = [yaw_camera([-2 + 0.1 * i, 0.0, -1.0], -90 + 4.5 * i) for i in range(OUT)]
    back = [
        yaw_camera([-2 + 0.1 * i + 0.03, 0.02, -0.95], -90 + 4.5 * i + 2.0)
        for i in reversed(range(OUT))
    ]
    c2w = torch.stack(out + back)
    K = intrinsics(2 * OUT, SIZE, fov_deg=60.0)
    rgb, depth = box_room(c2w, K, SIZE, SIZE)
    return rgb, depth, c2w, K


def walk(em: EpisodicMemory, frames) -> list[int]:
    rgb, depth, c2w, K = frames
    return [i for i in range(len(c2w)) if em.maybe_add(rgb[i], depth[i], c2w[i], K[i], i)]


def test_return_leg_retrieves_keyframes_from_the_same_place(out_and_back):
    rgb, depth, c2w, K = out_and_back
    em = EpisodicMemory(MemoryConfig())
    added = walk(em, out_and_back)
    assert added[0] == 0 and len(added) >= 5
    assert all(i < OUT for i in added), f"the way back showed nothing new, yet added {added}"
    steps = torch.tensor([kf.step for kf in em.keyframes])
    gap = int((steps[1:] - steps[:-1]).max())
    half_known = depth.clone()
    half_known[..., : SIZE // 2] = 0  # depth known on the right half only
    for with_depth in (True, False, "half"):
        hits = 0
        for j in range(OUT, 2 * OUT):
            same_place = 2 * OUT - 1 - j
            nearest = int(steps[(steps - same_place).abs().argmin()])
            d = {True: depth[j], False: None, "half": half_known[j]}[with_depth]
            got = em.retrieve(c2w[j : j + 1], K[j : j + 1], SIZE, SIZE, k=2, depth=d)
            assert 1 <= len(got) <= 2 and all(isinstance(kf, Keyframe) for kf in got)
            assert abs(got[0].step - same_place) <= gap  # the best is from the same place
            if with_depth is True:
                assert all(abs(kf.step - same_place) <= gap for kf in got)
            hits += nearest in [kf.step for kf in got]
        if with_depth is True:
            assert hits == OUT
        else:  # volume overlap where depth is unknown is coarser
            assert hits >= 0.9 * OUT


def test_retrieval_is_deterministic_and_survives_state_dict(out_and_back):
    rgb, depth, c2w, K = out_and_back
    em = EpisodicMemory(MemoryConfig(seed=7))
    walk(em, out_and_back)
    targets = c2w[OUT::5], K[OUT::5]
    a = [kf.step for kf in em.retrieve(*targets, SIZE, SIZE, k=3)]
    b = [kf.step for kf in em.retrieve(*targets, SIZE, SIZE, k=3)]
    assert a == b
    other = EpisodicMemory(MemoryConfig(seed=7))
    other.load_state_dict(em.state_dict())
    assert [kf.step for kf in other.retrieve(*targets, SIZE, SIZE, k=3)] == a
    assert torch.equal(other.coverage(*targets, SIZE, SIZE), em.coverage(*targets, SIZE, SIZE))
    for x, y in zip(em.keyframes, other.keyframes):
        assert torch.equal(x.rgb, y.rgb) and torch.equal(x.c2w, y.c2w) and x.step == y.step


def test_retrieval_respects_min_overlap_and_k(out_and_back):
    rgb, depth, c2w, K = out_and_back
    em = EpisodicMemory(MemoryConfig(retrieve_min_overlap=0.1))
    walk(em, out_and_back)
    # at the start, facing -z: a wall no keyframe saw (they all faced between -x and +x)
    away = yaw_camera([-2.0, 0.0, -1.0], 180.0)[None]
    _, away_depth = box_room(away, K[:1], SIZE, SIZE)
    assert em.coverage(away, K[:1], SIZE, SIZE, depth=away_depth).float().mean(1).max() < 0.1
    assert em.retrieve(away, K[:1], SIZE, SIZE, depth=away_depth) == []
    assert em.retrieve(c2w[:1], K[:1], SIZE, SIZE, k=0) == []
    many = em.retrieve(c2w[:OUT:8], K[:OUT:8], SIZE, SIZE, k=4)
    assert len(many) <= 4 and len({kf.step for kf in many}) == len(many)
    assert EpisodicMemory().retrieve(c2w[:1], K[:1], SIZE, SIZE) == []


def test_anchor_fills_free_slots_with_the_oldest_keyframes(out_and_back):
    rgb, depth, c2w, K = out_and_back
    em = EpisodicMemory(MemoryConfig(retrieve_anchor=True))
    walk(em, out_and_back)
    steps = sorted(kf.step for kf in em.keyframes)
    away = yaw_camera([-2.0, 0.0, -1.0], 180.0)[None]  # a wall no keyframe saw
    _, away_depth = box_room(away, K[:1], SIZE, SIZE)
    got = em.retrieve(away, K[:1], SIZE, SIZE, k=2, depth=away_depth)
    assert [kf.step for kf in got] == steps[:2]  # nothing overlaps: the start of the world
    # where something overlaps it comes first, as without the anchor; the rest is the oldest
    plain = EpisodicMemory(MemoryConfig())
    walk(plain, out_and_back)
    j = OUT + 5
    best = [kf.step for kf in plain.retrieve(c2w[j : j + 1], K[j : j + 1], SIZE, SIZE, k=3)]
    with_anchor = [kf.step for kf in em.retrieve(c2w[j : j + 1], K[j : j + 1], SIZE, SIZE, k=3)]
    assert 1 <= len(best) < 3 and with_anchor[: len(best)] == best
    assert with_anchor[len(best) :] == [s for s in steps if s not in best][: 3 - len(best)]
    assert em.retrieve(away, K[:1], SIZE, SIZE, k=0) == []


def test_novelty_and_merge_keep_the_newer_of_the_most_redundant_pair():
    """Views from the room centre at yaw 40, 0, 120, 240 (60 degree field of view): only the
    first two overlap (by about a third). With room for three, the older of them goes."""
    cfg = MemoryConfig(keyframe_capacity=3)
    yaws = [40.0, 0.0, 120.0, 240.0]
    c2w = torch.stack([yaw_camera([0.0, 0.0, 0.0], y) for y in yaws])
    K = intrinsics(4, SIZE, fov_deg=60.0)
    rgb, depth = box_room(c2w, K, SIZE, SIZE)
    em = EpisodicMemory(cfg)
    assert em.maybe_add(rgb[0], depth[0], c2w[0], K[0], step=0)
    assert not em.maybe_add(rgb[0], depth[0], c2w[0], K[0], step=1)  # nothing new
    for i in (1, 2, 3):
        assert em.maybe_add(rgb[i], depth[i], c2w[i], K[i], step=10 * i)
    assert len(em) == 3
    assert [kf.step for kf in em.keyframes] == [10, 20, 30]
    ov = em.overlap
    assert ov.shape == (3, 3) and torch.allclose(ov.diagonal(), torch.ones(3))


def test_capacity_holds_on_a_long_turn():
    cfg = MemoryConfig(keyframe_capacity=4, keyframe_novelty_overlap=0.8)
    n = 36
    c2w = torch.stack([yaw_camera([0.0, 0.0, 0.0], 10.0 * i) for i in range(n)])
    K = intrinsics(n, 16, fov_deg=60.0)
    rgb, depth = box_room(c2w, K, 16, 16)
    em = EpisodicMemory(cfg)
    for i in range(n):
        em.maybe_add(rgb[i], depth[i], c2w[i], K[i], i)
        assert len(em) <= 4
    assert len(em) == 4


@pytest.mark.parametrize(
    "case", ["rgb_shape", "depth_shape", "c2w_scaled", "K_batched", "step", "size_change"]
)
def test_bad_input_raises_and_changes_nothing(case, out_and_back):
    rgb, depth, c2w, K = out_and_back
    em = EpisodicMemory()
    em.maybe_add(rgb[0], depth[0], c2w[0], K[0], 0)
    before = em.state_dict()
    args = [rgb[5], depth[5], c2w[5].clone(), K[5], 5]
    if case == "rgb_shape":
        args[0] = rgb[5:6]
    elif case == "depth_shape":
        args[1] = depth[5, :, :-1]
    elif case == "c2w_scaled":
        args[2][:3, :3] *= 1.5
    elif case == "K_batched":
        args[3] = K[5:6]
    elif case == "step":
        args[4] = -3
    elif case == "size_change":
        args[0] = rgb[5, :, :16, :16]
        args[1] = depth[5, :, :16, :16]
    with pytest.raises(ValueError):
        em.maybe_add(*args)
    after = em.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="depth"):
        em.retrieve(c2w[:2], K[:2], SIZE, SIZE, depth=depth[:1, 0])
    with pytest.raises(ValueError, match="k"):
        em.retrieve(c2w[:1], K[:1], SIZE, SIZE, k=-1)


def test_nan_depth_is_treated_as_unknown(out_and_back):
    rgb, depth, c2w, K = out_and_back
    bad = depth[0].clone()
    bad[:, :4] = float("nan")
    bad[:, 4:8] = -1.0
    em = EpisodicMemory()
    em.maybe_add(rgb[0], bad, c2w[0], K[0], 0)
    stored = em.keyframes[0].depth
    assert bool(torch.isfinite(stored).all()) and float(stored[:, :8].abs().max()) == 0.0
    assert len(em.retrieve(c2w[:1], K[:1], SIZE, SIZE)) == 1
