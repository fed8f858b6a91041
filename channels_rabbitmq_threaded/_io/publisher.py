"""The publisher side of the I/O thread: every send and group_send, with publisher confirms.

Theory of operation
-------------------
`PublisherSide` owns the publisher `Link`, a connection of its own so that a resource alarm, which blocks
connections that publish, stops only publishing. It connects when the I/O thread starts. Its setup, one RPC per
step, each answer wrapped by `Link.step`:

1. `setup`: `confirm.select` (publisher confirms; delivery tags restart at 1) -> `_on_confirm_mode`, from which
   the confirms are read before pika parses them (`reads.ConfirmReader`);
2. `exchange.declare` of the groups exchange -> `_on_exchange_declared`;
3. `exchange.declare` of the direct exchange -> `_on_direct_exchange_declared`: the link is ready.

A send to a process-specific channel goes to the direct exchange with the process's address as its routing key;
each process binds its current queue there (`consumer.py`). Every publish is `mandatory`. A send that the direct
exchange cannot route comes back (`_on_return`) and goes out once more through the default exchange, to a queue
named by the address: the queue of a process of an older version of this layer, or of channels_rabbitmq, which
bind nothing there. The caller is answered by that second publish; if it comes back too, the process is gone and
the message is logged as a drop. A publish waits in `PendingConfirms` and the link's `InFlight`
(`Waiting.CONFIRM`) until its ack (the caller is told True) or nack (False: a queue at its length limit; `_on_nack`
logs the nacks no caller raises for). The first publish to a normal channel's queue on a channel waits for that
queue's `DeclareOk` (`Waiting.DECLARE`): the publish would overtake a queued `queue_declare`. When the connection
ends, the link answers whatever is still registered (`inflight` has the table) and this side forgets its declared
queues.

While RabbitMQ blocks the connection, new publishes wait in the link's parked requests; publishes already sent fail
with `ConfirmLost` if the block lasts `connect_timeout`. When a confirm is awaited for `connect_timeout` on a
connection that is ready and not blocked, the node cannot reach the queues it routed to (`ConfirmWatch`): the link
reconnects to its next host and the publishes go out again there. At close, publishes already handed over may
finish first, for at most `connect_timeout` (`stop_when_settled`). Everything here runs on the I/O thread, except
`backlog()`, and `publish_now`, which a caller's thread runs holding the pika lock (`IOThread.publish_now`): the
I/O thread is then waiting in epoll and touches nothing here until it has the lock back.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import pika.spec
from pika.exceptions import ChannelWrongStateError
from pika.exchange_type import ExchangeType

from .._bridge.requests import Publish, Request
from .._config import Settings
from .._routing.dedup import MessageIds
from .._routing.inbox import DropReason
from .._routing.names import RecentNames
from ..errors import ConfirmLost
from . import writes
from .frames import publish_frames
from .inflight import Waiting
from .ledgers import DropLog, PendingConfirms, UnwaitedPublishes
from .link import STOPPED, STOPPING, Link, Repeating, declare_exchange
from .logs import guarded
from .reads import ConfirmReader

logger = logging.getLogger("channels_rabbitmq_threaded.publisher")  # a public name: operations.md


class PublisherHub(Protocol):
    """What the publisher side tells the I/O thread's hub."""

    def run_unparked(self, requests: list[Request]) -> None:
        """A link became ready (or unblocked): run the requests that waited for it."""

    def stopped(self) -> None:
        """A link has stopped for good."""


