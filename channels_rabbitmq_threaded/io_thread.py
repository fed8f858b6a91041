"""The I/O thread: the only code that touches pika.

Theory of operation
-------------------
One `IOThread` per layer runs a pika `IOLoop` in a daemon thread and keeps two `link.Link`s on it:

* the **consumer** link owns the process's exclusive queue: it declares the groups exchange and the queue, binds
  the groups that have local members, and consumes (`basic.qos` + `basic.consume`, manual acks). It never
  publishes, so RabbitMQ never blocks it during a memory or disk alarm: deliveries, acks, binds and unbinds go on;
* the **publisher** link publishes every `send` and `group_send` with publisher confirms (`mandatory`, so a message
  that reaches no queue comes back and is logged). During an alarm RabbitMQ blocks it: new publishes wait (up to
  `connect_timeout`), publishes already sent fail with `ConfirmLost` after `connect_timeout`.

Setup steps, in order. Consumer: declare groups exchange -> declare queue -> re-bind the groups that have local
members -> qos -> consume (groups are bound before consuming starts, so after a reconnect the first delivery implies
the bindings are back). Publisher: confirm mode (delivery tags restart at 1) -> declare groups exchange.

Who touches what
----------------
* Other threads call only `submit(request)` and `submit_unwaited(publish)` (and `start`, `stop_and_join`,
  `is_alive`, `let_go_in_child` in a forked child). `submit` appends to a deque and wakes the loop with
  `add_callback_threadsafe` only when no wake is already pending, so a burst of requests costs one wake.
  Everything else runs in the I/O thread.
* The routing state (`routing.Inbox`: buffers, waiters, membership) is owned by this thread alone.
* Answers leave through `bridge.LoopReply` and `bridge.Waiter`, which use the callers' own loops. This thread
  batches them: its `bridge.LoopWakes` sends the answers of one pass of the pika loop as one wake-up per event loop
  (`_flush_wakes`, a zero-delay timer).
* With `wait_for_confirms=False`, publishes carry the shared `UnwaitedPublishes` reply, which logs nacks and
  failures as drops; `submit_unwaited` reads the backlog (queued, parked, unconfirmed) without a lock to bound it.

Size: about 700 lines, above the house's 400, because the request handlers, the two links' setup callbacks and
the delivery path all act on the same routing state and confirms; the connection life cycle itself is in `link.py`.

Rules
-----
* Every callback handed to pika is `guarded`: an exception is logged and never reaches pika.
* Nothing here blocks: no sleeps, no blocking puts, no waits on other threads.
* Nobody is left waiting: requests wait for a ready link at most `connect_timeout`; in-flight confirms and binds
  fail when their connection dies; whatever is left when the thread ends is failed with the reason it ended (pika
  drops callbacks silently after its loop is closed, so `submit` checks for a stopped thread itself).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pika.spec
from channels.exceptions import StopConsumer
from pika.adapters.select_connection import IOLoop

from .bridge import LoopWakes, Waiter
from .config import Settings
from .envelope import FLUSH_GROUP, MalformedBody, decode
from .errors import BrokerUnavailable, ConfirmLost, LayerClosed, RabbitmqLayerError
from .ledgers import DropLog, PauseWatch, PendingConfirms, UnwaitedPublishes
from .link import STOPPED, STOPPING, Link, guarded
from .requests import AwaitReady, Flush, Forget, GroupAdd, GroupDiscard, Publish, PutBack, Request, Stop, Take
from .routing import Effects, Inbox

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0  # how long a clean close may take before the loop is stopped anyway

_DROP_REASONS = {
    "capacity": "local_capacity reached while receivers wait; dropped the oldest message of the biggest backlog",
    "expired": "waited longer than local_expiry; its channel was removed from its groups",
    "channel capacity": "the channel holds its capacity (capacity/channel_capacity); dropped its oldest message",
}
# With wait_for_confirms=False, callers stop sending without waiting once this many publishes are queued, parked or
# unconfirmed: they wait for their confirm instead, so a broker that is slow, blocked or gone slows them down rather
# than filling this process's memory.
MAX_UNWAITED_BACKLOG = 10_000


def _nothing() -> None:
    pass


class IOThread:
    """Owns the pika connections for one layer. See the module's theory of operation."""

    def __init__(self, settings: Settings, queue_name: str) -> None:
        self.settings = settings
        self.queue_name = queue_name
        self._requests: deque[Request] = deque()  # any thread appends; the I/O thread pops
        self._wake_pending = False
        self._stopped = False  # set by the I/O thread as it ends; afterwards submit() fails requests itself
        self._death: BaseException = LayerClosed("the channel layer is closed")  # what late requests are told
        self._ioloop = IOLoop()
        self._thread = threading.Thread(target=self._run, name=f"channels-rabbitmq-io:{queue_name}", daemon=True)
        self._handlers: dict[type[Request], Callable[[Any], None]] = {
            Publish: self._publish,
            GroupAdd: self._group_add,
            GroupDiscard: self._group_discard,
            AwaitReady: self._await_ready,
            Flush: self._flush,
            Stop: self._stop,
            Take: self._take,
            Forget: self._forget,
            PutBack: self._put_back,
        }
        # Everything below belongs to the I/O thread.
        name = f"channels_rabbitmq_threaded {queue_name}"
        self._consumer = Link(
            "consumer",
            settings,
            self._ioloop,
            f"{name} consumer",
            setup=self._setup_consumer,
            on_ready=self._run_released,
            on_lost=self._consumer_lost,
            on_stopped=self._link_stopped,
        )
        self._publisher = Link(
            "publisher",
            settings,
            self._ioloop,
            f"{name} publisher",
            setup=self._setup_publisher,
            on_ready=self._run_released,
            on_lost=self._publisher_lost,
            on_stopped=self._link_stopped,
            on_blocked=self._publisher_blocked,
        )
        self._consumer_ready: Callable[[], None] = _nothing  # set by each setup: tells the link it is ready
        self._publisher_ready: Callable[[], None] = _nothing
        self._link_of: dict[type[Request], Link] = {
            Publish: self._publisher,
            GroupAdd: self._consumer,
            GroupDiscard: self._consumer,
            AwaitReady: self._consumer,
            Flush: self._consumer,
        }
        self._routing: Inbox[Waiter, int] = Inbox(
            settings.local_capacity, settings.local_expiry, settings.group_expiry, settings.capacity_of
        )
        self._wakes = LoopWakes(lambda: self._ioloop.call_later(0, self._flush_wakes))
        self._drops = DropLog(self._ioloop)
        self.unwaited = UnwaitedPublishes(self._drops, self._thread)
        self._confirms = PendingConfirms(self._on_nack)
        self._pauses = PauseWatch(self._ioloop, lambda: self._routing.held > 0, self._describe_pause)
        self._confirm_deadline: Any = None  # timer failing publishes stuck behind a blocked connection
        self._binds: dict[str, list[GroupAdd]] = {}  # group -> requests answered by its bind in flight
        self._rebinds_left = 0
        self._purges_in_flight = 0  # while > 0, deliveries were sent before a flush's purge: drop them
        self._declared: set[str] = set()  # normal-channel queues declared on the current publisher channel
        self._declaring: dict[str, list[Publish]] = {}  # queue -> publishes waiting for its DeclareOk
        self._normal_consumers: dict[str, str] = {}  # normal channel -> consumer tag, while someone waits on it
        self._exclusive_tag = ""  # the consumer tag of this process's own queue
        self._normal_queues: set[str] = set()  # normal-channel queues this process sent to or received on: flush()
        self._expiry_timer: Any = None
        self._expiry_due: float | None = None
        self._stopping = False
        self._stop_request: Stop | None = None

    # -- the thread-safe surface -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, request: Request) -> None:
        """Hand a request to the I/O thread (any thread; never blocks)."""
        self._requests.append(request)
        if self._stopped:  # the thread has ended, or is draining for the last time: nobody else will run this
            self._fail_requests(self._death)
            return
        if not self._wake_pending:
            self._wake_pending = True
            self._ioloop.add_callback_threadsafe(self._drain)

    def submit_unwaited(self, publish: Publish) -> bool:
        """Hand over a publish that nobody will wait for (any thread). False, and nothing done, when the backlog of
        publishes is at `MAX_UNWAITED_BACKLOG`: the caller must then wait for this one's confirm.
        """
        # Lengths of containers owned by the I/O thread, read without a lock: approximate, which a bound can afford.
        backlog = len(self._requests) + len(self._confirms) + len(self._publisher.parked)
        if backlog >= MAX_UNWAITED_BACKLOG:
            return False
        publish.reply = self.unwaited
        self.submit(publish)
        return True

    def stop_and_join(self, timeout: float) -> None:
        """Stop the thread from a thread with no event loop (process exit); waits at most `timeout` seconds."""
        if self._thread.is_alive():
            self.submit(Stop(reply=None))
            self._thread.join(timeout)

    def let_go_in_child(self) -> None:
        """In a forked child: close the inherited copies of the parent's sockets, saying nothing to anyone.

        Only file descriptors are closed (no AMQP close, no TCP shutdown), so the parent's connections are
        untouched; without this, children would keep a dead parent's connection, and its exclusive queue, alive.
        """
        self._stopped = True
        self._consumer.let_go_in_child()
        self._publisher.let_go_in_child()
        try:
            self._ioloop.close()
        except Exception:
            logger.debug("after fork: could not close the inherited poller", exc_info=True)

    # -- the thread ------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._wakes.install()
            self._publisher.connect()  # the consumer link connects on first need (Link.start)
            self._ioloop.start()
        except BaseException as exc:  # a bug: callbacks are guarded, so this should never happen
            logger.exception("The channel layer's I/O thread stopped unexpectedly")
            self._death = RabbitmqLayerError(f"the channel layer's I/O thread stopped unexpectedly: {exc!r}")
        finally:
            self._wakes.uninstall()  # no more pika timers: answers from here on go out at once
            death = self._death
            self._stopped = True
            self._fail_requests(death)
            self._fail_inflight_publishes(death)
            self._fail_inflight_binds(death)
            waiters, _ = self._routing.close()
            for waiter in waiters:
                waiter.fail(death)
            for link in (self._consumer, self._publisher):
                for request in link.parked.release():
                    request.fail(death)
            self._drops.flush()
            self._ioloop.close()
            if self._stop_request is not None:
                logger.info(
                    "Closed the channel layer's connections to RabbitMQ (%s)",
                    self.queue_name,
                    extra={"event": "layer_closed", "queue": self.queue_name},
                )
                self._stop_request.resolve()

    @guarded
    def _flush_wakes(self) -> None:
        self._wakes.flush()

    def _fail_requests(self, exc: BaseException) -> None:
        while True:
            try:
                request = self._requests.popleft()
            except IndexError:
                return
            request.fail(exc)

    @guarded
    def _drain(self) -> None:
        self._wake_pending = False  # before popping: a request appended from now on brings its own wake
        while self._requests:
            self._handle(self._requests.popleft())
        self._schedule_expiry()

    def _handle(self, request: Request) -> None:
        try:
            link = self._link_of.get(type(request))
            if link is not None and not link.ready:
                if self._stopping:
                    request.fail(LayerClosed("the channel layer is closed"))
                else:
                    link.start()
                    link.parked.park(request)
                return
            self._handlers[type(request)](request)
        except Exception as exc:
            logger.exception("Error handling %s", type(request).__name__)
            request.fail(RabbitmqLayerError(f"internal error handling {type(request).__name__}: {exc!r}"))

    def _run_released(self, requests: list[Request]) -> None:
        """A link became ready (or unblocked): run the requests that waited for it."""
        if self._publisher.ready and self._confirm_deadline is not None:
            self._ioloop.remove_timeout(self._confirm_deadline)
            self._confirm_deadline = None
        for request in requests:
            self._handle(request)

    # -- setup of the two links --------------------------------------------------------------------------------------

    def _setup_consumer(self, channel: Any, done: Callable[[], None]) -> None:
        self._consumer_ready = done
        channel.exchange_declare(
            exchange=self.settings.groups_exchange,
            exchange_type="direct",
            callback=self._consumer.step(self._on_exchange_declared),
        )

    @guarded
    def _on_exchange_declared(self, _frame: Any) -> None:
        self._consumer.channel.exchange_declare(
            exchange=self.settings.control_exchange,
            exchange_type="fanout",
            callback=self._consumer.step(self._on_control_exchange_declared),
        )

    @guarded
    def _on_control_exchange_declared(self, _frame: Any) -> None:
        self._consumer.channel.queue_declare(
            queue=self.queue_name,
            exclusive=True,
            arguments={
                "x-max-length": self.settings.remote_capacity,
                "x-overflow": "reject-publish",
                "x-message-ttl": int(self.settings.expiry * 1000),
            },
            callback=self._consumer.step(self._on_queue_declared),
        )

    @guarded
    def _on_queue_declared(self, _frame: Any) -> None:
        self._consumer.channel.queue_bind(
            self.queue_name, self.settings.control_exchange, callback=self._consumer.step(self._on_control_bound)
        )

    @guarded
    def _on_control_bound(self, _frame: Any) -> None:
        groups = self._routing.membership.groups()  # after a reconnect: the groups that still have local members
        self._rebinds_left = len(groups)
        if not groups:
            self._start_consuming()
        for group in groups:
            self._bind(group, self._consumer.step(self._on_rebound))

    @guarded
    def _on_rebound(self, _frame: Any) -> None:
        self._rebinds_left -= 1
        if self._rebinds_left == 0:
            self._start_consuming()

    def _start_consuming(self) -> None:
        self._consumer.channel.basic_qos(
            prefetch_count=self.settings.prefetch_count, callback=self._consumer.step(self._on_qos_set)
        )

    @guarded
    def _on_qos_set(self, _frame: Any) -> None:
        self._exclusive_tag = self._consumer.channel.basic_consume(
            self.queue_name, self._on_delivery, callback=self._consumer.step(self._on_consuming)
        )

    @guarded
    def _on_consuming(self, _frame: Any) -> None:
        self._consumer_ready()
        for channel in self._routing.waiting_channels():  # after a reconnect: receivers waiting on normal channels
            if "!" not in channel:
                self._consume_normal(channel)

    def _setup_publisher(self, channel: Any, done: Callable[[], None]) -> None:
        self._publisher_ready = done
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=self._publisher.step(self._on_confirm_mode))

    @guarded
    def _on_confirm_mode(self, _frame: Any) -> None:
        self._confirms = PendingConfirms(self._on_nack)  # delivery tags restart at 1 on every channel
        self._publisher.channel.exchange_declare(
            exchange=self.settings.groups_exchange,
            exchange_type="direct",
            callback=self._publisher.step(self._on_publisher_declared),
        )

    @guarded
    def _on_publisher_declared(self, _frame: Any) -> None:
        self._publisher_ready()

    def _publisher_blocked(self) -> None:
        """RabbitMQ blocks publishing (resource alarm): publishes already sent get no confirm until it ends."""
        if self._confirms and self._confirm_deadline is None:
            self._confirm_deadline = self._ioloop.call_later(self.settings.connect_timeout, self._on_confirm_deadline)

    @guarded
    def _on_confirm_deadline(self) -> None:
        self._confirm_deadline = None
        if self._publisher.blocked:
            self._fail_inflight_publishes(
                ConfirmLost(
                    f"RabbitMQ has blocked publishing for {self.settings.connect_timeout:g}s "
                    f"({self._publisher.blocked}); the message may or may not be delivered once the alarm clears"
                )
            )

    def _consumer_lost(self, reason: str) -> None:
        self._normal_consumers.clear()  # gone with the channel; restarted for the waiting receivers on reconnect
        self._fail_inflight_binds(
            BrokerUnavailable(f"{reason}; the membership is kept and its binding restored on reconnect")
        )
        lost = self._routing.discard_held()
        if lost:
            logger.warning(
                "%d message(s) received but not yet routed were lost with the connection",
                lost,
                extra={"event": "held_lost", "count": lost},
            )

    def _publisher_lost(self, reason: str) -> None:
        self._fail_inflight_publishes(ConfirmLost(f"{reason}; the message may or may not have been delivered"))
        self._declared.clear()
        declaring, self._declaring = self._declaring, {}
        for requests in declaring.values():
            for request in requests:
                request.fail(BrokerUnavailable(f"{reason}; the message was not sent"))

    def _fail_inflight_publishes(self, exc: BaseException) -> None:
        self._confirms.fail_all(exc)

    def _fail_inflight_binds(self, exc: BaseException) -> None:
        binds, self._binds = self._binds, {}
        for requests in binds.values():
            for request in requests:
                request.fail(exc)

    # -- requests ----------------------------------------------------------------------------------------------------

    def _publish(self, request: Publish) -> None:
        if request.declare is not None and request.declare[0] not in self._declared:
            # basic_publish would overtake a queued queue_declare: wait for DeclareOk (once per queue and channel)
            queue, arguments = request.declare
            self._normal_queues.add(queue)
            if queue not in self._declaring:
                self._declaring[queue] = []
                self._publisher.channel.queue_declare(
                    queue, durable=True, arguments=arguments, callback=lambda _frame: self._on_declared(queue)
                )
            self._declaring[queue].append(request)
            return
        self._publisher.channel.basic_publish(
            request.exchange, request.routing_key, request.body, mandatory=request.mandatory
        )
        self._confirms.add(request)

    @guarded
    def _on_declared(self, queue: str) -> None:
        self._declared.add(queue)
        for request in self._declaring.pop(queue, []):
            self._publish(request)

    def _group_add(self, request: GroupAdd) -> None:
        first = self._routing.add_member(request.group, request.channel, time.monotonic())
        if first:
            requests = self._binds[request.group] = [request]
            self._bind(request.group, lambda _frame: self._on_bound(request.group, requests))
        elif request.group in self._binds:  # its bind is in flight: answer when it is done
            self._binds[request.group].append(request)
        else:
            request.resolve()

    def _bind(self, group: str, callback: Callable[[Any], None]) -> None:
        self._consumer.channel.queue_bind(
            self.queue_name, self.settings.groups_exchange, routing_key=group, callback=callback
        )

    @guarded
    def _on_bound(self, group: str, requests: list[GroupAdd]) -> None:
        if self._binds.get(group) is requests:
            del self._binds[group]
        for request in requests:
            request.resolve()

    def _group_discard(self, request: GroupDiscard) -> None:
        if self._routing.discard_member(request.group, request.channel):
            self._unbind(request.group)
        request.resolve()

    def _unbind(self, group: str) -> None:
        self._binds.pop(group, None)  # a later group_add binds anew; the bind in flight still answers its own
        if self._consumer.channel_open:
            self._consumer.channel.queue_unbind(
                self.queue_name, self.settings.groups_exchange, routing_key=group, callback=lambda _frame: None
            )

    def _await_ready(self, request: AwaitReady) -> None:
        request.resolve()

    def _flush(self, request: Flush) -> None:
        held, groups, dropped = self._routing.flush()
        for tag in held:
            self._consumer.channel.basic_ack(tag)
        for group in groups:
            self._unbind(group)
        logger.info(
            "flush(): dropped %d message(s) and the memberships of %d group(s)",
            dropped,
            len(groups),
            extra={"event": "flushed", "count": dropped, "groups": len(groups)},
        )
        # RabbitMQ sends a channel's methods in order: every delivery before PurgeOk left the queue before the purge.
        # The normal-channel queues this process used are purged first, on the same channel, so the PurgeOk of
        # this process's own queue comes last.
        self._purges_in_flight += 1
        for queue in sorted(self._normal_queues):
            self._consumer.channel.queue_purge(queue, callback=lambda _frame: None)
        self._consumer.channel.queue_purge(self.queue_name, callback=lambda _frame: self._on_purged(request))

    @guarded
    def _on_purged(self, request: Flush) -> None:
        self._purges_in_flight -= 1
        request.resolve()

    def _flushed_by(self, origin: object) -> None:
        """Another process of the deployment called flush(): drop this process's memberships too."""
        if origin == self.queue_name:
            return  # our own flush: done already, and memberships added since must stay
        groups = self._routing.membership.clear()
        for group in groups:
            self._unbind(group)
        logger.info(
            "flush() by %s: dropped the memberships of %d group(s)",
            origin,
            len(groups),
            extra={"event": "flushed_by_another", "groups": len(groups)},
        )

    def _stop(self, request: Stop) -> None:
        if self._stopping:
            request.resolve()  # a second close(): the first one reports the end
            return
        self._stopping = True
        self._stop_request = request
        waiters, dropped = self._routing.close()
        for waiter in waiters:
            waiter.fail(StopConsumer())
        if dropped:
            logger.warning(
                "Closing the channel layer dropped %d undelivered message(s)",
                dropped,
                extra={"event": "closed_with_messages", "count": dropped},
            )
        self._ioloop.call_later(self.settings.connect_timeout + STOP_TIMEOUT, self._ioloop.stop)
        self._consumer.stop()
        # Publishes already handed over (parked for a connection, or awaiting their confirm) may finish first, for
        # at most connect_timeout: with wait_for_confirms=False their callers returned long ago and expect them sent.
        self._ioloop.call_later(self.settings.connect_timeout, self._stop_publisher)
        self._stop_publisher_if_settled()

    def _stop_publisher_if_settled(self) -> None:
        if not (self._confirms or self._publisher.parked or self._declaring):
            self._stop_publisher()

    @guarded
    def _stop_publisher(self) -> None:
        if self._publisher.state not in (STOPPING, STOPPED):
            self._publisher.stop()

    def _link_stopped(self) -> None:
        if self._publisher.state == STOPPED:
            self._fail_inflight_publishes(LayerClosed("the channel layer was closed before RabbitMQ confirmed"))
        if self._consumer.state == STOPPED and self._publisher.state == STOPPED:
            self._ioloop.stop()

    def _take(self, request: Take) -> None:
        self._consumer.start()  # a receive() needs the queue: connect the consumer link if nothing has yet
        channel = request.waiter.channel
        self._apply(self._routing.take(channel, request.waiter, time.monotonic()))
        if "!" not in channel:
            self._consume_normal(channel)

    # -- normal channels: consumed only while a receive() waits --------------------------------------------------------
    #
    # A process takes a normal channel's messages only for receivers that wait right now (prefetch 1, acknowledged
    # when handed over, requeued when nobody waits any more), so competing workers share the queue and nothing
    # piles up in a process that stopped reading.

    def _consume_normal(self, channel: str) -> None:
        if channel in self._normal_consumers or not self._consumer.ready or not self._routing.waiting_on(channel):
            return
        queue, arguments = self.settings.normal_queue(channel)
        self._normal_queues.add(queue)
        consumer_channel = self._consumer.channel
        consumer_channel.queue_declare(queue, durable=True, arguments=arguments)
        consumer_channel.basic_qos(prefetch_count=1)  # applies to consumers created from now on
        self._normal_consumers[channel] = consumer_channel.basic_consume(queue, self._on_delivery)

    def _stop_idle_normal_consumers(self) -> None:
        for channel, consumer in list(self._normal_consumers.items()):
            if not self._routing.waiting_on(channel):
                del self._normal_consumers[channel]
                if self._consumer.channel_open:
                    # Deliveries already on their way to this consumer never reach _on_delivery: pika rejects
                    # (requeues) every delivery for a consumer it has cancelled, so they go back to other workers.
                    self._consumer.channel.basic_cancel(consumer)

    def _forget(self, request: Forget) -> None:
        waiter = request.waiter
        if not self._routing.forget(waiter.channel, waiter):
            message = waiter.reclaim()
            if message is not None:
                self._put_back(PutBack(waiter.channel, message, waiter.expires_at))
        self._stop_idle_normal_consumers()

    def _put_back(self, request: PutBack) -> None:
        now = time.monotonic()
        self._apply(self._routing.put_back(request.channel, request.message, request.expires_at, now))

    # -- deliveries, confirms, returns -------------------------------------------------------------------------------

    @guarded
    def _on_delivery(self, channel: Any, method: pika.spec.Basic.Deliver, _props: Any, body: bytes) -> None:
        tag: int = method.delivery_tag  # type: ignore[assignment]
        if self._purges_in_flight:
            channel.basic_ack(tag)  # sent before a flush's purge: flush() promises it is never delivered
            return
        try:
            recipient, message = decode(body, self.settings.fernet)
        except MalformedBody as exc:
            self._drops.log("not ours", f"a {len(body)}-byte message on queue {self.queue_name} is not ours: {exc}")
            channel.basic_ack(tag)
            return
        if recipient.is_group and recipient.name == FLUSH_GROUP:
            channel.basic_ack(tag)
            self._flushed_by(message.get("from"))
            return
        normal = method.consumer_tag != self._exclusive_tag  # from a normal channel's queue
        if normal and not self._accept_normal_delivery(channel, method, recipient.name, len(body)):
            return
        self._apply(self._routing.offer(tag, recipient, message, time.monotonic()))
        if normal:
            self._stop_idle_normal_consumers()
        self._schedule_expiry()

    def _accept_normal_delivery(self, channel: Any, method: pika.spec.Basic.Deliver, recipient: str, size: int) -> bool:
        """A delivery from a normal channel's queue: True to route it; False when it was dropped or requeued."""
        tag: int = method.delivery_tag  # type: ignore[assignment]
        queue_channel = next(
            (name for name, consumer in self._normal_consumers.items() if consumer == method.consumer_tag), None
        )
        if recipient != queue_channel:
            self._drops.log(
                "wrong queue", f"a {size}-byte message for {recipient!r} was in the queue of {queue_channel!r}"
            )
            channel.basic_ack(tag)
            return False
        if not self._routing.waiting_on(recipient):
            channel.basic_nack(tag, requeue=True)  # nobody here waits for it any more: back to the other workers
            self._stop_idle_normal_consumers()
            return False
        return True

    def _apply(self, effects: Effects[Waiter, int]) -> None:
        """Carry out what the routing state decided: hand-offs, acks, log lines, unbinds."""
        handoffs = deque(effects.handoffs)
        while handoffs:
            handoff = handoffs.popleft()
            if not handoff.waiter.offer(handoff.message, handoff.expires_at):  # its loop is closed
                retry = self._routing.put_back(handoff.channel, handoff.message, handoff.expires_at, time.monotonic())
                handoffs.extend(retry.handoffs)
                self._apply_rest(retry)
        self._apply_rest(effects)

    def _apply_rest(self, effects: Effects[Waiter, int]) -> None:
        if effects.acks and self._consumer.channel_open:
            for tag in effects.acks:
                self._consumer.channel.basic_ack(tag)
        for drop in effects.drops:
            if drop.reason == "no local member":
                logger.debug("Group message for %s arrived with no local member; acknowledged", drop.channel)
            else:
                detail = f"channel {drop.channel}: {_DROP_REASONS[drop.reason]}"
                self._drops.log(drop.reason, f"{detail}; biggest backlogs: {self._routing.biggest_backlogs()}")
        if effects.memberships_expired:
            logger.info(
                "%d group membership(s) expired: not renewed by group_add for group_expiry (%gs)",
                effects.memberships_expired,
                self.settings.group_expiry,
                extra={"event": "memberships_expired", "count": effects.memberships_expired},
            )
        for group in effects.unbind:
            self._unbind(group)
        if effects.paused:
            self._pauses.paused()

    def _describe_pause(self) -> str:
        return (
            f"local_capacity ({self._routing.capacity}) reached and no receive() is waiting; RabbitMQ keeps the "
            f"backlog and senders get ChannelFull at remote_capacity. Biggest backlogs: "
            f"{self._routing.biggest_backlogs()}"
        )

    def _on_nack(self, publish: Publish) -> None:
        """RabbitMQ refused a publish (a queue at its x-max-length): log the copies no caller hears about."""
        if publish.exchange == self.settings.groups_exchange:  # group_send never raises ChannelFull
            self._drops.log(
                "group copy refused",
                f"group_send to {publish.routing_key!r}: a member process's queue is full (remote_capacity); "
                "its copy was dropped",
            )
        elif publish.reply is self.unwaited:  # the caller did not wait, so it gets no ChannelFull
            self._drops.log("nacked", "RabbitMQ refused a message sent without waiting: the receiving queue was full")

    @guarded
    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        self._confirms.settle(method.delivery_tag, method.multiple, isinstance(method, pika.spec.Basic.Ack))
        if self._stopping:
            self._stop_publisher_if_settled()

    @guarded
    def _on_return(self, _channel: Any, method: Any, _props: Any, body: bytes) -> None:
        if method.exchange:  # a group_send that no process is subscribed to: normal for an empty group
            logger.debug(
                "group_send to %r reached no process (%s); %d bytes dropped",
                method.routing_key,
                method.reply_text,
                len(body),
            )
            return
        self._drops.log(
            "unroutable",
            f"RabbitMQ has no queue {method.routing_key!r} ({method.reply_code} {method.reply_text}) for a "
            f"{len(body)}-byte message; the process that owned that channel is gone",
        )

    # -- local expiry ------------------------------------------------------------------------------------------------

    def _schedule_expiry(self) -> None:
        """Arm the one expiry timer for the oldest message in memory, unless it is armed for that time or earlier.

        An armed timer is never cancelled when its message is taken: it fires once, finds nothing due and re-arms
        (or not). Cancelling and re-arming per message would cost a timer per message, and pika keeps cancelled
        timers in its heap until their deadline.
        """
        due = self._routing.next_expiry()
        if due is None or (self._expiry_due is not None and self._expiry_due <= due):
            return
        if self._expiry_timer is not None:  # the oldest message is now older than the one the timer is armed for
            self._ioloop.remove_timeout(self._expiry_timer)
        self._expiry_due = due
        self._expiry_timer = self._ioloop.call_later(max(0.0, due - time.monotonic()), self._on_expiry_due)

    @guarded
    def _on_expiry_due(self) -> None:
        self._expiry_timer = None
        self._expiry_due = None
        self._apply(self._routing.expire(time.monotonic()))
        self._schedule_expiry()
