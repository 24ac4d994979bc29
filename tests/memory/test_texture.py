"""The observed frames' texture laid on generated surfaces (memory/texture.py), checked against
brute force, a second tiling, and an analytic box room whose faces are checkered in their own
colours."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from memory_scenes import (  # noqa: F401 (one_thread: autouse fixture)
    FACE_COLOURS,
    box_room,
    camera_rays,
    intrinsics,
    one_thread,
    yaw_camera,
)
from scipy.ndimage import gaussian_filter

import worldmem.memory.texture as texture_module
from worldmem.data.synthetic import make_world
from worldmem.eval.baselines import backward_warp
from worldmem.eval.walk import walk_path
from worldmem.geometry import project_points, unproject_depth
from worldmem.memory import SpatialMemory
from worldmem.memory.fill import gaussian_blur
from worldmem.memory.texture import (
    BAND_SIGMA_PX,
    CEILING,
    FLOOR,
    LOD_LEVELS,
    MIN_PATCH_PX,
    WALL,
    ExemplarTexture,
    _Patch,
    across_creases,
    bilinear_keeps,
    footprints,
    horizontal_plane,
    in_light,
    largest_clean_square,
    mirror_tile,
    observed_surfaces,
    periodic_blur,
    surface_footprint,
    surface_kinds,
    turn_about_y,
    wall_planes,
    wall_yaw,
    without_cracks,
    without_gradient,
    wrap_sample,
)

S = 64
HALF = (3.0, 0.8, 3.0)  # the room's half extents: the floor at y = +0.8, the ceiling at -0.8


def _room(c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """rgb, depth and world points of one view of the box room."""
    K = intrinsics(1, S)
    rgb, depth = box_room(c2w[None], K, S, S, half=HALF)
    return rgb[0], depth[0, 0], unproject_depth(depth[:, 0], c2w[None], K)


def _face_kinds(points: torch.Tensor) -> torch.Tensor:
    """The true kind of surface at each point of the room, and -1 within a pixel of a fold."""
    p = points[0].double()
    kind = torch.full(p.shape[:-1], WALL, dtype=torch.long)
    kind[(p[..., 1] - HALF[1]).abs() < 1e-4] = FLOOR
    kind[(p[..., 1] + HALF[1]).abs() < 1e-4] = CEILING
    out = kind.clone()
    for dr, dc in itertools.product((-1, 0, 1), repeat=2):  # a pixel beside another kind
        shifted = torch.roll(kind, (dr, dc), (0, 1))
        out[shifted != kind] = -1
    out[[0, -1]] = -1
    out[:, [0, -1]] = -1
    return out


def test_largest_clean_square_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    for trial in range(30):
        H, W = (int(v) for v in torch.randint(1, 14, (2,), generator=g))
        ok = torch.rand(H, W, generator=g) < (0.6 + 0.4 * trial / 30)
        best = (0, 0, 0)
        for k in range(1, min(H, W) + 1):  # the first corner in row-major order of each side
            for r, c in itertools.product(range(H - k + 1), range(W - k + 1)):
                if bool(ok[r : r + k, c : c + k].all()):
                    best = (r, c, k)
                    break
        assert largest_clean_square(ok) == best
    assert largest_clean_square(torch.zeros(5, 7, dtype=torch.bool)) == (0, 0, 0)


def test_without_cracks_keeps_wide_holes_and_drops_cracks_and_pinholes():
    holes = torch.zeros(1, 1, 12, 16)
    holes[..., 2:7, 3:9] = 1  # a hole 5 x 6: kept whole
    holes[..., 9, 1] = 1  # a pinhole
    holes[..., :, 12:14] = 1  # a crack 2 px wide, top to bottom
    holes[..., 9:12, 0:3] = 1  # a 3 x 3 hole in the corner: kept
    holes[..., 10, 5:9] = 1  # a line 1 px wide
    out = without_cracks(holes)
    want = torch.zeros_like(holes)
    want[..., 2:7, 3:9] = 1
    want[..., 9:12, 0:3] = 1
    assert torch.equal(out, want)
    assert torch.equal(without_cracks(torch.ones(2, 1, 5, 5)), torch.ones(2, 1, 5, 5))


def _mirror_sample(patch, u, v):
    return wrap_sample(mirror_tile(patch), u, v)


def test_the_mirror_tile_repeated_is_the_patch_in_mirror_image_read_bilinearly():
    g = torch.Generator().manual_seed(1)
    patch = torch.rand(2, 4, 5, generator=g, dtype=torch.float64)
    # a second tiling: the patch and its mirror without repeating the border rows/columns
    # (np.pad's "reflect"), one period of 2(n - 1), repeated
    tile = np.pad(patch.numpy(), ((0, 0), (0, 2), (0, 3)), mode="reflect")  # (2, 6, 8)
    big = np.tile(tile, (1, 4, 4))
    np.testing.assert_array_equal(mirror_tile(patch).numpy(), tile)
    ys, xs = np.meshgrid(np.arange(-12, 12), np.arange(-16, 16), indexing="ij")
    got = _mirror_sample(
        patch,
        torch.tensor(xs.ravel(), dtype=torch.float64),
        torch.tensor(ys.ravel(), dtype=torch.float64),
    )
    want = big[:, ys.ravel() % 6, xs.ravel() % 8].T
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12)
    # a patch one pixel high is that row everywhere down; one pixel in all is that pixel
    row = torch.rand(2, 1, 5, generator=g, dtype=torch.float64)
    u, v = torch.tensor([0.0, 2.5, -7.25]), torch.tensor([0.0, 3.3, -11.0])
    want = _mirror_sample(row[:, 0][:, None].expand(2, 5, 5).contiguous(), u, torch.zeros(3))
    torch.testing.assert_close(_mirror_sample(row, u, v), want)
    torch.testing.assert_close(_mirror_sample(row[..., :1], u, v), row[:, 0, :1].T.expand(3, 2))
    # between pixels: the bilinear mix of the four around it
    u, v = torch.tensor([1.25, -2.5, 7.75]), torch.tensor([0.5, 2.25, -0.75])
    got = _mirror_sample(patch, u, v)
    for i in range(3):
        x0, y0 = math.floor(u[i]), math.floor(v[i])
        fx, fy = float(u[i]) - x0, float(v[i]) - y0
        at = lambda y, x: big[:, y % 6, x % 8]  # noqa: E731
        want = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) + fy * (
            (1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)
        )
        np.testing.assert_allclose(got[i].numpy(), want, atol=1e-6)


def test_periodic_blur_matches_a_wrapped_gaussian_filter():
    g = torch.Generator().manual_seed(3)
    tile = torch.rand(3, 18, 14, generator=g, dtype=torch.float64)
    for sigma in (0.5, 1.5, 4.0):
        want = gaussian_filter(tile.numpy(), (0, sigma, sigma), mode="wrap", truncate=8.0)
        np.testing.assert_allclose(periodic_blur(tile, sigma).numpy(), want, atol=2e-4)
    torch.testing.assert_close(periodic_blur(tile, 0.0), tile)


def test_bilinear_keeps_what_random_sub_pixel_reads_measure():
    """The amplitude bilinear reads keep, against reads at 200k random points: 2/3 of white
    noise, nearly all of a smooth tile, and between them for a blurred one."""
    g = torch.Generator().manual_seed(4)
    white = torch.randn(3, 16, 16, generator=g, dtype=torch.float64)
    u = torch.rand(200_000, generator=g, dtype=torch.float64) * 16
    v = torch.rand(200_000, generator=g, dtype=torch.float64) * 16
    for tile in (white, periodic_blur(white, 1.0), periodic_blur(white, 3.0)):
        tile = tile - tile.mean(dim=(1, 2), keepdim=True)
        measured = math.sqrt(float(wrap_sample(tile, u, v).pow(2).mean() / tile.pow(2).mean()))
        assert bilinear_keeps(tile) == pytest.approx(measured, rel=0.02)
    assert bilinear_keeps(white - white.mean()) == pytest.approx(2 / 3, abs=0.05)
    assert bilinear_keeps(periodic_blur(white, 3.0)) > 0.97


def test_footprints_of_linear_coordinates_and_beside_an_edge():
    """Coordinates linear in the pixel (u = 3 across + 2 down, v = 0.5 across + 4 down) span
    the shorter of their steps, |(3, 0.5)| across, and reach (2, 4) along the longer, down; a
    pixel beside a jump takes its step from its own side, a lone outlier spans its long
    steps, a pixel with a neighbour along one axis only reaches no farther along the other,
    and one with no neighbour inside spans 1."""
    H, W = 6, 8
    y, x = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    u, v = (3 * x + 2 * y)[None], (0.5 * x + 4 * y)[None]
    inside = torch.ones(1, H, W, dtype=torch.bool)
    short, long = footprints(u, v, inside)
    torch.testing.assert_close(short, torch.full_like(short, math.hypot(3, 0.5)))
    torch.testing.assert_close(
        long, torch.tensor([2.0, 4.0], dtype=torch.float64).expand(1, H, W, 2)
    )
    u[..., 4:] += 100.0  # a jump between columns 3 and 4
    inside[0, 0, 0] = False
    short, long = footprints(u, v, inside)
    assert float(short[0, 2, 3]) == pytest.approx(math.hypot(3, 0.5))  # beside the jump
    assert float(short[0, 2, 4]) == pytest.approx(math.hypot(3, 0.5))
    assert float(short[0, 0, 1]) == pytest.approx(math.hypot(3, 0.5))  # beside the pixel left out
    u2, v2 = u.clone(), v.clone()
    u2[0, 5, 7] = v2[0, 5, 7] = 1e6  # a lone outlier: all its steps are long
    assert float(footprints(u2, v2, inside)[0][0, 5, 7]) > 1e5
    row = torch.zeros(1, H, W, dtype=torch.bool)
    row[0, 3, 2:5] = True  # neighbours across only
    short, long = footprints(u, v, row)
    assert float(short[0, 3, 3]) == pytest.approx(math.hypot(3, 0.5))
    assert not long[0, 3, 3].any()
    lone = torch.zeros(1, H, W, dtype=torch.bool)
    lone[0, 3, 3] = True
    short, long = footprints(u, v, lone)
    assert float(short[0, 3, 3]) == 1.0 and not long[0, 3, 3].any()


def _floor_ahead(size: int, pitch_deg: float, height_m: float):
    """A camera ``height_m`` above the floor at y = +1, looking along +z pitched down by
    ``pitch_deg``: its c2w, K and point map (0 above the horizon)."""
    a = math.radians(pitch_deg)
    c2w = torch.eye(4, dtype=torch.float64)
    # camera axes x right, y down, z forward; pitched down: forward tips towards +y
    c2w[:3, 1] = torch.tensor([0.0, math.cos(a), -math.sin(a)], dtype=torch.float64)
    c2w[:3, 2] = torch.tensor([0.0, math.sin(a), math.cos(a)], dtype=torch.float64)
    c2w[1, 3] = 1.0 - height_m
    K = intrinsics(1, size)
    z, _ = _floor_hits(c2w, K, size, 1)  # z-depth where each pixel's ray meets the floor
    return c2w.float(), K, unproject_depth(z[None].float(), c2w[None].float(), K)


def _floor_hits(c2w, K, size: int, sub: int):
    """Rays of ``sub`` x ``sub`` samples in each pixel (``camera_rays`` at ``sub`` times the
    resolution) meeting the floor at y = +1 -> their z-depth ``(size * sub, size * sub)``
    (0 above the horizon) and the points they meet it at ``(size * sub, size * sub, 3)``."""
    Ks = K.double().clone()
    Ks[:, :2] *= sub
    o, d = camera_rays(c2w[None].double(), Ks, size * sub, size * sub)
    o, d = o[0], d[0]
    t = (1.0 - o[..., 1]) / d[..., 1]  # the ray parameter is the z-depth
    return torch.where(t > 0, t, 0.0), o + t[..., None] * d


def test_a_floor_seen_obliquely_is_averaged_along_its_slant_not_aliased(monkeypatch):
    """A patch of white noise on a floor seen from 1 m up, pitched down 12 degrees: towards the
    horizon each pixel reaches many patch pixels along the floor and few across it. The truth
    is that floor rendered with 16 x 16 samples per pixel averaged; its band (less its blur of
    ``BAND_SIGMA_PX``) is what a frame of it shows. Where pixels reach more than twice as far
    along as across, the laid band follows the truth's pixel by pixel (correlation above
    0.85; 0.91 measured), where one read at the shorter extent alone (the taps left out, as
    the band was read before) aliases: correlation 0.68 and more than twice the energy."""
    g = torch.Generator().manual_seed(3)
    rgb = torch.rand(3, 16, 16, generator=g)
    px_per_m = 12.0
    size = 64
    c2w, K, points = _floor_ahead(size, 12.0, 1.0)
    truth, on, hit = _render_floor(rgb, px_per_m, c2w, K, size)

    texture = ExemplarTexture({FLOOR: _Patch(rgb, _scale(px_per_m))}, {FLOOR: 1.0})
    laid = texture.band(points, c2w[None])[0].double()

    # how far each pixel reaches along the floor against across it, from its ray's hits
    zf = hit[..., 2].reshape(size, 16, size, 16)
    along = (zf[:, -1] - zf[:, 0]).mean(-1).abs() * px_per_m  # (size, size) patch pixels down
    xf = hit[..., 0].reshape(size, 16, size, 16)
    across = (xf[..., -1] - xf[..., 0]).mean(1) * px_per_m
    far = on & (along > 2 * across) & (along < 40)
    far[:, :4] = far[:, -4:] = False  # away from the blur's reflected border
    far[-4:] = False
    assert int(far.sum()) > 300

    def agreement(band):
        a, b = band[:, far].flatten(), truth[:, far].flatten()
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1]), float(
            a.pow(2).mean() / b.pow(2).mean()
        )

    corr, energy = agreement(laid)
    assert corr > 0.85

    def no_taps(u, v, inside):
        short, long = footprints(u, v, inside)
        return short, torch.zeros_like(long)

    monkeypatch.setattr(texture_module, "footprints", no_taps)
    corr_short, energy_short = agreement(texture.band(points, c2w[None])[0].double())
    assert corr_short < 0.75 and energy_short > 2 * energy


def test_the_floor_is_the_lowest_plane_facing_up_that_holds_a_fifth_of_it():
    """Heights (y down) of pixels facing up: a floor at 1.6 m, twice as many on a crate's top
    0.4 m above it, a few stray ones below the floor, each with 2 cm of noise. The floor is
    the lowest plane holding at least a fifth of them (their median is on the crate); a
    ceiling, the highest, not a lamp's underside hanging lower; one plane alone is itself."""
    g = torch.Generator().manual_seed(0)

    def plane(y: float, n: int) -> torch.Tensor:
        return y + 0.02 * torch.randn(n, generator=g, dtype=torch.float64)

    up = torch.cat([plane(1.6, 300), plane(1.2, 600), plane(1.95, 12)])
    assert abs(float(up.median()) - 1.2) < 0.05
    assert horizontal_plane(up, FLOOR) == pytest.approx(1.6, abs=0.01)
    down = torch.cat([plane(-1.2, 300), plane(-0.5, 500)])
    assert horizontal_plane(down, CEILING) == pytest.approx(-1.2, abs=0.01)
    assert horizontal_plane(plane(1.6, 400), FLOOR) == pytest.approx(1.6, abs=0.01)
    assert horizontal_plane(torch.zeros(0), FLOOR) is None


