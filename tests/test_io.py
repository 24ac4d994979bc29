import matplotlib
import numpy as np
import pytest

from worldmem.io import DEPTH_COLORMAP, UNKNOWN_DEPTH_RGB, depth_to_rgb

NAN, INF = float("nan"), float("inf")


def _colormap_lut() -> np.ndarray:
    """The colormap's entries, far end first, as uint8 ``(N, 3)``."""
    cmap = matplotlib.colormaps[DEPTH_COLORMAP]
    return (cmap(np.linspace(0, 1, cmap.N))[:, :3] * 255).round().astype(int)


def test_depth_colours_run_from_red_near_to_blue_far():
    depth = np.array([[0.5, 1.0, 4.0, 0.0]], np.float32)
    rgb = depth_to_rgb(depth).astype(int)
    assert rgb[0, 0, 0] > rgb[0, 0, 2]  # near: red
    assert rgb[0, 2, 2] > rgb[0, 2, 0]  # far: blue
    assert (rgb[0, 3] == 0).all()  # unknown depth: black
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        depth_to_rgb(np.zeros((1, 2, 2)))


def test_unknown_depth_is_black_and_nearer_depth_takes_the_near_end_of_the_colormap():
    depth = np.array([[0.5, 1.0, 2.0, 4.0, 8.0], [0.0, -1.0, NAN, INF, -INF]], np.float32)
    rgb = depth_to_rgb(depth).astype(int)
    lut = _colormap_lut()

    assert UNKNOWN_DEPTH_RGB == (0, 0, 0)
    assert (rgb[1] == UNKNOWN_DEPTH_RGB).all()  # <= 0 and non-finite depth
    assert not (lut == UNKNOWN_DEPTH_RGB).all(1).any()  # black is no colour of the colormap

    # the nearest and farthest depths lie beyond the robust range: the colormap's two ends
    assert (rgb[0, 0] == lut[-1]).all() and (rgb[0, 4] == lut[0]).all()
    # in between, nearer depth sits nearer the near end
    place = [int(np.abs(lut - c).sum(1).argmin()) for c in rgb[0]]
    assert place == sorted(place, reverse=True) and len(set(place)) == 5


def test_a_given_range_colours_every_frame_alike():
    inv_range = (0.25, 1.0)  # inverse depth: 4 m is the far end, 1 m the near end
    lut = _colormap_lut()
    near = depth_to_rgb(np.full((2, 2), 1.0, np.float32), inv_range).astype(int)
    far = depth_to_rgb(np.full((2, 2), 4.0, np.float32), inv_range).astype(int)
    assert (near == lut[-1]).all() and (far == lut[0]).all()
    assert (depth_to_rgb(np.zeros((2, 2), np.float32), inv_range) == UNKNOWN_DEPTH_RGB).all()


def _moving_frames(n: int = 32, size: int = 64) -> np.ndarray:
    """A textured square sliding over a gradient: uint8 ``(n, size, size, 3)``."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (6, 6, 3)).repeat(4, 0).repeat(4, 1)  # 4-px blocks
    y, x = np.mgrid[:size, :size]
    frames = np.empty((n, size, size, 3), np.uint8)
    for t in range(n):
        f = np.stack([x * 4, y * 4, (x + y + 8 * t) * 2], -1) % 256
        f[20:44, t : t + 24] = texture
        frames[t] = f
    return frames


def test_the_same_frames_encode_to_the_same_bytes_after_torch_has_run(tmp_path):
    torch = pytest.importorskip("torch")
    from worldmem.io import read_video_frames, write_video

    frames = _moving_frames()
    outs = []
    for i in range(4):  # a matrix product between encodes, as a generation runs before one
        a = torch.randn(256 + 32 * i, 256)
        (a @ a.T).sum()
        outs.append(write_video(tmp_path / f"v{i}.mp4", frames).read_bytes())
    assert all(o == outs[0] for o in outs)
    decoded = read_video_frames(tmp_path / "v0.mp4").astype(int)
    assert decoded.shape == frames.shape
    flat = np.abs(frames.mean() - frames).mean()  # what a blank video of the mean colour misses
    assert np.abs(decoded - frames).mean() < 0.1 * flat  # and it is still the video
