"""Text encoders: byte-level masking and the null state; a tiny local BERT through the hf path."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_model_config

from worldmem.models import ByteTextEncoder, HFTextEncoder, WorldDiT


def test_byte_encoder_states_do_not_depend_on_batch_padding():
    torch.manual_seed(0)
    enc = ByteTextEncoder(max_tokens=24, width=32, layers=1).eval()
    alone = enc(["brick"])
    both = enc(["brick", "a much longer caption here"])
    assert alone.states.shape == (1, 24, 32) and alone.mask[0].sum() == 5
    torch.testing.assert_close(both.states[:1], alone.states, atol=1e-6, rtol=0)
    # UTF-8 bytes: "é" is two tokens
    assert enc.tokenize(["é"])[1].sum() == 2


def test_empty_caption_is_the_null_state():
    torch.manual_seed(0)
    enc = ByteTextEncoder(max_tokens=8, width=16, layers=1)
    out = enc(["", "x"])
    assert out.mask[0].tolist() == [True] + [False] * 7
    torch.testing.assert_close(out.states[0, 0], enc.null)
    assert torch.all(out.states[0, 1:] == 0)
    out.states[0, 0].sum().backward()
    assert enc.null.grad is not None


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("bert")
    words = ["a", "red", "brick", "corridor", "sunny", "plaza", "with", "blue", "walls"]
    (path / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n"
    )
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=14,
        hidden_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    BertModel(cfg).save_pretrained(path)
    return path


def test_hf_encoder_matches_the_transformers_model(bert_dir):
    from transformers import AutoModel, AutoTokenizer

    enc = HFTextEncoder(bert_dir, max_tokens=16, cache_size=2)
    assert enc.width == 24
    out = enc(["a red brick corridor", ""])
    tok = AutoTokenizer.from_pretrained(bert_dir)
    bert = AutoModel.from_pretrained(bert_dir).eval()
    ids = tok(["a red brick corridor"], return_tensors="pt")
    with torch.no_grad():
        ref = bert(**ids).last_hidden_state[0]
    L = ref.shape[0]  # [CLS] a red brick corridor [SEP]
    assert L == 6 and out.mask[0].sum() == L
    torch.testing.assert_close(out.states[0, :L], ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.states[1, 0], enc.null.detach())
    assert out.mask[1].sum() == 1
    # bounded cache
    enc(["sunny plaza"])
    enc(["blue walls"])
    assert len(enc._cache) == 2 and "a red brick corridor" not in enc._cache
    # the encoder is frozen and outside the module tree: only the null state is a parameter
    assert [n for n, _ in enc.named_parameters()] == ["null"]


def test_dit_with_hf_text_saves_without_the_encoder(bert_dir, tmp_path):
    from worldmem.diffusion.dummy import dummy_world_batch

    cfg = tiny_model_config(text_encoder="hf", text_encoder_path=str(bert_dir))
    torch.manual_seed(0)
    m = WorldDiT.from_model_config(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = dummy_world_batch(2, 1, 0, 0, 32)
    from worldmem.diffusion import encode_frames
    from worldmem.models import IdentityCodec

    target = encode_frames(IdentityCodec(), batch.target)
    a = m(target, captions=["a red brick corridor", "sunny plaza"]).sample
    b = m(target, captions=["sunny plaza", "sunny plaza"]).sample
    assert (a[0] - b[0]).abs().max() > 1e-4
    torch.testing.assert_close(a[1], b[1], atol=1e-6, rtol=0)
    m.save_pretrained(tmp_path)
    from safetensors.torch import load_file

    keys = load_file(tmp_path / "diffusion_pytorch_model.safetensors").keys()
    assert not any("embeddings" in k or "encoder.layer" in k for k in keys)
    loaded = WorldDiT.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded(target, captions=["sunny plaza"] * 2).sample, b)
