"""Config schemas: misspelt keys, bad types and bad choices fail by name; YAML files merge."""

import time
from pathlib import Path

import pytest
import torch

from worldmem.config import (
    ActionConfig,
    ConfigError,
    ModelConfig,
    SampleRootConfig,
    TrainRootConfig,
    from_dict,
    load_config,
    to_dict,
)
from worldmem.geometry import parse_trajectory

REPO = Path(__file__).resolve().parents[1]


def test_defaults_load_as_the_dataclasses():
    cfg = load_config(TrainRootConfig)
    assert isinstance(cfg, TrainRootConfig) and cfg.model == ModelConfig()
    assert load_config(SampleRootConfig).actions == ActionConfig()


def test_misspelt_key_is_named_with_the_valid_ones():
    with pytest.raises(
        ConfigError, match=r"'model\.hidden_sise'.*Valid keys under model:.*hidden_size"
    ):
        load_config(TrainRootConfig, overrides=["model.hidden_sise=3"])
    with pytest.raises(
        ConfigError, match=r"'modle'.*Valid keys: backbone, data, memory, model, train"
    ):
        load_config(TrainRootConfig, overrides=["modle.depth=3"])


def test_misspelt_key_in_a_yaml_file_names_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("actions:\n  move_m: 0.2\n  trun_deg: 4\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: .*'actions\.trun_deg'.*turn_deg"):
        load_config(SampleRootConfig, files=[path])


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"'model\.depth'.*'abc'"):
        load_config(TrainRootConfig, overrides=["model.depth=abc"])
    with pytest.raises(ConfigError, match=r"'actions\.move_m'.*'fast'"):
        load_config(SampleRootConfig, overrides=["actions.move_m=fast"])


def test_bad_choice_is_named_with_the_options():
    with pytest.raises(ConfigError, match="ModelConfig.codec: 'foo' is not one of identity, vae"):
        load_config(TrainRootConfig, overrides=["model.codec=foo"])
    with pytest.raises(ConfigError, match=r"SampleConfig\.memory: 'everything' is not one of none"):
        load_config(SampleRootConfig, overrides=["sample.memory=everything"])


def test_malformed_override_and_missing_file():
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_config(TrainRootConfig, overrides=["model.depth"])
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(TrainRootConfig, files=["nope.yaml"])


def test_yaml_files_merge_in_order_then_overrides(tmp_path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("model:\n  hidden_size: 128\n  depth: 3\ntrain:\n  lr: 0.001\n")
    b.write_text("model:\n  depth: 5\ndata:\n  batch_size: 2\n")
    cfg = load_config(TrainRootConfig, files=[a, b], overrides=["train.lr=0.01"])
    assert cfg.model.hidden_size == 128  # from a
    assert cfg.model.depth == 5  # b overrides a
    assert cfg.data.batch_size == 2
    assert cfg.train.lr == 0.01  # the override wins
    assert cfg.model.num_heads == ModelConfig().num_heads  # untouched keys keep defaults


def test_include_merges_the_named_file_first(tmp_path):
    (tmp_path / "base.yaml").write_text("model:\n  depth: 2\n  hidden_size: 64\n")
    (tmp_path / "top.yaml").write_text("include: [base.yaml]\nmodel:\n  depth: 4\n")
    cfg = load_config(TrainRootConfig, files=[tmp_path / "top.yaml"])
    assert (cfg.model.depth, cfg.model.hidden_size) == (4, 64)


def test_dict_round_trip_checks_keys():
    cfg = load_config(SampleRootConfig, overrides=["actions.turn_deg=3.5"])
    assert from_dict(SampleRootConfig, to_dict(cfg)) == cfg
    data = to_dict(cfg)
    data["actions"]["speed"] = 1
    with pytest.raises(ConfigError, match=r"'actions\.speed'"):
        from_dict(SampleRootConfig, data)


def test_the_sample_preset_loads_and_its_trajectory_parses():
    from worldmem.geometry import intrinsics_from_fov
    from worldmem.sampling import resolve_trajectory

    cfg = load_config(SampleRootConfig, files=[REPO / "configs/sample/default.yaml"])
    assert cfg.sample.trajectory == SampleRootConfig().sample.trajectory
    traj = resolve_trajectory(
        str(REPO / cfg.sample.trajectory), 64, intrinsics_from_fov(75.0, 64, 64), cfg.actions
    )
    assert len(traj) > 60  # the demo walk out and back
    assert torch.allclose(traj.c2w[0], traj.c2w[-1], atol=0.3)  # it comes back
    assert parse_trajectory("w*12 left*30 right*30 s*12")


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.chunk_frames=4", "model.chunk_frames=2 but data.chunk_frames=4"),
        ("data.image_size=32", "model.image_size=64 but data.image_size=32"),
        ("data.context_frames=3", "memory.working_frames=2 but data.context_frames=3"),
        ("memory.retrieve_k=3", "memory.retrieve_k=3 but data.keyframes=2"),
        ("model.max_frames=4", "model.max_frames=4 < context_frames"),
    ],
)
def test_values_two_objects_share_must_agree(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TrainRootConfig, [REPO / "configs/train/tiny.yaml"], [override])


