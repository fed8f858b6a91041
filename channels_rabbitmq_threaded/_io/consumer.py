"""The consumer side of the I/O thread: the process's queue, its bindings, and what RabbitMQ delivers to it.

Theory of operation
-------------------
`ConsumerSide` owns the consumer `Link`: a connection that never publishes, so a resource alarm never blocks its
deliveries, acks, binds and unbinds. It opens on first need (`Link.start`): a process that only sends never
declares a queue. Its setup, one RPC per step, each answer wrapped by `Link.step`:

1. `setup`: open the further bind channels -> `_declare_groups_exchange`: `exchange.declare` of the groups exchange
   (direct) -> `_on_exchange_declared`;
2. `exchange.declare` of the control exchange (fanout, for `flush()`) -> `_on_control_exchange_declared`;
3. `exchange.declare` of the direct exchange (sends to process-specific channels) -> `_on_direct_exchange_declared`;
4. `queue.declare` of the process's queue (`ProcessQueue.name`; `Settings.process_queue`: leased, or exclusive with
   `queue_lease=0`) -> `_on_queue_declared`;
5. `queue.bind` to the control exchange -> `_on_control_bound`;
6. `queue.bind` to the direct exchange by the process's address -> `_on_address_bound`;
7. `queue.bind` of every group that still has a local member (after a reconnect) -> `_on_rebound`, once per group;
8. `basic.qos` (`prefetch_count`) -> `_on_qos_set`;
9. `basic.consume` of the queue -> `_on_consuming`: the link is ready; consumers of the normal channels that
   receivers wait on start again; queues left behind on nodes that were down are deleted once they are back.

A queue lost while the process lives (deleted: RabbitMQ cancels the consumer, `_on_cancelled`; its node down: a
404 closes the channel, `_on_channel_closed`) is declared again by the next connection's setup, under a new name
after a move (`process_queue.py` has the story).

Binds and unbinds (`GroupBindings`) are spread over `BIND_CHANNELS` channels of the connection
(`Link.open_more_channels`): pika runs one RPC at a time per channel, and a join storm of per-user groups binds
faster over several (`docs/performance.md`). A group always uses the same channel (a hash of its name), so its binds
and unbinds stay in order; every other RPC, the consumer and the acks use the main channel.

Groups are bound before consuming starts, so after a reconnect the first delivery implies the bindings are back.
A leased queue outlives a cut connection with its messages and bindings (binding again is then a no-op; groups
that lost their last member meanwhile are unbound in step 7), and RabbitMQ delivers again what was not
acknowledged: `dedup.DeliveryWindow` drops the copies of what was routed already. The queue is consumed without
consumer exclusivity: after a silent cut the broker may keep the old connection's consumer until its heartbeat
times out, and an exclusive consumer would be refused meanwhile; the old consumer's unacknowledged deliveries come
back when the broker drops it, and the window drops what is a copy.

A binding outlives its group's last local member for `group_unbind_delay` seconds (`DelayedUnbinds`): a websocket
that reconnects to the same process, or a member that leaves and joins again, costs no broker operation. A group
message that arrives meanwhile finds no local member and is acknowledged and dropped, as it would be unbound. At
`close()` the side unbinds every group, then deletes the queue (`stop_after_unbinding`), so the broker never deletes
a queue that holds thousands of bindings at once.

Requests that wait for an RPC register in the link's `InFlight`: a `group_add` for its `BindOk` (`Waiting.BIND`),
a `flush` for its `PurgeOk` (`Waiting.PURGE`). When the connection ends the link answers them from the registry's
table and runs this side's reset hooks (binds in flight, the purge count, the normal-channel consumers).

Every delivery is acknowledged through `ledgers.PendingAcks`: the acks decided during one pass of the I/O loop go
out at its end (a zero-delay timer), the oldest settled run of deliveries as one `basic.ack(multiple=True)`; a
delivery held back by `local_capacity` stays unacknowledged, and those behind it are acknowledged singly.

Deliveries go up through one call, `ConsumerHub.deliver`; acks, binds, unbinds and purges come down as calls from the
hub (`io_thread.IOThread`), which owns the routing state. Everything here runs on the I/O thread.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import pika.spec
from pika.exchange_type import ExchangeType

from .._bridge.requests import Flush, GroupAdd, Request
from .._config import Settings, is_process_specific
from .._routing.dedup import DeliveryWindow
from .._routing.envelope import FLUSH_GROUP, REACH_GROUP, MalformedBody, Recipient, decode
from .._routing.inbox import DropReason
from .inflight import Waiting
from .ledgers import DropLog, PendingAcks
from .link import Link, declare_exchange, guarded
from .process_queue import ProcessQueue, queue_unavailable

logger = logging.getLogger("channels_rabbitmq_threaded.consumer")  # a public name: operations.md

BIND_CHANNELS = 4  # channels of the consumer connection that binds and unbinds are spread over


class ConsumerHub(Protocol):
    """What the consumer side asks of the I/O thread's hub, which owns the routing state."""

    def deliver(self, tag: int, recipient: Recipient, message: dict[str, Any]) -> None:
        """Route a delivery (the hub acknowledges it through `ConsumerSide.ack`, now or later)."""

    def flushed_by(self, origin: object) -> None:
        """Another process (or this one) called flush(): drop this process's memberships."""

    def deliveries_lost(self) -> None:
        """The consumer connection is gone, and with it every delivery not yet acknowledged."""

    def run_unparked(self, requests: list[Request]) -> None:
        """A link became ready: run the requests that waited for it."""

    def stopped(self) -> None:
        """A link has stopped for good."""

    def local_groups(self) -> list[str]:
        """The groups that have a local member (to bind again after a reconnect)."""

    def waiting_on(self, channel: str) -> int:
        """How many receive() calls wait on `channel`."""

    def waiting_channels(self) -> list[str]:
        """The channels some receive() waits on."""


