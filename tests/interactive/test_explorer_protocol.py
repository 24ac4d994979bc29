"""The websocket message formats: validation errors, the binary image message, rate limits."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from worldmem.interactive.protocol import (
    ImageHeader,
    KeysMessage,
    ProtocolError,
    StartMessage,
    TokenBucket,
    decode_image_message,
    encode_image_message,
    parse_client_message,
)
from worldmem.interactive.session import encode_png


def parse(raw, max_bytes=4096, max_prompt=300):
    return parse_client_message(raw, max_bytes, max_prompt)


def code_of(raw, **kw) -> str:
    with pytest.raises(ProtocolError) as e:
        parse(raw, **kw)
    return e.value.code


def test_valid_messages_parse_to_their_models():
    m = parse('{"type": "start", "prompt": "a plaza", "seed": 3}')
    assert isinstance(m, StartMessage) and m.prompt == "a plaza" and m.seed == 3
    m = parse('{"type": "keys", "keys": ["w", "left", "space"], "t": 12.5}')
    assert isinstance(m, KeysMessage) and m.keys == ["w", "left", "space"] and m.t == 12.5


@pytest.mark.parametrize(
    "raw, code",
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "invalid"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"prompt": "no type"}', "unknown_type"),
        ('{"type": "keys", "keys": ["jump"]}', "invalid"),
        ('{"type": "keys", "keys": []}', "invalid"),
        ('{"type": "keys", "keys": ["w"], "extra": 1}', "invalid"),
        ('{"type": "start", "seed": -1}', "invalid"),
        ('{"type": "start", "seed": "many"}', "invalid"),
        (b'{"type": "ping"}', "binary_not_accepted"),
        ("[" * 3000 + "]" * 3000, "bad_json"),
        ('{"type": "ping", "t": NaN}', "bad_json"),
        ('{"type": "ping", "t": 1e999}', "invalid"),
    ],
)
def test_bad_messages_get_their_error_code(raw, code):
    assert code_of(raw, max_bytes=10_000) == code


def test_size_and_prompt_limits_are_enforced():
    assert code_of(json.dumps({"type": "ping", "pad": "x" * 5000})) == "too_large"
    # the limit is in bytes, not characters: 2,000 three-byte characters are 6,000 bytes
    assert code_of(json.dumps({"type": "start", "prompt": "€" * 2000}, ensure_ascii=False)) == (
        "too_large"
    )
    assert code_of(json.dumps({"type": "start", "prompt": "a" * 301})) == "prompt_too_long"
    assert parse(json.dumps({"type": "start", "prompt": "a" * 300})).prompt == "a" * 300


def test_error_reply_names_the_problem():
    with pytest.raises(ProtocolError) as e:
        parse('{"type": "keys", "keys": ["jump"]}')
    reply = e.value.reply()
    assert reply["type"] == "error" and reply["code"] == "invalid"
    assert "keys" in reply["message"] and reply["fatal"] is False


def test_image_message_round_trip_decodes_with_pil():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    header = ImageHeader(
        kind="frame",
        frame_index=7,
        pose={"position": (1.0, -0.5, 2.0), "yaw_deg": 30.0, "pitch_deg": -10.0},
        key="w",
        t=99.5,
    )
    head, payload = decode_image_message(encode_image_message(header, encode_png(img)))
    assert head["kind"] == "frame" and head["frame_index"] == 7 and head["t"] == 99.5
    assert head["pose"]["position"] == [1.0, -0.5, 2.0] and head["pose"]["yaw_deg"] == 30.0
    decoded = np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))
    assert np.array_equal(decoded, img)  # PNG is lossless
    with pytest.raises(ValueError, match="header length"):
        decode_image_message(b"\x00\x00\x10\x00{}")


def test_token_bucket_allows_the_burst_then_the_rate():
    now = [0.0]
    bucket = TokenBucket(rate_per_s=10, clock=lambda: now[0])
    assert sum(bucket.take() for _ in range(25)) == 10  # one second's burst
    now[0] += 0.5
    assert sum(bucket.take() for _ in range(25)) == 5  # half a second refills 5
    now[0] += 100.0
    assert sum(bucket.take() for _ in range(25)) == 10  # never more than the capacity
    with pytest.raises(ValueError, match="rate_per_s"):
        TokenBucket(0)
