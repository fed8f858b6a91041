"""What a hot-frame codec could save: pika's framing and parsing of one message against struct-based code.

    python benchmarks/hot_frames.py [--rounds 20000] [--runs 3]

A spike, not part of the layer. For the frames the layer sends and receives per message, it times:

* framing a publish as pika's `Connection._send_message` does (method, header and body frames, each marshalled),
  against a struct-based encoder with the exchange's part cached; the two must give the same bytes;
* parsing a delivery (basic.deliver, its content header, its body) with pika's `frame.decode_frame`, against a
  struct-based parser; both must find the same tag, routing key, message id and body; and the layer's own parser
  (`frames.read_delivery`, which checks more: the channel, every frame's end, the body's size).

It prints microseconds per message (medians of the runs). Set them beside the layer's CPU per message (the bench's
cpu scenario, sender and receiver) to see the bound of what a codec could save: pika's dispatch of the frames to
the channel's callbacks is not counted here (a codec that bypassed it would also bypass pika's channel).
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time
from collections.abc import Callable

from pika import frame, spec

from channels_rabbitmq_threaded._io.frames import read_delivery

BODY = b"\x82\xa4type\xacbench.message\xa1n\x00" + b"x" * 100
EXCHANGE = "channels_rabbitmq_threaded.direct"
ROUTING_KEY = "specific.9c51a3e16df1"
MESSAGE_ID = "4f2c81a3b7d9e0f1.000000000001"
CHANNEL = 1
FRAME_END = b"\xce"
MESSAGE_ID_FLAG = 0x0080  # basic properties: message_id is the 9th property


def pika_publish_frames() -> bytes:
    properties = spec.BasicProperties(message_id=MESSAGE_ID)
    method = frame.Method(CHANNEL, spec.Basic.Publish(exchange=EXCHANGE, routing_key=ROUTING_KEY, mandatory=True))
    pieces = [method.marshal(), frame.Header(CHANNEL, len(BODY), properties).marshal()]
    pieces.append(frame.Body(CHANNEL, BODY).marshal())
    return b"".join(pieces)


def short_string(text: str) -> bytes:
    encoded = text.encode()
    return bytes([len(encoded)]) + encoded


_PUBLISH_HEAD = struct.pack(">HH", 60, 40) + b"\x00\x00" + short_string(EXCHANGE)  # class, method, ticket, exchange


def struct_publish_frames() -> bytes:
    method = _PUBLISH_HEAD + short_string(ROUTING_KEY) + b"\x01"  # mandatory
    header = struct.pack(">HHQH", 60, 0, len(BODY), MESSAGE_ID_FLAG) + short_string(MESSAGE_ID)
    return b"".join(
        (
            struct.pack(">BHI", 1, CHANNEL, len(method)), method, FRAME_END,
            struct.pack(">BHI", 2, CHANNEL, len(header)), header, FRAME_END,
            struct.pack(">BHI", 3, CHANNEL, len(BODY)), BODY, FRAME_END,
        )
    )  # fmt: skip


def delivery_bytes() -> bytes:
    deliver = spec.Basic.Deliver(
        consumer_tag="ctag1.abc", delivery_tag=123456, redelivered=False, exchange=EXCHANGE, routing_key=ROUTING_KEY
    )
    properties = spec.BasicProperties(message_id=MESSAGE_ID)
    return b"".join(
        (
            frame.Method(CHANNEL, deliver).marshal(),
            frame.Header(CHANNEL, len(BODY), properties).marshal(),
            frame.Body(CHANNEL, BODY).marshal(),
        )
    )


def pika_parse(data: bytes) -> tuple[int, str, str, bytes]:
    used, method = frame.decode_frame(data)
    used2, header = frame.decode_frame(data[used:])
    _, body = frame.decode_frame(data[used + used2 :])
    return method.method.delivery_tag, method.method.routing_key, header.properties.message_id, body.fragment  # type: ignore[union-attr]


def struct_parse(data: bytes) -> tuple[int, str, str, bytes]:
    _kind, _channel, size = struct.unpack_from(">BHI", data)
    at = 11  # frame header (7) and class and method ids (4)
    tag_length = data[at]
    at += 1 + tag_length
    (delivery_tag,) = struct.unpack_from(">Q", data, at)
    at += 9  # the tag and the redelivered bits
    at += 1 + data[at]  # exchange
    key_length = data[at]
    routing_key = data[at + 1 : at + 1 + key_length].decode()
    at = 7 + size + 1
    _kind, _channel, size = struct.unpack_from(">BHI", data, at)
    _class, _weight, body_size, flags = struct.unpack_from(">HHQH", data, at + 7)
    if flags != MESSAGE_ID_FLAG:
        raise ValueError("a spike: only the layer's own properties")
    id_length = data[at + 21]
    message_id = data[at + 22 : at + 22 + id_length].decode()
    at += 7 + size + 1
    body = data[at + 7 : at + 7 + body_size]
    return delivery_tag, routing_key, message_id, body


def per_call(function: Callable[[], object], rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        function()
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    assert struct_publish_frames() == pika_publish_frames(), "the encoders disagree"
    data = delivery_bytes()
    assert struct_parse(data) == pika_parse(data), "the parsers disagree"
    cases: dict[str, Callable[[], object]] = {
        "publish, pika's framing": pika_publish_frames,
        "publish, struct": struct_publish_frames,
        "delivery, pika's decode_frame": lambda: pika_parse(data),
        "delivery, struct": lambda: struct_parse(data),
        "delivery, frames.read_delivery": lambda: read_delivery(data, 0, CHANNEL),
    }
    timings: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(args.runs):
        for label, function in cases.items():
            timings[label].append(per_call(function, args.rounds))
    for label, values in timings.items():
        print(f"{label:34} {statistics.median(values):6.2f} us per message")


if __name__ == "__main__":
    main()