def test_surface_kinds_of_the_box_room():
    """Floor, ceiling and walls of a room seen from a tilted camera, as the ray cast says."""
    c2w = yaw_camera((0.4, 0.2, -0.5), 30.0)
    tilt = math.radians(-6)  # looking down a little: floor, walls and ceiling all in view
    pitch = torch.eye(4)
    pitch[1:3, 1:3] = torch.tensor(
        [[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]]
    )
    c2w = c2w @ pitch
    _, _, points = _room(c2w)
    kind, normal = surface_kinds(points, c2w[None, 1, 3])
    truth = _face_kinds(points)
    inside = truth >= 0
    for k in (CEILING, WALL, FLOOR):
        assert int((truth == k).sum()) > 50
    assert torch.equal(kind[0][inside], truth[inside])
    assert float(normal.norm(dim=-1).sub(1).abs().max()) < 1e-5


def _texture_of(c2w):
    rgb, depth, _ = _room(c2w)
    return ExemplarTexture.from_frames([(c2w, intrinsics(1, S)[0], rgb, depth)])


def test_each_surface_takes_its_own_texture_where_the_frame_never_looked():
    """Observed: the view along +z from the back of the room. Laid on a view the other way:
    the floor's band is the floor's checker (its rgb in the floor's own colour ratios) and
    the ceiling's the ceiling's."""
    seen = yaw_camera((0.0, 0.0, -2.5), 0.0)
    texture = _texture_of(seen)
    assert set(texture.patches) == {CEILING, WALL, FLOOR}
    assert texture.plane_y[FLOOR] == pytest.approx(HALF[1], abs=1e-4)
    assert texture.plane_y[CEILING] == pytest.approx(-HALF[1], abs=1e-4)

    behind = yaw_camera((0.0, 0.0, 2.0), 180.0)
    rgb, _, points = _room(behind)
    band = texture.band(points, behind[None])[0]  # (3, S, S)
    truth = _face_kinds(points)
    for k, colour in ((FLOOR, FACE_COLOURS[3]), (CEILING, FACE_COLOURS[2])):
        b = band.permute(1, 2, 0)[truth == k].double()  # (M, 3)
        strong = b.norm(dim=-1) > 0.02
        assert int(strong.sum()) > 20
        cos = (b[strong] @ colour.double()) / (b[strong].norm(dim=-1) * colour.norm())
        assert float(cos.abs().min()) > 0.99  # the checker of this face's colour

    # per-kind gains scale each face's band alone (against the ray cast's faces): the walls
    # at half, the floor doubled, the ceiling left out
    scaled = texture.band(points, behind[None], {WALL: 0.5, FLOOR: 2.0})[0]
    for k, gain in ((WALL, 0.5), (FLOOR, 2.0), (CEILING, 0.0)):
        at = truth == k
        assert float(band[:, at].abs().max()) > 0.02
        torch.testing.assert_close(scaled[:, at], gain * band[:, at])


