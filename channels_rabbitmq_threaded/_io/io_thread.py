"""The I/O thread: the one thread that runs pika, and the hub between callers, the two links and the routing state.

Theory of operation
-------------------
One `IOThread` per layer runs a pika `IOLoop` in a daemon thread. Three rooms share that thread:

* `consumer.ConsumerSide`: the consumer link, the process's queue, its bindings, deliveries and acks;
* `publisher.PublisherSide`: the publisher link, publishes, confirms, returns, normal-queue declares;
* this hub: the request funnel, the routing state (`inbox.Inbox`), carrying out its `Effects`, local expiry,
  and the end of the thread.

Deliveries come up from the consumer side (`deliver`); acks, binds, unbinds and purges go down to it as calls.
Both sides and their links run on this thread only; only the modules `link`, `consumer`, `publisher` and `ledgers`
(a timer) touch pika besides this one.

Who touches what
----------------
* Other threads call only `submit(request)`, `submit_unwaited(publish)`, `take_ready` and `wait_ready` (and
  `start`, `stop_and_join`, `is_alive`, `let_go_in_child` in a forked child). `submit` appends to a deque and
  wakes the loop with `add_callback_threadsafe` only when no wake is already pending, so a burst of requests costs
  one wake.
  Everything else runs in the I/O thread.
* The routing state (`SharedInbox`: buffers, waiters, membership) is owned by this thread, except that a
  receive() takes a buffered message, or starts waiting, on its own thread under the inbox's lock when that needs
  nothing else (`take_ready`, `wait_ready`; `shared_inbox` has the table).
* Answers leave through `handoffs.LoopReply`, `handoffs.ThreadReply` and `handoffs.Waiter`, which use the callers' own
  loops (or block the caller's own thread). This thread batches them: its `handoffs.LoopWakes` sends the answers of
  one pass of the pika loop as one wake-up per event loop (`_flush_wakes`, a zero-delay timer).
* With `wait_for_confirms=False`, publishes carry the shared `UnwaitedPublishes` reply, which logs failures as
  drops; `submit_unwaited` reads the backlog (queued, parked, unconfirmed) without a lock to bound it.

Rules
-----
* Every callback handed to pika is `guarded`: an exception is logged and never reaches pika.
* Nothing here blocks: no sleeps, no blocking puts, no waits on other threads.
* Nobody is left waiting, by construction: a request that needs a link waits in its parked requests at most
  `connect_timeout`; a request that waits for an RPC is registered in its link's `InFlight`, which the link empties
  when the connection ends; whatever is left when the thread ends is failed with the reason it ended (pika drops
  callbacks silently after its loop is closed, so `submit` checks for a stopped thread itself).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from channels.exceptions import StopConsumer
from pika.adapters.select_connection import IOLoop

from .._bridge.handoffs import LoopWakes, Waiter
from .._bridge.requests import (
    AwaitReady,
    Flush,
    Forget,
    GroupAdd,
    GroupDiscard,
    NormalGroupChange,
    Publish,
    PutBack,
    Request,
    Stop,
    Take,
    UnbindNormalGroups,
)
from .._bridge.shared_inbox import SharedInbox
from .._config import Settings, is_process_specific
from .._routing.envelope import Recipient
from .._routing.inbox import DropReason, Effects, Inbox, Message
from .._routing.names import RecentNames
from ..errors import LayerClosed, RabbitmqLayerError
from .consumer import ConsumerSide
from .figures import Figures
from .ledgers import DropLog, PauseWatch, UnwaitedPublishes
from .link import STOPPED, Link, LinkState, guarded, let_go_in_child
from .normal_groups import NormalGroupBindings
from .publisher import PublisherSide
from .reach import ReachProbe

logger = logging.getLogger("channels_rabbitmq_threaded.io_thread")  # a public name: operations.md

STOP_TIMEOUT = 5.0  # how long a clean close may take before the loop is stopped anyway
LOOP_ESCAPES_TOLERATED = 10  # exceptions out of pika's loop (run_until_stopped) within LOOP_ESCAPE_WINDOW seconds
LOOP_ESCAPE_WINDOW = 10.0

# With wait_for_confirms=False, callers stop sending without waiting once this many publishes are queued, parked or
# unconfirmed: they wait for their confirm instead, so a broker that is slow, blocked or gone slows them down rather
# than filling this process's memory.
MAX_UNWAITED_BACKLOG = 10_000


class IOThread:
    """Owns the pika connections for one layer. See the module's theory of operation."""

    def __init__(self, settings: Settings, queue_name: str) -> None:
        self.settings = settings
        self.queue_name = queue_name
        self._death: BaseException = LayerClosed("the channel layer is closed")  # what late requests are told
        self._ioloop = IOLoop()
        self._thread = threading.Thread(target=self._run, name=f"channels-rabbitmq-io:{queue_name}", daemon=True)
        # Everything below belongs to the I/O thread.
        self._drops = DropLog(self._ioloop)
        self.unwaited = UnwaitedPublishes(self._drops, self._thread)
        self._consumer = ConsumerSide(settings, self._ioloop, queue_name, self, self._drops)
        self._publisher = PublisherSide(settings, self._ioloop, queue_name, self, self._drops, self.unwaited)
        self._normal_groups = NormalGroupBindings(settings, self._publisher.link)
        self._handlers: dict[type[Request], Callable[[Any], None]] = {
            Publish: self._publish,
            GroupAdd: self._group_add,
            GroupDiscard: self._group_discard,
            NormalGroupChange: self._normal_groups.change,
            UnbindNormalGroups: self._unbind_normal_groups,
            AwaitReady: AwaitReady.resolve,  # the consumer link is ready: that is the answer
            Flush: self._flush,
            Stop: self._stop,
            Take: self._take,
            Forget: self._forget,
            PutBack: self._put_back,
        }
        self._link_of: dict[type[Request], Link] = {  # requests that wait while their link is not ready
            Publish: self._publisher.link,
            GroupAdd: self._consumer.link,
            GroupDiscard: self._consumer.link,
            NormalGroupChange: self._publisher.link,
            UnbindNormalGroups: self._publisher.link,
            AwaitReady: self._consumer.link,
            Flush: self._consumer.link,
        }
        self._routing: SharedInbox[Waiter, int] = SharedInbox(
            settings.local_capacity, settings.local_expiry, settings.group_expiry, settings.capacity_of
        )
        self._publisher.link.hosts.keep_apart_from(self._consumer.link.hosts)  # so a probe can see a cut (reach.py)
        self._reach = ReachProbe(settings, self._ioloop, queue_name, self._consumer.link, self._publisher.link,
                                 self._publisher.publish, lambda: self._consumer.received,
                                 lambda: self._routing.held > 0)  # fmt: skip
        self._wakes = LoopWakes(self._schedule_wakes)
        self._apply = EffectsCarrier(settings, self._ioloop, self._routing, self._consumer, self._drops).apply
        self._normal_queues = RecentNames()  # normal-channel queues this process used lately: flush() purges them
        self._expiry = ExpiryTimer(self._ioloop, self._routing, self._apply)
        self._funnel = RequestFunnel(self._ioloop, self._handle, self._expiry.schedule)  # the one way in (any thread)
        self.figures = Figures(
            self._routing, self._consumer, self._publisher, self._drops, self._normal_queues, self._reach
        )
        self._stopping = False
        self._running = False  # from start() until the thread's last act
        self._stop_request: Stop | None = None

    # -- the thread-safe surface -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        self._thread.start()

    def is_alive(self) -> bool:
        """False once the thread has answered everyone and is ending (a flag: every call of the layer asks)."""
        return self._running

    def submit(self, *requests: Request) -> None:
        """Hand requests to the I/O thread, in order, with one wake-up (any thread; never blocks)."""
        self._funnel.submit(requests)

    def take_ready(self, channel: str) -> Message | None:
        """A receive()'s message, taken on the caller's thread when its channel holds one that needs nothing more
        (`SharedInbox`); None: wait for one (`wait_ready`, or a `Take`)."""
        return self._routing.take_ready(channel, time.monotonic())

    def wait_ready(self, waiter: Waiter) -> bool:
        """Let a receive() of a process-specific channel wait without a request, when the consumer link has started
        and nothing else is needed (`SharedInbox`); False: submit a `Take`."""
        # The link's state is read from the caller's thread: a link leaves IDLE once and never comes back to it.
        if self._consumer.link.state is LinkState.IDLE or not is_process_specific(waiter.channel):
            return False  # the link must be started, or a normal channel's queue consumed: the I/O thread's work
        return self._routing.wait_ready(waiter.channel, waiter)

    def submit_unwaited(self, publish: Publish) -> bool:
        """Hand over a publish that nobody will wait for (any thread). False, and nothing done, when the backlog of
        publishes is at `MAX_UNWAITED_BACKLOG`: the caller must then wait for this one's confirm.
        """
        # Lengths of containers owned by the I/O thread, read without a lock: approximate, which a bound can afford.
        if len(self._funnel) + self._publisher.backlog() >= MAX_UNWAITED_BACKLOG:
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
        self._funnel.close(LayerClosed("the channel layer was forked: this child starts a layer of its own"))
        let_go_in_child(self._consumer.link)
        let_go_in_child(self._publisher.link)
        try:
            self._ioloop.close()
        except Exception:
            logger.debug("after fork: could not close the inherited poller", exc_info=True)

    # -- the thread ------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._wakes.install()
            self._publisher.link.start()  # the consumer link starts on first need
            self._reach.start()  # probes only while both links are ready
            run_until_stopped(self._ioloop, lambda: self._stopping)
        except BaseException as exc:  # a bug: callbacks are guarded, and run_until_stopped forgives pika's races
            logger.exception("The channel layer's I/O thread stopped unexpectedly")
            self._death = RabbitmqLayerError(f"the channel layer's I/O thread stopped unexpectedly: {exc!r}")
        finally:
            self._wakes.uninstall()  # no more pika timers: answers from here on go out at once
            self._end(self._death)
            self._running = False

    def _end(self, death: BaseException) -> None:
        """The thread's last act: answer everyone still waiting, whatever they wait for."""
        self._funnel.close(death)
        for link in (self._consumer.link, self._publisher.link):
            link.inflight.fail_all(death)
            for request in link.parked.take_all():
                request.fail(death)
        waiters, _ = self._routing.close()
        for waiter in waiters:
            waiter.fail(death)
        self._drops.flush()
        self._ioloop.close()
        if self._stop_request is not None:
            logger.info(
                "Closed the channel layer's connections to RabbitMQ (%s)",
                self.queue_name,
                extra={"event": "layer_closed", "queue": self.queue_name},
            )
            self._stop_request.resolve()

    def _schedule_wakes(self) -> None:
        """Send the answers of this pass at its end: a zero-delay timer runs after the pass's other callbacks."""
        self._ioloop.call_later(0, self._flush_wakes)

    @guarded
    def _flush_wakes(self) -> None:
        self._wakes.flush()

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

    # -- what the two sides tell the hub (ConsumerHub, PublisherHub) ---------------------------------------------------

    def run_unparked(self, requests: list[Request]) -> None:
        for request in requests:
            self._handle(request)

    def stopped(self) -> None:
        if self._consumer.link.state is STOPPED and self._publisher.link.state is STOPPED:
            self._ioloop.stop()

    def deliver(self, tag: int, recipient: Recipient, message: dict[str, Any]) -> None:
        self._apply(self._routing.offer(tag, recipient, message, time.monotonic()))
        self._expiry.schedule()

    def deliveries_lost(self) -> None:
        held = self._routing.discard_held()
        if held and self.settings.queue_lease:  # never acknowledged, so RabbitMQ delivers them again
            logger.debug("%d held message(s) go back to the queue with the connection", held)
        elif held:  # an exclusive queue: gone with the connection
            message = "%d message(s) received but not yet routed were lost with the connection"
            logger.warning(message, held, extra={"event": "held_lost", "count": held})

    def flushed_by(self, origin: object) -> None:
        """Another process of the deployment called flush(): drop this process's memberships too."""
        if origin == self.queue_name:
            return  # our own flush: done already, and memberships added since must stay
        groups = self._routing.membership.clear()
        for group in groups:
            self._consumer.bindings.unbind(group)
        logger.info(
            "flush() by %s: dropped the memberships of %d group(s)",
            origin,
            len(groups),
            extra={"event": "flushed_by_another", "groups": len(groups)},
        )

    def local_groups(self) -> list[str]:
        return self._routing.membership.groups()

    def waiting_on(self, channel: str) -> int:
        return self._routing.waiting_on(channel)

    def waiting_channels(self) -> list[str]:
        return self._routing.waiting_channels()

    # -- requests ----------------------------------------------------------------------------------------------------

    def _publish(self, request: Publish) -> None:
        if request.declare is not None:
            self._normal_queues.add(request.declare[0])
        self._publisher.publish(request)

    def _group_add(self, request: GroupAdd) -> None:
        first = self._routing.membership.add(request.group, request.channel, time.monotonic())
        self._consumer.bindings.add_member(request, first)

    def _group_discard(self, request: GroupDiscard) -> None:
        if self._routing.membership.discard(request.group, request.channel):
            self._consumer.bindings.unbind_later(request.group)
        request.resolve()

    def _flush(self, request: Flush) -> None:
        held, groups, dropped = self._routing.flush()
        self._consumer.ack(held)
        for group in groups:
            self._consumer.bindings.unbind(group)
        logger.info(
            "flush(): dropped %d message(s) and the memberships of %d group(s)",
            dropped,
            len(groups),
            extra={"event": "flushed", "count": dropped, "groups": len(groups)},
        )
        self._consumer.purge(request, sorted(self._normal_queues))

    def _unbind_normal_groups(self, request: UnbindNormalGroups) -> None:
        changes = self._normal_groups.unbind_all(request)
        for change in changes:
            self._handle(change)

    def _take(self, request: Take) -> None:
        self._consumer.link.start()  # a receive() needs the queue: connect the consumer link if nothing has yet
        channel = request.waiter.channel
        self._apply(self._routing.take(channel, request.waiter, time.monotonic()))
        if not is_process_specific(channel):
            self._normal_queues.add(self.settings.normal_queue(channel)[0])
            self._consumer.normal.consume(channel)

    def _forget(self, request: Forget) -> None:
        waiter = request.waiter
        if not self._routing.forget(waiter.channel, waiter):
            message = waiter.reclaim()
            if message is not None:
                self._put_back(PutBack(waiter.channel, message, waiter.expires_at))
        self._consumer.normal.stop_idle()

    def _put_back(self, request: PutBack) -> None:
        now = time.monotonic()
        self._apply(self._routing.put_back(request.channel, request.message, request.expires_at, now))

    def _stop(self, request: Stop) -> None:
        if self._stopping:
            request.resolve()  # a second close(): the first one reports the end
            return
        self._stopping = True
        self._stop_request = request
        self._reach.stop()
        bound = self._routing.membership.groups()
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
        self._consumer.stop_after_unbinding(bound)
        # Publishes already handed over (parked for a connection, or awaiting their confirm) may finish first, for
        # at most connect_timeout: with wait_for_confirms=False their callers returned long ago and expect them sent.
        self._publisher.stop_when_settled()


