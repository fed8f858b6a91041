"""`frames.publish_frames` and `frames.ack_frame` give the bytes pika's own framing gives, for any publish or ack the
layer can make.

Random exchanges, routing keys (non-ASCII included), message ids, bodies (empty, small, and larger than the frame
size, so split), channel numbers and frame sizes, each compared with what pika's `Connection._send_message` would
write: its method, header and body frames, marshalled by pika.
"""

from __future__ import annotations

import math
import random

import pytest
from pika import frame, spec

from channels_rabbitmq_threaded._io.frames import ack_frame, publish_frames

ALPHABET = "abcxyz09.-_!é€"


def pikas_bytes(
    channel: int, exchange: str, key: str, mandatory: bool, message_id: str | None, body: bytes, frame_max: int
) -> bytes:
    """What pika 1.4's `Connection._send_message` marshals for `basic_publish`."""
    method = spec.Basic.Publish(exchange=exchange, routing_key=key, mandatory=mandatory)
    properties = spec.BasicProperties(message_id=message_id)
    pieces = [frame.Method(channel, method).marshal(), frame.Header(channel, len(body), properties).marshal()]
    largest = frame_max - spec.FRAME_HEADER_SIZE - spec.FRAME_END_SIZE
    for n in range(math.ceil(len(body) / largest)):
        pieces.append(frame.Body(channel, body[n * largest : (n + 1) * largest]).marshal())
    return b"".join(pieces)


def a_name(rng: random.Random, longest: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, longest)))


def test_publish_frames_are_byte_for_byte_pikas() -> None:
    rng = random.Random(24)
    for _ in range(3_000):
        frame_max = rng.choice([4096, 4097, 131072])
        args = (
            rng.randrange(1, 65536),
            a_name(rng, 60),
            a_name(rng, 80),
            rng.random() < 0.5,
            rng.choice([None, a_name(rng, 40)]),
            rng.randbytes(rng.choice([0, 1, 200, 4088, 4089, 10_000, 140_000])),
            frame_max,
        )
        assert publish_frames(*args) == pikas_bytes(*args), args[:5]


@pytest.mark.parametrize("field", ["exchange", "routing key", "message id"])
def test_a_name_over_255_bytes_is_a_value_error(field: str) -> None:
    names = {"exchange": "x", "routing key": "k", "message id": "m"}
    names[field] = "é" * 128  # 256 bytes in UTF-8
    with pytest.raises(ValueError, match="at most 255"):
        publish_frames(1, names["exchange"], names["routing key"], True, names["message id"], b"body", 131072)


def test_ack_frames_are_byte_for_byte_pikas() -> None:
    rng = random.Random(80)
    for _ in range(1_000):
        channel, tag, multiple = rng.randrange(1, 65536), rng.randrange(1, 2**64), rng.random() < 0.5
        pikas = frame.Method(channel, spec.Basic.Ack(delivery_tag=tag, multiple=multiple)).marshal()
        assert ack_frame(channel, tag, multiple) == pikas, (channel, tag, multiple)