class PublisherSide:
    """The publisher link and its state; see the module's theory of operation."""

    def __init__(
        self,
        settings: Settings,
        ioloop: Any,
        queue_name: str,
        hub: PublisherHub,
        drops: DropLog,
        unwaited: UnwaitedPublishes,
    ) -> None:
        self.settings = settings
        self._ioloop = ioloop
        self._hub = hub
        self._drops = drops
        self._unwaited = unwaited  # the reply of every publish nobody waits for (wait_for_confirms=False)
        self.link = Link("publisher", settings, ioloop, f"channels_rabbitmq_threaded {queue_name} publisher", self)
        self._ready: Callable[[], None] = lambda: None  # the link's `done`, kept by `setup` for the last step
        self._confirms = PendingConfirms(self.link.inflight, self._on_nack)
        self.confirm_watch = ConfirmWatch(ioloop, self.link, self._confirms, settings.connect_timeout)
        self._confirm_deadline: Any = None  # timer failing publishes stuck behind a blocked connection
        self._declared = RecentNames()  # normal-channel queues declared on the current channel (lately)
        self._declaring: dict[str, list[Publish]] = {}  # queue -> publishes waiting for its DeclareOk
        self._stopping = False
        self._ids = MessageIds()
        self.link.inflight.on_end(self._reset)

    def _reset(self) -> None:
        """The connection ended: its confirms and declares are gone (their publishes are answered by `InFlight`)."""
        self._confirms.reset()
        self._declared.clear()
        self._declaring.clear()

    def bookkeeping(self) -> dict[str, int]:
        return {"declared_queues": len(self._declared), "declares_in_flight": len(self._declaring)}

    def backlog(self) -> int:
        """Publishes handed over and not yet confirmed (any thread: lengths read without a lock, approximate)."""
        return len(self._confirms) + len(self.link.parked)

    # -- LinkOwner: setup, one RPC per step --------------------------------------------------------------------------

    def setup(self, channel: Any, done: Callable[[], None]) -> None:
        """Step 1: publisher confirms."""
        self._ready = done
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=self.link.step(self._on_confirm_mode))

    @guarded
    def _on_confirm_mode(self, _frame: Any) -> None:
        """Step 2: declare the groups exchange (group_send to a group nobody joined yet must not fail); the confirms
        are read before pika parses them from now on (`reads.ConfirmReader`)."""
        self._confirms.reset()
        ConfirmReader(self.link.connection, self.confirmed).confirming(self.link.channel.channel_number)
        declare_exchange(self.link, self.settings.groups_exchange, ExchangeType.direct, self._on_exchange_declared)

    @guarded
    def _on_exchange_declared(self, _frame: Any) -> None:
        """Step 3: declare the direct exchange (a send before any process bound its address must not fail)."""
        declare_exchange(
            self.link, self.settings.direct_exchange, ExchangeType.direct, self._on_direct_exchange_declared
        )

    @guarded
    def _on_direct_exchange_declared(self, _frame: Any) -> None:
        self._ready()

    # -- LinkOwner: the rest of the life cycle ------------------------------------------------------------------------

    def on_ready(self, requests: list[Request]) -> None:
        self.confirm_watch.start()
        if self._confirm_deadline is not None:
            self._ioloop.remove_timeout(self._confirm_deadline)
            self._confirm_deadline = None
        self._hub.run_unparked(requests)

    def on_lost(self, reason: str) -> None:
        pass  # the link's InFlight answered the publishes; `_reset` forgot the rest

    def on_stopped(self) -> None:
        self.confirm_watch.stop()
        self._hub.stopped()

    def on_blocked(self) -> None:
        """RabbitMQ blocks publishing (resource alarm): publishes already sent get no confirm until it ends."""
        if self._confirms and self._confirm_deadline is None:
            self._confirm_deadline = self._ioloop.call_later(self.settings.connect_timeout, self._on_confirm_deadline)

    @guarded
    def _on_confirm_deadline(self) -> None:
        self._confirm_deadline = None
        if self.link.blocked:
            self.link.inflight.fail(
                Waiting.CONFIRM,
                ConfirmLost(
                    f"RabbitMQ has blocked publishing for {self.settings.connect_timeout:g}s "
                    f"({self.link.blocked}); the message may or may not be delivered once the alarm clears"
                ),
            )

    # -- publishing ---------------------------------------------------------------------------------------------------

    def publish(self, request: Publish) -> None:
        if request.declare is not None and request.declare[0] not in self._declared:
            # the publish would overtake a queued queue_declare: wait for DeclareOk (once per queue and channel)
            queue, arguments = request.declare
            if queue not in self._declaring:
                self._declaring[queue] = []
                self.link.channel.queue_declare(
                    queue, durable=True, arguments=arguments, callback=lambda _frame: self._on_declared(queue)
                )
            self._declaring[queue].append(request)
            self.link.inflight.add(Waiting.DECLARE, request)
            return
        if not request.message_id:
            request.message_id = self._ids.next()
        channel = self.link.channel
        if not channel.is_open:
            raise ChannelWrongStateError("the publisher's channel is not open")  # as pika's basic_publish would
        connection = channel.connection
        data = publish_frames(
            channel.channel_number,
            request.exchange,
            request.routing_key,
            request.mandatory,
            request.message_id,
            request.body,
            connection.params.frame_max,
        )
        writes.emit(connection, data)
        self._confirms.add(request)

    def publish_now(self, request: Publish) -> bool:
        """Publish from a caller's thread that holds the pika lock (`IOThread.publish_now`), with its bytes put on
        the socket at once, when nothing must come first; False, and nothing done, otherwise.

        Nothing must come first when the link is ready (open, set up, not blocked by an alarm), no request waits
        for it (parked), no publish awaits its confirm (this is for the caller that awaits one send at a time;
        a busy publisher batches better on the I/O thread), no confirm deadline of an alarm runs, the side is not
        stopping, and the publish needs no queue declare this channel has not had. Then it is the same publish
        `publish` makes: its confirm is registered before the bytes go out, and the I/O thread settles it as any
        other.
        """
        link = self.link
        if not link.ready or not link.channel_open or len(link.parked) or self._stopping:
            return False
        if self._confirms or self._confirm_deadline is not None:
            return False  # publishes await their confirm: a busy publisher batches better on the I/O thread
        if request.declare is not None and request.declare[0] not in self._declared:
            return False
        link.send_at_once(lambda: self.publish(request))
        return True

    @guarded
    def _on_declared(self, queue: str) -> None:
        self._declared.add(queue)
        for request in self._declaring.pop(queue, []):
            if self.link.inflight.settle(request):
                self.publish(request)

    def _on_confirm(self, frame: Any) -> None:
        """pika's confirm callback: a confirm pika parsed (`reads.ConfirmReader` reads them once in confirm mode)."""
        method = frame.method
        self.confirmed(method.delivery_tag, method.multiple, isinstance(method, pika.spec.Basic.Ack))

    @guarded
    def confirmed(self, tag: int, multiple: bool, acked: bool) -> None:
        """RabbitMQ confirmed the publish `tag` (and every one before it if `multiple`): `acked`, or refused."""
        self._confirms.settle(tag, multiple, acked)
        if self._stopping:
            self._stop_if_settled()

    def _on_nack(self, publish: Publish) -> None:
        """RabbitMQ refused a publish (a queue at its x-max-length): log the copies no caller hears about."""
        if publish.exchange == self.settings.groups_exchange:  # group_send never raises ChannelFull
            self._drops.log(
                DropReason.GROUP_COPY_REFUSED,
                f"group_send to {publish.routing_key!r}: a member process's queue is full (remote_capacity); "
                "its copy was dropped",
            )
        elif publish.reply is self._unwaited:  # no caller waits, so no ChannelFull
            self._drops.log(DropReason.NACKED, f"{DropReason.NACKED.text} ({publish.routing_key!r})")

    @guarded
    def _on_return(self, _channel: Any, method: Any, props: Any, body: bytes) -> None:
        if method.exchange == self.settings.direct_exchange:  # no process bound that address
            returned = self._confirms.pending(props.message_id)
            if returned is not None:  # RabbitMQ sends a return before its confirm: it is still pending
                self._publish_by_queue_name(returned)
            return
        if method.exchange:  # a group_send that no process is subscribed to: normal for an empty group
            logger.debug(
                "group_send to %r reached no process (%s); %d bytes dropped",
                method.routing_key,
                method.reply_text,
                len(body),
            )
            return
        self._drops.log(
            DropReason.UNROUTABLE,
            f"RabbitMQ has no queue {method.routing_key!r} ({method.reply_code} {method.reply_text}) for a "
            f"{len(body)}-byte message; the process that owned that channel is gone, or moving to another node",
        )

    def _publish_by_queue_name(self, returned: Publish) -> None:
        """Send again, through the default exchange, a send the direct exchange could not route: to the queue named
        by the address, as older versions of the layer do. The copy answers the caller; the returned publish's own
        confirm answers nobody."""
        copy = dataclasses.replace(returned, exchange="")
        returned.reply = None
        self.publish(copy)

    # -- the end ------------------------------------------------------------------------------------------------------

    def stop_when_settled(self) -> None:
        """close(): stop once the publishes handed over are answered, or after `connect_timeout` at the latest."""
        self._stopping = True
        self._ioloop.call_later(self.settings.connect_timeout, self._stop_now)
        self._stop_if_settled()

    def _stop_if_settled(self) -> None:
        if not (len(self.link.inflight) or self.link.parked):
            self._stop_now()

    @guarded
    def _stop_now(self) -> None:
        if self.link.state not in (STOPPING, STOPPED):
            self.link.stop()


