"""Text from outside must be a string UTF-8 can encode: one check, and every entry that takes
text refuses a lone surrogate with the name of its field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_memory_config

from worldmem.config import ConfigError, SampleConfig, SampleRootConfig, load_config
from worldmem.data.episode import write_episode
from worldmem.data.manifest import read_manifest
from worldmem.interactive.protocol import ProtocolError, parse_client_message
from worldmem.sampling import load_jobs
from worldmem.text_check import check_text, invalid_unicode
from worldmem.world_state import WorldState

LONE = "a room\ud800"  # what the JSON escape "a room\\ud800" decodes to


def test_check_text_names_the_field_and_the_bad_character():
    assert check_text("a red room, ünïcödé 🙂", "caption") == "a red room, ünïcödé 🙂"
    assert invalid_unicode("") is None and invalid_unicode("\U0001f642") is None
    assert invalid_unicode(LONE) == "not valid Unicode text (a lone surrogate at character 6)"
    with pytest.raises(ValueError, match=r"^caption: not valid Unicode text .*character 6\)$"):
        check_text(LONE, "caption")
    with pytest.raises(ValueError, match=r"^prompt: expected a string, got int$"):
        check_text(3, "prompt")


def test_an_episode_caption_must_be_text(tmp_path):
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    c2w, K = torch.eye(4)[None], torch.tensor([[[2.0, 0, 1], [0, 2.0, 1], [0, 0, 1]]])
    with pytest.raises(ValueError, match=r"^caption: not valid Unicode text"):
        write_episode(tmp_path / "ep", rgb, c2w, K, LONE)
    with pytest.raises(ValueError, match=r"^caption: expected a string, got int"):
        write_episode(tmp_path / "ep", rgb, c2w, K, 5)
    assert not (tmp_path / "ep").exists()


def test_a_world_prompt_must_be_text():
    with pytest.raises(ValueError, match=r"^prompt: not valid Unicode text"):
        WorldState.new(tiny_memory_config(), prompt=LONE)
    world = WorldState.new(tiny_memory_config(), prompt="a room")
    state = world.state_dict()
    state["prompt"] = LONE
    with pytest.raises(ValueError, match=r"^'prompt': prompt: not valid Unicode text"):
        world.load_state_dict(state)
    assert world.prompt == "a room"


def test_jobs_manifests_configs_and_client_messages_refuse_a_lone_surrogate(tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": LONE, "trajectory": "w"}) + "\n")
    with pytest.raises(ValueError, match=r"jobs.jsonl:1: 'prompt': not valid Unicode text"):
        load_jobs(SampleConfig(jobs=str(jobs)))
    entry = {"path": "ep", "split": "train", "num_frames": 1, "caption": LONE}
    (tmp_path / "manifest.jsonl").write_text(json.dumps(entry) + "\n")
    with pytest.raises(ValueError, match=r"'caption' must be a string of valid Unicode text"):
        read_manifest(tmp_path)
    with pytest.raises(ConfigError, match=r"'sample.out_dir' is not valid Unicode text"):
        load_config(SampleRootConfig, overrides=['sample.out_dir="a\\ud800b"'])  # YAML escape
    with pytest.raises(ProtocolError, match=r"prompt: .*not valid Unicode text") as e:
        parse_client_message(json.dumps({"type": "start", "prompt": LONE}), 4096, 300)
    assert e.value.code == "invalid"
