"""``render_colour="resample"``: the observed frames resampled through the render's depth,
against an independent resampler (``grid_sample``, bicubic where all sixteen taps lie on the
surface, bilinear where only the four nearest do) of the analytic reprojection, and against a
plane's analytic pattern."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from memory_scenes import camera_rays, intrinsics, one_thread, rect_scene  # noqa: F401 (autouse fixture)

from worldmem.config import MemoryConfig
from worldmem.memory import SpatialMemory
from worldmem.memory.render import KEEP_PX

S = 16
Z = 2.0  # depth of the plane the start camera sees


def _memory(colour: str = "resample") -> SpatialMemory:
    return SpatialMemory(MemoryConfig(render_colour=colour, max_splat_radius_px=4))


def _moved(dz: float, shift_m=(0.0, 0.0)) -> torch.Tensor:
    c2w = torch.eye(4)
    c2w[0, 3], c2w[1, 3], c2w[2, 3] = shift_m[0], shift_m[1], dz
    return c2w


def _rays_on_plane(K: torch.Tensor, dz: float, shift_m) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the pixel centres' rays of a camera moved by (shift, dz) meet the fronto-parallel
    plane at Z, in the origin camera's pixel units: (ux (S,), uy (S,))."""
    c = torch.arange(S, dtype=torch.float64) + 0.5
    zt = Z - dz
    ux = K[0, 2] + ((c - K[0, 2]) / K[0, 0] * zt + shift_m[0]) * K[0, 0] / Z
    uy = K[1, 2] + ((c - K[1, 2]) / K[1, 1] * zt + shift_m[1]) * K[1, 1] / Z
    return ux, uy


def _reprojected(image: torch.Tensor, K: torch.Tensor, dz: float, shift_m, mode: str):
    """What a camera moved by (shift, dz) sees of the fronto-parallel plane at Z that the
    origin camera saw as ``image``: the image sampled (``mode`` of ``grid_sample``) where each
    of its pixel centres' rays meets the plane."""
    ux, uy = _rays_on_plane(K, dz, shift_m)
    gx, gy = (ux / S * 2 - 1).float(), (uy / S * 2 - 1).float()
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1)[None]
    return F.grid_sample(image[None], grid, mode=mode, align_corners=False)[0].clamp(0, 1), ux, uy


def _inner(ux: torch.Tensor, uy: torch.Tensor, reach: float = 0.5) -> torch.Tensor:
    """Pixels whose taps lie inside the source image: the four bilinear ones (``reach`` 0.5)
    or the sixteen bicubic ones (1.5)."""
    xs = (ux >= reach) & (ux < S - reach)
    ys = (uy >= reach) & (uy < S - reach)
    return ys[:, None] & xs[None, :]


@pytest.mark.parametrize(("dz", "shift_m"), [(0.7, (0.5, -0.05)), (0.4, (-0.4, 0.3))])
def test_a_nearer_view_of_an_observed_plane_is_the_frame_resampled(dz, shift_m):
    """Walking towards a textured plane magnifies it: each pixel shows the observed frame
    sampled bicubically where its ray meets the plane (bilinearly near the frame's edge, where
    the sixteen taps are not all in it), but for the pixels a sample lands on (within the tent
    rule of ``KEEP_PX``), which keep that sample's colour. The splat's own colours (nearest
    sample, or the blend of samples around a pixel) cannot do that."""
    g = torch.Generator().manual_seed(0)
    K = intrinsics(1, S)
    image = torch.rand(3, S, S, generator=g)
    c2w = _moved(dz, shift_m)[None]
    cubic, ux, uy = _reprojected(image, K[0], dz, shift_m, "bicubic")
    linear = _reprojected(image, K[0], dz, shift_m, "bilinear")[0]
    inner, inner16 = _inner(ux, uy), _inner(ux, uy, 1.5)
    want = torch.where(inner16, cubic, linear)
    # the nearest source sample, and how far it lands from each target pixel centre
    m = Z / (Z - dz)  # magnification
    nx, ny = ux.floor().long().clamp(0, S - 1), uy.floor().long().clamp(0, S - 1)
    off_x = (ux - (ux.floor() + 0.5)).abs() * m
    off_y = (uy - (uy.floor() + 0.5)).abs() * m
    tent = (1 - off_y[:, None]).clamp(min=0) * (1 - off_x[None, :]).clamp(min=0)
    on_sample = tent >= (1 - KEEP_PX) ** 2
    got = {}
    for colour in ("resample", "bilinear"):
        mem = _memory(colour)
        mem.insert(image[None], torch.full((1, 1, S, S), Z), torch.eye(4)[None], K)
        got[colour] = mem.render(c2w, K, S, S)
    r = got["resample"]
    assert bool((r.mask[0, 0][inner] == 1).all()) and bool((r.observed[0, 0][inner] == 1).all())
    between = inner & ~on_sample
    assert int(between.sum()) > S * S // 4 and int((inner & on_sample).sum()) > 0
    assert int((between & inner16).sum()) > S * S // 8 and int((between & ~inner16).sum()) > 0
    torch.testing.assert_close(r.rgb[0][:, between], want[:, between], atol=1e-5, rtol=0)
    nearest = image[:, ny[:, None], nx[None, :]]
    assert torch.equal(r.rgb[0][:, inner & on_sample], nearest[:, inner & on_sample])
    assert float((got["bilinear"].rgb[0][:, between] - want[:, between]).abs().max()) > 0.1
    assert torch.equal(r.depth, got["bilinear"].depth) and torch.equal(r.mask, got["bilinear"].mask)


