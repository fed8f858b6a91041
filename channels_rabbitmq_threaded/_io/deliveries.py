"""What RabbitMQ delivers to the process: each delivery checked, routed up through the hub, acknowledged in batches.

Theory of operation
-------------------
Every delivery, from the process's queue or from a normal channel's, goes through `Deliveries.take`, which decides
its fate in this order (pika's consumer callback, `on_delivery`, passes on the deliveries pika parses; the process's
own are mostly read before pika parses them, `reads.DeliveryReader`, and reach `take` from there):

| the delivery | its fate |
|---|---|
| sent before a `flush()`'s purge (a purge in flight) | acknowledged, dropped: flush() promises it is never received |
| a copy of one routed lately (`DeliveryWindow`: redelivered after a cut, or re-published) | acknowledged, dropped |
| not a body of ours (`MalformedBody`) | acknowledged, dropped, logged (`DropReason.NOT_OURS`) |
| a control message (`FLUSH_GROUP`, `REACH_GROUP`) | acknowledged; a flush empties the memberships |
| from a normal channel's queue nobody here waits on any more | requeued for the other workers |
| anything else | routed: `DeliveryHub.deliver`, which acknowledges it now or later |

A normal channel's queue is consumed (`NormalConsumers`) only while a receive() waits on it, with prefetch 1, so
competing workers share it and nothing piles up in a process that stopped reading.

Acks go through `ledgers.PendingAcks`: those decided during one pass of the I/O loop go out at its end, the oldest
settled run of deliveries as one `basic.ack(multiple=True)`; a delivery held back by `local_capacity` stays
unacknowledged, and those behind it are acknowledged singly. Each ack is framed by `frames.ack_frame` and put on
the socket at once when nothing waits ahead of it (`Link.send_at_once`), not left for pika's writer to send when
the socket turns writable. When the connection ends, RabbitMQ requeues what it
had not seen acknowledged: `connection_ended` forgets those deliveries (and their ids in the window). Everything
here runs on the I/O thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pika.spec

from .._config import Settings
from .._routing.dedup import DeliveryWindow
from .._routing.envelope import FLUSH_GROUP, REACH_GROUP, MalformedBody, Recipient, decode
from .._routing.inbox import DropReason
from . import writes
from .frames import ack_frame
from .ledgers import DropLog, PendingAcks
from .link import Link
from .logs import guarded
from .process_queue import ProcessQueue


class DeliveryHub(Protocol):
    """What deliveries ask of the I/O thread's hub, which owns the routing state."""

    def deliver(self, tag: int, recipient: Recipient, message: dict[str, Any]) -> None:
        """Route a delivery (the hub acknowledges it through `Deliveries.ack`, now or later)."""

    def flushed_by(self, origin: object) -> None:
        """Another process (or this one) called flush(): drop this process's memberships."""

    def waiting_on(self, channel: str) -> int:
        """How many receive() calls wait on `channel`."""