class ConsumerSide:
    """The consumer link and its state; see the module's theory of operation."""

    def __init__(self, settings: Settings, ioloop: Any, queue_name: str, hub: ConsumerHub, drops: DropLog) -> None:
        self.settings = settings
        self._hub = hub
        self._drops = drops
        self.link = Link("consumer", settings, ioloop, f"channels_rabbitmq_threaded {queue_name} consumer", self)
        self.queue = ProcessQueue(queue_name, ioloop)  # the address, the queue bound to it now, queues left behind
        self.bindings = GroupBindings(settings, ioloop, self.link, self.queue)
        self._ready: Callable[[], None] = lambda: None  # the link's `done`, kept by `_setup` for the last step
        self._rebinds_left = 0
        self._purges_in_flight = 0  # while > 0, deliveries were sent before a flush's purge: drop them
        self.normal = NormalConsumers(settings, self.link, hub, self._on_delivery)
        self._exclusive_tag = ""  # the consumer tag of this process's own queue
        self._unacknowledged_at_loss = 0
        self._closing = False  # close() is unbinding before it stops the link
        self.window = DeliveryWindow()  # ids received lately: a redelivered or re-published copy is dropped
        self.received = 0  # deliveries since start (a figure for stats())
        self._acks = PendingAcks(ioloop, self._send_ack)  # sent once per pass of the loop, in as few frames as can be
        self.link.inflight.on_end(self._reset)

    def bookkeeping(self) -> dict[str, int]:
        """The entries of each structure this side keeps by group, channel or delivery."""
        return {
            **self.bindings.bookkeeping(),
            "normal_consumers": len(self.normal),
            "unacknowledged_deliveries": len(self._acks),
        }

    def _reset(self) -> None:
        """The connection ended: its binds, purges and consumers are gone with it (their requests are answered)."""
        self.bindings.connection_ended()
        self._purges_in_flight = 0
        self.normal.clear()
        self.window.connection_ended()
        self.queue.stop_waiting()
        self._unacknowledged_at_loss = len(self._acks)  # requeued into the queue: lost with it if it is lost
        self._acks.reset()  # the broker requeues what the ended channel had not seen acknowledged

    # -- LinkOwner: setup, one RPC per step --------------------------------------------------------------------------

    def setup(self, channel: Any, done: Callable[[], None]) -> None:
        """Step 1: open the further channels for binds, then declare the groups exchange."""
        self._ready = done
        channel.add_on_cancel_callback(self._on_cancelled)
        channel.add_on_close_callback(self._on_channel_closed)
        self.link.open_more_channels(BIND_CHANNELS - 1, self._declare_groups_exchange)

    @guarded
    def _declare_groups_exchange(self) -> None:
        declare_exchange(self.link, self.settings.groups_exchange, ExchangeType.direct, self._on_exchange_declared)

    @guarded
    def _on_exchange_declared(self, _frame: Any) -> None:
        """Step 2: declare the control exchange, which carries flush() to every process."""
        declare_exchange(
            self.link, self.settings.control_exchange, ExchangeType.fanout, self._on_control_exchange_declared
        )

    @guarded
    def _on_control_exchange_declared(self, _frame: Any) -> None:
        """Step 3: declare the direct exchange, which carries sends to process-specific channels by address."""
        declare_exchange(
            self.link, self.settings.direct_exchange, ExchangeType.direct, self._on_direct_exchange_declared
        )

    @guarded
    def _on_direct_exchange_declared(self, _frame: Any) -> None:
        """Step 4: declare the process's queue (`ProcessQueue.name`: a new one after a move)."""
        self.link.channel.queue_declare(
            queue=self.queue.name, callback=self.link.step(self._on_queue_declared), **self.settings.process_queue()
        )
        self.queue.declaring(self.settings.connect_timeout, self.link.step(self._on_declare_too_slow))

    @guarded
    def _on_queue_declared(self, frame: Any) -> None:
        """Step 5: bind the queue to the control exchange."""
        self.queue.declared(frame)
        self.link.channel.queue_bind(
            self.queue.name, self.settings.control_exchange, callback=self.link.step(self._on_control_bound)
        )

    @guarded
    def _on_control_bound(self, _frame: Any) -> None:
        """Step 6: bind the queue to the direct exchange by the process's address."""
        self.link.channel.queue_bind(
            self.queue.name,
            self.settings.direct_exchange,
            routing_key=self.queue.address,
            callback=self.link.step(self._on_address_bound),
        )

    @guarded
    def _on_address_bound(self, _frame: Any) -> None:
        """Step 7: bind again every group that still has a local member (after a reconnect), then consume.

        A leased queue kept its bindings over the cut: binding again is a no-op at the broker, and the groups that
        lost their last member meanwhile are unbound first (`GroupBindings.rebind`)."""
        groups = self._hub.local_groups()
        self._rebinds_left = len(groups)
        if not groups:
            self._start_consuming()
        self.bindings.rebind(groups, self.link.step(self._on_rebound))

    @guarded
    def _on_rebound(self, _frame: Any) -> None:
        self._rebinds_left -= 1
        if self._rebinds_left == 0:
            self._start_consuming()

    def _start_consuming(self) -> None:
        """Step 8: set the prefetch count."""
        self.link.channel.basic_qos(
            prefetch_count=self.settings.prefetch_count, callback=self.link.step(self._on_qos_set)
        )

    @guarded
    def _on_qos_set(self, _frame: Any) -> None:
        """Step 9: consume the queue."""
        self._exclusive_tag = self.link.channel.basic_consume(
            self.queue.name, self._on_delivery, callback=self.link.step(self._on_consuming)
        )

    @guarded
    def _on_consuming(self, _frame: Any) -> None:
        """Ready; consume again the normal channels that receivers wait on (after a reconnect); delete the queues
        left behind on nodes that were down, once they are back."""
        self._ready()
        self.queue.delete_left_behind(self.link.connection)
        for channel in self._hub.waiting_channels():
            if not is_process_specific(channel):
                self.normal.consume(channel)

    # -- LinkOwner: the rest of the life cycle ------------------------------------------------------------------------

    def on_ready(self, requests: list[Request]) -> None:
        self._hub.run_unparked(requests)

    def on_lost(self, reason: str) -> None:
        self._hub.deliveries_lost()
        if self._closing:  # lost while unbinding at close(): the unbinds went with the queue; stop here
            self.link.stop()

    def on_stopped(self) -> None:
        self.queue.stop()
        self._hub.stopped()

    def on_blocked(self) -> None:
        """Never in practice: RabbitMQ blocks connections that publish, and this one never does."""

    @guarded
    def _on_cancelled(self, frame: Any) -> None:
        """RabbitMQ cancelled a consumer: the queue was deleted, or its node went down."""
        tag = frame.method.consumer_tag
        if self._closing:
            return  # close() deleted the queue itself
        if tag != self._exclusive_tag:
            self.normal.cancelled(tag)  # a normal channel's queue: consumed again by the next receive()
            return
        reason = "RabbitMQ cancelled its consumer: the queue was deleted, or its node is down"
        self.queue.lost(reason, unacknowledged=len(self._acks))
        self.link.reconnect(reason)

    @guarded
    def _on_declare_too_slow(self) -> None:
        """No answer to the queue's declare within `connect_timeout`: out of reach (`process_queue.py` says why)."""
        self.queue.move(unacknowledged=self._unacknowledged_at_loss)
        self.bindings.queue_moved()
        self.link.reconnect("the process's queue did not answer its declare", abort=True)

    @guarded
    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        """The main channel closed: if RabbitMQ said the queue is out of reach (its node down), the next connection
        moves."""
        if queue_unavailable(reason, self.queue.name):
            self.queue.move(unacknowledged=self._unacknowledged_at_loss)
            self.bindings.queue_moved()

    # -- calls from the hub -------------------------------------------------------------------------------------------

    def stop_after_unbinding(self, groups: list[str]) -> None:
        """close(): unbind every group (those with members and those waiting for their delay), then stop the link.

        The unbinds go out on their groups' channels; after the last `UnbindOk` the queue is deleted (a
        leased one by `queue.delete`, an exclusive one with the connection) once it holds no binding. The I/O
        thread's stop timer bounds the wait.
        """
        groups = self.bindings.all_to_unbind(groups)
        self._closing = True
        if not groups or not self.link.channel_open:
            self._on_unbound_all(None)
            return
        left = len(groups)

        def unbound(frame: Any) -> None:
            nonlocal left
            left -= 1
            if left == 0:  # the last UnbindOk, whichever channel it came on
                self._on_unbound_all(frame)

        for group in groups:
            self.bindings.unbind_now(group, unbound)

    @guarded
    def _on_unbound_all(self, _frame: Any) -> None:
        """A leased queue would outlive the process by its lease: delete it, now that it holds no binding."""
        if self.settings.queue_lease and self.link.channel_open:
            self.link.channel.queue_delete(self.queue.name, callback=self._on_queue_deleted)
        else:
            self.link.stop()

    @guarded
    def _on_queue_deleted(self, _frame: Any) -> None:
        self.link.stop()

    def ack(self, tags: list[int]) -> None:
        """Routed deliveries: acknowledged at the end of this pass of the loop (`PendingAcks`)."""
        self.window.acked(tags)
        for tag in tags:
            self._acks.ack(tag)

    def _send_ack(self, tag: int, multiple: bool) -> None:
        if self.link.channel_open:  # else RabbitMQ requeued it with the channel, and `_reset` forgot it
            self.link.channel.basic_ack(tag, multiple=multiple)

    def purge(self, request: Flush, normal_queues: list[str]) -> None:
        """flush(): purge the normal-channel queues used and then this process's queue; answer after its PurgeOk.

        RabbitMQ sends a channel's methods in order: every delivery before the last PurgeOk left the queue before the
        purge, so until then deliveries are dropped (`_on_delivery`).
        """
        self._purges_in_flight += 1
        self.link.inflight.add(Waiting.PURGE, request)
        for queue in normal_queues:
            self.link.channel.queue_purge(queue, callback=lambda _frame: None)
        self.link.channel.queue_purge(self.queue.name, callback=lambda _frame: self._on_purged(request))

    @guarded
    def _on_purged(self, request: Flush) -> None:
        if self.link.inflight.settle(request):
            self._purges_in_flight -= 1
            request.resolve()

    # -- deliveries -------------------------------------------------------------------------------------------------

    @guarded
    def _on_delivery(self, channel: Any, method: pika.spec.Basic.Deliver, props: Any, body: bytes) -> None:
        tag: int = method.delivery_tag  # type: ignore[assignment]
        self.received += 1
        self._acks.delivered(tag)
        if self._purges_in_flight:
            self._acks.ack(tag)  # sent before a flush's purge: flush() promises it is never delivered
            return
        normal = method.consumer_tag != self._exclusive_tag  # from a normal channel's queue
        message_id = self.normal.copy_key(method, props.message_id) if normal else props.message_id
        if self.window.is_copy(message_id):  # redelivered after a cut, or re-published: logged, dropped
            self._acks.ack(tag)
            return
        try:
            recipient, message = decode(body, self.settings.fernet)
        except MalformedBody as exc:
            detail = f"a {len(body)}-byte message on queue {self.queue.name} is not ours: {exc}"
            self._drops.log(DropReason.NOT_OURS, detail)
            self._acks.ack(tag)
            return
        if recipient.is_group and recipient.name in (FLUSH_GROUP, REACH_GROUP):
            self._acks.ack(tag)
            if recipient.name == FLUSH_GROUP:
                self._hub.flushed_by(message.get("from"))
            return  # a reach probe (`reach.py`) has done its work by arriving
        if normal:
            accepted = self._accept_normal_delivery(channel, method, recipient, len(body))
            if accepted is None:
                self.window.not_kept(message_id)
                return
            recipient = accepted
        self.window.routed(tag, message_id)
        self._hub.deliver(tag, recipient, message)
        if normal:
            self.normal.stop_idle()

    def _accept_normal_delivery(
        self, channel: Any, method: pika.spec.Basic.Deliver, recipient: Recipient, size: int
    ) -> Recipient | None:
        """A delivery from a normal channel's queue: the recipient to route it to (the queue's channel: a group
        message came through a binding of `normal_groups.py`), or None when it was dropped or requeued."""
        tag: int = method.delivery_tag  # type: ignore[assignment]
        queue_channel = self.normal.channel_of(method.consumer_tag)  # type: ignore[arg-type]
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


