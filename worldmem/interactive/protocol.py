"""The websocket protocol between the exploration page and the server.

Client -> server: JSON text messages, validated with pydantic (unknown fields are errors)::

    {"type": "start", "prompt": "a brick corridor", "seed": 0}   # a new world
    {"type": "start", "prompt": "...", "seed": 0, "from_image": true}  # from the start frame
    {"type": "keys", "keys": ["w", "left"], "t": 1234.5}         # action keys, one frame each
    {"type": "reset", "t": 1234.5}                               # back to the start pose
    {"type": "ping", "t": 1234.5}                                # answered by "pong"

``t`` is the client's own clock in milliseconds (e.g. ``performance.now()``); the server
echoes it with the frame a key produced, so the client measures key-to-frame latency
without any clock synchronisation.

Server -> client text messages (JSON): ``hello``, ``started``, ``status``, ``pong``,
``error`` (see the ``*Reply`` models). Every rejected message is answered by an ``error``
with a machine-readable ``code`` (``ERROR_CODES``) and a human-readable ``message``.

Server -> client binary messages carry one image each::

    [4 bytes: header length N, unsigned big-endian][N bytes: UTF-8 JSON header][PNG bytes]

The header (``ImageHeader``) says which picture it is (``frame``, ``depth``, ``memory`` or
``map``), the frame index, the camera pose (position in metres, yaw and pitch in degrees),
the action key that produced it and its client time ``t``, and the generation timing.

Why binary rather than base64 inside JSON: base64 makes every image a third larger and costs
an encode on the server and a decode on the page for each frame; the binary message goes
straight into a ``Blob`` that the browser decodes (``createImageBitmap``). Why PNG rather
than JPEG: the frames are small (64 px: a few kB either way) and lossless frames let the page
and the tests compare what the model generated, not compression artefacts.
"""

from __future__ import annotations

import json
import struct
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from worldmem.geometry.actions import KEYS
from worldmem.text_check import invalid_unicode

__all__ = [
    "ERROR_CODES",
    "MAX_KEYS_PER_MESSAGE",
    "MAX_SEED",
    "ActionKey",
    "ClientMessage",
    "ErrorReply",
    "ImageHeader",
    "KeysMessage",
    "PingMessage",
    "ProtocolError",
    "ResetMessage",
    "StartMessage",
    "TokenBucket",
    "decode_image_message",
    "encode_image_message",
    "parse_client_message",
]

MAX_KEYS_PER_MESSAGE = 16  # action keys one "keys" message may carry
MAX_SEED = 2**31 - 1

ERROR_CODES = {
    "bad_json": "the message is not valid JSON",
    "binary_not_accepted": "the server only accepts JSON text messages",
    "too_large": "the message is longer than the server accepts",
    "rate_limited": "too many messages per second; this one was dropped",
    "unknown_type": "the message type is not one the server knows",
    "invalid": "a field is missing, unknown or has a bad value",
    "prompt_too_long": "the prompt is longer than the server accepts",
    "no_world": "send a start message before keys or reset",
    "no_start_frame": "this server has no start frame; start from a prompt alone",
    "server_full": "the server has no free session; try again later",
    "idle_timeout": "the session was idle too long and was closed",
    "generation_failed": "the model failed to generate a frame",
}

ActionKey = Literal[KEYS]  # type: ignore[valid-type]


