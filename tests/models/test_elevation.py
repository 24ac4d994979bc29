"""The elevation hole prior: ray elevations against a second implementation, a profile read
back at cameras that turned and pitched, and WorldDiT's prior with it."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from conftest import tiny_model_config

from worldmem.geometry import intrinsics_from_fov, look_at
from worldmem.models import ModelFrames, WorldDiT
from worldmem.models.dit import memory_prior
from worldmem.models.elevation import (
    ELEVATION_BINS,
    elevation_default,
    elevation_profile,
    ray_elevation,
)

S = 32


def _camera(yaw_deg: float, pitch_deg: float) -> torch.Tensor:
    """c2w of a camera at the origin, world up -y (OpenCV cameras held level look along +z)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = torch.tensor(
        [math.sin(yaw) * math.cos(pitch), -math.sin(pitch), math.cos(yaw) * math.cos(pitch)]
    )
    return look_at(torch.zeros(3), forward, up=torch.tensor([0.0, -1.0, 0.0]))


def _cameras(angles) -> tuple[torch.Tensor, torch.Tensor]:
    c2w = torch.stack([_camera(y, p) for y, p in angles])[None]  # (1, N, 4, 4)
    K = intrinsics_from_fov(75.0, S, S).expand(1, len(angles), 3, 3).clone()
    return c2w, K


