import json
import math

import pytest
import torch
from conftest import make_tiny_pipeline, spy_inserts

from worldmem.config import ConfigError
from worldmem.geometry import project_points, unproject_depth
from worldmem.memory import SpatialMemory
from worldmem.pipeline import Chunk, WorldPipeline, memories_for_mode

WALK = ["w", "w", "right", "right", "a", "a", "s", "s"]


def test_save_state_then_load_state_continues_identically(tmp_path, tiny_pipeline_dir):
    a = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    a.start(prompt="a red room", seed=3)
    a.step(WALK)
    a.save_state(tmp_path / "world.pt")
    expected = a.step(["left", "left", "w", "w"])

    b = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    b.start(prompt="something else entirely", seed=99)
    b.step(["s"])  # state that load_state must discard
    b.load_state(tmp_path / "world.pt")
    got = b.step(["left", "left", "w", "w"])
    assert torch.equal(got.rgb, expected.rgb)
    assert torch.equal(got.depth, expected.depth)
    assert torch.equal(got.c2w, expected.c2w)
    assert b.spatial.num_points == a.spatial.num_points


def test_same_seed_same_frames_different_seed_different_frames(tiny_pipeline_dir):
    p = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    p.start(prompt="x", seed=1)
    f1 = p.step(WALK[:4]).rgb
    p.start(prompt="x", seed=1)
    f2 = p.step(WALK[:4]).rgb
    p.start(prompt="x", seed=2)
    f3 = p.step(WALK[:4]).rgb
    assert torch.equal(f1, f2)
    assert not torch.equal(f1, f3)


def _captured_conditioning(pipe, mode, monkeypatch):
    given = []
    real = pipe.sampler.generate

    def spy(conditioning, generator=None):
        given.append(conditioning)
        return real(conditioning, generator=generator)

    monkeypatch.setattr(pipe.sampler, "generate", spy)
    pipe.start(prompt="a blue corridor", seed=0, memory=mode)
    # Walk out and come back, so every memory has something relevant at the end.
    pipe.step(["w"] * 6 + ["s"] * 6)
    return given[-1]


@pytest.mark.parametrize("mode", ["none", "working", "episodic", "spatial", "all"])
def test_memory_switch_changes_only_what_the_model_is_given(mode, monkeypatch):
    batch = _captured_conditioning(make_tiny_pipeline(), mode, monkeypatch)
    reference = _captured_conditioning(make_tiny_pipeline(), "all", monkeypatch)
    given = memories_for_mode(mode)
    assert bool(batch.context.valid.any()) == ("working" in given)
    assert bool(batch.keyframes.valid.any()) == ("episodic" in given)
    assert bool(batch.memory_mask.any()) == ("spatial" in given)
    # Targets and caption are the same whatever the mode.
    assert torch.equal(batch.c2w, reference.c2w)
    assert torch.equal(batch.K, reference.K)
    assert batch.caption == reference.caption
    if "spatial" in given:
        assert torch.equal(batch.memory_mask, reference.memory_mask)


def test_memories_are_updated_in_every_mode():
    p = make_tiny_pipeline()
    p.start(prompt="", memory="none")
    p.step(["w", "w", "w", "w"])
    assert p.spatial.num_points > 0
    assert len(p.episodic.keyframes) >= 1
    assert p.frame_count == 4


def test_the_working_memory_holds_the_last_frames_under_their_frame_indices():
    p = make_tiny_pipeline()  # chunks of 2 frames, a working window of 2
    p.start(prompt="")
    chunk = p.step(["w"] * 5)  # chunks of 2, 2 and 1 frames
    assert chunk.frame_index.tolist() == [0, 1, 2, 3, 4]
    assert p.working.steps == [3, 4]
    assert torch.equal(p.working.frames()[2], chunk.c2w[-2:])


def test_actions_move_the_camera_as_the_keymap_says():
    p = make_tiny_pipeline()
    p.start(prompt="")
    chunk = p.step(["w", "w", "w"])
    z = chunk.c2w[:, 2, 3]
    assert torch.all(z[1:] > z[:-1])  # forward is +z from the identity pose
    assert torch.allclose(chunk.c2w[:, 0, 3], torch.zeros(3), atol=1e-6)


def test_start_from_image_with_and_without_depth():
    p = make_tiny_pipeline()
    img = torch.rand(3, 32, 32)
    # With depth (a fronto-parallel plane 2 m away), the image itself enters the memory: the
    # memory rendered from the same camera gives the image back.
    assert p.start(prompt="", image=img, depth=torch.full((1, 32, 32), 2.0)) is None
    assert p.frame_count == 1
    r = p.spatial.render(p.c2w[None], p.K[None], 32, 32)
    covered = r.mask[0, 0] > 0
    assert covered.float().mean() > 0.9
    assert (r.depth[0, 0][covered] - 2.0).abs().max() < 0.05
    assert (r.rgb[0][:, covered] - img[:, covered]).abs().mean() < 0.05
    # Without depth, the model's first chunk at the image's camera supplies it; only the image
    # (with that depth) is remembered, not the generated frames.
    chunk = p.start(prompt="", image=img)
    assert chunk is not None and chunk.depth.shape == (2, 1, 32, 32)
    assert p.frame_count == 1 and p.spatial.num_points > 0
    # Every stored point lies on the image camera's rays at the generated depth of its pixel.
    uv, z = project_points(p.spatial.xyz, p.c2w, p.K)
    inside = (uv >= 0).all(1) & (uv < 32).all(1) & (z > 0)
    assert inside.all()
    d = chunk.depth[0, 0][uv[:, 1].long(), uv[:, 0].long()]
    assert ((z - d).abs() < 0.1 + 0.05 * d).float().mean() > 0.9