# the client's clock in milliseconds, echoed back with the frames it caused
ClientTime = Annotated[float | None, Field(allow_inf_nan=False)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class StartMessage(_Message):
    type: Literal["start"]
    prompt: str = ""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    from_image: bool = False  # begin from the server's start frame (its image and depth)

    @field_validator("prompt")
    @classmethod
    def _unicode(cls, prompt: str) -> str:
        """A JSON escape such as ``"\\ud800"`` gives a lone surrogate, which the model's text
        encoder cannot take: refused here rather than failing in generation (the error names
        the field)."""
        problem = invalid_unicode(prompt)
        if problem is not None:
            raise ValueError(problem)
        return prompt


class KeysMessage(_Message):
    type: Literal["keys"]
    keys: list[ActionKey] = Field(min_length=1, max_length=MAX_KEYS_PER_MESSAGE)
    t: ClientTime = None


class ResetMessage(_Message):
    type: Literal["reset"]
    t: ClientTime = None


class PingMessage(_Message):
    type: Literal["ping"]
    t: ClientTime = None


ClientMessage = Annotated[
    StartMessage | KeysMessage | ResetMessage | PingMessage, Field(discriminator="type")
]
_CLIENT_ADAPTER: TypeAdapter = TypeAdapter(ClientMessage)
_TYPES = ("start", "keys", "reset", "ping")


class ErrorReply(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str
    fatal: bool = False  # the server closes the connection after a fatal error


class WirePose(BaseModel):
    position: tuple[float, float, float]  # metres, world frame (y points down)
    yaw_deg: float  # > 0 turned right
    pitch_deg: float  # > 0 looking up


class ImageHeader(BaseModel):
    kind: Literal["frame", "depth", "memory", "map"]
    mime: str = "image/png"
    frame_index: int
    pose: WirePose
    key: str = ""  # the action that produced the frame ("start", "reset" or a key)
    t: float | None = None  # the client time of that action, echoed
    timing: dict[str, float] = Field(default_factory=dict)  # seconds


class ProtocolError(Exception):
    """A rejected client message: ``code`` is one of ``ERROR_CODES``."""

    def __init__(self, code: str, message: str):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}; known: {', '.join(ERROR_CODES)}")
        super().__init__(message)
        self.code = code
        self.message = message

    def reply(self, fatal: bool = False) -> dict[str, Any]:
        return ErrorReply(code=self.code, message=self.message, fatal=fatal).model_dump()


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_client_message(
    raw: str | bytes | None, max_message_bytes: int, max_prompt_chars: int
) -> StartMessage | KeysMessage | ResetMessage | PingMessage:
    """Validate one client message; raise ``ProtocolError`` naming what is wrong.

    raw: the text of a websocket message (bytes: a binary message, always rejected).
    """
    if isinstance(raw, bytes | bytearray) or raw is None:
        raise ProtocolError("binary_not_accepted", ERROR_CODES["binary_not_accepted"])
    size = len(raw.encode("utf-8", "surrogatepass"))
    if size > max_message_bytes:
        raise ProtocolError(
            "too_large", f"message of {size} bytes; at most {max_message_bytes} are accepted"
        )
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        raise ProtocolError("bad_json", f"not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ProtocolError(
            "invalid", f"expected a JSON object with a 'type', got {type(data).__name__}"
        )
    kind = data.get("type")
    if kind not in _TYPES:
        raise ProtocolError(
            "unknown_type", f"unknown message type {str(kind)[:40]!r}; known: {', '.join(_TYPES)}"
        )
    try:
        msg = _CLIENT_ADAPTER.validate_python(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'message'}: {err['msg']}"
            for err in e.errors()[:3]
        )
        raise ProtocolError("invalid", f"bad '{kind}' message: {problems}") from None
    if isinstance(msg, StartMessage) and len(msg.prompt) > max_prompt_chars:
        raise ProtocolError(
            "prompt_too_long",
            f"prompt of {len(msg.prompt)} characters; at most {max_prompt_chars} are accepted",
        )
    return msg


def encode_image_message(header: ImageHeader, image: bytes) -> bytes:
    """One binary websocket message: length-prefixed JSON header, then the image bytes."""
    head = header.model_dump_json().encode()
    return struct.pack(">I", len(head)) + head + image


def decode_image_message(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The inverse of ``encode_image_message``: (header dict, image bytes)."""
    if len(data) < 4:
        raise ValueError(f"image message: expected at least 4 bytes, got {len(data)}")
    (n,) = struct.unpack(">I", data[:4])
    if n > len(data) - 4:
        raise ValueError(f"image message: header length {n} exceeds the {len(data)}-byte message")
    return json.loads(data[4 : 4 + n]), data[4 + n :]


class TokenBucket:
    """Rate limiter: ``rate_per_s`` tokens per second refill a bucket of ``capacity`` tokens
    (default: one second's worth); each message takes one token or is refused."""

    def __init__(self, rate_per_s: float, capacity: float | None = None, clock=time.monotonic):
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s: expected > 0, got {rate_per_s}")
        self.rate = float(rate_per_s)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate_per_s))
        self.tokens = self.capacity
        self.clock = clock
        self.last = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