class GroupBindings:
    """The bindings of the process's queue on the groups exchange, one per group with a local member.

    A `group_add` that makes a group's first local member binds it and is answered by its `BindOk` (the requests of
    a bind in flight wait for it, registered in the link's `InFlight`); the last member's leaving unbinds it after
    `group_unbind_delay` (`DelayedUnbinds`). A leased queue keeps its bindings over a cut, so an unbind that could
    not be sent, or that was still waiting for its delay, is sent once reconnected (`rebind`). Binds and unbinds are
    spread over the link's channels, a group always on the same one, so that its binds and unbinds stay in order.
    Owned by the I/O thread.
    """

    def __init__(self, settings: Settings, ioloop: Any, link: Link, queue: ProcessQueue) -> None:
        self._settings = settings
        self._link = link
        self._queue = queue
        self._binds: dict[str, list[GroupAdd]] = {}  # group -> requests answered by its bind in flight
        self._delayed = DelayedUnbinds(ioloop, settings.group_unbind_delay, self.unbind)
        self._stale: set[str] = set()  # groups to unbind once reconnected (a leased queue keeps its bindings)

    def bookkeeping(self) -> dict[str, int]:
        return {
            "binds_in_flight": len(self._binds),
            "delayed_unbinds": len(self._delayed),
            "stale_bindings": len(self._stale),
        }

    def add_member(self, request: GroupAdd, first: bool) -> None:
        """A `group_add`: bind the group for its first local member; answer once the binding is in effect."""
        group = request.group
        if first and self._delayed.cancel(group):  # its binding is still there: no broker operation
            first = False
        if first:
            requests = self._binds[group] = [request]
            self._link.inflight.add(Waiting.BIND, request)
            self.bind(group, lambda _frame: self._on_bound(group, requests))
        elif group in self._binds:  # its bind is in flight: answer when it is done
            self._binds[group].append(request)
            self._link.inflight.add(Waiting.BIND, request)
        else:
            request.resolve()

    def bind(self, group: str, callback: Callable[[Any], None]) -> None:
        self._channel_of(group).queue_bind(
            self._queue.name, self._settings.groups_exchange, routing_key=group, callback=callback
        )

    def rebind(self, groups: list[str], each_done: Callable[[Any], None]) -> None:
        """After a (re)connect: unbind the stale groups that have no member now, bind every group in `groups`."""
        for group in sorted(self._stale.difference(groups)):
            self.unbind_now(group)
        self._stale.clear()
        for group in groups:
            self.bind(group, each_done)

    def _channel_of(self, group: str) -> Any:
        """The channel that binds and unbinds `group`: always the same one, so that they stay in order."""
        channels = [self._link.channel, *self._link.more_channels]
        return channels[zlib.crc32(group.encode()) % len(channels)]

    @guarded
    def _on_bound(self, group: str, requests: list[GroupAdd]) -> None:
        if self._binds.get(group) is requests:
            del self._binds[group]
        for request in requests:
            if self._link.inflight.settle(request):
                request.resolve()

    def unbind_later(self, group: str) -> None:
        """The group's last local member left: unbind it after `group_unbind_delay`, unless a member joins again."""
        self._delayed.unbind_later(group)

    def unbind(self, group: str) -> None:
        self._delayed.cancel(group)
        self._binds.pop(group, None)  # a later group_add binds anew; the bind in flight still answers its own
        if self._link.channel_open:
            self.unbind_now(group)
        elif self._settings.queue_lease:
            self._stale.add(group)  # the queue keeps the binding: unbind it once reconnected

    def unbind_now(self, group: str, callback: Callable[[Any], None] = lambda _frame: None) -> None:
        self._channel_of(group).queue_unbind(
            self._queue.name, self._settings.groups_exchange, routing_key=group, callback=callback
        )

    def all_to_unbind(self, groups: list[str]) -> list[str]:
        """close(): `groups` and those waiting for their delayed unbind, which no longer wait."""
        groups = sorted({*groups, *self._delayed.pending()})
        self._delayed.clear()
        return groups

    def connection_ended(self) -> None:
        """Binds in flight are answered by the link; a leased queue keeps its bindings, an exclusive one does not."""
        self._binds.clear()
        if self._settings.queue_lease:  # the queue and its bindings outlive the connection: unbind these once back
            self._stale.update(self._delayed.pending())
        self._delayed.clear()  # an exclusive queue's bindings die with it; only groups with members are bound again

    def queue_moved(self) -> None:
        """The process has a new queue, with no binding: nothing stale to unbind on it."""
        self._stale.clear()


