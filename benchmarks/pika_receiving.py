"""The layer with its deliveries or its confirms parsed, or its acks framed and written, by pika, for A/B runs of
the bench on one commit.

    python -m channels_rabbitmq_threaded bench --layer benchmarks.pika_receiving.PikaReadsLayer \
        --config '{"local_capacity": 50000, "remote_capacity": 100000, "capacity": 100000}' --scenarios cpu,...

* `PikaReadsLayer`: `reads.DeliveryReader` is left out, so every delivery goes through pika's parser and its
  consumer callback (`Deliveries.on_delivery`), as before the reader.
* `PikaConfirmsLayer`: `reads.ConfirmReader` is left out, so every publisher confirm goes through pika's parser
  and its callback look-up (`PublisherSide._on_confirm`), as before the reader.
* `PikaAcksLayer`: each ack is pika's `basic_ack`, which pika frames and its writer sends once the socket turns
  writable, as before `frames.ack_frame` and `writes.send_at_once` took them.

The change applies to every layer of the process that builds one (a bench cell builds no other). Run from the
repository's root (so that `benchmarks` imports); measure it beside the layer itself, alternating.
"""

from __future__ import annotations

from typing import Any

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from channels_rabbitmq_threaded._io import consumer, deliveries, publisher


class PikaReadsLayer(RabbitmqChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        consumer.DeliveryReader = PikaReader  # type: ignore[misc]
        super().__init__(*args, **kwargs)


class PikaConfirmsLayer(RabbitmqChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        publisher.ConfirmReader = PikaReader  # type: ignore[misc]
        super().__init__(*args, **kwargs)


class PikaReader:
    """Installs nothing: pika keeps reading the connection's input."""

    def __init__(self, connection: Any, handler: Any) -> None:
        self.taken = 0

    def consuming(self, channel_number: int, consumer_tag: str) -> None:
        pass

    def confirming(self, channel_number: int) -> None:
        pass


class PikaAcksLayer(RabbitmqChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        deliveries.Deliveries._send_ack = pikas_ack  # type: ignore[method-assign]
        super().__init__(*args, **kwargs)


def pikas_ack(self: deliveries.Deliveries, tag: int, multiple: bool) -> None:
    if self._link.channel_open:
        self._link.channel.basic_ack(tag, multiple=multiple)
