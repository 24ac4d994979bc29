"""The render the model is given leaves out generated pixels beyond every observed surface of
their view (``MemoryRender.without_far_guesses``, ``MemoryConfig.far_guess_min_observed``).

Scene, seen from the origin looking down +z: an observed frame saw a fronto-parallel plane
2 m away over the left half of the view (no depth on the right half); a generated frame drew
the right half, its upper quarter 6 m away (a guess receding far behind the observed wall)
and its lower quarter 2.2 m away (within the 15% margin of the wall's 2 m)."""

from __future__ import annotations

import pytest
import torch
from memory_scenes import one_thread  # noqa: F401 (autouse fixture)

from worldmem.config import MemoryConfig
from worldmem.data.inputs import assemble_inputs
from worldmem.geometry import intrinsics_from_fov
from worldmem.memory import EpisodicMemory, SpatialMemory

S = 16
WALL_M, FAR_M, NEAR_GUESS_M = 2.0, 6.0, 2.2
BAND = 2  # pixels either side of the scene's edges, where splats of both sides meet


def _scene(
    min_observed: float, hide: str = "far"
) -> tuple[SpatialMemory, torch.Tensor, torch.Tensor, MemoryConfig]:
    cfg = MemoryConfig(
        far_guess_min_observed=min_observed, render_colour="nearest", hide_guesses=hide
    )
    memory = SpatialMemory(cfg)
    K = intrinsics_from_fov(60.0, S, S)[None]
    c2w = torch.eye(4)[None]
    left = torch.zeros(1, 1, S, S)
    left[..., : S // 2] = 1
    observed_rgb = torch.tensor([0.2, 0.3, 0.8]).view(1, 3, 1, 1).expand(1, 3, S, S)
    memory.insert(observed_rgb, left * WALL_M, c2w, K, observed=True)
    guess = torch.zeros(1, 1, S, S)
    guess[..., : S // 2, S // 2 :] = FAR_M
    guess[..., S // 2 :, S // 2 :] = NEAR_GUESS_M
    guess_rgb = torch.tensor([0.8, 0.7, 0.4]).view(1, 3, 1, 1).expand(1, 3, S, S)
    memory.insert(guess_rgb, guess, c2w, K, observed=False)
    return memory, c2w, K, cfg


def _interior() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masks ``(S, S)`` of the observed half, the far guess and the near guess, away from the
    edges between them."""
    r = torch.arange(S)
    cols_left = r < S // 2 - BAND
    cols_right = (r >= S // 2 + BAND) & (r < S - BAND)
    rows_top = (r >= BAND) & (r < S // 2 - BAND)
    rows_bottom = (r >= S // 2 + BAND) & (r < S - BAND)
    rows_all = (r >= BAND) & (r < S - BAND)
    return (
        rows_all[:, None] & cols_left[None],
        rows_top[:, None] & cols_right[None],
        rows_bottom[:, None] & cols_right[None],
    )


def test_a_guess_far_behind_the_observed_wall_becomes_a_hole():
    memory, c2w, K, cfg = _scene(0.1)
    render = memory.render(c2w, K, S, S)
    observed, far, near = _interior()
    assert bool((render.mask[0, 0][far | near | observed] > 0.5).all())  # all drawn before
    kept = render.without_far_guesses(cfg.carve_margin_rel, 0.1)
    mask = kept.mask[0, 0] > 0.5
    assert not bool(mask[far].any())
    assert bool(mask[near].all()) and bool(mask[observed].all())
    assert float(kept.depth[0, 0][far].abs().max()) == 0.0
    assert float(kept.rgb[0][:, far].abs().max()) == 0.0
    # every pixel emptied held a generated sample beyond the margin; the rest is as it was
    gone = (render.mask[0, 0] > 0.5) & ~mask
    assert float(render.depth[0, 0][gone].min()) > WALL_M * (1 + cfg.carve_margin_rel)
    assert float(render.observed[0, 0][gone].max()) == 0.0
    assert torch.equal(kept.rgb[0][:, ~gone], render.rgb[0][:, ~gone])
    assert torch.equal(kept.depth[0, 0][~gone], render.depth[0, 0][~gone])


def test_a_view_with_too_few_observed_pixels_keeps_every_guess():
    memory, c2w, K, cfg = _scene(0.1)
    render = memory.render(c2w, K, S, S)
    share = float(render.observed.mean())
    assert 0.4 < share < 0.6  # the observed half
    kept = render.without_far_guesses(cfg.carve_margin_rel, share + 0.05)
    assert torch.equal(kept.mask, render.mask) and torch.equal(kept.rgb, render.rgb)


@pytest.mark.parametrize("min_observed", [0.0, 0.1])
def test_the_model_is_given_the_render_without_far_guesses_when_configured(min_observed):
    memory, c2w, K, cfg = _scene(min_observed)
    cond = assemble_inputs(
        c2w,
        K,
        S,
        mode="all",
        spatial=memory,
        episodic=EpisodicMemory(cfg),
        working=None,
        context_frames=2,
        keyframes=0,
        caption="",
    )
    _, far, near = _interior()
    mask = cond.memory_mask[0, 0, 0] > 0.5
    assert bool(mask[near].all())
    if min_observed == 0:  # off: the render as it is
        assert bool(mask[far].all())
    else:
        assert not bool(mask[far].any())


def test_hiding_every_guess_leaves_only_the_observed_wall():
    """``margin_rel`` None (``hide_guesses: all``): the near guess goes too, and a view with
    too few observed pixels still keeps every guess."""
    memory, c2w, K, cfg = _scene(0.1, "all")
    render = memory.render(c2w, K, S, S)
    observed, far, near = _interior()
    kept = render.without_far_guesses(None, 0.1)
    mask = kept.mask[0, 0] > 0.5
    assert not bool(mask[far | near].any()) and bool(mask[observed].all())
    gone = (render.mask[0, 0] > 0.5) & ~mask
    assert float(render.observed[0, 0][gone].max()) == 0.0  # only generated pixels went
    assert torch.equal(kept.rgb[0][:, ~gone], render.rgb[0][:, ~gone])
    few = render.without_far_guesses(None, float(render.observed.mean()) + 0.05)
    assert torch.equal(few.mask, render.mask)
    cond = assemble_inputs(c2w, K, S, mode="all", spatial=memory, episodic=EpisodicMemory(cfg),
                           working=None, context_frames=2, keyframes=0, caption="")  # fmt: skip
    assert torch.equal(cond.memory_mask[0, 0], kept.mask[0])


def test_the_setting_is_a_share():
    with pytest.raises(Exception, match="far_guess_min_observed"):
        MemoryConfig(far_guess_min_observed=1.5)
    with pytest.raises(Exception, match="hide_guesses: 'near' is not one of far, all"):
        MemoryConfig(hide_guesses="near")