def _scale(px_per_m: float) -> torch.Tensor:
    """A patch's map from floor (x, z) metres to its pixels: px_per_m of them a metre."""
    return torch.tensor([[px_per_m, 0.0, 0.0], [0.0, px_per_m, 0.0]], dtype=torch.float64)


def test_a_patch_laid_back_on_the_view_it_came_from_is_that_views_texture():
    """A floor seen obliquely is foreshortened in the frame; its patch is the floor resampled
    square-on. Laid back on the same view, the band where the floor maps inside the patch is
    the frame's own band there (so the patch is laid at its true scale and orientation, not
    squeezed). The frame is sampled at pixel centres, and the laid band averages each pixel's
    reach along the slant (``footprints``), so it is somewhat weaker than the frame's (0.74
    of it measured; 1.0 read at the shorter reach alone)."""
    c2w = yaw_camera((0.3, -0.3, -1.0), 25.0)
    tilt = math.radians(-35)  # looking down at the floor, obliquely
    pitch = torch.eye(4)
    pitch[1:3, 1:3] = torch.tensor(
        [[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]]
    )
    c2w = c2w @ pitch
    rgb, depth, points = _room(c2w)
    texture = ExemplarTexture.from_frames([(c2w, intrinsics(1, S)[0], rgb, depth)], periodic=False)
    patch = texture.patches[FLOOR]
    side = patch.rgb.shape[-1]
    assert side >= MIN_PATCH_PX
    p = points[0].double()
    px = p[..., [0, 2]] @ patch.to_px[:, :2].T + patch.to_px[:, 2]  # (S, S, 2) in the patch
    inner = ((px >= 3) & (px <= side - 4)).all(-1) & (_face_kinds(points) == FLOOR)
    assert int(inner.sum()) > 30
    laid = texture.band(points, c2w[None])[0]
    frame = rgb.double().numpy()
    own = torch.from_numpy(
        frame - gaussian_filter(frame, (0, BAND_SIGMA_PX, BAND_SIGMA_PX), mode="nearest")
    )
    a, b = laid[:, inner].double().flatten(), own[:, inner].flatten()
    assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) > 0.9
    assert 0.6 < float(a.norm() / b.norm()) < 1.25


