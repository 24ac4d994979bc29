"""The generated pixels of a render relaxed towards what was observed (``memory/guesses.py``,
``MemoryConfig.guess_relax``), against answers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_tiny_pipeline
from memory_scenes import one_thread, yaw_camera  # noqa: F401 (autouse fixture)

from worldmem.config import MemoryConfig
from worldmem.geometry import intrinsics_from_fov
from worldmem.memory.guesses import outside_observed, relax_guesses
from worldmem.models.elevation import frames_default

S = 64
OBSERVED, GUESS, PRIOR = (0.2, 0.3, 0.8), (0.8, 0.6, 0.2), (0.5, 0.5, 0.5)


def _colour(c, n=1):
    return torch.tensor(c).view(1, 3, 1, 1).expand(n, 3, S, S).clone()


def _half_and_half():
    """Left half observed (colour OBSERVED), right half generated (GUESS)."""
    rgb = _colour(OBSERVED)
    rgb[..., S // 2 :] = torch.tensor(GUESS).view(1, 3, 1, 1)
    mask = torch.ones(1, 1, S, S)
    observed = torch.zeros(1, 1, S, S)
    observed[..., : S // 2] = 1
    return rgb, mask, observed


def test_observed_pixels_and_holes_come_back_exactly_and_guesses_stay_in_range():
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(3, 3, S, S, generator=g)
    mask = (torch.rand(3, 1, S, S, generator=g) > 0.2).float()
    observed = mask * (torch.rand(3, 1, S, S, generator=g) > 0.9).float()
    prior = torch.rand(3, 3, S, S, generator=g)
    out = relax_guesses(rgb, mask, observed, prior, 0.3, 4.0)
    kept = ((observed > 0.5) | (mask < 0.5)).expand_as(rgb)
    assert torch.equal(out[kept], rgb[kept])
    assert not torch.equal(out, rgb)  # the guesses did move
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(relax_guesses(rgb, mask, observed, prior, 0.0, 4.0), rgb)  # off


def test_relaxing_moves_a_guess_that_fraction_towards_the_prior():
    """No observed pixel in the view: every guess moves exactly ``relax`` of the way."""
    rgb, mask, _ = _half_and_half()
    prior = _colour(PRIOR)
    out = relax_guesses(rgb, mask, torch.zeros_like(mask), prior, 0.25, 8.0)
    torch.testing.assert_close(out, rgb + 0.25 * (prior - rgb))


def test_relaxing_spares_the_guesses_beside_what_was_observed():
    """Beside a wide observed area (a vertical edge), the rate is relax * (1 - min(1, 2 *
    Phi(-x / sigma))) at x pixels from the edge, Phi the normal CDF: a tenth of the rate at
    the pixel next to it, the full rate beyond about 3 sigma."""
    sigma = 4.0
    rgb, mask, observed = _half_and_half()
    prior = _colour(PRIOR)
    out = relax_guesses(rgb, mask, observed, prior, 0.5, sigma)
    moved = (out - rgb)[0, 0, S // 2] / (prior - rgb)[0, 0, S // 2]  # fraction, one row
    assert float(moved[: S // 2].abs().max()) == 0  # observed: untouched
    for d in (0, 2, 5, 12):
        # pixel centre S/2 + d + 0.5 lies d + 0.5 px beyond the edge; the blur is discrete,
        # so the continuous formula holds to about a percent
        phi = 0.5 * (1 + math.erf(-(d + 0.5) / (sigma * math.sqrt(2))))
        want = 0.5 * (1 - min(1.0, 2 * phi))
        assert float(moved[S // 2 + d]) == pytest.approx(want, abs=0.01)
    assert float(moved[-1]) == pytest.approx(0.5, abs=1e-3)
    assert bool((moved[S // 2 :].diff() >= -1e-6).all())  # more the further from it


def _room_view(yaw_deg: float, pitch_deg: float = 0.0):
    c2w = yaw_camera((0.0, 0.0, 0.0), yaw_deg)
    if pitch_deg:
        a = math.radians(pitch_deg)  # about the camera's x axis; -y is up (OpenCV)
        R = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
        c2w = c2w.clone()
        c2w[:3, :3] = c2w[:3, :3] @ R
    return c2w


def test_the_prior_reads_ceiling_above_and_floor_below_in_a_view_turned_away():
    """One observed frame from a level camera: rows above the horizon one colour, below
    another. Turned round, the prior has the same rows; pitched up, more of the upper colour;
    the same frame at twice the size gives the same prior."""
    K = intrinsics_from_fov(75.0, S, S)
    rgb = _colour((0.9, 0.9, 0.9))[0]
    rgb[:, S // 2 :] = torch.tensor((0.1, 0.3, 0.1)).view(3, 1, 1)
    frames = [(_room_view(0.0), K, rgb, torch.full((S, S), 3.0))]
    back = frames_default(frames, _room_view(180.0)[None], K[None], S)[0]
    assert float((back[:, : S // 2 - 2] - rgb[:, : S // 2 - 2]).abs().max()) < 1e-5
    assert float((back[:, S // 2 + 2 :] - rgb[:, S // 2 + 2 :]).abs().max()) < 1e-5
    up = frames_default(frames, _room_view(180.0, 20.0)[None], K[None], S)[0]
    assert float((up[0] > 0.5).float().mean()) > float((back[0] > 0.5).float().mean()) + 0.1
    big = torch.nn.functional.interpolate(rgb[None], scale_factor=2, mode="nearest")[0]
    K2 = intrinsics_from_fov(75.0, 2 * S, 2 * S)
    twice = [(_room_view(0.0), K2, big, torch.full((2 * S, 2 * S), 3.0))]
    torch.testing.assert_close(frames_default(twice, _room_view(180.0)[None], K[None], S)[0], back)
    assert frames_default([], _room_view(0.0)[None], K[None], S) is None


def _yaw_pitch_ray_miss(yaw_deg: float, pitch_deg: float, half_fov_deg: float) -> float:
    """By hand: the angle by which a ray at yaw/pitch (degrees, from a level camera's axis)
    misses that camera's square field of view, horizontal or vertical whichever is larger."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    d = (math.sin(a) * math.cos(b), -math.sin(b), math.cos(a) * math.cos(b))  # camera frame
    h = math.degrees(math.atan(abs(d[0]) / d[2])) - half_fov_deg
    v = math.degrees(math.atan(abs(d[1]) / d[2])) - half_fov_deg
    return max(0.0, h, v)


def test_how_far_a_ray_looks_outside_the_observed_views():
    """One level frame, a 60 degree square field of view. A view turned by yaw: its centre
    ray misses the frame's view by yaw - 30 degrees; a ray the frame saw misses by 0; a ray
    behind the frame's camera gives 180; with a second frame turned the other way the
    nearest one counts; with no frame everything is 180."""
    K = intrinsics_from_fov(60.0, S, S)
    frame = (_room_view(0.0), K, torch.zeros(3, S, S), torch.zeros(S, S))
    views = torch.stack([_room_view(y, p) for y, p in ((0, 0), (45, 0), (70, 0), (45, 20))])
    out = outside_observed(views, K[None].expand(4, 3, 3), S, [frame])
    assert out.shape == (4, 1, S, S)
    assert float(out[0].max()) == 0.0  # the frame's own view
    # the view's pixel centre nearest its axis: u = v = S/2 + 0.5, a tiny offset from the axis
    f = float(K[0, 0])
    off = math.degrees(math.atan(0.5 / f))
    for i, (yaw, pitch) in enumerate(((45, 0), (70, 0), (45, 20))):
        # pixel (S/2, S/2) looks yaw + off to the side and pitch - off up (v grows downwards)
        want = _yaw_pitch_ray_miss(yaw + off, pitch - off, 30.0)
        assert float(out[i + 1, 0, S // 2, S // 2]) == pytest.approx(want, abs=0.05)
    assert float(out[1, 0, :, 0].max()) == 0.0  # its left column looks at 15 degrees: seen
    back = outside_observed(_room_view(180.0)[None], K[None], S, [frame])
    assert float(back.min()) == 180.0
    other = (_room_view(-90.0), K, torch.zeros(3, S, S), torch.zeros(S, S))
    both = outside_observed(_room_view(-70.0)[None], K[None], S, [frame, other])
    assert float(both[0, 0, S // 2, S // 2]) == 0.0  # the second frame saw it
    assert float(outside_observed(views, K[None].expand(4, 3, 3), S, []).min()) == 180.0


def test_guesses_on_rays_an_observed_view_saw_keep_their_guess():
    """With ``outside_deg``, the rate is ``relax * min(1, outside / outside_deg)``."""
    rgb, mask, _ = _half_and_half()
    none = torch.zeros_like(mask)
    prior = _colour(PRIOR)
    outside = torch.linspace(0, 20, S).view(1, 1, 1, S).expand(1, 1, S, S)
    out = relax_guesses(rgb, mask, none, prior, 0.4, 0.0, outside, 10.0)
    moved = (out - rgb)[0, 0, 5] / (prior - rgb)[0, 0, 5]
    want = 0.4 * (outside[0, 0, 5] / 10).clamp(max=1)
    torch.testing.assert_close(moved[S // 2 :], want[S // 2 :])
    torch.testing.assert_close(
        relax_guesses(rgb, mask, none, prior, 0.4, 0.0, outside, 0.0),
        relax_guesses(rgb, mask, none, prior, 0.4, 0.0),
    )  # off


def test_config_ranges():
    with pytest.raises(Exception, match="guess_relax"):
        MemoryConfig(guess_relax=1.5)
    with pytest.raises(Exception, match="guess_relax_near_px"):
        MemoryConfig(guess_relax_near_px=-1)
    with pytest.raises(Exception, match="guess_relax_outside_deg"):
        MemoryConfig(guess_relax_outside_deg=-5)


def _generated_pixels_given(pipe, steps=("right",) * 6):
    given = []
    real = pipe.sampler.generate

    def spy(conditioning, generator=None):
        given.append(conditioning)
        return real(conditioning, generator=generator)

    pipe.sampler.generate = spy
    g = torch.Generator().manual_seed(1)
    image = torch.rand(3, pipe.size, pipe.size, generator=g)
    depth = 1 + torch.rand(1, pipe.size, pipe.size, generator=g)
    pipe.start(prompt="a corridor", image=image, depth=depth, seed=0)
    pipe.step(list(steps))
    return given


@pytest.mark.parametrize("render_colour", ["bilinear", "resample"])
def test_the_pipeline_gives_the_model_its_guesses_relaxed(render_colour):
    """Same world from the same start image, same steps: with the options on, the model is
    given the same render except at generated pixels, some of which moved; the observed frames
    are kept for the prior whatever the render colour."""
    plain = make_tiny_pipeline()
    held = make_tiny_pipeline()
    for p in (plain, held):
        p.memory_cfg.render_colour = render_colour
    held.memory_cfg.guess_relax = 0.5
    a, b = _generated_pixels_given(plain), _generated_pixels_given(held)
    assert len(held.spatial.observed_frames()) == 1  # the start image
    c, d = a[-1], b[-1]
    assert torch.equal(c.memory_mask, d.memory_mask)
    assert torch.equal(c.memory_observed, d.memory_observed)
    generated = ((c.memory_mask > 0.5) & (c.memory_observed <= 0.5)).expand_as(c.memory_rgb)
    assert bool(generated.any())
    assert torch.equal(c.memory_rgb[~generated], d.memory_rgb[~generated])
    assert not torch.equal(c.memory_rgb[generated], d.memory_rgb[generated])


def test_with_outside_deg_a_strafe_keeps_its_guesses_and_a_turn_relaxes_them():
    """A camera that strafes keeps the start's orientation, so every ray of its view lies in
    the start frame's field of view: the model is given exactly the render it gets without
    the relaxation. A camera that turns is given relaxed guesses."""
    runs = {}
    for name, relax, steps in (
        ("plain strafe", 0.0, ("d",) * 6),
        ("strafe", 0.5, ("d",) * 6),
        ("plain turn", 0.0, ("right",) * 6),
        ("turn", 0.5, ("right",) * 6),
    ):
        pipe = make_tiny_pipeline()
        pipe.memory_cfg.guess_relax = relax
        pipe.memory_cfg.guess_relax_outside_deg = 10.0
        runs[name] = _generated_pixels_given(pipe, steps)[-1]
    a, b = runs["plain strafe"], runs["strafe"]
    assert bool(((a.memory_mask > 0.5) & (a.memory_observed <= 0.5)).any())  # it has guesses
    assert torch.equal(a.memory_rgb, b.memory_rgb)
    c, d = runs["plain turn"], runs["turn"]
    generated = ((c.memory_mask > 0.5) & (c.memory_observed <= 0.5)).expand_as(c.memory_rgb)
    assert torch.equal(c.memory_rgb[~generated], d.memory_rgb[~generated])
    assert not torch.equal(c.memory_rgb[generated], d.memory_rgb[generated])
