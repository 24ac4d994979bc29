"""FirstFrameNet: its config and input checks, the caption embedding against the real MiniLM
encoder, seeded drawing, and saving and loading."""

import json

import pytest
import torch
import torch.nn.functional as F

from worldmem.models.first_frame import (
    TEXT_DIM,
    FirstFrameConfig,
    FirstFrameCritic,
    FirstFrameNet,
    caption_embedding,
)


def tiny(**kw) -> FirstFrameNet:
    torch.manual_seed(0)
    return FirstFrameNet(FirstFrameConfig(**{"image_size": 32, "widths": (16, 8, 8), **kw}))


def test_config_checks_name_what_is_wrong():
    with pytest.raises(ValueError, match="multiples of 8"):
        FirstFrameConfig(widths=(64, 12, 8, 8))
    with pytest.raises(ValueError, match="image_size 48 must be 4 \\* 2\\^len\\(widths\\)"):
        FirstFrameConfig(image_size=48)
    with pytest.raises(ValueError, match="norm must be batch, pixel or group, got 'layer'"):
        FirstFrameConfig(norm="layer")
    with pytest.raises(ValueError, match="z_dim"):
        FirstFrameConfig(z_dim=0)
    assert FirstFrameConfig().image_size == 64  # the default: four 2x stages from 4x4


def test_frames_are_in_range_and_bad_inputs_are_refused():
    net = tiny()
    out = net(torch.randn(3, TEXT_DIM), torch.randn(3, 64))
    assert out.shape == (3, 3, 32, 32) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="want text \\(B, 384\\) and z \\(B, 64\\)"):
        net(torch.randn(3, 100), torch.randn(3, 64))
    with pytest.raises(ValueError, match="got \\(3, 384\\) and \\(2, 64\\)"):
        net(torch.randn(3, TEXT_DIM), torch.randn(2, 64))
    score = FirstFrameCritic(widths=(16, 32))(out, torch.randn(3, TEXT_DIM))
    assert score.shape == (3,)


def test_caption_embedding_reads_meaning():
    """Unit length; the empty caption is zeros; a paraphrase lies nearer than another place
    (the real all-MiniLM-L6-v2 states, mean-pooled)."""
    e = caption_embedding(
        [
            "a crimson brick hallway",
            "a red brick corridor",
            "",
            "an open plaza with trees and lamp posts",
        ]
    )
    assert e.shape == (4, TEXT_DIM)
    assert torch.allclose(e[[0, 1, 3]].norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(e[2], torch.zeros(TEXT_DIM))
    near, far = F.cosine_similarity(e[0], e[1], 0), F.cosine_similarity(e[0], e[3], 0)
    assert near > far + 0.2, (near, far)
    assert torch.equal(caption_embedding(["a red brick corridor"])[0], e[1])  # cached, same
    with pytest.raises(ValueError, match="list of strings"):
        caption_embedding("a room")


def test_generate_is_seeded_by_its_generator():
    net = tiny()
    a = net.generate(["a room"], torch.Generator().manual_seed(5))
    b = net.generate(["a room"], torch.Generator().manual_seed(5))
    c = net.generate(["a room"], torch.Generator().manual_seed(6))
    d = net.generate(["a plaza"], torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-6 and (a - d).abs().max() > 1e-6  # untrained: small


def test_save_and_load_round_trip_and_refusals(tmp_path):
    net = tiny()
    net.save_pretrained(tmp_path / "ff")
    back = FirstFrameNet.from_pretrained(tmp_path / "ff")
    assert back.cfg == net.cfg
    text, z = torch.randn(2, TEXT_DIM), torch.randn(2, 64)
    with torch.no_grad():
        assert torch.equal(back(text, z), net.eval()(text, z))
    cfg = json.loads((tmp_path / "ff" / "config.json").read_text())
    (tmp_path / "ff" / "config.json").write_text(json.dumps({**cfg, "widths": [16, 8]}))
    with pytest.raises(ValueError, match="config.json: not a first-frame net config"):
        FirstFrameNet.from_pretrained(tmp_path / "ff")
    (tmp_path / "ff" / "config.json").write_text(json.dumps({**cfg, "z_dim": 32}))
    with pytest.raises(ValueError, match="safetensors: not this config's weights"):
        FirstFrameNet.from_pretrained(tmp_path / "ff")
