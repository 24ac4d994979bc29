"""SpatialMemory gives back what it saw, and keeps observed and generated samples apart."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import BUNDLED
from memory_scenes import (
    box_room,
    intrinsics,
    one_thread,  # noqa: F401 (autouse fixture)
    rect_scene,
    yaw_camera,
)
from safetensors.torch import load_file, save_file

from worldmem.config import MemoryConfig, from_dict
from worldmem.data.synthetic import free_start_camera, generate_episode, make_world
from worldmem.memory import SpatialMemory
from worldmem.pipeline_files import read_pipeline_json


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float((a - b).square().mean()) + 1e-12)


@pytest.fixture(scope="module")
def walk():
    """8 frames of a held-out synthetic walk at 64 px: rgb in [0, 1], depth, c2w, K."""
    ep = generate_episode(321, 8, 64)
    rgb = torch.as_tensor(ep.rgb).permute(0, 3, 1, 2).float() / 255
    depth = torch.as_tensor(ep.depth)[:, None].float()
    return rgb, depth, torch.as_tensor(ep.c2w), torch.as_tensor(ep.K)


def test_walk_frames_come_back_at_their_own_cameras(walk):
    rgb, depth, c2w, K = walk
    sm = SpatialMemory()  # the walk sees a little beyond 30 m, which the default keeps
    for i in range(0, 8, 2):
        sm.insert(rgb[i : i + 2], depth[i : i + 2], c2w[i : i + 2], K[i : i + 2])
    out = sm.render(c2w, K, 64, 64)
    assert bool((out.mask > 0).all())
    for i in range(8):
        assert psnr(out.rgb[i], rgb[i]) >= 35, f"frame {i}: {psnr(out.rgb[i], rgb[i]):.1f} dB"
    assert sm.num_points < 8 * 64 * 64  # overlapping views share samples


def _shipped_memory_config() -> MemoryConfig:
    return from_dict(MemoryConfig, read_pipeline_json(BUNDLED)["memory"], "pipeline.json: memory")


@pytest.mark.parametrize("config", ["default", "shipped"])
def test_a_plazas_far_facades_come_back_at_the_start_camera(config):
    """World 100003 is a held-out plaza whose start frame sees facades 30-38 m away: the memory
    inserts them, so at the start camera it gives back the whole start frame (its truth)."""
    world = make_world(100003)
    c2w = free_start_camera(world, 100003)[None]
    K = intrinsics(1, 64)
    rgb, depth = world.render(c2w, K, 64, 64)
    assert float((depth > 30).float().mean()) > 0.1  # the far facades this test is about
    cfg = MemoryConfig() if config == "default" else _shipped_memory_config()
    sm = SpatialMemory(cfg)
    sm.insert(rgb, depth, c2w, K)
    out = sm.render(c2w, K, 64, 64)
    assert bool((out.mask > 0).all())
    far = (depth > 30).expand(-1, 3, -1, -1)
    assert float((out.rgb - rgb).abs()[far].max()) < 1e-5  # each pixel's own sample
    assert psnr(out.rgb, rgb) >= 35


def test_generated_frames_never_change_an_observed_surface(walk):
    rgb, depth, c2w, K = walk
    sm = SpatialMemory()
    sm.insert(rgb[:4], depth[:4], c2w[:4], K[:4])
    before = sm.render(c2w[:4], K[:4], 64, 64)
    g = torch.Generator().manual_seed(0)
    for i in range(50):
        j = i % 4
        noise = torch.rand(1, 3, 64, 64, generator=g)
        wobble = 1 + 0.2 * (torch.rand(1, 1, 64, 64, generator=g) - 0.5)  # nearer and farther
        sm.insert(noise, depth[j : j + 1] * wobble, c2w[j : j + 1], K[j : j + 1], observed=False)
    after = sm.render(c2w[:4], K[:4], 64, 64)
    seen = before.mask > 0
    assert torch.equal(after.rgb * seen, before.rgb * seen)
    assert torch.equal(after.depth * seen, before.depth * seen)
    assert bool((after.observed[seen] == 1).all())
    assert bool(sm.observed.all())  # nothing was empty here: no generated sample was added


def test_generated_fills_empty_space_and_refines_generated_samples():
    K = intrinsics(1, 32)
    c2w = torch.eye(4)[None]
    wall = [(3.0, -4, 4, -4, 4, (0.2, 0.3, 0.9))]
    rgb, depth = rect_scene(c2w, K, 32, 32, wall)
    sm = SpatialMemory()
    left = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    left[..., :16] = True
    sm.insert(rgb, depth, c2w, K, mask=left)  # observed: the left half
    red = torch.zeros_like(rgb)
    red[:, 0] = 1
    sm.insert(red, depth, c2w, K, observed=False)  # generated: fills only the right half
    out = sm.render(c2w, K, 32, 32)
    assert bool((out.mask > 0).all())
    assert torch.equal(out.observed[0, 0], left[0, 0].float())  # the provenance channel
    assert torch.allclose(out.rgb[0, :, :, :16], rgb[0, :, :, :16])
    assert bool((out.rgb[0, 0, :, 16:] == 1).all())
    green = torch.zeros_like(rgb)
    green[:, 1] = 1
    n = sm.num_points
    sm.insert(green, depth, c2w, K, observed=False)  # a newer generation refines the red
    out = sm.render(c2w, K, 32, 32)
    assert bool((out.rgb[0, 1, :, 16:] == 1).all()) and sm.num_points == n
    assert torch.allclose(out.rgb[0, :, :, :16], rgb[0, :, :, :16])
    sm.insert(rgb, depth, c2w, K)  # the real frame replaces every generated sample
    out = sm.render(c2w, K, 32, 32)
    assert torch.allclose(out.rgb, rgb) and bool((out.observed == 1).all())
    assert bool(sm.observed.all()) and sm.num_points == n


def test_carving_by_observed_views_only():
    """A box seen, then gone: observed views see through it and carve it; generated views of
    the bare wall never carve an observed sample (but do carve generated ones)."""
    H = W = 48
    K = intrinsics(1, W)
    wall = (4.0, -6, 6, -6, 6, (0.2, 0.3, 0.9))
    box = (2.0, -0.4, 0.4, -0.4, 0.4, (0.9, 0.5, 0.1))
    c = yaw_camera([0.0, 0.0, 0.0], 0.0)[None]
    with_box = rect_scene(c, K, H, W, [box, wall])
    bare = rect_scene(c, K, H, W, [wall])
    for observed_box in (True, False):
        sm = SpatialMemory()
        sm.insert(*with_box, c, K, observed=observed_box)
        n_box = int((sm.xyz[:, 2] < 3).sum())
        assert n_box > 50
        for _ in range(8):
            sm.insert(*bare, c, K, observed=False)
        left = int((sm.xyz[:, 2] < 3).sum())
        assert left == (n_box if observed_box else 0)
        for _ in range(8):
            sm.insert(*bare, c, K)
        assert int((sm.xyz[:, 2] < 3).sum()) == 0
        out = sm.render(c, K, H, W)
        assert torch.allclose(out.rgb, bare[0], atol=1e-6)


def test_save_load_keeps_provenance_and_rejects_the_old_format(tmp_path):
    K = intrinsics(2, 24)
    c2w = torch.stack([yaw_camera([0, 0, 0], 0.0), yaw_camera([0, 0, 0], 120.0)])
    rgb, depth = box_room(c2w, K, 24, 24)
    sm = SpatialMemory(MemoryConfig(max_points=5000))
    sm.insert(rgb[:1], depth[:1], c2w[:1], K[:1])
    sm.insert(rgb[1:], depth[1:], c2w[1:], K[1:], observed=False)
    assert 0 < int(sm.observed.sum()) < sm.num_points
    path = sm.save(tmp_path / "m.safetensors")
    back = SpatialMemory.load(path)
    assert torch.equal(back.observed, sm.observed)
    a, b = sm.render(c2w, K, 24, 24), back.render(c2w, K, 24, 24)
    assert torch.equal(a.observed, b.observed) and torch.equal(a.rgb, b.rgb)
    assert float(a.observed[0].mean()) == 1.0 and float(a.observed[1].mean()) < 1.0
    # a version-1 file (voxel means) is refused with a clear message
    tensors = load_file(str(path))
    meta = {"format": "worldmem.spatial_memory", "version": "1", "next_step": "1"}
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="version 1"):
        SpatialMemory.load(tmp_path / "old.safetensors")
    with pytest.raises(ValueError, match="observed"):
        state = sm.state_dict()
        del state["observed"]
        SpatialMemory().load_state_dict(state)


def test_generated_surfaces_in_observed_free_space_are_refused(tmp_path):
    """A wall observed from A, its right half only (x > 0); a generated view from B, off to the
    side, guesses a box floating in front of the wall, where B's render is empty (behind the
    box B would see the unobserved half). The half of the box in space A saw through (x > 0) is
    refused and A still sees the wall; the other half, which no observation contradicts, is
    kept, and so is a generated surface behind A. The free space survives a save and load;
    with ``free_space_views=0`` the whole box gets in and hides the wall from a camera next to
    A (at A itself every pixel's own sample wins whatever is in front of it)."""
    H = W = 48
    K = intrinsics(1, W)
    wall = (4.0, -6, 6, -6, 6, (0.2, 0.3, 0.9))
    box = (2.0, -1.0, 1.0, -1.0, 1.0, (0.9, 0.5, 0.1))
    behind = (-3.0, -6, 6, -6, 6, (0.1, 0.8, 0.2))
    a = yaw_camera([0.0, 0.0, 0.0], 0.0)[None]
    b = yaw_camera([2.0, 0.0, 0.0], -45.0)[None]
    c = yaw_camera([0.0, 0.0, 0.0], 180.0)[None]
    near_a = yaw_camera([0.1, 0.0, 0.0], 0.0)[None]
    right = torch.ones(1, 1, H, W, dtype=torch.bool)
    right[..., : W // 2] = False
    guessed = rect_scene(b, K, H, W, [box, wall])

    def box_samples(sm, x_min):
        xyz = sm.xyz
        return int((((xyz[:, 2] - 2).abs() < 0.01) & (xyz[:, 0] > x_min)).sum())

    for views in (16, 0):
        sm = SpatialMemory(MemoryConfig(free_space_views=views))
        sm.insert(*rect_scene(a, K, H, W, [wall]), a, K, mask=right)
        before = sm.render(near_a, K, H, W)
        if views:  # the free space goes through a file with the samples
            sm = SpatialMemory.load(sm.save(tmp_path / "m.safetensors"))
        sm.insert(*guessed, b, K, observed=False)
        sm.insert(*rect_scene(c, K, H, W, [behind]), c, K, observed=False)
        after = sm.render(near_a, K, H, W)
        assert int((sm.xyz[:, 2] < -2).sum()) > 100  # no observation says behind A is empty
        assert box_samples(sm, -1.1) > 20
        if views:
            assert box_samples(sm, 0.15) == 0  # A's window margin: a pixel's width of box kept
            assert torch.equal(after.rgb * right, before.rgb * right)
        else:
            assert box_samples(sm, 0.15) > 20
            assert not torch.equal(after.rgb * right, before.rgb * right)


@pytest.mark.parametrize("gap_m, hidden", [(0.2, False), (1.0, True)])
def test_a_generated_surface_hides_an_observed_one_only_beyond_the_margin(gap_m, hidden):
    """A red plane generated from B ``gap_m`` in front of a wall at 4 m, then the wall observed
    from A beside B (an observed frame fills in behind generated samples; carving is off, so
    the guess stays whatever A sees through). 0.2 m (5%, within ``carve_margin_rel`` = 15%: the
    free-space test could not refuse it) is the wall guessed a little too near: a camera
    between A and B sees the observed wall wherever A saw it, and the guess only beyond. 1.0
    m (25%) is another surface in front of the wall, and it hides the wall."""
    H = W = 48
    K = intrinsics(1, W)
    wall = (4.0, -8, 8, -8, 8, (0.2, 0.3, 0.9))
    guess = (4.0 - gap_m, -8, 8, -8, 8, (1.0, 0.0, 0.0))
    a = yaw_camera([0.0, 0.0, 0.0], 0.0)[None]
    b = yaw_camera([0.6, 0.0, 0.0], 0.0)[None]
    between = yaw_camera([0.3, 0.0, 0.0], 0.0)[None]
    cfg = MemoryConfig(carve_factor=1.0)
    sm = SpatialMemory(cfg)
    sm.insert(*rect_scene(b, K, H, W, [guess]), b, K, observed=False)
    wall_only = SpatialMemory(cfg)
    for m in (sm, wall_only):
        m.insert(*rect_scene(a, K, H, W, [wall]), a, K)
    assert int((~sm.observed).sum()) > 1000  # the guess is still there
    before = wall_only.render(between, K, H, W)
    after = sm.render(between, K, H, W)
    seen = before.mask > 0
    red = (after.rgb[:, :1] > 0.9) & (after.rgb[:, 1:2] < 0.1)
    assert bool((red & ~seen).any())  # what A never saw shows the guess
    if hidden:
        assert float(red[seen].float().mean()) > 0.9
    else:
        assert torch.equal(after.rgb * seen, before.rgb * seen)
        assert bool((after.observed[seen] == 1).all())


def test_shown_quality_is_the_width_the_observed_sample_shown_averaged():
    """A wall 3 m ahead, its left half observed and its right half generated: at the camera
    it was seen from, each observed pixel's sample averaged r / fx of the wall (its range over
    the focal length: the pixel's width, over the incidence's cosine z / r), the generated half
    none (inf). Twice as near, the render shows the same samples, so the same widths, about
    twice what the nearer camera's pixels span; from the last render at those cameras or from
    a fresh z-buffer alike."""
    K = intrinsics(2, 32)
    c2w = torch.stack([torch.eye(4), torch.eye(4)])
    c2w[1, 2, 3] = 1.5  # 1.5 m nearer the wall
    wall = [(3.0, -4, 4, -4, 4, (0.2, 0.3, 0.9))]
    rgb, depth = rect_scene(c2w[:1], K[:1], 32, 32, wall)
    sm = SpatialMemory()
    left = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    left[..., :16] = True
    sm.insert(rgb, depth, c2w[:1], K[:1], mask=left)
    sm.insert(rgb, depth, c2w[:1], K[:1], observed=False)
    q = sm.shown_quality(c2w[:1], K[:1], 32, 32)[0]
    assert bool(q[:, 16:].isinf().all())
    v, u = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    fx = float(K[0, 0, 0])
    ray = torch.stack([(u - K[0, 0, 2]) / fx, (v - K[0, 1, 2]) / fx, torch.ones_like(u)], -1)
    want = 3.0 * ray.norm(dim=-1) / fx  # r / fx
    inner = (slice(1, -1), slice(1, 15))  # the normals of the border pixels are one-sided
    torch.testing.assert_close(q[inner], want[inner], rtol=0.02, atol=0.0)
    sm.render(c2w, K, 32, 32)
    near = sm.shown_quality(c2w, K, 32, 32)
    sm._last_render = None  # no render to take the winners from: a fresh z-buffer
    torch.testing.assert_close(sm.shown_quality(c2w, K, 32, 32), near)
    seen = near[1].isfinite()
    assert int(seen.sum()) > 200
    ratio = near[1][seen] / (1.5 * ray.norm(dim=-1)[seen] / fx)  # over the nearer pixel's width
    assert 1.6 < float(ratio.median()) < 2.4