def _floor_from_above(size: int = 96, height_m: float = 9.0):
    """A camera looking straight down (+y) from ``height_m`` above the floor at y = +1, its K
    and its point map."""
    down = torch.eye(4)
    down[:3, :3] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    down[1, 3] = 1.0 - height_m
    K = intrinsics(1, size)
    return down, K, unproject_depth(torch.full((1, size, size), height_m), down[None], K)


def _render_floor(
    rgb: torch.Tensor, px_per_m: float, c2w: torch.Tensor, K: torch.Tensor, size: int
):
    """The floor at y = +1 covered with ``rgb`` mirror-tiled (``px_per_m`` of its pixels a
    metre), seen from ``c2w``, ``K``, rendered with 16 x 16 samples per pixel averaged (the
    truth a frame shows of it) -> that frame's band ``(3, size, size)``, the pixels all of whose
    samples meet the floor ``(size, size)`` and the samples' points on it (``_floor_hits``)."""
    t, hit = _floor_hits(c2w, K, size, 16)
    colour = _mirror_sample(
        rgb.double(), hit[..., 0].flatten() * px_per_m, hit[..., 2].flatten() * px_per_m
    )
    frame = colour.T.reshape(3, size, 16, size, 16).mean(dim=(2, 4))
    on = (t > 0).reshape(size, 16, size, 16).all(3).all(1)
    return frame - gaussian_blur(frame[None], BAND_SIGMA_PX, padding="reflect")[0], on, hit


def test_a_laid_band_has_the_energy_a_frame_of_its_surface_shows():
    """A patch of white noise laid over a floor seen from above. Magnified (a frame pixel spans
    0.6 patch pixels) the band keeps the energy of the patch's band (its bilinear reads' loss
    made up). Shrunk (5.8 patch pixels a frame pixel) it has the energy of the band of a
    supersampled render of that floor, a small part of the patch's own: the finer texture
    averages out, as it does in a real frame, rather than alias. A pixel given a depth a third
    too far is read at the floor point its ray truly meets (worked out by hand)."""
    g = torch.Generator().manual_seed(2)
    rgb = torch.rand(3, 12, 12, generator=g)
    down, K, points = _floor_from_above()
    tile = mirror_tile(rgb.double()).numpy()
    patch_band = tile - gaussian_filter(tile, (0, BAND_SIGMA_PX, BAND_SIGMA_PX), mode="wrap")
    near = ExemplarTexture({FLOOR: _Patch(rgb, _scale(4.0))}, {FLOOR: 1.0}).band(points, down[None])
    ratio = float(near.pow(2).mean()) / float((patch_band**2).mean())
    assert 0.85 < ratio < 1.15
    far = ExemplarTexture({FLOOR: _Patch(rgb, _scale(40.0))}, {FLOOR: 1.0}).band(points, down[None])
    truth, _, _ = _render_floor(rgb, 40.0, down, K, 96)
    inner = (slice(None), slice(4, -4), slice(4, -4))  # away from the frame's reflected border
    ratio = float(far[0][inner].pow(2).mean() / truth[inner].pow(2).mean())
    assert 0.6 < ratio < 1.6, ratio
    assert float(truth[inner].pow(2).mean()) < 0.2 * float((patch_band**2).mean())

    texture = ExemplarTexture({FLOOR: _Patch(rgb, _scale(4.0))}, {FLOOR: 1.0})
    wrong = unproject_depth(torch.full((1, 96, 96), 12.0), down[None], K)
    f, c = float(K[0, 0, 0]), float(K[0, 0, 2])
    # pixel (row 40, column 50): its centre is 2.5 px right of and 7.5 px above the image's
    # centre, so 9 m down its ray lands 9 * 2.5 / f along x and 9 * 7.5 / f along z
    x, z = 9 * (50.5 - c) / f, 9 * (c - 40.5) / f
    level0 = texture.patches[FLOOR].levels[0].double()
    want = wrap_sample(level0, torch.tensor([x * 4]), torch.tensor([z * 4]))[0]
    got = texture.band(wrong, down[None])[0, :, 40, 50].double()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert len(texture.patches[FLOOR].levels) == LOD_LEVELS