def _brute_elevation(c2w: torch.Tensor, K: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Per pixel: unproject with K^-1, rotate to the world, normalise, dot with up."""
    c = torch.arange(S, dtype=torch.float32) + 0.5
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1)  # (S, S, 3)
    out = []
    for n in range(c2w.shape[1]):
        d = pix @ torch.linalg.inv(K[0, n]).T @ c2w[0, n, :3, :3].T
        out.append((d / d.norm(dim=-1, keepdim=True)) @ up)
    return torch.stack(out)[None]


def test_ray_elevation_matches_unprojection_and_pitch():
    c2w, K = _cameras([(0, 0), (40, 20), (-130, -35)])
    up = torch.tensor([[0.0, -1.0, 0.0]])
    e = ray_elevation(c2w, K, S, S, up)
    torch.testing.assert_close(e, _brute_elevation(c2w, K, up[0]), atol=1e-5, rtol=0)
    # the centre ray points along the camera's pitch; a level camera's middle rows are level
    centre = e[0, :, S // 2 - 1 : S // 2 + 1, S // 2 - 1 : S // 2 + 1].mean((1, 2))
    expect = torch.tensor([0.0, math.sin(math.radians(20)), math.sin(math.radians(-35))])
    torch.testing.assert_close(centre, expect, atol=0.03, rtol=0)
    # top rows look up (y down in the image)
    assert bool((e[0, 0, 0] > 0.4).all()) and bool((e[0, 0, -1] < -0.4).all())


def test_profile_read_back_at_cameras_that_turned_and_pitched():
    # memory: a world whose value is the sine of the elevation (a sky-to-ground gradient) in
    # one channel and constant in another, seen by three level cameras
    c2w, K = _cameras([(0, 0), (120, 0), (240, 0)])
    up = torch.tensor([[0.0, -1.0, 0.0]])
    e = ray_elevation(c2w, K, S, S, up)  # (1, 3, S, S)
    x = torch.stack([e, torch.full_like(e, 0.25)], 2)  # (1, 3, 2, S, S)
    valid = torch.tensor([[True, True, False]])  # the third frame is padding
    x[0, 2] = 100.0  # ... whose values must not count
    frames = ModelFrames(x=x, sigma=torch.zeros(1, 3), c2w=c2w, K=K, valid=valid)
    profile = elevation_profile(S, frames, None)
    means, got_up = profile
    assert means.shape == (1, 2, ELEVATION_BINS)
    torch.testing.assert_close(got_up, up)
    # cameras that turned away from every memory frame and pitched
    t_c2w, t_K = _cameras([(60, 30), (200, -15)])
    d = elevation_default(profile, t_c2w, t_K, S, S)  # (1, 2, 2, S, S)
    assert d.shape == (1, 2, 2, S, S)
    truth = ray_elevation(t_c2w, t_K, S, S, up)
    inside = truth.abs() < 0.55  # elevations the level memory frames saw (vertical fov 75)
    err = (d[:, :, 0] - truth).abs()
    assert float(err[inside].max()) < 2.0 / ELEVATION_BINS  # within a bin of the truth
    torch.testing.assert_close(d[:, :, 1], torch.full_like(d[:, :, 1], 0.25))
    # beyond what the memory saw, the nearest band it holds (not zero, not the mean)
    top = d[0, 0, 0][truth[0, 0] > 0.7]
    assert top.numel() > 0 and float(top.min()) > 0.5


def test_no_valid_frame_gives_zeros_and_no_frames_none():
    c2w, K = _cameras([(0, 0)])
    x = torch.rand(1, 1, 4, S, S)
    frames = ModelFrames(x=x, sigma=torch.zeros(1, 1), c2w=c2w, K=K, valid=torch.tensor([[False]]))
    d = elevation_default(elevation_profile(S, frames), c2w, K, S, S)
    assert float(d.abs().max()) == 0.0
    assert elevation_profile(S, None) is None


def test_memory_prior_image_default_generalises_the_constant_one():
    g = torch.Generator().manual_seed(0)
    memory = torch.rand(2, 2, 5, 16, 16, generator=g)
    memory[:, :, 4] = (torch.rand(2, 2, 16, 16, generator=g) > 0.7).float()
    default = torch.rand(2, 4, generator=g)
    flat, _ = memory_prior(memory, default)
    image, _ = memory_prior(memory, default[:, None, :, None, None].expand(2, 2, 4, 16, 16))
    torch.testing.assert_close(image, flat, atol=1e-6, rtol=0)
    # with an image default, far from valid pixels the prior is that image
    memory[:, :, 4] = 0
    memory[:, :, 4, :2, :2] = 1  # a valid corner only
    ramp = torch.linspace(0, 1, 16)[None, None, None, :, None].expand(2, 2, 4, 16, 16)
    prior, has = memory_prior(memory, ramp)
    assert has.all()
    torch.testing.assert_close(prior[..., 8:, 8:], ramp[..., 8:, 8:], atol=0.02, rtol=0)
    v = memory[:, :, 4:5].bool().expand(2, 2, 4, 16, 16)
    torch.testing.assert_close(prior[v], memory[:, :, :4][v], atol=0, rtol=0)


def _profile_scene(depth_of) -> tuple[ModelFrames, ModelFrames]:
    """Two context frames (yaw 0 and 90) whose channels are the sine of each pixel's elevation,
    its negative, its magnitude and ``depth_of(elevation)``, and two noisy targets turned
    away from both (yaw 200 and 210, pitched 5 degrees)."""
    c2w, K = _cameras([(0, 0), (90, 0)])
    e = ray_elevation(c2w, K, S, S, torch.tensor([[0.0, -1.0, 0.0]]))
    ctx = ModelFrames(
        x=torch.stack([e, -e, e.abs(), depth_of(e)], 2),
        sigma=torch.zeros(1, 2),
        c2w=c2w,
        K=K,
        valid=torch.ones(1, 2, dtype=torch.bool),
    )
    t_c2w, t_K = _cameras([(200, 5), (210, 5)])
    target = ModelFrames(torch.randn(1, 2, 4, S, S), torch.ones(1, 2), t_c2w, t_K,
                         torch.ones(1, 2, dtype=torch.bool))  # fmt: skip
    return ctx, target


def test_worlddit_prior_tends_to_the_elevation_profile():
    torch.manual_seed(0)
    model = WorldDiT.from_model_config(replace(tiny_model_config(), hole_prior="elevation"))
    ctx, target = _profile_scene(torch.zeros_like)
    t_c2w, t_K = target.c2w, target.K
    memory = torch.zeros(1, 2, 5, S, S)
    memory[:, :, :4, :, :4] = 0.5
    memory[:, :, 4, :, :4] = 1  # the render holds a strip on the left only
    out = model(target, ctx, None, memory, captions=[""])
    # the output layer starts at zero: x0 is the prior, filled towards the profile read at
    # the target's pixels, so away from the strip the sky-to-ground gradient comes back
    expect = elevation_default(elevation_profile(S, ctx), t_c2w, t_K, S, S)
    torch.testing.assert_close(out.x0, memory_prior(memory, expect)[0], atol=1e-6, rtol=0)
    far = out.x0[0, :, 0, :, -6:].mean(-1)  # (T, S): channel 0 (the elevation) by row
    assert bool((far[:, :4].mean(1) > 0.3).all()) and bool((far[:, -4:].mean(1) < -0.2).all())
    torch.testing.assert_close(out.x0[..., :4], memory[:, :, :4, :, :4], atol=0, rtol=0)
    cache = model.encode_context(ctx, None, t_c2w[:, 0], captions=[""])
    cached = model(target, memory=memory, cache=cache)
    torch.testing.assert_close(cached.x0, out.x0, atol=1e-5, rtol=0)


def test_elevation_depth_prior_takes_the_profiles_depth_in_the_holes():
    """``hole_prior="elevation_depth"``: the prior equals the elevation prior in its colour
    channels and where the render is valid; in the render's holes its depth channel is the
    elevation profile's, read at each pixel, not the depth continued from the valid strip."""
    torch.manual_seed(0)
    models = {
        p: WorldDiT.from_model_config(replace(tiny_model_config(), hole_prior=p))
        for p in ("elevation", "elevation_depth")
    }
    models["elevation_depth"].load_state_dict(models["elevation"].state_dict())
    ctx, target = _profile_scene(lambda e: 0.2 + 0.5 * e.abs())  # depth: nearer up and down
    t_c2w, t_K = target.c2w, target.K
    memory = torch.zeros(1, 2, 5, S, S)
    memory[:, :, :3, :, :4] = 0.5
    memory[:, :, 3, :, :4] = 0.05  # a far strip on the left
    memory[:, :, 4, :, :4] = 1
    with torch.no_grad():
        a = models["elevation"](target, ctx, None, memory, captions=[""]).x0
        b = models["elevation_depth"](target, ctx, None, memory, captions=[""]).x0
    expect = elevation_default(elevation_profile(S, ctx), t_c2w, t_K, S, S)
    torch.testing.assert_close(b[:, :, :3], a[:, :, :3], atol=0, rtol=0)
    torch.testing.assert_close(b[..., :4], memory[:, :, :4, :, :4], atol=0, rtol=0)
    torch.testing.assert_close(b[:, :, 3, :, 4:], expect[:, :, 3, :, 4:], atol=1e-6, rtol=0)
    # beside the strip the continued fill carries the far strip's depth; the profile does not
    assert float((a[:, :, 3, :, 4:6] - 0.05).abs().mean()) < 0.1
    assert float((b[:, :, 3, :, 4:6] - 0.05).abs().mean()) > 0.2
    # a target whose render is empty has no prior under either (a depth-less start's context
    # has no depth to take a profile of): the second target keeps its strip
    memory[:, 0] = 0
    with torch.no_grad():
        a = models["elevation"](target, ctx, None, memory, captions=[""]).x0
        b = models["elevation_depth"](target, ctx, None, memory, captions=[""]).x0
    torch.testing.assert_close(b[:, 0], a[:, 0], atol=0, rtol=0)
    torch.testing.assert_close(b[:, 1, 3, :, 4:], expect[:, 1, 3, :, 4:], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="elevation_depth needs codec identity"):
        replace(tiny_model_config(), hole_prior="elevation_depth", codec="vae")


def _hole_tint_models(keep: float) -> dict[float, WorldDiT]:
    torch.manual_seed(0)
    models = {
        k: WorldDiT.from_model_config(
            replace(tiny_model_config(), hole_prior="elevation", hole_tint=k)
        )
        for k in (1.0, keep)
    }
    models[keep].load_state_dict(models[1.0].state_dict())
    return models


@pytest.mark.parametrize("keep", [0.0, 0.5])
def test_hole_tint_scales_a_tint_the_model_adds_in_the_holes(keep):
    """An output layer that draws one constant tint everywhere: with ``hole_tint`` 1 the holes
    are the prior plus the tint; with ``keep`` they are the prior plus ``keep`` times it (0:
    the prior exactly). The valid strip, the depth channel and a target whose render is empty
    (no prior) are the same under both."""
    models = _hole_tint_models(keep)
    tint = torch.tensor([0.2, -0.1, 0.3, 0.05])
    for model in models.values():
        model.reset_output()
        with torch.no_grad():
            model.decoder.out.bias[:4] = tint
    ctx, target = _profile_scene(torch.zeros_like)
    memory = torch.zeros(1, 2, 5, S, S)
    memory[:, 1, :4, :, :4] = 0.5
    memory[:, 1, 4, :, :4] = 1  # the second target's render holds a strip on the left only
    with torch.no_grad():
        out = {k: model(target, ctx, None, memory, captions=[""]).x0 for k, model in models.items()}
    expect = elevation_default(elevation_profile(S, ctx), target.c2w, target.K, S, S)
    prior = memory_prior(memory, expect)[0][:, 1, :3, :, 4:]
    a, b = out[1.0], out[keep]
    torch.testing.assert_close(a[:, 1, :3, :, 4:], prior + tint[:3, None, None])
    torch.testing.assert_close(b[:, 1, :3, :, 4:], prior + keep * tint[:3, None, None])
    torch.testing.assert_close(b[..., :4], a[..., :4], atol=0, rtol=0)  # the valid strip
    torch.testing.assert_close(b[:, :, 3], a[:, :, 3], atol=0, rtol=0)  # depth
    torch.testing.assert_close(b[:, 0], a[:, 0], atol=0, rtol=0)  # no prior: drawn as it is


def test_hole_tint_zero_removes_only_the_mean_of_a_trained_looking_drawing():
    """Random output weights: ``hole_tint`` 0 differs from 1 only in the holes of a target with
    a prior, by one constant per frame and colour channel, and there the holes' mean is the
    prior's."""
    models = _hole_tint_models(0.0)
    for p in models[1.0].decoder.out.parameters():
        torch.nn.init.normal_(p, std=0.05)
    models[0.0].load_state_dict(models[1.0].state_dict())
    ctx, target = _profile_scene(torch.zeros_like)
    memory = torch.zeros(1, 2, 5, S, S)
    memory[:, :, :4, :, :4] = 0.5
    memory[:, :, 4, :, :4] = 1
    with torch.no_grad():
        a = models[1.0](target, ctx, None, memory, captions=[""]).x0
        b = models[0.0](target, ctx, None, memory, captions=[""]).x0
    expect = elevation_default(elevation_profile(S, ctx), target.c2w, target.K, S, S)
    prior = memory_prior(memory, expect)[0]
    diff = (b - a)[:, :, :3, :, 4:]
    assert float((a - prior)[:, :, :3, :, 4:].mean((-2, -1)).abs().min()) > 1e-3  # a real tint
    torch.testing.assert_close(diff, diff[..., :1, :1].expand_as(diff), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        b[:, :, :3, :, 4:].mean((-2, -1)), prior[:, :, :3, :, 4:].mean((-2, -1)), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(b[..., :4], a[..., :4], atol=0, rtol=0)
    torch.testing.assert_close(b[:, :, 3], a[:, :, 3], atol=0, rtol=0)


def test_hole_tint_is_checked():
    with pytest.raises(ValueError, match="hole_tint"):
        replace(tiny_model_config(), hole_tint=1.5)
    with pytest.raises(ValueError, match="hole_tint below 1 needs codec identity"):
        replace(tiny_model_config(), hole_tint=0.5, codec="vae")
