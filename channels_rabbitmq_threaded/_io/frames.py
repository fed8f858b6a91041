"""The frames of a publish, marshalled here rather than by pika's general-purpose path.

Theory of operation
-------------------
A publish is three kinds of AMQP frame: the `basic.publish` method, the content header (the body's size and the
properties; the layer sets one property, `message_id`), and the body, split into frames of at most the
connection's negotiated size. pika builds a method object, a properties object and a frame object for each and
marshals them field by field; `publish_frames` packs the same bytes with a few `struct` calls, the method's head
for each exchange made once. `tests/unit/test_frames.py` checks the bytes against pika's own encoder.

Rules
-----
* Pure: no I/O and no pika. What it returns goes out through `writes.emit`, on the thread that holds the pika lock.
* Names longer than AMQP's short strings allow raise `ValueError` here, before a byte is framed.
"""

from __future__ import annotations

import functools
import struct

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_END = b"\xce"
FRAME_OVERHEAD = 8  # a frame's type, channel and size (7 bytes) and its end marker
BASIC_CLASS = 60
PUBLISH_METHOD = 40
MESSAGE_ID_FLAG = 0x0080  # the content header's property flags: message_id is the ninth property of basic

_frame_head = struct.Struct(">BHI")
_content_head = struct.Struct(">HHQH")


def short_string(text: str, what: str) -> bytes:
    """`text` as an AMQP short string (its UTF-8 bytes after their length, at most 255)."""
    encoded = text.encode()
    if len(encoded) > 255:
        raise ValueError(f"{what} is {len(encoded)} bytes in UTF-8; AMQP allows at most 255")
    return bytes((len(encoded),)) + encoded


@functools.lru_cache(maxsize=64)
def _publish_head(exchange: str) -> bytes:
    """The method's class and id, the reserved ticket, and the exchange: the same for every publish to it."""
    return struct.pack(">HHH", BASIC_CLASS, PUBLISH_METHOD, 0) + short_string(exchange, "the exchange's name")


def publish_frames(
    channel: int, exchange: str, routing_key: str, mandatory: bool, message_id: str | None, body: bytes, frame_max: int
) -> bytes:
    """The bytes of one publish on `channel`: method, content header and body frames, the body split so that no
    frame is over `frame_max` bytes (the connection's negotiated size)."""
    method = (
        _publish_head(exchange) + short_string(routing_key, "the routing key") + (b"\x01" if mandatory else b"\x00")
    )
    if message_id is None:
        header = _content_head.pack(BASIC_CLASS, 0, len(body), 0)
    else:
        header = _content_head.pack(BASIC_CLASS, 0, len(body), MESSAGE_ID_FLAG) + short_string(message_id, "message id")
    pieces = [
        _frame_head.pack(FRAME_METHOD, channel, len(method)), method, FRAME_END,
        _frame_head.pack(FRAME_HEADER, channel, len(header)), header, FRAME_END,
    ]  # fmt: skip
    largest = frame_max - FRAME_OVERHEAD
    for start in range(0, len(body), largest):
        chunk = body[start : start + largest]
        pieces += (_frame_head.pack(FRAME_BODY, channel, len(chunk)), chunk, FRAME_END)
    return b"".join(pieces)