def test_the_band_is_fixed_to_the_world_points_not_to_the_pixels():
    """The band of a point map is that of its pixels rearranged when the map is rearranged
    (mirrored, transposed), and a floor's does not move when its depth is wrong along the
    rays (it is read where each ray meets the floor plane)."""
    texture = _texture_of(yaw_camera((0.0, 0.0, -2.5), 0.0))
    cam = yaw_camera((0.5, -0.2, 0.3), 140.0)
    _, depth, points = _room(cam)
    band = texture.band(points, cam[None])
    assert float(band.abs().mean()) > 0.01
    torch.testing.assert_close(texture.band(points.flip(2), cam[None]), band.flip(3))
    torch.testing.assert_close(
        texture.band(points.transpose(1, 2), cam[None]), band.transpose(2, 3)
    )
    K = intrinsics(1, S)
    wrong = unproject_depth(depth[None] * 1.3, cam[None], K)  # 30% too far everywhere
    floor = _face_kinds(points) == FLOOR
    assert int(floor.sum()) > 100
    moved = texture.band(wrong, cam[None])
    torch.testing.assert_close(moved[0][:, floor], band[0][:, floor], atol=1e-5, rtol=0)
    # without the plane the same wrong depth moves it
    texture.plane_y.clear()
    assert (
        float((texture.band(wrong, cam[None])[0][:, floor] - band[0][:, floor]).abs().mean()) > 0.01
    )


def test_a_frame_without_a_clean_square_of_a_kind_gives_that_kind_no_texture():
    """An observed frame looking straight at a wall (no floor or ceiling in view) gives
    texture to walls only; elsewhere the band is 0."""
    c2w = yaw_camera((0.0, 0.0, 1.5), 0.0)
    K = intrinsics(1, S)
    rgb, depth = box_room(c2w[None], intrinsics(1, S, fov_deg=30.0), S, S, half=HALF)
    texture = ExemplarTexture.from_frames(
        [(c2w, intrinsics(1, S, fov_deg=30.0)[0], rgb[0], depth[0, 0])]
    )
    assert set(texture.patches) == {WALL} and texture.plane_y == {}
    behind = yaw_camera((0.0, 0.0, 0.0), 180.0)
    _, _, points = _room(behind)
    band = texture.band(points, behind[None])[0]
    truth = _face_kinds(points)
    assert float(band[:, (truth == FLOOR) | (truth == CEILING)].abs().max()) == 0.0
    assert float(band[:, truth == WALL].abs().mean()) > 0.01
    assert ExemplarTexture.from_frames([]).band(points, behind[None]).abs().max() == 0
    del K


def test_wall_yaw_finds_the_turn_of_walls_at_right_angles():
    g = torch.Generator().manual_seed(5)
    for deg in (0.0, 20.0, -35.0, 50.0):
        a = math.radians(deg)
        headings = a + torch.tensor([0.0, 0.5, 1.0, 1.5]).repeat(50) * math.pi  # four walls
        headings = headings + 0.05 * torch.randn(200, generator=g, dtype=torch.float64)
        n = torch.stack([headings.cos(), 0.1 * torch.ones(200), headings.sin()], -1)
        want = (deg + 45) % 90 - 45  # the same walls turned by a quarter turn
        got = math.degrees(wall_yaw(n))
        assert got == pytest.approx(want, abs=1.0)
    assert wall_yaw(torch.zeros(0, 3)) == 0.0


def test_the_laid_texture_does_not_depend_on_how_the_world_is_turned():
    """The box room and its cameras turned by 25 degrees about y (the frames are the same):
    the texture finds the turn, and lays the same band on the turned points as on the
    unturned ones."""
    seen = yaw_camera((0.0, 0.0, -2.5), 10.0)
    rgb, depth, _ = _room(seen)
    K = intrinsics(1, S)[0]
    plain = ExemplarTexture.from_frames([(seen, K, rgb, depth)])
    turn = torch.eye(4)
    turn[:3, :3] = turn_about_y(torch.eye(3), math.radians(25)).T  # columns: the turned axes
    turned = ExemplarTexture.from_frames([(turn @ seen, K, rgb, depth)])
    assert math.degrees(turned.yaw - plain.yaw) == pytest.approx(25.0, abs=0.5)
    cam = yaw_camera((0.4, -0.1, 1.0), 150.0)
    _, _, points = _room(cam)
    want = plain.band(points, cam[None])
    got = turned.band(turn_about_y(points, math.radians(25)), (turn @ cam)[None])
    assert float(want.abs().mean()) > 0.01
    torch.testing.assert_close(got, want, atol=2e-3, rtol=0)


def test_without_gradient_removes_the_shading_across_a_patch_and_keeps_its_mean():
    g = torch.Generator().manual_seed(6)
    y, x = torch.meshgrid(
        torch.arange(9, dtype=torch.float64), torch.arange(9, dtype=torch.float64), indexing="ij"
    )
    texture = torch.rand(3, 9, 9, generator=g, dtype=torch.float64)
    shading = torch.stack([0.02 * x, -0.03 * y, 0.01 * (x + y)])
    out = without_gradient(texture + shading)
    want = without_gradient(texture)
    torch.testing.assert_close(out, want + shading.mean(dim=(1, 2), keepdim=True))
    torch.testing.assert_close(out.mean(dim=(1, 2)), (texture + shading).mean(dim=(1, 2)))
    flat = without_gradient(shading)
    torch.testing.assert_close(flat, shading.mean(dim=(1, 2), keepdim=True).expand(3, 9, 9))


def test_in_light_leaves_out_a_shadow_and_keeps_the_lit_texture():
    """A fine texture with a grid of thin dark lines (grout) and a band of shadow (half the
    light) across it: the shadow's pixels are left out, the lit ones kept, the grid's lines
    with them, but for two pixels beside the shadow (its penumbra)."""
    g = torch.Generator().manual_seed(0)
    H = W = 48
    rgb = 0.6 + 0.2 * torch.rand(3, H, W, generator=g)
    rgb[:, ::8] *= 0.5
    rgb[:, :, ::8] *= 0.5
    y, x = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    dist = (x + y - 40).double() / math.sqrt(2)  # signed distance from the band's middle
    shade = dist.abs() < 6
    rgb[:, shade] *= 0.5
    mask = torch.ones(H, W, dtype=torch.bool)
    mask[:, :3] = False  # another surface: not this one's
    kept = in_light(rgb, mask)
    assert not kept[dist.abs() < 5].any()  # a pixel inside the shadow's edge (measured: 1
    # of its 695 pixels kept, on that edge)
    lit = mask & (dist.abs() > 8)
    assert bool(kept[lit].all())
    assert not kept[~mask].any()