def test_a_magnified_pattern_is_nearer_its_truth_than_a_bilinear_read():
    """A smooth pattern on a plane (period 5 pixels of the observed frame), observed point by
    point and seen 1.5x nearer: the resampled pixels are within a third of the bilinear
    read's error of the pattern itself, which the analytic plane gives at every ray."""
    K = intrinsics(1, S)

    def pattern(ux: torch.Tensor, uy: torch.Tensor) -> torch.Tensor:
        wave = torch.sin(2 * math.pi * ux / 5)[None, :] * torch.cos(2 * math.pi * uy / 5)[:, None]
        return (0.5 + 0.4 * wave).float().expand(3, -1, -1)

    centres = torch.arange(S, dtype=torch.float64) + 0.5
    image = pattern(centres, centres)
    dz, shift_m = Z / 3, (0.02, -0.03)
    truth = pattern(*_rays_on_plane(K[0], dz, shift_m))
    linear, ux, uy = _reprojected(image, K[0], dz, shift_m, "bilinear")
    mem = _memory()
    mem.insert(image[None], torch.full((1, 1, S, S), Z), torch.eye(4)[None], K)
    got = mem.render(_moved(dz, shift_m)[None], K, S, S).rgb[0]
    inner = _inner(ux, uy, 1.5)
    assert int(inner.sum()) > S * S // 2

    def rms(x: torch.Tensor) -> float:
        return float(((x - truth)[:, inner] ** 2).mean().sqrt())

    assert rms(got) < rms(linear) / 3, (rms(got), rms(linear))


def test_a_slanted_plane_seen_nearer_comes_back_on_its_plane(monkeypatch):
    """A plane at a slant (z = Z + 0.8 x in the observing camera), seen from 0.8 m nearer and
    to the side: the render shows each sample as a disc at one depth, so its depth comes in
    steps; each resampled pixel's point is moved along its ray onto the observed surface, so
    its depth is the ray's analytic meeting with the plane and its colour the observed frame
    read bicubically there. With the move turned off the steps come back (the test's own
    control)."""
    import worldmem.memory.observed_frames as observed_frames

    K = intrinsics(1, S)
    fx, cx = float(K[0, 0, 0]), float(K[0, 0, 2])
    slant, dz, sx = 0.8, 0.8, 0.1
    xn = (torch.arange(S, dtype=torch.float64) + 0.5 - cx) / fx  # ray slope per column (= row)
    observed_depth = (Z / (1 - slant * xn))[None, :].expand(S, S)
    image = torch.rand(3, S, S, generator=torch.Generator().manual_seed(4))
    c2w = torch.eye(4)
    c2w[0, 3], c2w[2, 3] = sx, dz
    # the moved camera's ray through column x meets the plane at z-depth t[x]
    t = ((Z + slant * sx - dz) / (1 - slant * xn))[None, :].expand(S, S)
    xw, yw, zw = sx + t * xn[None, :], t * xn[:, None], dz + t
    ux, uy = fx * xw / zw + cx, fx * yw / zw + cx
    grid = torch.stack([ux / S * 2 - 1, uy / S * 2 - 1], -1).float()[None]
    want = F.grid_sample(image[None], grid, mode="bicubic", align_corners=False)[0].clamp(0, 1)
    inner = (ux >= 1.5) & (ux < S - 1.5) & (uy >= 1.5) & (uy < S - 1.5)

    def render():
        mem = _memory()
        mem.insert(image[None], observed_depth[None, None].float(), torch.eye(4)[None], K)
        out = mem.render(c2w[None], K, S, S)
        shown = inner & (out.mask[0, 0] > 0)
        depth_err = ((out.depth[0, 0].double() - t).abs() / t)[shown]
        colour_err = (out.rgb[0] - want).abs().amax(0)[shown]
        return int(shown.sum()), depth_err, colour_err

    n, depth_err, colour_err = render()
    assert n > S * S // 2
    assert float(depth_err.max()) < 0.03 and float(depth_err.median()) < 0.005
    assert float(colour_err.median()) < 0.005 and float(colour_err.quantile(0.9)) < 0.06
    monkeypatch.setattr(observed_frames, "REFINE_MAX_REL", 0.0)
    _, depth_err, colour_err = render()
    assert float(depth_err.median()) > 0.02 and float(colour_err.median()) > 0.02