class Deliveries:
    """The delivery path of the consumer link; see the module's theory of operation."""

    def __init__(
        self, settings: Settings, ioloop: Any, link: Link, queue: ProcessQueue, hub: DeliveryHub, drops: DropLog
    ) -> None:
        self._settings = settings
        self._link = link
        self._queue = queue
        self._hub = hub
        self._drops = drops
        self.own_tag = ""  # the consumer tag of the process's own queue; any other is a normal channel's
        self.purges_in_flight = 0  # while > 0, deliveries were sent before a flush's purge: drop them
        self.window = DeliveryWindow()  # ids received lately: a redelivered or re-published copy is dropped
        self.received = 0  # deliveries since start (a figure for stats())
        self.normal = NormalConsumers(settings, link, hub, self.on_delivery)
        self._acks = PendingAcks(ioloop, self._send_ack)  # sent once per pass of the loop, in as few frames as can be

    def unacknowledged(self) -> int:
        return len(self._acks)

    def bookkeeping(self) -> dict[str, int]:
        return {"normal_consumers": len(self.normal), "unacknowledged_deliveries": len(self._acks)}

    def connection_ended(self) -> int:
        """The connection ended: its consumers are gone, and the broker requeues what it had not seen acknowledged.
        Returns how many deliveries were unacknowledged (requeued: lost with the queue if it is lost)."""
        unacknowledged = len(self._acks)
        self.purges_in_flight = 0
        self.normal.clear()
        self.window.connection_ended()
        self._acks.reset()
        return unacknowledged

    def ack(self, tags: list[int]) -> None:
        """Routed deliveries: acknowledged at the end of this pass of the loop (`PendingAcks`)."""
        self.window.acked(tags)
        for tag in tags:
            self._acks.ack(tag)

    def _send_ack(self, tag: int, multiple: bool) -> None:
        if self._link.channel_open:  # else RabbitMQ requeued it with the channel, and `connection_ended` forgot it
            connection = self._link.connection
            data = ack_frame(self._link.channel.channel_number, tag, multiple)
            self._link.send_at_once(lambda: writes.emit(connection, data))

    def on_delivery(self, channel: Any, method: pika.spec.Basic.Deliver, props: Any, body: bytes) -> None:
        """pika's consumer callback: a delivery pika parsed (`reads.DeliveryReader` reads most of them itself)."""
        self.take(channel, method.delivery_tag, method.consumer_tag, props.message_id, body)  # type: ignore[arg-type]

    @guarded
    def take(self, channel: Any, tag: int, consumer_tag: str, message_id: str | None, body: bytes) -> None:
        """A delivery on `channel` (pika's), from the consumer `consumer_tag`: its fate, by the table above."""
        self.received += 1
        self._acks.delivered(tag)
        if self.purges_in_flight:
            self._acks.ack(tag)  # sent before a flush's purge: flush() promises it is never delivered
            return
        normal = consumer_tag != self.own_tag  # from a normal channel's queue
        if normal:
            message_id = self.normal.copy_key(consumer_tag, message_id)
        if self.window.is_copy(message_id):  # redelivered after a cut, or re-published: logged, dropped
            self._acks.ack(tag)
            return
        try:
            recipient, message = decode(body, self._settings.fernet)
        except MalformedBody as exc:
            detail = f"a {len(body)}-byte message on queue {self._queue.name} is not ours: {exc}"
            self._drops.log(DropReason.NOT_OURS, detail)
            self._acks.ack(tag)
            return
        if recipient.is_group and recipient.name in (FLUSH_GROUP, REACH_GROUP):
            self._acks.ack(tag)
            if recipient.name == FLUSH_GROUP:
                self._hub.flushed_by(message.get("from"))
            return  # a reach probe (`reach.py`) has done its work by arriving
        if normal:
            accepted = self._accept_normal_delivery(channel, tag, consumer_tag, recipient, len(body))
            if accepted is None:
                self.window.not_kept(message_id)
                return
            recipient = accepted
        self.window.routed(tag, message_id)
        self._hub.deliver(tag, recipient, message)
        if normal:
            self.normal.stop_idle()

    def _accept_normal_delivery(
        self, channel: Any, tag: int, consumer_tag: str, recipient: Recipient, size: int
    ) -> Recipient | None:
        """A delivery from a normal channel's queue: the recipient to route it to (the queue's channel: a group
        message came through a binding of `normal_groups.py`), or None when it was dropped or requeued."""
        queue_channel = self.normal.channel_of(consumer_tag)
        if queue_channel is None or (recipient.name != queue_channel and not recipient.is_group):
            detail = f"a {size}-byte message for {recipient.name!r} was in the queue of {queue_channel!r}"
            self._drops.log(DropReason.WRONG_QUEUE, detail)
            self._acks.ack(tag)
            return None
        if not self._hub.waiting_on(queue_channel):
            channel.basic_nack(tag, requeue=True)  # nobody here waits for it any more: back to the other workers
            self._acks.requeued(tag)
            self.normal.stop_idle()
            return None
        return Recipient(is_group=False, name=queue_channel)


class NormalConsumers:
    """The consumers of normal channels' queues, each only while a receive() waits on its channel.

    A process takes a normal channel's messages only for receivers that wait right now (prefetch 1, acknowledged
    when handed over, requeued when nobody waits any more), so competing workers share the queue and nothing piles
    up in a process that stopped reading. Owned by the I/O thread; the consumers live on the consumer link's channel.
    """

    def __init__(self, settings: Settings, link: Link, hub: DeliveryHub, on_delivery: Callable[..., None]) -> None:
        self._settings = settings
        self._link = link
        self._hub = hub
        self._on_delivery = on_delivery
        self._consumers: dict[str, str] = {}  # normal channel -> consumer tag, while someone waits on it

    def consume(self, channel: str) -> None:
        if channel in self._consumers or not self._link.ready or not self._hub.waiting_on(channel):
            return
        queue, arguments = self._settings.normal_queue(channel)
        consumer_channel = self._link.channel
        consumer_channel.queue_declare(queue, durable=True, arguments=arguments)
        consumer_channel.basic_qos(prefetch_count=1)  # applies to consumers created from now on
        self._consumers[channel] = consumer_channel.basic_consume(queue, self._on_delivery)

    def stop_idle(self) -> None:
        for channel, consumer in list(self._consumers.items()):
            if not self._hub.waiting_on(channel):
                del self._consumers[channel]
                if self._link.channel_open:
                    # Deliveries already on their way to this consumer never reach _on_delivery: pika rejects
                    # (requeues) every delivery for a consumer it has cancelled, so they go back to other workers.
                    self._link.channel.basic_cancel(consumer)

    def __len__(self) -> int:
        return len(self._consumers)

    def cancelled(self, consumer_tag: str) -> None:
        """RabbitMQ cancelled a consumer (its queue was deleted): forget it, so the next receive() consumes anew."""
        for channel, consumer in list(self._consumers.items()):
            if consumer == consumer_tag:
                del self._consumers[channel]

    def copy_key(self, consumer_tag: str, message_id: str | None) -> str | None:
        """The id a delivery from a normal channel's queue is known by in the `DeliveryWindow`: a group message may
        reach this process twice, in its own queue and in a normal channel's, and both copies are to be received."""
        return f"{message_id} {self.channel_of(consumer_tag)}" if message_id else None

    def channel_of(self, consumer_tag: str) -> str | None:
        return next((name for name, consumer in self._consumers.items() if consumer == consumer_tag), None)

    def clear(self) -> None:
        """The connection ended, and its consumers with it."""
        self._consumers.clear()