def test_the_floor_square_keeps_out_of_a_shadow_across_it():
    """World 100000's out-and-back start frame shows its floor with a pillar's shadow across
    it. Every texel of the floor's square (the mirror-tiled one), put back on the floor and
    projected into the frame, falls on a pixel the frame shows in the light (as bright as the
    same frame rendered without shadows); without ``in_light``, 41% of them lay in the
    shadow."""
    world = make_world(100000)
    c2w = walk_path(world, "out_and_back", 160, 100000)[:1]
    K = intrinsics(1, S)
    rgb, depth = world.render(c2w, K, S, S)
    bright, _ = world.render(c2w, K, S, S, shadows=False)
    shadow = (rgb[0] < 0.9 * bright[0]).any(0)
    assert float(shadow.float().mean()) > 0.02  # measured 0.036: a shadow to keep out of
    texture = ExemplarTexture.from_frames([(c2w[0], K[0], rgb[0], depth[0, 0])], periodic=False)
    patch = texture.patches[FLOOR]
    k = patch.rgb.shape[-1]
    r, c = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    m = patch.to_px
    u = (c.flatten().double() - m[0, 2]) / m[0, 0]
    v = (r.flatten().double() - m[1, 2]) / m[1, 1]
    on_floor = torch.stack([u, torch.full_like(u, texture.plane_y[FLOOR]), v], -1)
    pix, z = project_points(turn_about_y(on_floor, texture.yaw), c2w[0].double(), K[0].double())
    col, row = pix[:, 0].floor().long(), pix[:, 1].floor().long()
    assert bool(((z > 0) & (col >= 0) & (col < S) & (row >= 0) & (row < S)).all())
    assert not shadow[row, col].any()


def test_surface_footprint_is_a_pixels_reach_on_the_plane():
    """A camera 1.5 m above a floor looking level along x: a point d metres ahead on the floor
    (and 1 m to the side) is at z-depth d and range r, seen at cos = 1.5 / r to the normal, so
    one pixel (z / fx across its ray) averages z r / (fx 1.5) along the floor; beyond 1 /
    MIN_COS times the across, that. The same as the synthetic renderer's box filter (its ray
    length times the pixel's angular size, cos(z axis, ray) / fx, over the cosine)."""
    fx, h = 40.0, 1.5
    d = torch.tensor([0.5, 1.0, 3.0, 20.0], dtype=torch.float64)
    p = torch.stack([d, torch.full_like(d, 1.5), torch.ones_like(d)], -1)
    origin = torch.zeros_like(p)
    forward = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64).expand_as(p)
    r = p.norm(dim=-1)
    want = torch.minimum(d * r / (fx * h), 5 * d / fx)
    torch.testing.assert_close(surface_footprint(p, origin, forward, fx, 1.5), want)
    renderer = r * (d / r / fx) / (h / r).clamp_min(0.2)  # t * (cosz / fx) / cos
    torch.testing.assert_close(surface_footprint(p, origin, forward, fx, 1.5), renderer)
    # a wall 1.5 m to the side (x = 1.5) seen from a camera looking along z: the same reach
    wall = p[:, [1, 2, 0]]  # x: the offset, y: across, z: ahead
    along_z = forward[:, [1, 2, 0]]
    torch.testing.assert_close(surface_footprint(wall, origin, along_z, fx, 1.5, axis=0), want)


def _masked_db(x: torch.Tensor, truth: torch.Tensor, on: torch.Tensor) -> float:
    """PSNR (dB) of ``x`` against ``truth`` (both ``(3, H, W)``) over the pixels ``on``."""
    return -10 * math.log10(float(((x - truth) ** 2).mean(0)[on].mean()))


def test_a_floor_seen_nearer_takes_its_patterns_finer_detail_in_its_phase():
    """World 100001's floor is a checker and its ceiling a grid, both found as periods from
    its out-and-back start frame. Walking in, a frame sees them nearer than the start did: the
    start frame read through that frame's true depth (what a memory of the start gives there)
    is the truth averaged over the start's wider footprint; with the texture's detail added,
    it is nearer the truth (floor 15.8 -> 20.5 dB at frame 20, measured; ceiling 28.2 ->
    29.8). At the start camera itself the detail is exactly 0, so is it on the box's top (off
    the floor's plane) and where the start saw another surface; world 100000's brick floor,
    whose bricks each have their own tint, has no period and takes none."""
    world = make_world(100001)
    path = walk_path(world, "out_and_back", 160, 100001)
    K = intrinsics(2, S)
    want = {
        10: (1.0, 0.3),
        20: (3.0, 0.8),
        30: (3.0, 0.8),
    }  # measured 2.0 / 0.9, 4.7 / 1.6, 5.6 / 1.7
    for t, (floor_gain, ceiling_gain) in want.items():
        c2w = path[[0, t]]
        rgb, depth = world.render(c2w, K, S, S)
        texture = ExemplarTexture.from_frames([(c2w[0], K[0], rgb[0], depth[0, 0])])
        assert texture.patches[FLOOR].periodic and texture.patches[CEILING].periodic
        read, valid = backward_warp(rgb[0], depth[0], c2w[0], K[0], depth[1], c2w[1], K[1])
        points = unproject_depth(depth[1:, 0].double(), c2w[1:].double(), K[1:].double())
        detail = texture.detail(points.float(), c2w[1:], K[1:])[0]
        kind, _ = surface_kinds(points, c2w[1:, 1, 3].double())
        for k, gain in ((FLOOR, floor_gain), (CEILING, ceiling_gain)):
            on = valid & (kind[0] == k) & ((points[0, ..., 1] - texture.plane_y[k]).abs() < 0.02)
            assert int(on.sum()) > 300
            with_detail = _masked_db((read + detail).clamp(0, 1), rgb[1], on)
            assert with_detail > _masked_db(read, rgb[1], on) + gain
        off = (kind[0] == FLOOR) & (points[0, ..., 1] < texture.plane_y[FLOOR] - 0.1)
        if t == 20:
            assert int(off.sum()) > 50  # the box's top
        assert not detail[:, off].any()
        # on the floor and ceiling, where the start saw another surface (behind the box) or
        # nothing (out of its frame, by more than a pixel)
        pix, z = project_points(points.reshape(-1, 3), c2w[0].double(), K[0].double())
        col, row = pix[:, 0].floor().long(), pix[:, 1].floor().long()
        far_out = (col < -1) | (col > S) | (row < -1) | (row > S) | (z <= 0)
        there = depth[0, 0][row.clamp(0, S - 1), col.clamp(0, S - 1)].double()
        hidden = (there - z).abs() > 0.2 * z
        planes = torch.tensor([texture.plane_y[FLOOR], texture.plane_y[CEILING]])
        on_plane = (points[0, ..., 1, None] - planes.double()).abs().amin(-1) < 0.01
        unseen = (far_out | hidden).reshape(S, S) & on_plane
        assert int(unseen.sum()) >= 10  # measured 10, 12, 98
        assert not detail[:, unseen].any()
        start = unproject_depth(depth[:1, 0], c2w[:1], K[:1])
        assert not texture.detail(start, c2w[:1], K[:1]).any()
    world = make_world(100000)
    c2w = walk_path(world, "out_and_back", 160, 100000)[[0, 20]]
    rgb, depth = world.render(c2w, K, S, S)
    texture = ExemplarTexture.from_frames([(c2w[0], K[0], rgb[0], depth[0, 0])])
    assert not texture.patches[FLOOR].periodic and texture.patches[CEILING].periodic
    points = unproject_depth(depth[1:, 0], c2w[1:], K[1:])
    kind, _ = surface_kinds(points.double(), c2w[1:, 1, 3].double())
    detail = texture.detail(points, c2w[1:], K[1:])[0]
    assert not detail[:, kind[0] == FLOOR].any() and detail[:, kind[0] == CEILING].any()


