"""WorkingMemory: a sliding window of the most recent frames."""

from __future__ import annotations

import pytest
import torch
from memory_scenes import one_thread  # noqa: F401 (autouse fixture)

from worldmem.memory import WorkingMemory


def frames(n: int, first: int, size: int = 8):
    """n frames whose pixels and camera x-translation equal their step."""
    steps = torch.arange(first, first + n, dtype=torch.float32)
    rgb = steps.view(n, 1, 1, 1).expand(n, 3, size, size) / 100
    depth = steps.view(n, 1, 1, 1).expand(n, 1, size, size).clone()
    c2w = torch.eye(4).repeat(n, 1, 1)
    c2w[:, 0, 3] = steps
    K = torch.tensor([[8.0, 0, 4], [0, 8.0, 4], [0, 0, 1]]).repeat(n, 1, 1)
    return rgb, depth, c2w, K


def test_window_keeps_the_newest_frames_in_order():
    wm = WorkingMemory(3)
    rgb, depth, c2w, K = wm.frames()
    assert rgb.shape == (0, 3, 0, 0) and c2w.shape == (0, 4, 4)
    wm.push(*frames(2, 0), step=0)
    assert wm.steps == [0, 1] and wm.frames()[0].shape == (2, 3, 8, 8)
    wm.push(*frames(2, 2), step=2)
    assert wm.steps == [1, 2, 3]
    rgb, depth, c2w, K = wm.frames()
    assert c2w[:, 0, 3].tolist() == [1.0, 2.0, 3.0]
    assert depth[:, 0, 0, 0].tolist() == [1.0, 2.0, 3.0]
    wm.push(*frames(5, 4), step=4)  # more than the window at once
    assert wm.steps == [6, 7, 8] and wm.frames()[2][:, 0, 3].tolist() == [6.0, 7.0, 8.0]
    empty = WorkingMemory(0)
    empty.push(*frames(2, 0), step=0)
    assert len(empty) == 0 and empty.frames()[0].shape[0] == 0


def test_state_dict_round_trip():
    wm = WorkingMemory(4)
    wm.push(*frames(3, 10), step=10)
    other = WorkingMemory(1)
    other.load_state_dict(wm.state_dict())
    assert other.num_frames == 4 and other.steps == [10, 11, 12]
    for a, b in zip(wm.frames(), other.frames()):
        assert torch.equal(a, b)
    other.push(*frames(2, 13), step=13)
    assert other.steps == [11, 12, 13, 14]
    fresh = WorkingMemory(2)
    fresh.load_state_dict(WorkingMemory(2).state_dict())
    assert len(fresh) == 0


def test_bad_input():
    wm = WorkingMemory(2)
    wm.push(*frames(1, 0), step=0)
    rgb, depth, c2w, K = frames(1, 1)
    with pytest.raises(ValueError, match="depth"):
        wm.push(rgb, depth[..., :4], c2w, K, step=1)
    with pytest.raises(ValueError, match="8x8"):
        wm.push(*frames(1, 1, size=4), step=1)
    bad = c2w.clone()
    bad[0, :3, :3] *= 3
    with pytest.raises(ValueError, match="rigid"):
        wm.push(rgb, depth, bad, K, step=1)
    with pytest.raises(ValueError, match="step"):
        wm.push(rgb, depth, c2w, K, step=-1)
    with pytest.raises(ValueError, match="num_frames"):
        WorkingMemory(-1)
    assert wm.steps == [0]
    with pytest.raises(ValueError, match="missing"):
        wm.load_state_dict({"rgb": rgb})
