"""The hub: the I/O thread's work between callers, the two sides and the routing state.

Theory of operation
-------------------
Everything the I/O thread does between pika's callbacks goes through one `Hub`: it runs each request that callers
submit (`Hub.handle`: a table from request type to handler, and from request type to the link it waits for while
that link is not ready), hears what the two sides report (`consumer.ConsumerHub`, `publisher.PublisherHub`: a
delivery, a link ready or stopped, deliveries lost, a flush by another process), and carries out what the routing
state decides (`EffectsCarrier`: hand-offs to receivers, acks, drops, unbinds; `ExpiryTimer`: local expiry).

| request | handled by | waits for |
|---|---|---|
| `Publish` | `PublisherSide.publish` (a normal channel's queue is remembered for flush()) | the publisher link |
| `GroupAdd`, `GroupDiscard` | the membership (`inbox.GroupMembership`), then `GroupBindings` | the consumer link |
| `NormalGroupChange`, `UnbindNormalGroups` | `NormalGroupBindings` | the publisher link |
| `AwaitReady` | answered at once: the consumer link is ready | the consumer link |
| `Flush` | the routing state, the bindings, then `ConsumerSide.purge` | the consumer link |
| `Take`, `Forget`, `PutBack` | the routing state (`SharedInbox`); a normal channel's consumer | nothing |
| `Stop` | close: the routing state, the unbinds, the publishes in flight, then both links | nothing |

A request that waits for its link is parked in it (`Link.parked`) and run again by `run_unparked` once the link is
ready, or failed after `connect_timeout`. Everything here runs on the I/O thread (it is built on the caller's
thread, before the thread starts), but `publish_now`, which a caller's thread runs holding the pika lock;
`io_thread.IOThread` is the thread around it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from channels.exceptions import StopConsumer
from pika.adapters.select_connection import IOLoop

from .._bridge.handoffs import Waiter
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
from .._routing.inbox import DropReason, Effects, Inbox
from .._routing.names import RecentNames
from ..errors import LayerClosed, RabbitmqLayerError
from .consumer import ConsumerSide
from .figures import Figures
from .ledgers import DropLog, PauseWatch, UnwaitedPublishes
from .link import STOPPED, Link
from .logs import guarded
from .normal_groups import NormalGroupBindings
from .publisher import PublisherSide
from .reach import ReachProbe

logger = logging.getLogger("channels_rabbitmq_threaded.io_thread")  # a public name: operations.md

STOP_TIMEOUT = 5.0  # how long a clean close may take before the loop is stopped anyway


class Hub:
    """The I/O thread's dispatch and the two sides' hub. See the module's theory of operation."""

    def __init__(self, settings: Settings, ioloop: IOLoop, queue_name: str, thread: threading.Thread) -> None:
        self.settings = settings
        self.queue_name = queue_name
        self._ioloop = ioloop
        self.drops = DropLog(ioloop)
        self.unwaited = UnwaitedPublishes(self.drops, thread)
        self.consumer = ConsumerSide(settings, ioloop, queue_name, self, self.drops)
        self.publisher = PublisherSide(settings, ioloop, queue_name, self, self.drops, self.unwaited)
        self._normal_groups = NormalGroupBindings(settings, self.publisher.link)
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
            Publish: self.publisher.link,
            GroupAdd: self.consumer.link,
            GroupDiscard: self.consumer.link,
            NormalGroupChange: self.publisher.link,
            UnbindNormalGroups: self.publisher.link,
            AwaitReady: self.consumer.link,
            Flush: self.consumer.link,
        }
        self.routing: SharedInbox[Waiter, int] = SharedInbox(
            settings.local_capacity, settings.local_expiry, settings.group_expiry, settings.capacity_of
        )
        self.publisher.link.hosts.keep_apart_from(self.consumer.link.hosts)  # so a probe can see a cut (reach.py)
        self.reach = ReachProbe(settings, ioloop, queue_name, self.consumer.link, self.publisher.link,
                                self.publisher.publish, lambda: self.consumer.deliveries.received,
                                lambda: self.routing.held > 0)  # fmt: skip
        self._apply = EffectsCarrier(settings, ioloop, self.routing, self.consumer, self.drops).apply
        self._normal_queues = RecentNames()  # normal-channel queues this process used lately: flush() purges them
        self.expiry = ExpiryTimer(ioloop, self.routing, self._apply)
        self.figures = Figures(self.routing, self.consumer, self.publisher, self.drops, self._normal_queues, self.reach)
        self.stopping = False  # a Stop was handled: the layer is closing
        self.stop_request: Stop | None = None  # answered by the thread's last act

    def links(self) -> tuple[Link, Link]:
        return self.consumer.link, self.publisher.link

    def handle(self, request: Request) -> None:
        """Run one request now, or park it in the link it waits for."""
        try:
            link = self._link_of.get(type(request))
            if link is not None and not link.ready:
                if self.stopping:
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
            self.handle(request)

    def stopped(self) -> None:
        if self.consumer.link.state is STOPPED and self.publisher.link.state is STOPPED:
            self._ioloop.stop()

    def deliver(self, tag: int, recipient: Recipient, message: dict[str, Any]) -> None:
        self._apply(self.routing.offer(tag, recipient, message, time.monotonic()))
        self.expiry.schedule()

    def deliveries_lost(self) -> None:
        held = self.routing.discard_held()
        if held and self.settings.queue_lease:  # never acknowledged, so RabbitMQ delivers them again
            logger.debug("%d held message(s) go back to the queue with the connection", held)
        elif held:  # an exclusive queue: gone with the connection
            message = "%d message(s) received but not yet routed were lost with the connection"
            logger.warning(message, held, extra={"event": "held_lost", "count": held})

    def flushed_by(self, origin: object) -> None:
        """Another process of the deployment called flush(): drop this process's memberships too."""
        if origin == self.queue_name:
            return  # our own flush: done already, and memberships added since must stay
        groups = self.routing.membership.clear()
        for group in groups:
            self.consumer.bindings.unbind(group)
        logger.info(
            "flush() by %s: dropped the memberships of %d group(s)",
            origin,
            len(groups),
            extra={"event": "flushed_by_another", "groups": len(groups)},
        )

    def local_groups(self) -> list[str]:
        return self.routing.membership.groups()

    def waiting_on(self, channel: str) -> int:
        return self.routing.waiting_on(channel)

    def waiting_channels(self) -> list[str]:
        return self.routing.waiting_channels()

    # -- requests ----------------------------------------------------------------------------------------------------

    def _publish(self, request: Publish) -> None:
        self._remember_normal_queue(request)
        self.publisher.publish(request)

    def publish_now(self, request: Publish) -> bool:
        """`_publish` on a caller's thread that holds the pika lock, when the publisher side can do it at once."""
        if self.stopping or not self.publisher.publish_now(request):
            return False
        self._remember_normal_queue(request)
        return True

    def _remember_normal_queue(self, request: Publish) -> None:
        """A send to a normal channel: its queue is one flush() purges."""
        if request.declare is not None:
            self._normal_queues.add(request.declare[0])

    def _group_add(self, request: GroupAdd) -> None:
        first = self.routing.membership.add(request.group, request.channel, time.monotonic())
        self.consumer.bindings.add_member(request, first)

    def _group_discard(self, request: GroupDiscard) -> None:
        if self.routing.membership.discard(request.group, request.channel):
            self.consumer.bindings.unbind_later(request.group)
        request.resolve()

    def _flush(self, request: Flush) -> None:
        held, groups, dropped = self.routing.flush()
        self.consumer.deliveries.ack(held)
        for group in groups:
            self.consumer.bindings.unbind(group)
        logger.info(
            "flush(): dropped %d message(s) and the memberships of %d group(s)",
            dropped,
            len(groups),
            extra={"event": "flushed", "count": dropped, "groups": len(groups)},
        )
        self.consumer.purge(request, sorted(self._normal_queues))

    def _unbind_normal_groups(self, request: UnbindNormalGroups) -> None:
        changes = self._normal_groups.unbind_all(request)
        for change in changes:
            self.handle(change)

    def _take(self, request: Take) -> None:
        self.consumer.link.start()  # a receive() needs the queue: connect the consumer link if nothing has yet
        channel = request.waiter.channel
        self._apply(self.routing.take(channel, request.waiter, time.monotonic()))
        if not is_process_specific(channel):
            self._normal_queues.add(self.settings.normal_queue(channel)[0])
            self.consumer.deliveries.normal.consume(channel)

    def _forget(self, request: Forget) -> None:
        waiter = request.waiter
        if not self.routing.forget(waiter.channel, waiter):
            message = waiter.reclaim()
            if message is not None:
                self._put_back(PutBack(waiter.channel, message, waiter.expires_at))
        self.consumer.deliveries.normal.stop_idle()

    def _put_back(self, request: PutBack) -> None:
        now = time.monotonic()
        self._apply(self.routing.put_back(request.channel, request.message, request.expires_at, now))

    def _stop(self, request: Stop) -> None:
        if self.stopping:
            request.resolve()  # a second close(): the first one reports the end
            return
        self.stopping = True
        self.stop_request = request
        self.reach.stop()
        bound = self.routing.membership.groups()
        waiters, dropped = self.routing.close()
        for waiter in waiters:
            waiter.fail(StopConsumer())
        if dropped:
            logger.warning(
                "Closing the channel layer dropped %d undelivered message(s)",
                dropped,
                extra={"event": "closed_with_messages", "count": dropped},
            )
        self._ioloop.call_later(self.settings.connect_timeout + STOP_TIMEOUT, self._ioloop.stop)
        self.consumer.stop_after_unbinding(bound)
        # Publishes already handed over (parked for a connection, or awaiting their confirm) may finish first, for
        # at most connect_timeout: with wait_for_confirms=False their callers returned long ago and expect them sent.
        self.publisher.stop_when_settled()


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
        self._consumer.deliveries.ack(effects.acks)
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