def _wall_start(seed: int, frame: int):
    """World ``seed``'s out-and-back walk at frames 0 and ``frame``: the true rgb, depth,
    cameras, K and the texture of its start frame."""
    world = make_world(seed)
    c2w = walk_path(world, "out_and_back", 160, seed)[[0, frame]]
    K = intrinsics(2, S)
    rgb, depth = world.render(c2w, K, S, S)
    start = [(c2w[0], K[0], rgb[0], depth[0, 0])]
    return world, rgb, depth, c2w, K, start, ExemplarTexture.from_frames(start)


def test_wall_planes_are_the_walls_the_frames_show():
    """World 100013's start frame looks down a corridor: the blue brick wall at its x-minimum
    (x = -1.515) is found within 3 cm (the walls' axes are turned by the yaw estimated from
    normals, half a degree off here) and its running bond's period, the brick's length and two
    courses (0.377 m, 0.317 m), within 3%. World 100001's walls are paint: their planes are
    found and no pattern."""
    world, _, _, _, _, start, texture = _wall_start(100013, 10)
    planes = wall_planes(start, observed_surfaces(start)[0])
    x_min = float(world.lo[0])
    assert any(axis == 0 and abs(offset - x_min) < 0.03 for axis, offset in planes)
    (axis, offset, patch), *others = [w for w in texture.walls if w[0] == 0]
    assert abs(offset - x_min) < 0.03 and not others
    brick = world.faces["x-"].scale_m
    assert patch.periodic
    for got, want in zip(patch.period, (brick, 0.84 * brick)):
        assert abs(got / want - 1) < 0.03
    world, _, _, _, _, start, texture = _wall_start(100001, 10)
    assert len(wall_planes(start, observed_surfaces(start)[0])) >= 2
    assert {world.faces[f].texture for f in ("x-", "x+", "z-", "z+")} == {"plain"}
    assert texture.walls == []


def test_a_wall_seen_nearer_takes_its_patterns_finer_detail_in_its_phase():
    """Walking down world 100013's corridor, its brick wall comes nearer than the start saw
    it: the start frame read through the true depth is the wall averaged over the start's
    wider footprint; with the detail it is nearer the truth (23.5 -> 25.9 dB at frame 20,
    measured). Exactly 0 at the start camera itself, and off the walls' planes."""
    for t, gain in ((10, 0.8), (20, 1.5)):  # measured 1.27, 2.41
        _, rgb, depth, c2w, K, _, texture = _wall_start(100013, t)
        (axis, offset, _), *_ = texture.walls
        read, valid = backward_warp(rgb[0], depth[0], c2w[0], K[0], depth[1], c2w[1], K[1])
        points = unproject_depth(depth[1:, 0].double(), c2w[1:].double(), K[1:].double())
        detail = texture.detail(points.float(), c2w[1:], K[1:])[0]
        turned = turn_about_y(points[0], -texture.yaw)
        on = valid & ((turned[..., axis] - offset).abs() < 0.02)
        assert int(on.sum()) > 1000
        assert (
            _masked_db((read + detail).clamp(0, 1), rgb[1], on)
            > _masked_db(read, rgb[1], on) + gain
        )
        kind, _ = surface_kinds(points, c2w[1:, 1, 3].double())
        off = (kind[0] == WALL).clone()
        for a, o, _ in texture.walls:
            off &= (turned[..., a] - o).abs() > 0.3
        assert int(off.sum()) > 50  # the far wall and the box's sides
        assert not detail[:, off].any()
        start = unproject_depth(depth[:1, 0], c2w[:1], K[:1])
        assert not texture.detail(start, c2w[:1], K[:1]).any()


def test_across_creases_takes_a_crease_pixels_width_from_its_neighbours_and_keeps_inf():
    """A surface's widths rising smoothly (5% a pixel) are kept; a crease's line, three times
    its neighbours', takes the finest of its 3x3 neighbourhood; inf (no observed sample) stays
    inf and counts for nothing."""
    shown = (0.1 * 1.05 ** torch.arange(6.0)).expand(1, 5, 6).clone()
    want = shown.clone()
    shown[0, 2, :4] *= 3  # a crease's row
    want[0, 2, :4] = shown[0, 1, :4] / 1.05  # the finest neighbour: up and to the left
    want[0, 2, 0] = shown[0, 1, 0]
    shown[0, :, 4:] = want[0, :, 4:] = math.inf  # generated samples or none
    torch.testing.assert_close(across_creases(shown), want)
    alone = torch.full((1, 3, 3), math.inf)
    alone[0, 1, 1] = 0.3  # no finite neighbour: its own width
    torch.testing.assert_close(across_creases(alone), alone)