class NormalConsumers:
    """The consumers of normal channels' queues, each only while a receive() waits on its channel.

    A process takes a normal channel's messages only for receivers that wait right now (prefetch 1, acknowledged
    when handed over, requeued when nobody waits any more), so competing workers share the queue and nothing piles
    up in a process that stopped reading. Owned by the I/O thread; the consumers live on the consumer link's channel.
    """

    def __init__(self, settings: Settings, link: Link, hub: ConsumerHub, on_delivery: Callable[..., None]) -> None:
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

    def copy_key(self, method: pika.spec.Basic.Deliver, message_id: str | None) -> str | None:
        """The id a delivery from a normal channel's queue is known by in the `DeliveryWindow`: a group message may
        reach this process twice, in its own queue and in a normal channel's, and both copies are to be received."""
        return f"{message_id} {self.channel_of(method.consumer_tag)}" if message_id else None  # type: ignore[arg-type]

    def channel_of(self, consumer_tag: str) -> str | None:
        return next((name for name, consumer in self._consumers.items() if consumer == consumer_tag), None)

    def clear(self) -> None:
        """The connection ended, and its consumers with it."""
        self._consumers.clear()


class DelayedUnbinds:
    """Groups whose last local member left, each unbound `delay` seconds later unless a member joins again first.

    One pika timer serves them all: the delay is the same for every group, so the order of the `unbind_later`
    calls is due order. Owned by the I/O thread.
    """

    def __init__(self, ioloop: Any, delay: float, unbind: Callable[[str], None]) -> None:
        self._ioloop = ioloop
        self._delay = delay
        self._unbind = unbind
        self._due: dict[str, float] = {}  # group -> when it is unbound
        self._order: deque[tuple[float, str]] = deque()  # (due, group), oldest first; may hold reclaimed groups
        self._timer: Any = None

    def unbind_later(self, group: str) -> None:
        if self._delay <= 0:
            self._unbind(group)
            return
        due = time.monotonic() + self._delay
        self._due[group] = due
        self._order.append((due, group))
        if self._timer is None:
            self._timer = self._ioloop.call_later(self._delay, self._on_due)

    def cancel(self, group: str) -> bool:
        """The group no longer waits for its delayed unbind (a member joined again, or it is unbound now). True if
        it was waiting."""
        return self._due.pop(group, None) is not None

    def pending(self) -> list[str]:
        return list(self._due)

    def __len__(self) -> int:
        """Entries kept: a group's entry lives `delay` seconds at most, its timer's entry as long."""
        return len(self._order)

    def clear(self) -> None:
        self._due.clear()
        self._order.clear()
        if self._timer is not None:
            self._ioloop.remove_timeout(self._timer)
            self._timer = None

    @guarded
    def _on_due(self) -> None:
        self._timer = None
        now = time.monotonic()
        while self._order and self._order[0][0] <= now:
            due, group = self._order.popleft()
            if self._due.get(group) == due:  # not reclaimed, nor given up again later
                del self._due[group]
                self._unbind(group)
        if self._order:
            self._timer = self._ioloop.call_later(self._order[0][0] - now, self._on_due)
