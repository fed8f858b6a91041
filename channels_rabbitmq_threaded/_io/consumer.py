"""The consumer side of the I/O thread: the consumer link's setup and life cycle, the process's queue, close, purges.

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
9. `basic.consume` of the queue (its deliveries read before pika parses them, `reads.DeliveryReader`) ->
   `_on_consuming`: the link is ready; consumers of the normal channels that receivers wait on start again; queues
   left behind on nodes that were down are deleted once they are back.

A queue lost while the process lives (deleted: RabbitMQ cancels the consumer, `_on_cancelled`; its node down: a
404 closes the channel, `_on_channel_closed`) is declared again by the next connection's setup, under a new name
after a move (`process_queue.py` has the story).

Groups are bound before consuming starts, so after a reconnect the first delivery implies the bindings are back
(`group_bindings.py` has the bindings' story). A leased queue outlives a cut connection with its messages and
bindings, and RabbitMQ delivers again what was not acknowledged: the delivery path drops the copies of what was
routed already (`deliveries.py`). The queue is consumed without consumer exclusivity: after a silent cut the broker
may keep the old connection's consumer until its heartbeat times out, and an exclusive consumer would be refused
meanwhile; the old consumer's unacknowledged deliveries come back when the broker drops it, and the window drops
what is a copy.

At `close()` the side unbinds every group, then deletes the queue (`stop_after_unbinding`), so the broker never
deletes a queue that holds thousands of bindings at once. A `flush()` purges the queue (`purge`), registered in the
link's `InFlight` for its `PurgeOk` (`Waiting.PURGE`); when the connection ends the link answers what waits from the
registry's table and runs this side's reset hook.

Deliveries go up through one call, `ConsumerHub.deliver`; acks, binds, unbinds and purges come down as calls from the
hub (`hub.Hub`) to this side's parts (`ConsumerSide.bindings`, `ConsumerSide.deliveries`), while the hub
owns the routing state. Everything here runs on the I/O thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pika.exchange_type import ExchangeType

from .._bridge.requests import Flush, Request
from .._config import Settings, is_process_specific
from .deliveries import Deliveries, DeliveryHub
from .group_bindings import GroupBindings
from .inflight import Waiting
from .ledgers import DropLog
from .link import Link, declare_exchange
from .logs import guarded
from .process_queue import ProcessQueue, queue_unavailable
from .reads import DeliveryReader

BIND_CHANNELS = 4  # channels of the consumer connection that binds and unbinds are spread over


class ConsumerHub(DeliveryHub, Protocol):
    """What the consumer side asks of the I/O thread's hub, which owns the routing state (and what its deliveries
    ask: `DeliveryHub`)."""

    def deliveries_lost(self) -> None:
        """The consumer connection is gone, and with it every delivery not yet acknowledged."""

    def run_unparked(self, requests: list[Request]) -> None:
        """A link became ready: run the requests that waited for it."""

    def stopped(self) -> None:
        """A link has stopped for good."""

    def local_groups(self) -> list[str]:
        """The groups that have a local member (to bind again after a reconnect)."""

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
        self.deliveries = Deliveries(settings, ioloop, self.link, self.queue, hub, drops)
        self._ready: Callable[[], None] = lambda: None  # the link's `done`, kept by `setup` for the last step
        self._rebinds_left = 0
        self._unacknowledged_at_loss = 0
        self._closing = False  # close() is unbinding before it stops the link
        self.link.inflight.on_end(self._reset)

    def bookkeeping(self) -> dict[str, int]:
        """The entries of each structure this side keeps by group, channel or delivery."""
        return {**self.bindings.bookkeeping(), **self.deliveries.bookkeeping()}

    def _reset(self) -> None:
        """The connection ended: its binds, purges and consumers are gone with it (their requests are answered)."""
        self.bindings.connection_ended()
        self.queue.stop_waiting()
        self._unacknowledged_at_loss = self.deliveries.connection_ended()  # requeued: lost with the queue if it is

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
        """Step 9: consume the queue; its deliveries are read before pika parses them (`reads.DeliveryReader`)."""
        channel = self.link.channel
        tag = channel.basic_consume(
            self.queue.name, self.deliveries.on_delivery, callback=self.link.step(self._on_consuming)
        )
        self.deliveries.own_tag = tag
        DeliveryReader(self.link.connection, self.deliveries.take).consuming(channel.channel_number, tag)

    @guarded
    def _on_consuming(self, _frame: Any) -> None:
        """Ready; consume again the normal channels that receivers wait on (after a reconnect); delete the queues
        left behind on nodes that were down, once they are back."""
        self._ready()
        self.queue.delete_left_behind(self.link.connection)
        for channel in self._hub.waiting_channels():
            if not is_process_specific(channel):
                self.deliveries.normal.consume(channel)

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
        if tag != self.deliveries.own_tag:
            self.deliveries.normal.cancelled(tag)  # a normal channel's queue: consumed again by the next receive()
            return
        reason = "RabbitMQ cancelled its consumer: the queue was deleted, or its node is down"
        self.queue.lost(reason, unacknowledged=self.deliveries.unacknowledged())
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

    def purge(self, request: Flush, normal_queues: list[str]) -> None:
        """flush(): purge the normal-channel queues used and then this process's queue; answer after its PurgeOk.

        RabbitMQ sends a channel's methods in order: every delivery before the last PurgeOk left the queue before the
        purge, so until then deliveries are dropped (`Deliveries.take`).
        """
        self.deliveries.purges_in_flight += 1
        self.link.inflight.add(Waiting.PURGE, request)
        for queue in normal_queues:
            self.link.channel.queue_purge(queue, callback=lambda _frame: None)
        self.link.channel.queue_purge(self.queue.name, callback=lambda _frame: self._on_purged(request))

    @guarded
    def _on_purged(self, request: Flush) -> None:
        if self.link.inflight.settle(request):
            self.deliveries.purges_in_flight -= 1
            request.resolve()
