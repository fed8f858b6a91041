"""The layer with its publishes framed by pika's own encoder, for an A/B run of the bench on one commit.

    python -m channels_rabbitmq_threaded bench --layer benchmarks.pika_framing.PikaFramingLayer \
        --config '{"local_capacity": 50000, "remote_capacity": 100000, "capacity": 100000}' --scenarios cpu,...

`frames.publish_frames` is replaced, in the process that builds this layer, by pika's frame objects marshalled as
pika's `Connection._send_message` marshals them (the same bytes), so only the framing differs. Run from the
repository's root (so that `benchmarks` imports); measure it beside the layer itself, alternating.
"""

from __future__ import annotations

import math
from typing import Any

from pika import frame, spec

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from channels_rabbitmq_threaded._io import publisher


class PikaFramingLayer(RabbitmqChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        publisher.publish_frames = pikas_frames  # every layer of this process: a bench cell builds no other
        super().__init__(*args, **kwargs)


def pikas_frames(
    channel: int, exchange: str, key: str, mandatory: bool, message_id: str | None, body: bytes, frame_max: int
) -> bytes:
    method = spec.Basic.Publish(exchange=exchange, routing_key=key, mandatory=mandatory)
    properties = spec.BasicProperties(message_id=message_id)
    pieces = [frame.Method(channel, method).marshal(), frame.Header(channel, len(body), properties).marshal()]
    largest = frame_max - spec.FRAME_HEADER_SIZE - spec.FRAME_END_SIZE
    for n in range(math.ceil(len(body) / largest)):
        pieces.append(frame.Body(channel, body[n * largest : (n + 1) * largest]).marshal())
    return b"".join(pieces)