def test_an_edge_never_blends_the_foreground_into_the_background():
    """A near square in front of a far wall, seen from a little nearer and to the side: every
    pixel the wall wins shows the wall's colour alone, though its bilinear taps straddle the
    square's edge."""
    K = intrinsics(1, S)
    depth = torch.full((1, 1, S, S), 2 * Z)
    depth[..., : S // 2] = Z
    rgb = torch.full((1, 3, S, S), 0.2)
    rgb[..., : S // 2] = 0.9
    mem = _memory()
    mem.insert(rgb, depth, torch.eye(4)[None], K)
    out = mem.render(_moved(0.3, (0.05, 0.0))[None], K, S, S)
    wall = (out.mask[0, 0] > 0) & (out.depth[0, 0] > 1.5 * Z)
    square = (out.mask[0, 0] > 0) & (out.depth[0, 0] < 1.5 * Z)
    assert int(wall.sum()) > S and int(square.sum()) > S
    torch.testing.assert_close(out.rgb[0][:, wall], torch.full((3, int(wall.sum())), 0.2))
    torch.testing.assert_close(out.rgb[0][:, square], torch.full((3, int(square.sum())), 0.9))


def test_generated_frames_and_finer_frames_are_not_resampled():
    """A generated frame keeps no image (its samples are shown as stored), and a view farther
    than the observed frame (its pixels finer than the target's) keeps the splat's blend: a
    bilinear read of a finer image would alias."""
    g = torch.Generator().manual_seed(1)
    K = intrinsics(1, S)
    image = torch.rand(1, 3, S, S, generator=g)
    depth = torch.full((1, 1, S, S), Z)
    for c2w, observed in ((_moved(0.7), False), (_moved(-1.5), True)):
        out = {}
        for colour in ("resample", "bilinear"):
            mem = _memory(colour)
            mem.insert(image, depth, torch.eye(4)[None], K, observed=observed)
            out[colour] = mem.render(c2w[None], K, S, S)
        assert float(out["bilinear"].mask.mean()) > 0.2
        assert torch.equal(out["resample"].rgb, out["bilinear"].rgb)


def _saved_state() -> tuple[SpatialMemory, dict]:
    g = torch.Generator().manual_seed(2)
    K = intrinsics(1, S)
    mem = _memory()
    rgb = torch.rand(1, 3, S, S, generator=g)
    mem.insert(rgb, torch.full((1, 1, S, S), Z), torch.eye(4)[None], K)
    return mem, mem.state_dict()


def test_the_frames_survive_a_save(tmp_path):
    mem, _ = _saved_state()
    K = intrinsics(1, S)
    c2w = _moved(0.5, (0.02, 0.01))[None]
    again = SpatialMemory.load(mem.save(tmp_path / "m.safetensors"))
    assert len(again._frames) == 1 and len(again._free) == 1
    assert torch.equal(again.render(c2w, K, S, S).rgb, mem.render(c2w, K, S, S).rgb)


def _truncate(state, key):
    state[key] = state[key][:-1]


def _drop(state, key):
    del state[key]


def _poison(state, key):
    state[key] = state[key].clone()
    state[key][0] = float("nan")


@pytest.mark.parametrize(
    ("key", "spoil", "message"),
    [
        ("observed_rgb", _truncate, "observed_rgb: .* values for sizes needing"),
        ("free_space_depth", _truncate, "free_space_depth: .* values for sizes needing"),
        ("observed_c2w", _drop, "observed-frame entries .* without \\['observed_c2w'\\]"),
        ("observed_depth", _poison, "observed_depth: non-finite"),
        ("free_space_K", _poison, "free_space_K: non-finite"),
    ],
)
def test_a_bad_state_is_named_and_changes_nothing(key, spoil, message):
    mem, state = _saved_state()
    spoil(state, key)
    before = mem.state_dict()
    with pytest.raises(ValueError, match=message):
        mem.load_state_dict(state)
    after = mem.state_dict()
    assert set(after) == set(before)
    for k, v in before.items():
        assert torch.equal(after[k], v) if isinstance(v, torch.Tensor) else after[k] == v


def test_a_view_the_memory_holds_gets_its_own_frame_back():
    """Back at the camera of an observed frame, each pixel's own sample wins on its centre and
    keeps its colour, though a later frame of the same plane as fine (its samples between
    these, other colours) would be the one resampled there."""
    g = torch.Generator().manual_seed(3)
    K = intrinsics(1, S)
    a, b = torch.rand(1, 3, S, S, generator=g), torch.rand(1, 3, S, S, generator=g)
    half = (0.5 * Z / float(K[0, 0, 0]), 0.5 * Z / float(K[0, 1, 1]))
    mem = _memory()
    mem.insert(a, torch.full((1, 1, S, S), Z), torch.eye(4)[None], K)
    mem.insert(b, torch.full((1, 1, S, S), Z), _moved(0.0, half)[None], K)
    out = mem.render(torch.eye(4)[None], K, S, S)
    assert torch.equal(out.rgb, a)


def test_a_floor_walked_over_comes_back_whole_with_the_gaps_between_samples_filled():
    """A floor seen ahead (y = 1 m below the camera, z-depth 1 / slope of the row's ray), then
    walked 1 m towards: its samples are discs of their footprint, which a floor seen nearer
    than it was observed, and at a slant, leaves gaps between. ``fill_observed_px`` gives the
    gaps the observed surface: every pixel whose ray meets the observed floor comes back, at
    the ray's analytic depth, with the observed image read there (``grid_sample`` bicubic).
    Without it (the test's control) a tenth of them are empty."""
    n = 32
    K = intrinsics(1, n)
    fx, cx = float(K[0, 0, 0]), float(K[0, 0, 2])
    slope = (torch.arange(n, dtype=torch.float64) + 0.5 - cx) / fx  # the ray's y and x per z
    floor = slope > 0.05  # rows below the horizon, short of 20 m
    observed_depth = torch.where(floor, 1 / slope, 0.0)[:, None].expand(n, n)
    image = torch.rand(3, n, n, generator=torch.Generator().manual_seed(5))
    c2w = torch.eye(4)
    c2w[2, 3] = 1.0
    t = torch.where(floor, 1 / slope, 0.0)[:, None].expand(n, n)  # the same rows, from 1 m on
    zw, xw = 1.0 + t, t * slope[None, :]
    ux, uy = fx * xw / zw + cx, fx * 1.0 / zw + cx
    grid = torch.stack([ux / n * 2 - 1, uy / n * 2 - 1], -1).float()[None]
    want = F.grid_sample(image[None], grid, mode="bicubic", align_corners=False)[0].clamp(0, 1)
    # the observed frame's sixteen taps there lie on the floor
    inner = floor[:, None] & (ux >= 1.5) & (ux < n - 1.5) & (uy >= cx + 0.05 * fx + 2)
    inner &= uy < n - 1.5

    def render(px: int):
        cfg = MemoryConfig(render_colour="resample", max_splat_radius_px=4, fill_observed_px=px)
        mem = SpatialMemory(cfg)
        mem.insert(image[None], observed_depth[None, None].float(), torch.eye(4)[None], K)
        return mem.render(c2w[None], K, n, n)

    out = render(4)
    shown = out.mask[0, 0] > 0
    assert bool(shown[inner].all())
    assert float(out.observed[0, 0][inner].min()) == 1.0
    depth_err = (out.depth[0, 0].double() - t).abs() / t
    # exact but where a sample lands within render.KEEP_PX of the pixel centre and keeps it
    # (a tenth of the pixels): on a floor this oblique, depth changes by a fifth across a pixel
    assert float(depth_err[inner].quantile(0.8)) < 0.001 and float(depth_err[inner].max()) < 0.08
    colour_err = (out.rgb[0] - want).abs().amax(0)[inner]
    assert float(colour_err.quantile(0.8)) < 0.001
    assert float(out.mask[0, 0][~floor].max()) == 0.0  # nothing where nothing was observed
    control = render(0).mask[0, 0] > 0
    assert float(control[inner].float().mean()) < 0.9


def _floor_and_box(c2w: torch.Tensor, K: torch.Tensor, n: int):
    """A floor 1 m below the origin and a box's face (z = 2.5, |x| <= 0.4, 0.2 <= y <= 1)
    standing on it, ray-cast from cameras ``c2w (V, 4, 4)`` that look down +z: (z-depth ``(V,
    n, n)``, 0 where a ray meets nothing short of 20 m; the face's pixels ``(V, n, n)``)."""
    o, d = camera_rays(c2w.double(), K.double(), n, n)
    floor = torch.where(d[..., 1] > 0, (1 - o[..., 1]) / d[..., 1], math.inf)
    face = (2.5 - o[..., 2]) / d[..., 2]
    x, y = o[..., 0] + face * d[..., 0], o[..., 1] + face * d[..., 1]
    face = torch.where((x.abs() <= 0.4) & (y >= 0.2) & (y <= 1) & (face > 0), face, math.inf)
    depth = torch.minimum(floor, face)
    return torch.where(depth < 20, depth, 0.0), face < floor


def test_filling_gaps_never_shows_what_the_observed_frame_did_not_see():
    """A floor with a box standing on it, walked 1.2 m towards and 0.4 m to the side: the
    floor's samples leave gaps, and the floor the box hid from the observed frame comes into
    view beside it. ``fill_observed_px`` fills the gaps (each at the scene's analytic depth,
    but within a pixel of the box's outline, where the splats' edge is not the true one) and
    never that hidden floor, though the filled floor around it reaches it."""
    n = 32
    K = intrinsics(1, n)
    depth, _ = _floor_and_box(torch.eye(4)[None], K, n)
    rgb = torch.rand(1, 3, n, n, generator=torch.Generator().manual_seed(6))
    c2w = _moved(1.2, (0.4, 0.0))
    true_depth, on_face = _floor_and_box(c2w[None], K, n)
    # the target's floor points the box hid from the observed camera (the origin)
    o, d = camera_rays(c2w[None].double(), K.double(), n, n)
    at = o + d * true_depth[..., None]
    t = 2.5 / at[..., 2]  # where the ray from the origin to the point crosses the face's plane
    hidden = (at[..., 0] * t).abs().le(0.4) & (at[..., 1] * t).ge(0.2) & (true_depth > 2.5)
    hidden, on_face, true_depth = hidden[0], on_face[0], true_depth[0]
    assert int(hidden.sum()) > 10  # a strip narrower than the fill's reach
    shown = {}
    for px in (0, 4):
        cfg = MemoryConfig(render_colour="resample", max_splat_radius_px=4, fill_observed_px=px)
        mem = SpatialMemory(cfg)
        mem.insert(rgb, depth[:, None].float(), torch.eye(4)[None], K)
        out = mem.render(c2w[None], K, n, n)
        shown[px] = out.mask[0, 0] > 0
    filled = shown[4] & ~shown[0]
    assert int(filled.sum()) > 20  # the gaps between the floor's samples
    assert not bool((filled & hidden).any())
    rel = (out.depth[0, 0].double() - true_depth).abs() / true_depth
    face = on_face.double()[None, None]
    outline = (F.max_pool2d(face, 3, 1, 1) != -F.max_pool2d(-face, 3, 1, 1))[0, 0]
    assert float(rel[filled & ~outline].max()) < 0.01


def test_spread_depth_is_the_nearest_known_depth_of_the_smallest_window_that_holds_one():
    """Depths known but in a few gaps and a wide hole, a near square on a far wall: each
    unknown pixel within ``px`` of a known one gets the nearest known depth of the smallest
    square window around it that holds any (the front surface beside an outline), checked
    against plain loops; farther ones and the known ones get 0."""
    from worldmem.memory.observed_frames import spread_depth

    n, px = 16, 2
    g = torch.Generator().manual_seed(7)
    depth = 3.0 + 0.1 * torch.rand(n, n, generator=g)  # a far wall, not quite flat
    depth[4:9, 3:8] = 1.0 + 0.1 * torch.rand(5, 5, generator=g)  # a near square
    known = torch.rand(n, n, generator=g) > 0.3  # gaps
    known[9:16, 9:16] = False  # and a hole wider than the reach
    got = spread_depth(depth[None], known[None], px)[0]
    want = torch.zeros(n, n)
    for y in range(n):
        for x in range(n):
            if known[y, x]:
                continue
            for r in range(1, px + 1):
                win = (slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1))
                if known[win].any():
                    want[y, x] = depth[win][known[win]].min()
                    break
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    assert int((want > 0).sum()) > 20 and int(((want == 0) & ~known).sum()) > 0