class EffectsCarrier:
    """Carries out what the routing state decided (`inbox.Effects`): hand-offs, acks, log lines, unbinds.

    A hand-off whose loop turned out closed goes back to its channel, which may hand it to the next waiter. Owned by
    the I/O thread.
    """

    def __init__(self, settings: Settings, ioloop: IOLoop, routing: SharedInbox[Waiter, int], consumer: ConsumerSide,
                 drops: DropLog) -> None:  # fmt: skip
        self._settings = settings
        self._routing = routing
        self._consumer = consumer
        self._drops = drops
        self._pauses = PauseWatch(ioloop, lambda: routing.held > 0, self._describe_pause)

    def apply(self, effects: Effects[Waiter, int]) -> None:
        handoffs = deque(effects.handoffs)
        while handoffs:
            handoff = handoffs.popleft()
            if not handoff.waiter.offer(handoff.message, handoff.expires_at):  # its loop is closed
                retry = self._routing.put_back(handoff.channel, handoff.message, handoff.expires_at, time.monotonic())
                handoffs.extend(retry.handoffs)
                self._apply_rest(retry)
        self._apply_rest(effects)

    def _apply_rest(self, effects: Effects[Waiter, int]) -> None:
        self._consumer.ack(effects.acks)
        for drop in effects.drops:
            if drop.reason is DropReason.NO_LOCAL_MEMBER:
                logger.debug("Group message for %s arrived with no local member; acknowledged", drop.channel)
            else:
                backlogs = self._routing.biggest_backlogs()
                self._drops.log(
                    drop.reason, f"channel {drop.channel}: {drop.reason.text}; biggest backlogs: {backlogs}"
                )
        if effects.memberships_expired:
            logger.info(
                "%d group membership(s) expired: not renewed by group_add for group_expiry (%gs)",
                effects.memberships_expired,
                self._settings.group_expiry,
                extra={"event": "memberships_expired", "count": effects.memberships_expired},
            )
        for group in effects.unbind:
            self._consumer.bindings.unbind_later(group)
        if effects.paused:
            self._pauses.paused()

    def _describe_pause(self) -> str:
        return (
            f"local_capacity ({self._routing.local_capacity}) reached, and no receive() is waiting or every channel"
            " holding messages is being read; RabbitMQ keeps the backlog and senders get ChannelFull at"
            " remote_capacity."
            f" Biggest backlogs: {self._routing.biggest_backlogs()}"
        )