def test_bad_input_is_rejected_before_anything_changes(tmp_path, tiny_pipeline_dir):
    p = make_tiny_pipeline()
    p.start(prompt="")
    p.step(["w", "w"])
    n = p.spatial.num_points
    bad = torch.eye(4).repeat(2, 1, 1)
    bad[1, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="pose 1"):
        p.step(bad)
    with pytest.raises(ValueError, match="jump"):
        p.step(["jump"])
    with pytest.raises(ValueError, match="memory mode"):
        p.start(memory="everything")
    with pytest.raises(ValueError, match="image"):
        p.start(image=torch.rand(3, 16, 16))
    assert p.spatial.num_points == n and p.frame_count == 2

    # A pipeline folder from another format version is refused with a clear message.
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_pipeline_dir, other)
    meta = json.loads((other / "pipeline.json").read_text())
    meta["format_version"] = 999
    (other / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format version 999"):
        WorldPipeline.from_pretrained(other, device="cpu")
    with pytest.raises(FileNotFoundError, match="pipeline.json"):
        WorldPipeline.from_pretrained(tmp_path, device="cpu")


@pytest.mark.parametrize("fails", ["model", "spatial memory"])
def test_a_step_failing_in_a_later_chunk_leaves_the_world_as_it_was(
    tiny_pipeline_dir, monkeypatch, fails
):
    """The model (or the spatial memory, after the working and episodic memories took the
    chunk) raises on the second of three chunks: the world is the one before the call, so
    the next step equals that of a twin that never made the failing call."""
    p, twin = (WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu") for _ in "ab")
    for q in (p, twin):
        q.start(prompt="a red room", seed=3)
        q.step(WALK[:4])
    before = (p.frame_count, p.c2w.clone(), p.generator.get_state(), p.spatial.state_dict())
    target = (p.sampler, "generate") if fails == "model" else (p.spatial, "insert")
    real, calls = getattr(*target), []

    def fail_on_the_second_call(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError(f"{fails} failed")
        return real(*args, **kw)

    monkeypatch.setattr(*target, fail_on_the_second_call)
    with pytest.raises(RuntimeError, match=f"{fails} failed"):
        p.step(["w", "w", "left", "left", "a", "a"])  # chunks of 2: the second one fails
    assert len(calls) == 2
    monkeypatch.undo()

    assert p.frame_count == before[0] and torch.equal(p.c2w, before[1])
    assert torch.equal(p.generator.get_state(), before[2])
    after = p.spatial.state_dict()
    assert all(
        torch.equal(after[k], v) if isinstance(v, torch.Tensor) else after[k] == v
        for k, v in before[3].items()
    )
    assert p.working.steps == twin.working.steps
    assert len(p.episodic.keyframes) == len(twin.episodic.keyframes)
    got, want = p.step(["s", "right", "w"]), twin.step(["s", "right", "w"])
    assert torch.equal(got.rgb, want.rgb)
    assert torch.equal(got.depth, want.depth)
    assert torch.equal(got.frame_index, want.frame_index)
    assert p.spatial.num_points == twin.spatial.num_points


@pytest.mark.parametrize("fails", ["model", "spatial memory"])
def test_a_start_that_fails_leaves_the_previous_world_as_it_was(
    tiny_pipeline_dir, monkeypatch, fails
):
    """A new start from an image without depth fails in the model (generating the image's
    depth) or in the spatial memory (taking the image): the previous world is still there,
    so the next step equals that of a twin that never made the failing call."""
    p, twin = (WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu") for _ in "ab")
    for q in (p, twin):
        q.start(prompt="a red room", seed=3)
        q.step(WALK[:4])

    def fail(*args, **kw):
        raise RuntimeError(f"{fails} failed")

    # patched on the class: the start builds a new spatial memory
    target = (p.model, "forward") if fails == "model" else (SpatialMemory, "insert")
    monkeypatch.setattr(*target, fail)
    with pytest.raises(RuntimeError, match=f"{fails} failed"):
        p.start(prompt="a blue corridor", image=torch.rand(3, 32, 32), seed=7, memory="none")
    monkeypatch.undo()

    assert (p.prompt, p.memory_mode, p.seed, p.frame_count) == ("a red room", "all", 3, 4)
    assert p.working.steps == twin.working.steps
    got, want = p.step(["s", "right", "w"]), twin.step(["s", "right", "w"])
    assert torch.equal(got.rgb, want.rgb)
    assert torch.equal(got.depth, want.depth)
    assert torch.equal(got.frame_index, want.frame_index)
    assert p.spatial.num_points == twin.spatial.num_points


@pytest.mark.parametrize("fails", ["step", "one frame's depth", "start"])
def test_non_finite_model_output_is_refused_before_it_reaches_the_memories(
    tiny_pipeline_dir, monkeypatch, fails
):
    """The model gives NaN (in every frame of a step's second chunk, or of the chunk giving a
    start image its depth; the codec decodes a NaN depth code as unknown depth, so the rgb
    shows it) or an infinite depth in one frame: the call raises naming the chunk and the
    frame, and the world is the one before the call."""
    p, twin = (WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu") for _ in "ab")
    for q in (p, twin):
        q.start(prompt="a red room", seed=3)
        q.step(WALK[:4])  # frames 0 to 3
    forward, generate = p.model.forward, p.sampler.generate

    def nan_after_the_first_chunk(*args, **kw):
        out = forward(*args, **kw)
        if fails == "start" or p.frame_count > 4:
            out.sample = torch.full_like(out.sample, float("nan"))
        return out

    def inf_depth_in_the_second_frame(conditioning, generator=None):
        rgb, depth = generate(conditioning, generator=generator)
        depth[:, 1, :, 3, 5] = float("inf")
        return rgb, depth

    if fails == "one frame's depth":
        monkeypatch.setattr(p.sampler, "generate", inf_depth_in_the_second_frame)
    else:
        monkeypatch.setattr(p.model, "forward", nan_after_the_first_chunk)
    if fails == "start":
        with pytest.raises(RuntimeError) as e:
            p.start(prompt="a blue corridor", image=torch.rand(3, 32, 32), seed=7)
        want = "start: the chunk giving the image its depth: the model gave NaN or infinite "
        assert str(e.value).startswith(want + "rgb in frame 0 (2 of 2 frames bad)")
    else:
        with pytest.raises(RuntimeError) as e:
            p.step(["w", "w", "left", "left", "a"])  # chunks of 2, 2 and 1 frames
        want = {
            "step": "step: chunk 2 of 3 (cameras 2 to 3): the model gave NaN or infinite "
            "rgb in frame 6 (2 of 2 frames bad)",
            "one frame's depth": "step: chunk 1 of 3 (cameras 0 to 1): the model gave NaN or "
            "infinite depth in frame 5 (1 of 2 frames bad)",
        }[fails]
        assert str(e.value).startswith(want)
    assert str(e.value).endswith("nothing was put into the memories")
    monkeypatch.undo()

    assert p.frame_count == 4 and p.working.steps == twin.working.steps
    assert len(p.episodic.keyframes) == len(twin.episodic.keyframes)
    assert p.spatial.num_points == twin.spatial.num_points
    got, want = p.step(["s", "right", "w"]), twin.step(["s", "right", "w"])
    assert torch.equal(got.rgb, want.rgb)
    assert torch.equal(got.depth, want.depth)


def test_observe_puts_ground_truth_frames_into_every_memory():
    from worldmem.data.synthetic import make_world

    p = make_tiny_pipeline()
    p.start(prompt="")
    world = make_world(5, "room")
    from worldmem.data.synthetic import make_trajectory

    c2w = make_trajectory(world, "out_and_back", 6, seed=0)
    K = p.K.expand(6, 3, 3)
    rgb, depth = world.render(c2w, K, 32, 32)
    p.observe(rgb, depth, c2w)
    assert p.frame_count == 6 and torch.equal(p.c2w, c2w[-1])
    assert len(p.working.frames()[0]) == 2 and len(p.episodic.keyframes) >= 1
    r = p.spatial.render(c2w[-1:], K[:1], 32, 32)
    m = r.mask[0, 0] > 0
    assert m.float().mean() > 0.9
    assert (r.rgb[0][:, m] - rgb[-1][:, m]).abs().mean() < 0.06  # the seen view comes back
    with pytest.raises(ValueError, match="depth"):
        p.observe(rgb, depth[:, :, :16], c2w)


def test_a_pipeline_keeps_its_training_cameras_through_save_and_load(tmp_path, tiny_pipeline_dir):
    from worldmem.geometry import fov_from_intrinsics

    p = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    wide = WorldPipeline(p.model, p.model_cfg, p.memory_cfg, fov_deg=90.0, fov_y_deg=60.0)
    wide.save_pretrained(tmp_path / "wide")
    assert json.loads((tmp_path / "wide" / "pipeline.json").read_text())["camera"] == {
        "fov_deg": 90.0,
        "fov_y_deg": 60.0,
    }
    back = WorldPipeline.from_pretrained(tmp_path / "wide", device="cpu")
    fx, fy = fov_from_intrinsics(back.K, back.size, back.size)
    assert float(fx) == pytest.approx(90.0, abs=1e-4) and float(fy) == pytest.approx(60.0, abs=1e-4)


def test_two_worlds_on_one_pipeline_step_as_two_pipelines_do(tiny_pipeline_dir, tmp_path):
    """A second world is a new WorldState: stepping two worlds in turns on one pipeline gives
    the frames two pipelines give, and neither world touches the other or the current one."""
    one = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    a, b = one.new_state(), one.new_state()
    one.start(prompt="a red room", seed=3, world=a)
    one.start(prompt="a blue corridor", seed=4, world=b)
    steps = [one.step(walk, world=w) for walk in (WALK[:4], WALK[4:]) for w in (a, b)]
    got_a, got_b = Chunk.cat(steps[0::2]), Chunk.cat(steps[1::2])  # stepped in turns
    assert one.frame_count == 0 and one.spatial.num_points == 0  # the current world is untouched
    assert (a.frame_count, b.frame_count) == (len(WALK), len(WALK))
    assert a.spatial is not b.spatial and a.generator is not b.generator
    for prompt, seed, got in (("a red room", 3, got_a), ("a blue corridor", 4, got_b)):
        alone = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
        alone.start(prompt=prompt, seed=seed)
        want = Chunk.cat([alone.step(WALK[:4]), alone.step(WALK[4:])])
        assert torch.equal(got.rgb, want.rgb) and torch.equal(got.depth, want.depth)
    # a world saves and loads through the pipeline, into the current world or another one
    one.save_state(tmp_path / "a.pt", world=a)
    one.load_state(tmp_path / "a.pt")
    assert one.frame_count == a.frame_count and one.prompt == "a red room"
    assert torch.equal(one.step(["w"]).rgb, one.step(["w"], world=a).rgb)
    with pytest.raises(ValueError, match="WorldState"):
        one.step(["w"], world="a world")


def test_chunk_frames_sets_how_many_frames_are_generated_together(
    tmp_path, tiny_pipeline_dir, monkeypatch
):
    """``chunk_frames`` (a sampler setting, saved in pipeline.json): each chunk's cameras are
    rendered from the memories as they stood before it and given to the model together; a short
    last chunk is padded by holding its last camera only up to the model's trained chunk."""
    base = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    trained = base.model_cfg.chunk_frames
    assert trained == 2 and base.chunk_frames == 2 and base.min_chunk_frames == 2
    longer = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", chunk_frames=4)
    assert longer.chunk_frames == 4 and longer.min_chunk_frames == 2
    # set to the trained value it changes nothing
    same = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", chunk_frames=trained)
    for p in (base, same):
        p.start(prompt="a red room", seed=3)
    assert torch.equal(base.step(WALK).rgb, same.step(WALK).rgb)

    calls = []
    real_inputs = WorldPipeline.model_inputs

    def spy(self, cams, K, world=None):
        calls.append((len(cams), self._world(world).frame_count))
        return real_inputs(self, cams, K, world)

    monkeypatch.setattr(WorldPipeline, "model_inputs", spy)
    longer.start(prompt="a red room", seed=3)
    calls.clear()
    out = longer.step(WALK + ["w", "w"])  # 10 cameras: 4 + 4 + 2
    assert len(out.rgb) == 10 and out.frame_index.tolist() == list(range(10))
    assert calls == [(4, 0), (4, 4), (2, 8)]  # the memories move on between chunks only
    calls.clear()
    one = longer.step(["left"])
    assert len(one.rgb) == 1 and calls == [(2, 10)]  # padded to the trained chunk, not to 4
    # saved with the pipeline; an override wins over the saved value
    longer.save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert meta["sampler"]["chunk_frames"] == 4
    assert WorldPipeline.from_pretrained(tmp_path / "p", device="cpu").chunk_frames == 4
    back = WorldPipeline.from_pretrained(tmp_path / "p", device="cpu", chunk_frames=3)
    assert back.chunk_frames == 3
    # a value the model cannot take is refused, by name, when loading
    most = base.model_cfg.max_frames
    for bad in (0, most + 1, 2.5, True, "4"):
        with pytest.raises(
            ValueError, match=rf"chunk_frames: expected an integer in \[1, {most}\]"
        ):
            WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", chunk_frames=bad)
    meta["sampler"]["chunk_frames"] = most + 1
    (tmp_path / "p" / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="pipeline.json: sampler: chunk_frames"):
        WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")


def test_a_pipeline_json_that_disagrees_with_its_model_is_refused(tmp_path, tiny_pipeline_dir):
    """The network runs as its own config.json says; a pipeline.json that says otherwise (here
    the hole prior, which holds no weights and so loads either way) is named, not followed."""
    import shutil

    folder = tmp_path / "p"
    shutil.copytree(tiny_pipeline_dir, folder)
    meta = json.loads((folder / "pipeline.json").read_text())
    meta["model"]["hole_prior"] = "elevation"
    (folder / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="hole_prior.*'elevation', 'mean'"):
        WorldPipeline.from_pretrained(folder, device="cpu")
    cfg = json.loads((folder / "model" / "config.json").read_text())
    (folder / "model" / "config.json").write_text(json.dumps({**cfg, "hole_prior": "elevation"}))
    assert (
        WorldPipeline.from_pretrained(folder, device="cpu").model.config.hole_prior == "elevation"
    )


def test_an_image_without_depth_is_given_the_models_depth_times_start_depth_scale(
    tiny_pipeline_dir, tmp_path
):
    """At ``start_depth_scale`` 2.5 a depth-less start gives (and remembers) exactly 2.5 times
    the depth the same start gives at 1; the scale survives save and load, an older folder
    without it loads at 1, and a bad one is refused naming the file and the entry."""
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    one = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    scaled = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", start_depth_scale=2.5)
    assert one.start_depth_scale == 1.0  # the folder has none
    a = one.start(prompt="a red room", image=image, seed=3)
    b = scaled.start(prompt="a red room", image=image, seed=3)
    torch.testing.assert_close(b.depth, 2.5 * a.depth, rtol=1e-6, atol=0)
    assert torch.equal(b.rgb, a.rgb)  # only the depth is scaled
    # what the spatial memory took: its render at the image's camera, exact at pixel centres
    ra = one.spatial.render(one.c2w[None], one.K[None], 32, 32)
    rb = scaled.spatial.render(scaled.c2w[None], scaled.K[None], 32, 32)
    m = (ra.mask[0, 0] > 0) & (rb.mask[0, 0] > 0)
    assert m.float().mean() > 0.9
    torch.testing.assert_close(rb.depth[0, 0][m], 2.5 * ra.depth[0, 0][m], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ra.depth[0, 0][m], a.depth[0, 0][m], rtol=1e-4, atol=1e-5)

    scaled.save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert meta["sampler"]["start_depth_scale"] == 2.5
    assert WorldPipeline.from_pretrained(tmp_path / "p", device="cpu").start_depth_scale == 2.5
    for bad in (0.0, -1.0, 1e9, "2", True, None):
        meta["sampler"]["start_depth_scale"] = bad
        (tmp_path / "p" / "pipeline.json").write_text(json.dumps(meta))
        with pytest.raises(ValueError, match=r"pipeline.json: sampler: start_depth_scale"):
            WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")
    with pytest.raises(ValueError, match="start_depth_scale"):
        WorldPipeline(one.model, one.model_cfg, one.memory_cfg, start_depth_scale=float("nan"))


def test_an_image_without_depth_is_given_the_depth_nets_depth_when_the_pipeline_has_one(
    tiny_pipeline_dir, tmp_path, monkeypatch
):
    """With a depth net, a depth-less start remembers the net's depth of the image times
    ``start_depth_scale`` (read back from the spatial memory's render at the image's camera)
    without running the model; the net and its choice survive save and load; a folder that
    names the net but lacks it, or names another source, is refused naming the file."""
    from worldmem.models.depth_net import DepthNet, DepthNetConfig

    torch.manual_seed(0)
    net = DepthNet(DepthNetConfig(image_size=32, widths=(8, 16, 16, 16)))
    torch.nn.init.normal_(net.head.weight, std=0.2)  # a depth that varies over the image
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = 1.5 * net.eval()(image[None])[0]
    pipe = WorldPipeline.from_pretrained(
        tiny_pipeline_dir, device="cpu", depth_net=net, start_depth="depth_net",
        start_depth_scale=1.5,
    )  # fmt: skip

    def no_model(*a, **k):
        raise AssertionError("the model ran for a start image's depth")

    monkeypatch.setattr(pipe.sampler, "generate", no_model)
    first = pipe.start(prompt="a red room", image=image, seed=3)
    assert first.rgb.shape == (1, 3, 32, 32) and torch.equal(first.rgb[0], image)
    torch.testing.assert_close(first.depth[0], want)
    assert pipe.frame_count == 1
    r = pipe.spatial.render(pipe.c2w[None], pipe.K[None], 32, 32)
    m = r.mask[0, 0] > 0
    assert m.float().mean() > 0.9
    torch.testing.assert_close(r.depth[0, 0][m], want[0][m], rtol=1e-4, atol=1e-5)
    monkeypatch.undo()

    pipe.save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert meta["sampler"]["start_depth"] == "depth_net"
    back = WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")
    again = back.start(prompt="a red room", image=image, seed=3)
    torch.testing.assert_close(again.depth, first.depth)
    # the model's depth when asked for it, and in a folder that predates the choice
    model_depth = WorldPipeline.from_pretrained(tmp_path / "p", device="cpu", depth_net=None)
    assert model_depth.depth_net is None
    assert model_depth.start(prompt="", image=image).depth.shape == (2, 1, 32, 32)
    assert WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu").depth_net is None

    meta["sampler"]["start_depth"] = "midas"
    (tmp_path / "p" / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"pipeline.json: sampler: start_depth: .*'midas'"):
        WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")
    meta["sampler"]["start_depth"] = "depth_net"
    (tmp_path / "p" / "pipeline.json").write_text(json.dumps(meta))
    (tmp_path / "p" / "depth_net" / "config.json").unlink()
    with pytest.raises(ValueError, match=r"depth_net/config.json"):
        WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")
    with pytest.raises(ValueError, match="depth_net: trained at 64 px, the model at 32 px"):
        WorldPipeline(pipe.model, pipe.model_cfg, pipe.memory_cfg, depth_net=DepthNet())


def test_generated_frames_take_the_depth_nets_depth_where_memory_showed_nothing_observed(
    tiny_pipeline_dir, tmp_path, monkeypatch
):
    """With ``generated_depth: depth_net``, a chunk's depth (returned and put into the spatial
    memory) is the model's where its memory render showed an observed sample and the depth
    net's depth of the generated frame elsewhere; the frames themselves are unchanged."""
    from worldmem.memory import SpatialMemory
    from worldmem.models.depth_net import DepthNet, DepthNetConfig

    torch.manual_seed(0)
    net = DepthNet(DepthNetConfig(image_size=32, widths=(8, 16, 16, 16), init_depth_m=7.0))
    torch.nn.init.normal_(net.head.weight, std=0.2)
    image, depth, cams = _random_start_and_turn()  # about half of the second view is new

    def run(generated_depth):
        pipe = WorldPipeline.from_pretrained(
            tiny_pipeline_dir, device="cpu", depth_net=net, generated_depth=generated_depth
        )
        pipe.start(prompt="a room", image=image, depth=depth, c2w=cams[0], seed=5)
        inputs = pipe.model_inputs(cams, pipe.K.expand(2, 3, 3))
        return pipe, inputs, pipe.step(cams)

    inserted = []
    real_insert = SpatialMemory.insert

    def spy(self, rgb, depth, c2w, K, **kw):
        inserted.append(depth.clone())
        return real_insert(self, rgb, depth, c2w, K, **kw)

    _, _, plain = run("model")
    monkeypatch.setattr(SpatialMemory, "insert", spy)
    pipe, inputs, mixed = run("depth_net")
    observed = inputs.memory_observed[0] > 0.5  # (2, 1, 32, 32)
    assert 0.2 < float(observed[1].float().mean()) < 0.8  # the turned view: part of each
    assert torch.equal(mixed.rgb, plain.rgb)
    with torch.no_grad():
        want = torch.where(observed, plain.depth, net(plain.rgb))
    torch.testing.assert_close(mixed.depth, want)
    torch.testing.assert_close(inserted[-1], mixed.depth)  # what the memory took
    assert not torch.allclose(mixed.depth, plain.depth)

    pipe.save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert meta["sampler"]["generated_depth"] == "depth_net"
    assert WorldPipeline.from_pretrained(tmp_path / "p").generated_depth == "depth_net"
    # taking the net away takes its use with it; asking for it without a net is refused
    bare = WorldPipeline.from_pretrained(tmp_path / "p", device="cpu", depth_net=None)
    assert bare.generated_depth == "model"
    with pytest.raises(ValueError, match="generated_depth: 'depth_net' needs a depth_net"):
        WorldPipeline(pipe.model, pipe.model_cfg, pipe.memory_cfg, generated_depth="depth_net")
    meta["sampler"]["generated_depth"] = "lidar"
    (tmp_path / "p" / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"pipeline.json: sampler: generated_depth: .*'lidar'"):
        WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")


def test_the_depth_nets_two_uses_are_set_apart(tiny_pipeline_dir, tmp_path):
    """A folder that uses its depth net for generated frames only gives a start image the
    model's depth (a chunk of the model's frames), and keeps that choice through save and
    load; asking for either use without a net is refused naming it."""
    from worldmem.models.depth_net import DepthNet, DepthNetConfig

    net = DepthNet(DepthNetConfig(image_size=32, widths=(8, 16, 16, 16), init_depth_m=7.0))
    pipe = WorldPipeline.from_pretrained(
        tiny_pipeline_dir, device="cpu", depth_net=net, start_depth="model",
        generated_depth="depth_net",
    )  # fmt: skip
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(2))
    first = pipe.start(prompt="", image=image)
    assert first.depth.shape == (2, 1, 32, 32)  # the model's chunk, not the net's 7 m
    assert not torch.allclose(first.depth, torch.full_like(first.depth, 7.0))
    pipe.save_pretrained(tmp_path / "p")
    back = WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")
    assert (back.start_depth, back.generated_depth) == ("model", "depth_net")
    assert back.depth_net is not None
    net_start = WorldPipeline.from_pretrained(tmp_path / "p", device="cpu", start_depth="depth_net")
    torch.testing.assert_close(
        net_start.start(prompt="", image=image).depth, torch.full((1, 1, 32, 32), 7.0)
    )
    with pytest.raises(ValueError, match="start_depth: 'depth_net' needs a depth_net"):
        WorldPipeline(pipe.model, pipe.model_cfg, pipe.memory_cfg, start_depth="depth_net")


def test_generated_frames_take_the_rooms_depth_on_the_surfaces_the_start_showed(
    tiny_pipeline_dir, tmp_path
):
    """With ``generated_depth: room``, in a box room whose start frame shows the floor, the
    ceiling and two walls, a view turned away has, where the model invented (no observed
    sample), the true room's depth on the floor, the ceiling and those walls (the room's
    continuation of them), and the depth net's depth of the frame on the walls the start
    frame did not show; what memory gave back keeps the model's depth. The setting survives
    save and load (the folder's depth net with it), needs a depth net and the room, and is
    for generated frames only."""
    from conftest import tiny_memory_config

    from tests.memory.memory_scenes import box_room, yaw_camera
    from worldmem.models.depth_net import DepthNet, DepthNetConfig

    torch.manual_seed(0)
    net = DepthNet(DepthNetConfig(image_size=32, widths=(8, 16, 16, 16), init_depth_m=7.0))
    cfg = tiny_memory_config(render_colour="resample", layout="box")
    half = (3.0, 0.8, 3.0)

    def run(generated_depth):
        pipe = WorldPipeline.from_pretrained(
            tiny_pipeline_dir,
            device="cpu",
            memory_cfg=cfg,
            depth_net=net,
            generated_depth=generated_depth,
        )
        cams = torch.stack([yaw_camera((0.0, 0.0, 0.0), a) for a in (45.0, 120.0)])
        rgb, depth = box_room(cams, pipe.K.expand(2, 3, 3), 32, 32, half=half)
        pipe.start(prompt="a room", image=rgb[0], depth=depth[0], c2w=cams[0], seed=3)
        observed = pipe.model_inputs(cams[1:], pipe.K[None]).memory_observed[0] > 0.5
        return pipe.step(cams[1:]), observed, depth[1:], cams[1:]

    plain, _, _, _ = run("depth_net")
    chunk, observed, true_depth, cams = run("room")
    assert torch.equal(chunk.rgb, plain.rgb)
    points = unproject_depth(true_depth[:, 0], cams, chunk.K)
    wall = (points[..., 1].abs() < half[1] - 1e-3)[:, None]
    seen_wall = wall & ((points[..., 0] - 3.0).abs() < 1e-3)[:, None]
    seen_wall |= wall & ((points[..., 2] - 3.0).abs() < 1e-3)[:, None]
    invented = ~observed
    room = invented & (~wall | seen_wall)  # floor, ceiling and the walls the start showed
    guess = invented & wall & ~seen_wall
    assert int(room.sum()) > 100 and int(guess.sum()) > 100
    rel = (chunk.depth - true_depth).abs() / true_depth
    assert float(rel[room].median()) < 0.02 and float((rel[room] < 0.05).float().mean()) > 0.95
    assert float((plain.depth - true_depth).abs().div(true_depth)[room].median()) > 0.1
    with torch.no_grad():
        net_depth = net(chunk.rgb)
    the_nets = (chunk.depth - net_depth).abs() < 1e-5
    assert float(the_nets[guess].float().mean()) > 0.95  # all but the corners' few pixels
    torch.testing.assert_close(chunk.depth[observed], plain.depth[observed])

    with pytest.raises(ValueError, match="start_depth: expected one of model, depth_net"):
        WorldPipeline.from_pretrained(tiny_pipeline_dir, depth_net=net, start_depth="room")
    with pytest.raises(ValueError, match="generated_depth: 'room' needs a depth_net"):
        WorldPipeline.from_pretrained(tiny_pipeline_dir, generated_depth="room")
    with pytest.raises(ValueError, match=r"'room' needs a room \(memory.layout: box\)"):
        WorldPipeline.from_pretrained(
            tiny_pipeline_dir,
            depth_net=net,
            generated_depth="room",
            memory_cfg=tiny_memory_config(layout="none"),
        )
    WorldPipeline.from_pretrained(
        tiny_pipeline_dir, depth_net=net, generated_depth="room", memory_cfg=cfg
    ).save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert meta["sampler"]["generated_depth"] == "room"
    loaded = WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")
    assert loaded.generated_depth == "room" and loaded.depth_net is not None


def _random_start_and_turn(angles=(0.0, 0.6)):
    """A random 32 px start image 2-3 m deep and cameras at the origin turned by ``angles``
    (radians) about the vertical: after the first, part of each view is new."""
    from worldmem.geometry import look_at

    g = torch.Generator().manual_seed(1)
    image, depth = torch.rand(3, 32, 32, generator=g), 2 + torch.rand(1, 32, 32, generator=g)
    cams = torch.stack(
        [look_at(torch.zeros(3), torch.tensor([math.sin(a), 0.0, math.cos(a)])) for a in angles]
    )
    return image, depth, cams


def check_named_net(
    folder,
    older_folder,
    key: str,
    name: str,
    bad: str,
    subfolder: str | None = None,
    file: str = "diffusion_pytorch_model.safetensors",
) -> None:
    """A pipeline folder whose ``sampler[key]`` names its net ``name`` (in ``subfolder/``,
    default ``name/``): the override None takes the net away, an older folder (no key) has
    none, a bad value is refused naming the file and the key, and a missing ``file`` is
    refused naming it."""
    assert getattr(WorldPipeline.from_pretrained(folder, **{name: None}), name) is None
    assert getattr(WorldPipeline.from_pretrained(older_folder), name) is None
    meta = json.loads((folder / "pipeline.json").read_text())
    (folder / "pipeline.json").write_text(
        json.dumps({**meta, "sampler": {**meta["sampler"], key: bad}})
    )
    with pytest.raises(ValueError, match=rf"pipeline.json: sampler: {key}: .*'{bad}'"):
        WorldPipeline.from_pretrained(folder, device="cpu")
    (folder / "pipeline.json").write_text(json.dumps(meta))
    (folder / (subfolder or name) / file).unlink()
    with pytest.raises(ValueError, match=rf"{subfolder or name}/{file}"):
        WorldPipeline.from_pretrained(folder, device="cpu")


def test_detail_is_drawn_on_the_shown_frames_where_memory_observed_nothing(
    tiny_pipeline_dir, tmp_path, monkeypatch
):
    """With a detail net, a chunk's frames are the frames of the same pipeline without one
    wherever their memory render showed an observed sample (bit for bit), and the net's
    output with noise fixed to the pixels' world points elsewhere; the memories take the
    frames without detail and the world's generator is not drawn from, so the world goes on
    exactly as without the net. The net and its choice survive save and load; a bad
    ``sampler.detail`` or a missing ``detail_net/`` is refused naming the file."""
    from worldmem.geometry import unproject_depth
    from worldmem.models.detail_net import DetailNet, DetailNetConfig

    torch.manual_seed(0)
    net = DetailNet(DetailNetConfig(image_size=32, widths=(8, 16)))
    torch.nn.init.normal_(net.head.weight, std=0.3)  # draws something
    net.eval()
    # the start camera, then turning away: part of each view new, then more of it
    image, depth, cams = _random_start_and_turn((0.0, 0.5, 0.7, 0.9))

    def run(detail_net):
        pipe = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", detail_net=detail_net)
        pipe.start(prompt="a room", image=image, depth=depth, c2w=cams[0], seed=5)
        observed = pipe.model_inputs(cams[:2], pipe.K.expand(2, 3, 3)).memory_observed[0]
        inserted = spy_inserts(monkeypatch)
        chunk = pipe.step(cams)
        monkeypatch.undo()
        return pipe, chunk, observed, inserted

    plain_pipe, plain, observed, plain_inserted = run(None)
    pipe, detailed, _, inserted = run(net)
    # the memories took the frames without detail, and the world is where it would be
    assert len(inserted) == len(plain_inserted) == 2
    for (a, _), (b, _) in zip(inserted, plain_inserted):
        assert torch.equal(a, b)
    assert torch.equal(pipe.state.generator.get_state(), plain_pipe.state.generator.get_state())
    # the first chunk's shown frames: plain where observed, the net's drawing elsewhere
    first, plain_first = detailed.rgb[:2], plain.rgb[:2]
    unobserved = observed <= 0.5  # (2, 1, 32, 32)
    assert 0.2 < float(unobserved[1].float().mean()) < 0.9
    seen = ~unobserved.expand_as(first)
    assert torch.equal(first[seen], plain_first[seen])
    # the noise is fixed to the world points of each pixel (the chunk's depth, its cameras)
    points = unproject_depth(detailed.depth[:2, 0], cams[:2], pipe.K.expand(2, 3, 3))
    noise = net.surface_noise(points, seed=5)
    with torch.no_grad():
        drawn = net.correction(plain_first, unobserved.float(), noise)
    torch.testing.assert_close(first, (plain_first + unobserved * drawn).clamp(0, 1))
    assert float((first - plain_first).abs()[~seen].mean()) > 0.05

    pipe.save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert meta["sampler"]["detail"] == "detail_net"
    back = WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")
    back.start(prompt="a room", image=image, depth=depth, c2w=cams[0], seed=5)
    torch.testing.assert_close(back.step(cams).rgb, detailed.rgb)
    check_named_net(tmp_path / "p", tiny_pipeline_dir, "detail", "detail_net", "sharpen")
    with pytest.raises(ValueError, match="detail_net: trained at 64 px, the model at 32 px"):
        WorldPipeline(pipe.model, pipe.model_cfg, pipe.memory_cfg, detail_net=DetailNet())


def test_a_detail_flow_samples_the_band_where_memory_observed_nothing(tiny_pipeline_dir, tmp_path):
    """A DetailFlow in the detail slot: the shown frames are the plain pipeline's where the
    memory render observed something and its sampled band from the surfaces' noise elsewhere;
    saved as ``sampler.detail: detail_flow`` in ``detail_flow/`` (not read as the adversarial
    net) and loaded back to the same frames."""
    from worldmem.geometry import unproject_depth
    from worldmem.models.detail_flow import DetailFlow, DetailFlowConfig

    torch.manual_seed(0)
    net = DetailFlow(DetailFlowConfig(image_size=32, widths=(8, 16), steps=2))
    torch.nn.init.normal_(net.head.weight, std=0.3)
    net.eval()
    image, depth, cams = _random_start_and_turn()

    def run(pipe):
        pipe.start(prompt="a room", image=image, depth=depth, c2w=cams[0], seed=5)
        observed = pipe.model_inputs(cams[1:], pipe.K.expand(1, 3, 3)).memory_observed[0]
        return pipe.step(cams[1:]), observed

    plain, observed = run(WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu"))
    pipe = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", detail_net=net)
    drawn, _ = run(pipe)
    unobserved = (observed <= 0.5).float()
    assert 0.2 < float(unobserved.mean()) < 0.9
    points = unproject_depth(drawn.depth[:, 0], cams[1:], pipe.K.expand(1, 3, 3))
    with torch.no_grad():
        want = net(plain.rgb, unobserved, net.surface_noise(points, seed=5))
    torch.testing.assert_close(drawn.rgb, want)
    seen = (unobserved < 0.5).expand_as(want)
    assert torch.equal(drawn.rgb[seen], plain.rgb[seen])
    assert float((drawn.rgb - plain.rgb).abs()[~seen].mean()) > 0.01

    pipe.save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert meta["sampler"]["detail"] == "detail_flow"
    assert (tmp_path / "p" / "detail_flow").is_dir()
    assert not (tmp_path / "p" / "detail_net").exists()
    back = WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")
    assert isinstance(back.detail_net, DetailFlow) and back.detail_net.cfg == net.cfg
    torch.testing.assert_close(run(back)[0].rgb, drawn.rgb)
    check_named_net(tmp_path / "p", tiny_pipeline_dir, "detail", "detail_net", "grain",
                    subfolder="detail_flow")  # fmt: skip


def check_saved_flag(pipe, path, plain_dir, key: str) -> None:
    """``pipe``, whose on/off setting ``key`` is on, saved to ``path``: the setting is written
    and loads back on, a folder without it (``plain_dir``) loads it off, and a value that is
    not a bool is refused with the file and the setting named."""
    pipe.save_pretrained(path)
    meta = json.loads((path / "pipeline.json").read_text())
    assert meta["sampler"][key] is True
    assert getattr(WorldPipeline.from_pretrained(path, device="cpu"), key) is True
    assert getattr(WorldPipeline.from_pretrained(plain_dir, device="cpu"), key) is False
    for bad in (1, "yes", None):
        (path / "pipeline.json").write_text(
            json.dumps({**meta, "sampler": {**meta["sampler"], key: bad}})
        )
        with pytest.raises(ValueError, match=f"pipeline.json: sampler: {key}: expected"):
            WorldPipeline.from_pretrained(path, device="cpu")


def test_pattern_detail_is_added_where_memory_passed_observed_samples(
    tiny_pipeline_dir, tmp_path, monkeypatch
):
    """With ``pattern_detail``, a chunk's frames are the plain pipeline's plus the texture's
    ``detail`` wherever the memory render passed an observed sample (and in the cracks between
    them), at the render's own depth where it held a sample (the chunk's elsewhere), and
    exactly the plain frames in the holes; the memories
    take the frames without it. ``texture.detail`` itself is checked against the synthetic
    worlds in ``tests/memory/test_texture.py``; here it is replaced by a known field of the
    points, so the test sees where and how it is added. The setting survives save and load;
    a value that is not a bool is refused."""
    from conftest import tiny_memory_config

    from tests.memory.memory_scenes import box_room, yaw_camera
    from worldmem.geometry import unproject_depth
    from worldmem.memory.texture import ExemplarTexture, without_cracks

    def field(points):  # (N, H, W, 3) -> (N, 3, H, W)
        return 0.2 * torch.sin(7 * points).permute(0, 3, 1, 2)

    def known(self, points, c2w, K, shown):
        assert self.views and len(c2w) == len(K) == len(points)
        assert shown.shape == points.shape[:-1]  # the widths the memory's samples averaged
        return field(points)

    monkeypatch.setattr(ExemplarTexture, "detail", known)
    memory_cfg = tiny_memory_config(render_colour="resample")
    K = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu").K
    cams = torch.stack(
        [yaw_camera((0.0, 0.0, z), a) for z, a in ((2.0, 0.0), (2.4, 40.0), (2.8, 60.0))]
    )
    rgb, depth = box_room(cams[:1], K[None], 32, 32, half=(3.0, 0.8, 3.0))

    def run(**kw):
        pipe = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", **kw)
        pipe.start(prompt="a room", image=rgb[0], depth=depth[0], c2w=cams[0], seed=5)
        observed = pipe.model_inputs(cams[1:], K.expand(2, 3, 3)).memory_observed[0]
        with monkeypatch.context() as patch:
            inserted = spy_inserts(patch)
            chunk = pipe.step(cams[1:])
        return pipe, chunk, observed, inserted

    _, base, observed, plain_inserted = run(memory_cfg=memory_cfg)
    pipe, got, _, inserted = run(memory_cfg=memory_cfg, pattern_detail=True)
    for (a, _), (b, _) in zip(inserted, plain_inserted, strict=True):
        assert torch.equal(a, b)
    holes = without_cracks((observed <= 0.5).float())
    assert 0.1 < float(holes.mean()) < 0.9
    at = torch.where(got.memory_mask > 0.5, got.memory_depth, got.depth)  # the samples' own
    assert not torch.equal(at, got.depth)
    points = unproject_depth(at[:, 0], cams[1:], K.expand(2, 3, 3))
    want = (base.rgb + (1 - holes) * field(points)).clamp(0, 1)
    torch.testing.assert_close(got.rgb, want)
    assert torch.equal(
        got.rgb[(holes > 0).expand_as(got.rgb)], base.rgb[(holes > 0).expand_as(base.rgb)]
    )

    check_saved_flag(pipe, tmp_path / "p", tiny_pipeline_dir, "pattern_detail")
    with pytest.raises(ValueError, match="pattern_detail: the texture comes from the observed"):
        WorldPipeline.from_pretrained(tiny_pipeline_dir, pattern_detail=True)


def test_pattern_whole_lays_the_patterns_found_whole(tiny_pipeline_dir, tmp_path, monkeypatch):
    """With ``pattern_whole``, the texture is built with its patterns in the world's phase laid
    whole (``ExemplarTexture.from_frames(whole=True)``, checked against the synthetic worlds in
    ``tests/memory/test_texture.py``) and laid as the plain texture is: the chunk is the
    pipeline without texture plus that texture's band in the holes. The start frame here shows
    a checkered wall, found as a pattern, so the frames differ from those with the band. The
    setting survives save and load; a value that is not a bool is refused."""
    from conftest import tiny_memory_config

    from tests.memory.memory_scenes import box_room, yaw_camera
    from worldmem.geometry import unproject_depth
    from worldmem.memory.texture import ExemplarTexture, without_cracks

    memory_cfg = tiny_memory_config(render_colour="resample")
    K = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu").K
    cams = torch.stack([yaw_camera((0.0, 0.0, 2.0), a) for a in (0.0, 20.0, 35.0)])
    rgb, depth = box_room(cams[:1], K[None], 32, 32, half=(3.0, 0.8, 3.0))

    def run(**kw):
        pipe = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", **kw)
        pipe.start(prompt="a room", image=rgb[0], depth=depth[0], c2w=cams[0], seed=5)
        observed = pipe.model_inputs(cams[1:], K.expand(2, 3, 3)).memory_observed[0]
        return pipe, pipe.step(cams[1:]), observed

    _, base, observed = run(memory_cfg=memory_cfg)
    _, banded, _ = run(memory_cfg=memory_cfg, texture_gain=1.5)
    pipe, got, _ = run(memory_cfg=memory_cfg, texture_gain=1.5, pattern_whole=True)
    texture = ExemplarTexture.from_frames(pipe.state.spatial.observed_frames(), whole=True)
    assert any(patch.whole for *_, patch in texture.planes())
    holes = without_cracks((observed <= 0.5).float())
    assert 0.1 < float(holes.mean()) < 0.9
    points = unproject_depth(got.depth[:, 0], cams[1:], K.expand(2, 3, 3))
    gains = pipe.texture_gains
    want = (base.rgb + holes * texture.band(points, cams[1:], gains)).clamp(0, 1)
    torch.testing.assert_close(got.rgb, want)
    assert float((got.rgb - banded.rgb).abs().max()) > 0.02

    check_saved_flag(pipe, tmp_path / "p", tiny_pipeline_dir, "pattern_whole")


def test_the_observed_texture_is_laid_where_memory_observed_nothing(
    tiny_pipeline_dir, tmp_path, monkeypatch
):
    """With ``texture_gain``, a chunk's frames are the plain pipeline's wherever their memory
    render showed an observed sample (bit for bit), and plus gain times the band the start
    frame's texture lays on their surfaces in the holes wider than a crack (none in a memory
    mode without spatial memory; with the room's layout, a floor's or ceiling's where the
    room shows one, a wall's where the room and the frame's normals both say wall, and on a
    wall the observed frames did not show, where the ray meets the room's wall); the
    memories take the frames without it and the world's
    generator is not drawn from. The gain survives save
    and load; a bad one, one beside a detail net and one without observed frames kept are
    refused."""
    from conftest import tiny_memory_config

    from tests.memory.memory_scenes import box_room, yaw_camera
    from worldmem.geometry import unproject_depth
    from worldmem.memory.layout import BoxLayout
    from worldmem.memory.texture import (
        CEILING,
        FLOOR,
        WALL,
        ExemplarTexture,
        surface_kinds,
        turn_about_y,
        without_cracks,
    )
    from worldmem.models.detail_net import DetailNet

    memory_cfg = tiny_memory_config(render_colour="resample")
    K = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu").K
    # near a checkered wall, then turning towards another
    cams = torch.stack([yaw_camera((0.0, 0.0, 2.0), a) for a in (0.0, 50.0, 80.0)])
    rgb, depth = box_room(cams[:1], K[None], 32, 32, half=(3.0, 0.8, 3.0))

    def run(**kw):  # turning away, then the same views again: (pipe, [(chunk, observed)])
        pipe = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", **kw)
        pipe.start(prompt="a room", image=rgb[0], depth=depth[0], c2w=cams[0], seed=5)
        inserted = spy_inserts(monkeypatch)
        chunks = []
        for _ in range(2):
            observed = pipe.model_inputs(cams[1:], K.expand(2, 3, 3)).memory_observed[0]
            chunks.append((pipe.step(cams[1:]), observed))
        monkeypatch.undo()
        return pipe, chunks, inserted

    plain_pipe, plain, plain_inserted = run(memory_cfg=memory_cfg)
    pipe, laid, inserted = run(memory_cfg=memory_cfg, texture_gain=1.0)
    for (a, _), (b, _) in zip(inserted, plain_inserted, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(pipe.state.generator.get_state(), plain_pipe.state.generator.get_state())
    texture = ExemplarTexture.from_frames(pipe.state.spatial.observed_frames())
    assert texture.patches
    for i, ((got, observed), (base, _)) in enumerate(zip(laid, plain, strict=True)):
        unobserved = (observed <= 0.5).float()  # (2, 1, 32, 32)
        assert 0.2 < float(unobserved.mean()) < 0.9
        seen = (unobserved < 0.5).expand_as(got.rgb)
        assert torch.equal(got.rgb[seen], base.rgb[seen])
        # at the chunk's own points, on new holes (the first chunk) and on the guesses of the
        # first chunk seen again (the second)
        held = got.memory_mask > 0.5
        assert float(held[unobserved > 0].float().mean()) == (0.0 if i == 0 else 1.0)
        points = unproject_depth(got.depth[:, 0], cams[1:], K.expand(2, 3, 3))
        holes = without_cracks(unobserved)
        assert float(holes.sum()) > 0.9 * float(unobserved.sum())
        want = (base.rgb + holes * texture.band(points, cams[1:])).clamp(0, 1)
        torch.testing.assert_close(got.rgb, want)
        assert float((got.rgb - base.rgb).abs()[~seen].mean()) > 0.005

    # a world whose model is given no spatial memory is given none of its texture either
    for mode in ("working", "episodic"):
        frames = []
        for kw in ({}, {"texture_gain": 1.0}):
            p = WorldPipeline.from_pretrained(tiny_pipeline_dir, memory_cfg=memory_cfg, **kw)
            p.start(prompt="a room", image=rgb[0], depth=depth[0], c2w=cams[0], seed=5, memory=mode)
            frames.append(p.step(cams[1:]).rgb)
        assert torch.equal(frames[0], frames[1])

    # the walls' own gain: the band there times it, the floor's and ceiling's as before (also
    # with no texture but on the walls)
    for floors, walls in ((1.0, 0.25), (0.0, 0.5)):
        _, got_laid, _ = run(memory_cfg=memory_cfg, texture_gain=floors, wall_texture_gain=walls)
        gains = {CEILING: floors, WALL: walls, FLOOR: floors}
        for (got, observed), (base, _), (full, _) in zip(got_laid, plain, laid, strict=True):
            points = unproject_depth(got.depth[:, 0], cams[1:], K.expand(2, 3, 3))
            holes = without_cracks((observed <= 0.5).float())
            want = (base.rgb + holes * texture.band(points, cams[1:], gains)).clamp(0, 1)
            torch.testing.assert_close(got.rgb, want)
            assert float((got.rgb - full.rgb).abs().max()) > 0.01  # walls are in view
            assert float((got.rgb - base.rgb).abs().max()) > 0.01
        if floors == 1.0:
            walled = got_laid

    # with the room's layout, a pixel takes the band of the kind of surface the room shows
    # there when that is a floor or ceiling, whatever the frame's normals say (here a room
    # that shows a floor over the left half of every frame, and the start frame gave no floor
    # texture: none there), and a wall's only where the normals say wall too, read where the
    # ray meets the room's wall (the +x wall, which the start frame did not see, among them)
    real_points = BoxLayout.texture_points

    def floor_left(self, *a, **kw):
        at, kind = real_points(self, *a, **kw)
        kind[..., : kind.shape[-1] // 2] = FLOOR
        return at, kind

    box_cfg = tiny_memory_config(render_colour="resample", layout="box")
    _, box_plain, _ = run(memory_cfg=box_cfg)
    monkeypatch.setattr(BoxLayout, "texture_points", floor_left)
    boxed_pipe, boxed, _ = run(memory_cfg=box_cfg, texture_gain=1.0)
    monkeypatch.setattr(BoxLayout, "texture_points", floor_left)
    layout = BoxLayout.from_frames(boxed_pipe.state.spatial.observed_frames())
    assert set(texture.patches) == {WALL}  # the start frame shows a wall only
    assert not layout.seen[(0, 1)]
    for (got, observed), (base, _) in zip(boxed, box_plain, strict=True):
        own = unproject_depth(got.depth[:, 0], cams[1:], K.expand(2, 3, 3))
        holes = without_cracks((observed <= 0.5).float())
        points, expected = layout.texture_points(own, cams[1:], K.expand(2, 3, 3))
        band = texture.band(points, cams[1:], None, expected)
        torch.testing.assert_close(got.rgb, (base.rgb + holes * band).clamp(0, 1))
        moved = (points != own).any(-1) & (holes[:, 0] > 0)
        assert int(moved.sum()) > 50  # the walls' pixels, read on the room's walls
        at_own = texture.band(own, cams[1:], None, expected).permute(0, 2, 3, 1)
        assert float((band.permute(0, 2, 3, 1) - at_own)[moved].abs().mean()) > 0.01
        turned = turn_about_y(points.double(), -texture.yaw)
        kind, _ = surface_kinds(turned, turn_about_y(cams[1:, :3, 3].double(), -texture.yaw)[:, 1])
        texel = band.permute(0, 2, 3, 1).abs().sum(-1)
        not_wall = (expected == WALL) & (kind != WALL)
        assert not texel[not_wall].any()
        # normals say wall where the room shows a floor: the floor's (none here)
        flat = (expected == FLOOR) & (kind == WALL) & (holes[:, 0] > 0)
        assert int(flat.sum()) > 50 and not texel[flat].any()
        assert texture.band(points, cams[1:]).permute(0, 2, 3, 1)[flat].abs().sum() > 0.1
        walls = (expected == WALL) & (kind == WALL) & (holes[:, 0] > 0)
        assert float((texel[walls] > 0).float().mean()) > 0.9
    monkeypatch.undo()

    pipe.save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert meta["sampler"]["texture_gain"] == 1.0
    assert meta["sampler"]["wall_texture_gain"] is None
    back = WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")
    back.start(prompt="a room", image=rgb[0], depth=depth[0], c2w=cams[0], seed=5)
    torch.testing.assert_close(back.step(cams[1:]).rgb, laid[0][0].rgb)
    assert WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu").texture_gain == 0.0
    for key in ("texture_gain", "wall_texture_gain"):
        for bad in (-0.5, "strong", True, 9.0):
            (tmp_path / "p" / "pipeline.json").write_text(
                json.dumps({**meta, "sampler": {**meta["sampler"], key: bad}})
            )
            with pytest.raises(ValueError, match=rf"pipeline.json: sampler: {key}: expected"):
                WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")
    (tmp_path / "p" / "pipeline.json").write_text(
        json.dumps({**meta, "sampler": {**meta["sampler"], "wall_texture_gain": 0.25}})
    )
    back = WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")
    assert back.wall_texture_gain == 0.25
    back.start(prompt="a room", image=rgb[0], depth=depth[0], c2w=cams[0], seed=5)
    torch.testing.assert_close(back.step(cams[1:]).rgb, walled[0][0].rgb)
    with pytest.raises(ValueError, match="texture_gain and detail_net"):
        WorldPipeline.from_pretrained(
            tiny_pipeline_dir, memory_cfg=memory_cfg, texture_gain=1.0, detail_net=DetailNet()
        )
    with pytest.raises(ValueError, match="texture_gain, pattern_detail: the texture comes from"):
        WorldPipeline.from_pretrained(tiny_pipeline_dir, texture_gain=1.0)


def test_the_texture_and_the_room_are_built_when_the_world_starts(tiny_pipeline_dir, monkeypatch):
    """What the observed frames give (the texture, the room; about 0.5 s with periodic tiles)
    is built by ``start``, so the first key does not wait for it; steps then build nothing
    until the observed frames change."""
    from conftest import tiny_memory_config

    from tests.memory.memory_scenes import box_room, yaw_camera
    from worldmem.memory.layout import BoxLayout
    from worldmem.memory.texture import ExemplarTexture

    cfg = tiny_memory_config(render_colour="resample", layout="box")
    pipe = WorldPipeline.from_pretrained(
        tiny_pipeline_dir, device="cpu", memory_cfg=cfg, texture_gain=1.0
    )
    cams = torch.stack([yaw_camera((0.0, 0.0, 2.0), a) for a in (0.0, 40.0, 60.0)])
    rgb, depth = box_room(cams[:1], pipe.K[None], 32, 32, half=(3.0, 0.8, 3.0))
    built = []
    for cls in (ExemplarTexture, BoxLayout):
        real = cls.from_frames.__func__
        monkeypatch.setattr(
            cls,
            "from_frames",
            classmethod(lambda c, *a, _r=real, **k: built.append(c) or _r(c, *a, **k)),
        )
    pipe.start(prompt="a room", image=rgb[0], depth=depth[0], c2w=cams[0], seed=1)
    assert sorted(c.__name__ for c in built) == ["BoxLayout", "ExemplarTexture"]
    pipe.step(cams[1:])
    pipe.step(cams[1:])
    assert len(built) == 2


def test_the_room_the_observed_frames_imply_is_what_the_memory_renders_holes_tend_to(
    tiny_pipeline_dir, tmp_path
):
    """With ``memory.layout: box`` the model is given the box room fitted to the observed
    frames, seen from each target camera, as what its render's holes tend to: there the
    room's depth is the true room's, the render itself is as without it, and the chunk is the
    one the sampler draws from those inputs; generated guesses relax towards the room's
    colours. The setting survives save and load; it makes the spatial memory keep its
    observed frames, and a memory told to keep none is refused when the config is read."""
    from conftest import tiny_memory_config

    from tests.memory.memory_scenes import box_room, yaw_camera
    from worldmem.memory.guesses import relax_guesses
    from worldmem.memory.layout import BoxLayout

    K = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu").K
    half = (3.0, 0.8, 3.0)
    # from the room's centre into a corner (the box is then the room), then turning away
    cams = torch.stack([yaw_camera((0.0, 0.0, 0.0), a) for a in (45.0, 100.0, 150.0)])
    rgb, depth = box_room(cams[:1], K[None], 32, 32, half=half)
    true_rgb, true_depth = box_room(cams[1:], K.expand(2, 3, 3), 32, 32, half=half)
    Ks = K.expand(2, 3, 3)

    def start(layout: str, relax: float = 0.0):
        cfg = tiny_memory_config(render_colour="resample", layout=layout, guess_relax=relax)
        pipe = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", memory_cfg=cfg)
        pipe.start(prompt="a room", image=rgb[0], depth=depth[0], c2w=cams[0], seed=5)
        return pipe

    plain = start("none").model_inputs(cams[1:], Ks)
    pipe = start("box")
    boxed = pipe.model_inputs(cams[1:], Ks)
    assert plain.hole_rgb is None and plain.hole_depth is None
    hole = (plain.memory_mask <= 0.5)[0, :, 0]
    assert 0.3 < float(hole.float().mean()) < 0.99  # turned away from the corner it saw
    for name in ("memory_rgb", "memory_depth", "memory_mask", "memory_observed"):
        assert torch.equal(getattr(boxed, name), getattr(plain, name)), name
    rel = (boxed.hole_depth[0, :, 0] - true_depth[:, 0]).abs() / true_depth[:, 0]
    assert float((rel[hole] < 0.02).float().mean()) > 0.95
    # the room's colours: the corner's walls, floor and ceiling as seen, tinted by the checker
    err = (boxed.hole_rgb[0] - true_rgb).abs().amax(1)
    assert float(err[hole].median()) < 0.25
    chunk = pipe.step(cams[1:])
    again = start("box")
    want, _ = again.sampler.generate(boxed, generator=again.state.generator)
    torch.testing.assert_close(chunk.rgb, want[0].clamp(0, 1))

    # the model's guesses, seen again, move towards the room's colours (not along elevation)
    pipe = start("box", relax=0.5)
    pipe.step(cams[1:])
    relaxed = pipe.model_inputs(cams[1:], Ks)
    assert (
        float(((relaxed.memory_observed <= 0.5) & (relaxed.memory_mask > 0.5)).float().mean()) > 0.2
    )
    room = BoxLayout.from_frames(pipe.state.spatial.observed_frames())
    room_rgb, _, _ = room.render(cams[1:], Ks, 32)
    cfg = pipe.memory_cfg
    pipe.memory_cfg = tiny_memory_config(render_colour="resample", layout="none")
    raw = pipe.model_inputs(cams[1:], Ks)  # the same memories, neither relaxed nor roomed
    pipe.memory_cfg = cfg
    want = relax_guesses(
        raw.memory_rgb[0], raw.memory_mask[0], raw.memory_observed[0], room_rgb, 0.5,
        cfg.guess_relax_near_px, None, cfg.guess_relax_outside_deg,
    )  # fmt: skip
    torch.testing.assert_close(relaxed.memory_rgb[0], want)
    assert (want - raw.memory_rgb[0]).abs().max() > 0.01

    pipe.save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert meta["memory"]["layout"] == "box"
    assert WorldPipeline.from_pretrained(tmp_path / "p").memory_cfg.layout == "box"
    # the room is what makes the spatial memory keep its observed frames, whatever else reads
    # them; a memory told to keep none is refused
    plain_cfg = tiny_memory_config(layout="box")
    assert plain_cfg.kept_observed_frames == plain_cfg.free_space_views > 0
    assert tiny_memory_config().kept_observed_frames == 0
    with pytest.raises(ConfigError, match="layout='box': the room is fitted to the observed"):
        tiny_memory_config(layout="box", free_space_views=0)
    with pytest.raises(ConfigError, match="layout"):
        tiny_memory_config(layout="sphere", render_colour="resample")


def test_a_prompt_alone_starts_from_the_first_frame_nets_drawing(
    tiny_pipeline_dir, tmp_path, monkeypatch
):
    """With a first-frame net, ``start(prompt)`` without an image puts the net's drawing for
    the prompt, from the world's seed, into the memories as the observed first frame (the
    same as starting from that image); ``draw_first=False`` starts with empty memories; asking
    for a drawing without a net is refused and leaves the world as it was. The net and its
    choice survive save and load; a bad ``sampler.prompt_start`` or a missing
    ``first_frame/`` is refused naming the file."""
    from worldmem.models.first_frame import FirstFrameConfig, FirstFrameNet

    torch.manual_seed(0)
    net = FirstFrameNet(FirstFrameConfig(image_size=32, widths=(16, 8, 8))).eval()
    drawn = net.generate(["a red room"], torch.Generator().manual_seed(3))[0]
    pipe = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", first_frame=net)
    inserted = spy_inserts(monkeypatch)
    first = pipe.start(prompt="a red room", seed=3)
    assert len(inserted) == 1 and inserted[0][1] is True  # observed
    assert torch.equal(inserted[0][0][0], drawn)
    # as from an image without depth: the chunk that gave it its depth (the model's here)
    assert first.depth.shape == (pipe.chunk_frames, 1, 32, 32) and pipe.frame_count == 1
    again = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")

    monkeypatch.undo()
    assert pipe.start(prompt="a red room", seed=3, draw_first=False) is None
    assert pipe.spatial.num_points == 0
    pipe.step(["w", "w"])
    with pytest.raises(ValueError, match="draw_first: this pipeline has no first_frame net"):
        again.start(prompt="a room", draw_first=True)
    with pytest.raises(ValueError, match="draw_first: expected None, True or False"):
        pipe.start(prompt="a room", draw_first="yes")
    assert pipe.frame_count == 2 and pipe.spatial.num_points > 0  # the world is untouched
    assert again.start(prompt="a room") is None  # no net: empty memories by default

    pipe.save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert meta["sampler"]["prompt_start"] == "first_frame"
    back = WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")
    inserted = spy_inserts(monkeypatch)
    back.start(prompt="a red room", seed=3)
    assert torch.equal(inserted[0][0][0], drawn)
    check_named_net(tmp_path / "p", tiny_pipeline_dir, "prompt_start", "first_frame", "gan")
    with pytest.raises(ValueError, match="first_frame: gives 64 px frames, the model draws 32 px"):
        WorldPipeline(pipe.model, pipe.model_cfg, pipe.memory_cfg, first_frame=FirstFrameNet())


def test_a_prompt_alone_starts_from_the_banks_frame_with_its_depth(
    tiny_pipeline_dir, tmp_path, monkeypatch
):
    """With a first-frame bank, ``start(prompt)`` without an image puts the frame the bank
    draws for the prompt, from the world's seed, into the memories as observed, with its
    depth (the same as starting from that image and depth: the same memory, the same next
    frames); the bank and its choice survive save and load; a bank of another camera is
    refused, and a missing ``bank.npz`` is refused naming it."""
    from worldmem.models.first_frame_bank import FirstFrameBank

    pipe = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (3, 3, 32, 32), generator=g, dtype=torch.uint8)
    depth = (1 + 3 * torch.rand(3, 1, 32, 32, generator=g)).half().float()  # as saved
    captions = ["a red brick corridor", "an open plaza with trees", "a blue tiled room"]
    bank = FirstFrameBank(rgb, depth, pipe.K.cpu(), captions, top_k=1)
    with_bank = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", first_frame=bank)
    inserted = spy_inserts(monkeypatch)
    assert with_bank.start(prompt="a crimson brick hallway", seed=3) is None
    assert len(inserted) == 1 and inserted[0][1] is True  # observed
    assert torch.equal(inserted[0][0][0], rgb[0].float() / 255)
    monkeypatch.undo()
    cams = torch.stack([torch.eye(4), torch.eye(4)])
    cams[1, 2, 3] = 0.3  # a step forward
    drawn = with_bank.step(cams)
    pipe.start(prompt="a crimson brick hallway", image=rgb[0] / 255, depth=depth[0], seed=3)
    assert with_bank.spatial.num_points > 0
    torch.testing.assert_close(drawn.rgb, pipe.step(cams).rgb)

    with_bank.save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert meta["sampler"]["prompt_start"] == "bank"
    back = WorldPipeline.from_pretrained(tmp_path / "p", device="cpu")
    assert isinstance(back.first_frame, FirstFrameBank)
    back.start(prompt="a crimson brick hallway", seed=3)
    torch.testing.assert_close(back.step(cams).rgb, drawn.rgb)
    wide = FirstFrameBank(rgb, depth, pipe.K.cpu() * torch.tensor([2.0, 2.0, 1.0])[:, None],
                          captions)  # fmt: skip
    with pytest.raises(ValueError, match="first_frame: the bank's frames were seen with K"):
        WorldPipeline(pipe.model, pipe.model_cfg, pipe.memory_cfg, first_frame=wide)
    check_named_net(
        tmp_path / "p", tiny_pipeline_dir, "prompt_start", "first_frame", "retrieve",
        subfolder="first_frame_bank", file="bank.npz",
    )  # fmt: skip