# ---- hostile YAML and overrides: a ConfigError naming the file and line, or the override ----

BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
)


@pytest.mark.parametrize(
    "text, match",
    [
        ("sample: {steps: 3\n", r"line 2, column 1: while parsing a flow mapping"),
        ("sample:\n\tsteps: 3\n", r"line 2, column 1: .*found character '\\t'"),
        ("sample:\n  steps: 3\n  steps: 4\n", r"line 3, column 3: .*duplicate key steps"),
        ("sample:\n  prompt: !!python/object/apply:os.system [ls]\n", r"line 2, .*YAML tags"),
        ("sample:\n  prompt: !!binary aGk=\n", r"line 2, column 11: YAML tags"),
        ("sample: {steps: 3}\n---\nsample: {steps: 4}\n", r"line 2, .*a single document"),
        ("- sample\n- server\n", r"expected a mapping of config sections at the top, got a list"),
        ("include: [5]\n", r"include: expected a file name or a list of file names, got \[5\]"),
        ("include: {a: 1}\n", r"include: expected a file name"),
        ('sample:\n  prompt: "a room\n', r"line 3, column 1: while scanning a quoted scalar"),
        ("sample:\n  prompt: ${oops\n", r"no viable alternative at input '\$\{oops'"),
        ("sample:\n  steps: ???\n", r"'sample\.steps' is '\?\?\?' \(no value\)"),
        ("sample:\n  device: bogus\n", r"SampleConfig\.device: 'bogus' is not one of auto"),
        ("base: &b {steps: 3}\nsample: *b\n", r"line 1, column 7: YAML anchors and aliases"),
        (BILLION_LAUGHS, r"line 1, column 4: YAML anchors and aliases"),
        ("1: 2\n", r"key 1 under '<top>' is not a name"),
        ("sample: 5\n", r"int is not a subclass of SampleConfig"),
        ("[" * 50_000, r"nested too deeply|while parsing"),
    ],
)
def test_hostile_yaml_is_a_config_error_naming_file_and_line(tmp_path, text, match):
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=match) as e:
        load_config(SampleRootConfig, files=[path])
    assert str(e.value).startswith(str(path)) or "SampleConfig" in str(e.value)
    assert time.monotonic() - t0 < 5  # the aliases are refused, never expanded


def test_a_bad_included_file_is_named_not_the_including_one(tmp_path):
    (tmp_path / "base.yaml").write_text("sample:\n  steps: 3\n  steps: 4\n")
    (tmp_path / "top.yaml").write_text("include: base.yaml\nsample:\n  fps: 4\n")
    with pytest.raises(ConfigError, match=r"base\.yaml, line 3, column 3: .*duplicate key"):
        load_config(SampleRootConfig, files=[tmp_path / "top.yaml"])


def test_binary_and_huge_config_files_are_refused_unparsed(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"sample:\n  prompt: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"bin\.yaml, line 2: not UTF-8 text"):
        load_config(SampleRootConfig, files=[path])
    path.write_text("sample:\n  prompt: " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match=r"bin\.yaml: \d+ bytes; a config file is at most"):
        load_config(SampleRootConfig, files=[path])


@pytest.mark.parametrize(
    "override, match",
    [
        ('sample.prompt="a room', r"line 1, column 8: while scanning a quoted scalar"),
        ("sample.prompt='a room", r"while scanning a quoted scalar"),
        ("sample.prompt=${oops", r"no viable alternative"),
        ("sample.steps=???", r"'sample\.steps' is '\?\?\?' \(no value\)"),
        ("sample.prompt=[a, '???']", r"'sample\.prompt\[1\]' is '\?\?\?'"),
        ("sample.device=bogus", r"SampleConfig\.device: 'bogus' is not one of auto, cpu, cuda"),
        ("sample.steps=*a", r"YAML anchors and aliases"),
        ("sample.prompt=!!python/object/apply:os.system [ls]", r"YAML tags"),
        ("=3", r"'' is not a dotted config key"),
        ("sample..steps=3", r"'sample\.\.steps' is not a dotted config key"),
        ("sample.steps", r"is not of the form key=value"),
    ],
)
def test_hostile_overrides_are_config_errors(override, match):
    with pytest.raises(ConfigError, match=match) as e:
        load_config(SampleRootConfig, overrides=[override])
    if "SampleConfig" not in str(e.value):
        assert str(e.value).startswith(f"override '{override}'")


def test_ordinary_overrides_still_parse():
    cfg = load_config(
        SampleRootConfig,
        overrides=[
            "sample.device=cuda:1",
            "sample.image=",
            "sample.guidance_scale=2e0",
            "server.allowed_origins=[https://demo.example.org]",
            "sample.prompt=a room, the door open",
        ],
    )
    assert cfg.sample.device == "cuda:1" and cfg.sample.image is None
    assert cfg.sample.guidance_scale == 2.0
    assert cfg.server.allowed_origins == ["https://demo.example.org"]
    assert cfg.sample.prompt == "a room, the door open"
