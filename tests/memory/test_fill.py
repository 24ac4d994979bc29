"""The push-pull hole fill against cases with a known answer."""

import pytest
import torch

from worldmem.memory.fill import gaussian_blur, push_pull_fill


def test_valid_pixels_are_returned_exactly_and_the_fill_is_convex():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 4, 37, 50, generator=g)  # odd sizes: partial pooling windows
    valid = torch.rand(3, 1, 37, 50, generator=g) > 0.8
    y, filled = push_pull_fill(x, valid)
    assert filled.all()
    v = valid.expand_as(x)
    assert torch.equal(y[v], x[v])
    lo = x.masked_fill(~v, 2).amin((2, 3), keepdim=True)
    hi = x.masked_fill(~v, -1).amax((2, 3), keepdim=True)
    assert bool(((y >= lo - 1e-6) & (y <= hi + 1e-6)).all())


@pytest.mark.parametrize("where", [(0, 0), (31, 17), (63, 63)])
def test_one_valid_pixel_colours_the_whole_image(where):
    x = torch.zeros(1, 3, 64, 64)
    valid = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    x[0, :, where[0], where[1]] = torch.tensor([0.2, 0.5, 0.9])
    valid[0, 0, where[0], where[1]] = True
    y, _ = push_pull_fill(x, valid)
    torch.testing.assert_close(y, x[:, :, where[0], where[1], None, None].expand_as(y))


def test_a_hole_between_two_colours_blends_from_one_to_the_other():
    """Left third 0, right third 1, the middle a hole: the fill rises monotonically across it
    and each side's neighbour is close to its own colour."""
    x = torch.zeros(1, 1, 32, 96)
    x[..., 64:] = 1
    valid = torch.ones(1, 1, 32, 96, dtype=torch.bool)
    valid[..., 32:64] = False
    y, _ = push_pull_fill(x, valid)
    row = y[0, 0, 16, 32:64]
    assert bool((row[1:] >= row[:-1] - 1e-6).all())
    assert row[0] < 0.25 and row[-1] > 0.75
    assert y[0, 0, :, 32:64].std(0).max() < 1e-5  # rows agree: the image is uniform in y


def test_an_empty_render_is_left_as_it_was():
    x = torch.rand(2, 3, 16, 16)
    valid = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    valid[1, 0, 3, 4] = True
    y, filled = push_pull_fill(x, valid)
    assert filled.tolist() == [False, True]
    assert torch.equal(y[0], x[0])


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="valid"):
        push_pull_fill(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError, match="expected"):
        push_pull_fill(torch.zeros(3, 8, 8), torch.zeros(1, 8, 8))


def test_a_default_takes_over_far_from_a_small_valid_patch():
    """A 4 x 4 patch of 1 in a 64 x 64 hole with default 0: the patch is kept, its neighbours
    lean to it, the far corner is nearly the default, and the fill stays between the two."""
    x = torch.zeros(1, 1, 64, 64)
    valid = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    x[..., :4, :4] = 1
    valid[..., :4, :4] = True
    y, filled = push_pull_fill(x, valid, default=torch.zeros(1, 1))
    assert filled.all() and torch.equal(y[..., :4, :4], x[..., :4, :4])
    assert y[0, 0, 4, 4] > 0.3 and y[0, 0, 5, 5] > 0.2 and y[0, 0, 63, 63] < 0.01
    assert bool(((y >= 0) & (y <= 1)).all())
    # without a default the single patch colours everything
    torch.testing.assert_close(push_pull_fill(x, valid)[0], torch.ones_like(x))


def test_an_image_default_is_a_constant_default_generalised():
    """A default image: the same fill as the constant default where it is constant; far from
    the valid patch it follows the image; valid pixels are kept exactly; a wrong shape is named."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    valid = torch.rand(2, 1, 32, 32, generator=g) > 0.8
    c = torch.rand(2, 3, generator=g)
    flat, _ = push_pull_fill(x, valid, c)
    image, filled = push_pull_fill(x, valid, c[:, :, None, None].expand(2, 3, 32, 32))
    assert filled.all()
    torch.testing.assert_close(image, flat, atol=1e-6, rtol=0)
    valid[:] = False
    valid[..., :3, :3] = True
    ramp = torch.linspace(0, 1, 32)[None, None, :, None].expand(2, 3, 32, 32)
    y, _ = push_pull_fill(x, valid, ramp)
    torch.testing.assert_close(y[..., 16:, 16:], ramp[..., 16:, 16:], atol=0.03, rtol=0)
    v = valid.expand_as(x)
    assert torch.equal(y[v], x[v])
    with pytest.raises(ValueError, match="default"):
        push_pull_fill(x, valid, ramp[..., :16])


def test_gaussian_blur_of_an_impulse_is_the_sampled_gaussian_and_a_constant_stays_constant():
    sigma = 2.0
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 10, 10] = 1
    t = torch.arange(-10, 11, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k[(t.abs() <= 6)].sum()  # the kernel's radius is ceil(3 sigma) = 6
    k[t.abs() > 6] = 0
    torch.testing.assert_close(gaussian_blur(x, sigma)[0, 0], k[:, None] * k[None])
    flat = torch.full((2, 3, 9, 7), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 1.5, padding="replicate"), flat)
    assert float(gaussian_blur(flat, 1.5)[0, 0, 0, 0]) < 0.3  # zeros: mass lost at the border
