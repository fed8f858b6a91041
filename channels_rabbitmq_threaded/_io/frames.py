"""The hot frames: a publish's and an ack's, marshalled here, and a delivery's and a confirm's, parsed here, rather
than by pika's general-purpose path.

Theory of operation
-------------------
A publish is three kinds of AMQP frame: the `basic.publish` method, the content header (the body's size and the
properties; the layer sets one property, `message_id`), and the body, split into frames of at most the
connection's negotiated size. pika builds a method object, a properties object and a frame object for each and
marshals them field by field; `publish_frames` packs the same bytes with a few `struct` calls, the method's head
for each exchange made once. `ack_frame` packs a `basic.ack` the same way. `tests/unit/test_frames.py` checks the
bytes against pika's own encoder.

A delivery is the same three kinds of frame with `basic.deliver` first. `read_delivery` reads one whose frames all
lie in a buffer from a given offset, on a given channel, with no property but `message_id`: the layer's own
messages. It says when such a delivery is not all in the buffer yet (`Unread.NOT_WHOLE`, the reader may wait for
the rest); anything else (a frame of another kind or channel, other properties, a name that is not UTF-8, a
malformed frame: `Unread.OTHER`) is not read here but left to pika, frame by frame, which then parses it or raises
as it always did. `read_confirm` reads a publisher confirm (`basic.ack` or `basic.nack`) on a given channel the same
way. `tests/unit/test_reads.py` checks the fields against pika's parser on random streams.

Rules
-----
* Pure: no I/O and no pika. What `publish_frames` and `ack_frame` return goes out through `writes.emit`, on the
  thread that holds the pika lock; `read_delivery` and `read_confirm` are called by the readers of `reads.py`, on
  the I/O thread.
* Names longer than AMQP's short strings allow raise `ValueError` here, before a byte is framed.
"""

from __future__ import annotations

import functools
import struct
from enum import Enum
from typing import NamedTuple

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_END = b"\xce"
FRAME_OVERHEAD = 8  # a frame's type, channel and size (7 bytes) and its end marker
BASIC_CLASS = 60
PUBLISH_METHOD = 40
DELIVER_METHOD = 60
ACK_METHOD = 80
NACK_METHOD = 120
MESSAGE_ID_FLAG = 0x0080  # the content header's property flags: message_id is the ninth property of basic

_frame_head = struct.Struct(">BHI")
_content_head = struct.Struct(">HHQH")
_method_frame_head = struct.Struct(">BHIHH")  # a method frame's head, then the method's class and id
_delivery_tag = struct.Struct(">Q")
_ack = struct.Struct(">BHIHHQB")  # the frame's head, the method's class and id, the tag, `multiple` (and `requeue`)
ACK_FRAME_SIZE = _ack.size + 1  # with the end marker
END_BYTE = FRAME_END[0]


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


def ack_frame(channel: int, delivery_tag: int, multiple: bool) -> bytes:
    """The bytes of one `basic.ack` on `channel`: of `delivery_tag`, and of every one before it if `multiple`."""
    return _ack.pack(FRAME_METHOD, channel, _ack.size - 7, BASIC_CLASS, ACK_METHOD, delivery_tag, multiple) + FRAME_END


class Delivery(NamedTuple):
    """The fields of a delivery the layer reads, and where its frames end in the buffer."""

    end: int  # the offset just past its last frame
    frames: int  # how many frames it took: method, header and body frames
    consumer_tag: str
    delivery_tag: int
    message_id: str | None
    body: bytes


class Unread(Enum):
    """Why `read_delivery` read nothing."""

    OTHER = "not a delivery the layer reads: pika parses it"
    NOT_WHOLE = "a delivery the layer reads, so far, whose frames are not all in the buffer yet"


class Confirm(NamedTuple):
    """A publisher confirm the layer reads (`basic.ack` or `basic.nack`), and where its frame ends in the buffer."""

    end: int
    delivery_tag: int
    multiple: bool
    acked: bool  # basic.ack; False: basic.nack


_NOT_WHOLE = -2


def _short_string(buffer: bytes, at: int) -> tuple[str, int]:
    """The short string at `at` and the offset past it; `UnicodeDecodeError` if it is not UTF-8."""
    end = at + 1 + buffer[at]
    return buffer[at + 1 : end].decode(), end