def run_until_stopped(ioloop: IOLoop, stopping: Callable[[], bool]) -> None:
    """Run pika's loop until the thread stops it, forgiving exceptions that escape pika's own callbacks.

    pika 1.4 raises out of its connection workflow when a TCP connection is reset between the connect and the
    stream's set-up (`getpeername()` fails: "Expected connected socket"), as a refused or flapping listener does.
    That is a network fault, not a reason to end the layer: the loop goes on, and the attempt's own stack timeout
    (`Settings.attempt_timeout`) reports it as a failed attempt, so the link tries again. More than
    `LOOP_ESCAPES_TOLERATED` escapes within `LOOP_ESCAPE_WINDOW` seconds is a bug, not a fault: it is raised.
    """
    escapes: deque[float] = deque(maxlen=LOOP_ESCAPES_TOLERATED)
    while True:
        try:
            ioloop.start()
            return
        except Exception as exc:
            now = time.monotonic()
            escapes.append(now)
            if stopping() or (len(escapes) == LOOP_ESCAPES_TOLERATED and now - escapes[0] < LOOP_ESCAPE_WINDOW):
                raise
            logger.warning(
                "pika raised out of its I/O loop (%r); the loop goes on",
                exc,
                exc_info=True,
                extra={"event": "loop_error"},
            )