def test_a_memory_render_at_the_camera_that_observed_it_takes_no_detail():
    """At the very camera whose frame the spatial memory holds, every sample is shown at the
    width it was observed at: there is no finer detail to add, also when that frame is no
    longer among the texture's views and only the memory's widths say how it was seen. Those
    come from normals estimated by central differences, which straddle two surfaces at a
    crease or an outline: taken as they are, world 100005's start frame was given detail up to
    0.21 at its own camera (74 pixels above one 8-bit level), world 100012's up to 0.17 (157
    pixels), world 100001's up to 0.034. Through ``across_creases``: 0.034, 0.015 and 0
    respectively (measured). Twenty frames on, nearer, the detail is still given."""
    K = intrinsics(2, S)
    for seed, most in ((100001, 0.004), (100005, 0.05), (100012, 0.03)):
        world = make_world(seed)
        c2w = walk_path(world, "out_and_back", 160, seed)[[0, 20]]
        rgb, depth = world.render(c2w, K, S, S)
        memory = SpatialMemory()
        memory.insert(rgb[:1], depth[:1], c2w[:1], K[:1])
        texture = ExemplarTexture.from_frames([(c2w[0], K[0], rgb[0], depth[0, 0])])
        texture.views = []  # the start frame left the views: the memory's widths alone
        start = unproject_depth(depth[:1, 0], c2w[:1], K[:1])
        shown = memory.shown_quality(c2w[:1], K[:1], S, S)
        assert bool(shown.isfinite().all())
        assert float(texture.detail(start, c2w[:1], K[:1], shown).abs().max()) < most
        nearer = unproject_depth(depth[1:, 0], c2w[1:], K[1:])
        shown = memory.shown_quality(c2w[1:], K[1:], S, S)
        assert int((texture.detail(nearer, c2w[1:], K[1:], shown).abs() > 1 / 255).sum()) > 300


def test_where_the_room_shows_a_floor_its_band_is_read_on_the_floor_whatever_the_depth():
    """Given the kinds a room shows, a pixel the room calls floor takes the floor's band read
    where its ray meets the floor plane, as if its depth put it on that plane (to 1e-4):
    world 100001's start view, its rays that go down called floor, with their true points
    (the box, the walls' feet) and with the points on the floor plane; a pixel the room calls
    wall whose normals say otherwise takes none."""
    _, rgb, depth, c2w, K, _, texture = _wall_start(100001, 10)
    points = unproject_depth(depth[:1, 0].double(), c2w[:1].double(), K[:1].double())
    origin = c2w[0, :3, 3].double()
    ray = points[0] - origin
    down = ray[..., 1] > 0.05 * ray.norm(dim=-1)  # y points down
    expected = torch.where(down, FLOOR, WALL)[None]
    kind, _ = surface_kinds(turn_about_y(points, -texture.yaw), c2w[:1, 1, 3].double())
    assert int((down & (kind[0] != FLOOR)).sum()) > 100  # the box and the walls below eye level
    y = texture.plane_y[FLOOR]
    on_floor = origin + ray * ((y - origin[1]) / ray[..., 1].clamp_min(1e-9))[..., None]
    on_floor = torch.where(down[..., None], on_floor, points[0])[None]
    got = texture.band(points.float(), c2w[:1], None, expected)
    want = texture.band(on_floor.float(), c2w[:1], None, expected)
    torch.testing.assert_close(got[:, :, down], want[:, :, down], atol=1e-4, rtol=0)
    assert float(got[:, :, down].abs().mean()) > 0.01
    not_wall = ~down & (kind[0] != WALL)  # the ceiling, called wall here
    assert int(not_wall.sum()) > 100 and not got[0][:, not_wall].any()


def test_a_pattern_laid_whole_continues_the_truth_in_its_phase():
    """A floor's or ceiling's pattern found from a start frame, laid whole on the mean colour
    over the true geometry of later frames of the walk (what the start frame partly saw, and
    turned round, what it never saw), is nearer the truth than its band at the shipped gain
    (2.234) or at 1: a band of one frame pixel keeps a checker's edges, not its squares
    (floors measured +1.6 to +4.2 dB over the band at 2.234, ceilings +0.6 to +2.6). A tile
    laid whole keeps its levels as the tile blurred less its mean; only a periodic pattern
    is laid whole."""
    for seed in (100001, 100002, 100013):
        world = make_world(seed)
        path = walk_path(world, "out_and_back", 160, seed)
        K = intrinsics(2, S)
        for t in (20, 150):
            c2w = path[[0, t]]
            rgb, depth = world.render(c2w, K, S, S)
            start = [(c2w[0], K[0], rgb[0], depth[0, 0])]
            whole = ExemplarTexture.from_frames(start, whole=True)
            band = ExemplarTexture.from_frames(start)
            points = unproject_depth(depth[1:, 0], c2w[1:], K[1:])
            laid_whole = whole.band(points, c2w[1:])[0]
            laid_band = band.band(points, c2w[1:])[0]
            planes = {k: (axis, offset, patch) for k, axis, offset, patch in whole.planes()}
            for k, margin in ((FLOOR, 1.0), (CEILING, 0.4)):
                axis, offset, patch = planes[k]
                assert patch.whole and not band.patches[k].whole
                on = (points[0, ..., axis] - offset).abs() < 0.02
                assert int(on.sum()) > 250
                mean = patch.rgb.float().mean(dim=(-2, -1))[:, None, None]
                got = _masked_db((mean + laid_whole).clamp(0, 1), rgb[1], on)
                for gain in (1.0, 2.234):
                    banded = _masked_db((mean + gain * laid_band).clamp(0, 1), rgb[1], on)
                    assert got > banded + margin, (seed, t, k, gain, got, banded)
    tile = torch.rand(3, 6, 8, generator=torch.Generator().manual_seed(0))
    patch = _Patch(tile, _scale(4.0), periodic=True, whole=True)
    level0 = patch.levels[0]
    want = tile - tile.mean(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(level0, want / bilinear_keeps(want))
    with pytest.raises(ValueError, match="only a pattern in the world's phase is laid whole"):
        _Patch(tile, _scale(4.0), whole=True)