def frame_size(buffer: bytes, at: int) -> int:
    """The bytes of the frame that starts at `at`, as its head says (all that is left if the head is not there)."""
    if len(buffer) - at < 7:
        return len(buffer) - at
    size: int = _frame_head.unpack_from(buffer, at)[2]
    return size + FRAME_OVERHEAD


def _frame_end(buffer: bytes, at: int, kind: int, channel: int) -> int:
    """The offset of the end marker of the frame of `kind` on `channel` that starts at `at`; -1 if that is not such
    a frame, `_NOT_WHOLE` if it may be but is not all in `buffer`."""
    if len(buffer) - at < 7:
        return _NOT_WHOLE
    frame_kind, frame_channel, size = _frame_head.unpack_from(buffer, at)
    end: int = at + 7 + size
    if frame_kind != kind or frame_channel != channel:
        return -1
    if end >= len(buffer):
        return _NOT_WHOLE
    return end if buffer[end] == END_BYTE else -1


def read_delivery(buffer: bytes, start: int, channel: int) -> Delivery | Unread:
    """The delivery whose frames start at `start` in `buffer`, if it is one the layer reads (the module's theory
    says which); else why not."""
    try:
        return _read_delivery(buffer, start, channel)
    except (UnicodeDecodeError, IndexError, struct.error):
        return Unread.OTHER  # not UTF-8, or a frame that claims more than it holds: pika's parser says what it is


def read_confirm(buffer: bytes, start: int, channel: int) -> Confirm | None:
    """The confirm whose frame starts at `start` in `buffer`, if a whole `basic.ack` or `basic.nack` on `channel`
    lies there; None for anything else, which pika then parses."""
    if len(buffer) - start < ACK_FRAME_SIZE:
        return None
    kind, frame_channel, size, class_id, method_id, tag, bits = _ack.unpack_from(buffer, start)
    if kind != FRAME_METHOD or frame_channel != channel or size != _ack.size - 7 or class_id != BASIC_CLASS:
        return None
    if method_id not in (ACK_METHOD, NACK_METHOD) or buffer[start + _ack.size] != END_BYTE:
        return None
    return Confirm(start + ACK_FRAME_SIZE, tag, bool(bits & 1), method_id == ACK_METHOD)


def _read_delivery(buffer: bytes, start: int, channel: int) -> Delivery | Unread:
    method_end = _frame_end(buffer, start, FRAME_METHOD, channel)
    if method_end < 0 or method_end - start < 11:
        return Unread.OTHER  # pika waits for a method frame not all here as well as the layer would
    if _method_frame_head.unpack_from(buffer, start)[3:] != (BASIC_CLASS, DELIVER_METHOD):
        return Unread.OTHER
    consumer_tag, at = _short_string(buffer, start + 11)
    (delivery_tag,) = _delivery_tag.unpack_from(buffer, at)
    at += 9 + 1 + buffer[at + 9]  # the tag, redelivered, then the exchange's name
    at += 1 + buffer[at]  # the routing key
    if at != method_end:
        return Unread.OTHER
    header_end = _frame_end(buffer, method_end + 1, FRAME_HEADER, channel)
    if header_end < 0:
        return Unread.NOT_WHOLE if header_end == _NOT_WHOLE else Unread.OTHER
    class_id, _weight, body_size, flags = _content_head.unpack_from(buffer, method_end + 8)
    at = method_end + 8 + _content_head.size
    message_id: str | None = None
    if class_id != BASIC_CLASS or flags not in (0, MESSAGE_ID_FLAG):
        return Unread.OTHER
    if flags:
        message_id, at = _short_string(buffer, at)
    if at != header_end:
        return Unread.OTHER
    at, frames, pieces, size = header_end + 1, 2, [], 0
    while size < body_size:
        body_end = _frame_end(buffer, at, FRAME_BODY, channel)
        if body_end < 0:
            return Unread.NOT_WHOLE if body_end == _NOT_WHOLE else Unread.OTHER
        pieces.append(buffer[at + 7 : body_end])
        size += body_end - at - 7
        at, frames = body_end + 1, frames + 1
    if size != body_size:
        return Unread.OTHER
    body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    return Delivery(at, frames, consumer_tag, delivery_tag, message_id, body)