class RequestFunnel:
    """Requests from any thread into the I/O thread: a deque, and one pika wake-up per burst.

    `submit` appends and calls `add_callback_threadsafe(drain)` only when no drain is pending, so a burst of requests
    costs one wake. pika drops callbacks silently once its loop is closed, so the thread `close`s the funnel before
    its last act: from then on `submit` fails each request itself with the reason the thread ended.
    """

    def __init__(self, ioloop: IOLoop, handle: Callable[[Request], None], after_drain: Callable[[], None]) -> None:
        self._ioloop = ioloop
        self._handle = handle  # runs one request, on the I/O thread
        self._after_drain = after_drain
        self._requests: deque[Request] = deque()  # any thread appends; the I/O thread pops
        self._wake_pending = False
        self._closed: BaseException | None = None  # why the thread ended; set by it as it ends

    def submit(self, requests: Iterable[Request]) -> None:
        self._requests.extend(requests)
        if self._closed is not None:  # the thread has ended, or is draining for the last time
            self._fail_all(self._closed)
            return
        if not self._wake_pending:
            self._wake_pending = True
            self._ioloop.add_callback_threadsafe(self._drain)

    def close(self, reason: BaseException) -> None:
        self._closed = reason
        self._fail_all(reason)

    def __len__(self) -> int:  # safe to read from any thread (an approximate figure there)
        return len(self._requests)

    def _fail_all(self, exc: BaseException) -> None:
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
        self._after_drain()