CONFIRM_CHECKS = 4  # looks per connect_timeout at the oldest confirm awaited


class ConfirmWatch:
    """Moves publishing to another node when a confirm has been awaited for `timeout` (`connect_timeout`) on a link
    that is ready and not blocked.

    RabbitMQ confirms a publish once every queue it was routed to has taken it. A node that cannot reach those
    queues and still serves its clients (the minority side of a partition on 4.x, whose connections stay open for as
    long as it lasts) leaves publishes unconfirmed, and their callers waiting, that long. So the link reconnects,
    without the close handshake, to its next host (`Link.reconnect`); the unconfirmed publishes go out again there
    with the same message ids, so a receiver drops a second copy. A process that also consumes has the reach probe
    too (`reach.py`); one that only sends has only this. Owned by the I/O thread.
    """

    def __init__(self, ioloop: Any, link: Link, confirms: PendingConfirms, timeout: float) -> None:
        self._link = link
        self._confirms = confirms
        self._timeout = timeout
        self._oldest: tuple[int, int, float] | None = None  # (the link's connects, delivery tag, first seen at)
        self._timer = Repeating(ioloop, timeout / CONFIRM_CHECKS, self._look)
        self.stalls = 0  # reconnects for a confirm awaited too long (a figure for stats())

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _look(self) -> None:
        tag = self._confirms.oldest() if self._link.ready else None
        now = time.monotonic()
        if tag is None:
            self._oldest = None
        elif self._oldest is None or self._oldest[:2] != (self._link.connects, tag):
            self._oldest = (self._link.connects, tag, now)
        elif now - self._oldest[2] >= self._timeout:
            self._oldest = None
            self.stalls += 1
            reason = f"RabbitMQ at {self._link.url} confirmed nothing for {self._timeout:g}s"
            logger.warning(
                "%s: publishing again through the next host",
                reason,
                extra={"event": "confirms_stalled", "url": self._link.url},
            )
            self._link.reconnect(reason, abort=True)