class ExpiryTimer:
    """The one pika timer that runs local expiry (`Inbox.expire`) when the oldest message in memory is due.

    An armed timer is never cancelled when its message is taken: it fires once, finds nothing due and re-arms (or
    not). Cancelling and re-arming per message would cost a timer per message, and pika keeps cancelled timers in
    its heap until their deadline. Owned by the I/O thread.
    """

    def __init__(self, ioloop: IOLoop, routing: Inbox[Waiter, int], apply: Callable[[Effects[Waiter, int]], None]):
        self._ioloop = ioloop
        self._routing = routing
        self._apply = apply
        self._timer: Any = None
        self._due: float | None = None

    def schedule(self) -> None:
        """Arm the timer for the oldest message in memory, unless it is armed for that time or earlier."""
        due = self._routing.next_expiry()
        if due is None or (self._due is not None and self._due <= due):
            return
        if self._timer is not None:  # the oldest message is now older than the one the timer is armed for
            self._ioloop.remove_timeout(self._timer)
        self._due = due
        self._timer = self._ioloop.call_later(max(0.0, due - time.monotonic()), self._on_due)

    @guarded
    def _on_due(self) -> None:
        self._timer = None
        self._due = None
        self._apply(self._routing.expire(time.monotonic()))
        self.schedule()
