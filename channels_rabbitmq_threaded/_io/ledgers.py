"""The I/O thread's bookkeeping: publishes awaiting their confirm, acks to send, messages dropped (logged, summed).

Theory of operation: plain objects owned by the I/O thread (`hub.Hub` and its two sides make them), kept
apart so that those modules hold only the connection life cycle and the request handlers. `PauseWatch` decides when
a pause of consumption is worth a log line; `PendingAcks` which acks go out, once per pass. Nothing here touches pika
except through `IOLoop` timers (the `DropLog` window, the `PauseWatch` check, the `PendingAcks` pass) and the
callables it is given; nothing here blocks. The one exception to "I/O thread only" is `UnwaitedPublishes`,
which a caller's thread may also call when the I/O thread has ended (it then logs directly).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from pika.adapters.select_connection import IOLoop

from .._bridge.requests import Publish
from .._routing.inbox import DropReason
from .inflight import InFlight, Waiting
from .logs import Throttle, guarded

logger = logging.getLogger("channels_rabbitmq_threaded.ledgers")  # a public name: operations.md

DROP_LOG_WINDOW = 5.0  # seconds over which repeated drops of one reason are summed into one log line
PAUSE_LOG_AFTER = 2.0  # a pause of consumption is logged only once it has lasted this long
PAUSE_LOG_WINDOW = 30.0  # and then at most once per this many seconds, with the count of pauses since


class DropLog:
    """Logs dropped messages at WARNING: per reason, the first at once, the rest of a burst summed per window.

    Every record carries ``extra={"event": "message_dropped" | "messages_dropped", "reason": ..., "count": n}`` for
    log pipelines that read fields rather than text. The rule is `logs.Throttle`'s; the summary of the drops passed
    over goes out when the window's timer fires.
    """

    def __init__(self, ioloop: IOLoop) -> None:
        self._ioloop = ioloop
        self._throttle: Throttle[DropReason] = Throttle(DROP_LOG_WINDOW)
        self._timer: Any = None
        self.totals: dict[str, int] = {}  # drops since start, by reason (a figure for stats())

    def log(self, reason: DropReason, detail: str) -> None:
        self.totals[reason.value] = self.totals.get(reason.value, 0) + 1
        if self._timer is None:
            self._timer = self._ioloop.call_later(DROP_LOG_WINDOW, self._close_window)
        if self._throttle.due(reason, time.monotonic()) is None:
            self._throttle.count(reason)
            return
        logger.warning(
            "Dropped a message: %s", detail, extra={"event": "message_dropped", "reason": reason.value, "count": 1}
        )

    @guarded
    def _close_window(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Log the drops not logged yet (the window's end, or the thread's)."""
        for reason, count in self._throttle.take_counts().items():
            logger.warning(
                "Dropped %d more message(s) in the last %gs (%s): %s",
                count,
                DROP_LOG_WINDOW,
                reason.value,
                reason.text,
                extra={"event": "messages_dropped", "reason": reason.value, "count": count},
            )


class PauseWatch:
    """Logs a pause of consumption (capacity reached, nobody receiving) only when it lasts, and not too often.

    A receiver that is merely slower than its senders pauses and resumes consumption many times a second; that is
    back-pressure working, not news. `paused()` is called at each pause; `PAUSE_LOG_AFTER` seconds after the first
    one, if consumption is still paused (`is_paused`) and has been since the latest pause began, one WARNING says
    for how long and how many pauses there were, at most once per `PAUSE_LOG_WINDOW` (`logs.Throttle`'s rule).
    Owned by the I/O thread.
    """

    def __init__(self, ioloop: IOLoop, is_paused: Callable[[], bool], describe: Callable[[], str]) -> None:
        self._ioloop = ioloop
        self._is_paused = is_paused
        self._describe = describe  # what the WARNING says about the state (capacity, biggest backlogs)
        self._throttle: Throttle[str] = Throttle(PAUSE_LOG_WINDOW)
        self._since = 0.0  # when the latest pause began
        self._timer: Any = None

    def paused(self) -> None:
        self._throttle.count("pause")
        self._since = time.monotonic()
        if self._timer is None:
            self._timer = self._ioloop.call_later(PAUSE_LOG_AFTER, self._check)

    @guarded
    def _check(self) -> None:
        self._timer = None
        if not self._is_paused():
            return  # resumed: a short pause is back-pressure at work
        now = time.monotonic()
        lasted = now - self._since
        if lasted < PAUSE_LOG_AFTER:  # it resumed and paused again since: watch the latest pause
            self._timer = self._ioloop.call_later(PAUSE_LOG_AFTER - lasted, self._check)
            return
        due = self._throttle.due("pause", now)
        if due is not None:
            logger.warning(
                "Consumption paused for %.1fs (%d pause(s) since the last report): %s",
                lasted,
                due.passed_over,
                self._describe(),
                extra={"event": "consumption_paused", "seconds": round(lasted, 1), "count": due.passed_over},
            )


class UnwaitedPublishes:
    """The one reply of every publish that no caller waits for (`wait_for_confirms=False`): logs what is lost.

    A failure (connection lost, blocked too long, layer closed) is a dropped message, and is logged through the
    `DropLog` like every other drop; a nack is logged by `PendingConfirms`' nack hook (`PublisherSide._on_nack`). Called
    on the I/O thread, except when that thread has ended and `submit` fails requests on the caller's thread: then
    the line is logged directly.
    """

    __slots__ = ("_drops", "_io_thread")

    def __init__(self, drops: DropLog, io_thread: threading.Thread) -> None:
        self._drops = drops
        self._io_thread = io_thread

    def resolve(self, acked: bool = True) -> None:
        pass  # a nack was logged where it was seen (`PendingConfirms`' nack hook)

    def fail(self, exc: BaseException) -> None:
        detail = f"{DropReason.FAILED.text}: {exc}"
        if threading.current_thread() is self._io_thread:
            self._drops.log(DropReason.FAILED, detail)
        else:
            logger.warning(
                "Dropped a message: %s",
                detail,
                extra={"event": "message_dropped", "reason": DropReason.FAILED.value, "count": 1},
            )


class PendingConfirms:
    """Publishes awaiting RabbitMQ's confirm, by delivery tag (both sides count from 1 on each channel).

    Each publish is also registered in the publisher link's `InFlight` (`Waiting.CONFIRM`), which fails it if the
    connection ends first; a confirm answers only a publish still registered there. Each nacked publish is shown to
    `on_nack` before its caller is answered, so that nacks nobody raises for (a group member's full queue; a send
    that did not wait) are logged in one place.
    """

    def __init__(self, inflight: InFlight, on_nack: Callable[[Publish], None]) -> None:
        self._inflight = inflight
        self._on_nack = on_nack
        self._by_tag: dict[int, Publish] = {}
        self._by_id: dict[str, Publish] = {}  # the same publishes by message id, for returns
        self._order: deque[int] = deque()  # tags in publish order; may hold tags already answered singly
        self.next_tag = 1

    def reset(self) -> None:
        """A new channel: delivery tags start again at 1 (what was pending has been answered by `InFlight`)."""
        self._by_tag.clear()
        self._by_id.clear()
        self._order.clear()
        self.next_tag = 1

    def add(self, publish: Publish) -> None:
        self._inflight.add(Waiting.CONFIRM, publish)
        self._by_tag[self.next_tag] = publish
        self._by_id[publish.message_id] = publish
        self._order.append(self.next_tag)
        self.next_tag += 1

    def settle(self, tag: int, multiple: bool, acked: bool) -> None:
        if multiple:  # every outstanding tag up to `tag`
            while self._order and self._order[0] <= tag:
                publish = self._by_tag.pop(self._order.popleft(), None)
                if publish is not None:
                    self._answer(publish, acked)
            return
        publish = self._by_tag.pop(tag, None)
        if publish is not None:
            self._answer(publish, acked)
        while self._order and self._order[0] not in self._by_tag:
            self._order.popleft()

    def oldest(self) -> int | None:
        """The delivery tag of the oldest publish still awaiting its confirm, if any."""
        while self._order and self._order[0] not in self._by_tag:
            self._order.popleft()
        return self._order[0] if self._order else None

    def pending(self, message_id: str | None) -> Publish | None:
        """The publish awaiting its confirm with this message id, if any."""
        return self._by_id.get(message_id) if message_id else None

    def _answer(self, publish: Publish, acked: bool) -> None:
        if self._by_id.get(publish.message_id) is publish:
            del self._by_id[publish.message_id]
        if not self._inflight.settle(publish):
            return  # answered already: its connection ended, or it waited too long behind an alarm
        if not acked:
            self._on_nack(publish)
        publish.resolve(acked)

    def __len__(self) -> int:  # safe to read from any thread (an approximate figure there)
        return len(self._by_tag)


class PendingAcks:
    """The consumer channel's deliveries not yet acknowledged, and the acks decided during one pass of the I/O loop.

    `basic.ack(tag, multiple=True)` acknowledges every unacknowledged delivery up to `tag` on its channel. So acks
    are not sent as they are decided (`ack`) but once per pass, by a zero-delay timer (`_send`): the longest run of
    the oldest deliveries that are all settled costs one multiple ack, named after the last acknowledged one; a
    delivery settled behind one that is not (held back by `local_capacity`, which stays unacknowledged until it is
    routed) is acknowledged singly. A delivery requeued with `basic.nack` (`requeued`) is settled too, but never
    named by an ack. Every ack of the consumer side goes through here, so no tag is acknowledged twice (RabbitMQ
    would close the channel: "unknown delivery tag"). Tags count from 1 on each channel; `reset` forgets the ended
    channel's, so a timer that fires after it sends nothing. Owned by the I/O thread.
    """

    def __init__(self, ioloop: IOLoop, send: Callable[[int, bool], None]) -> None:
        self._ioloop = ioloop
        self._send_ack = send  # (tag, multiple): one basic.ack on the consumer channel, if it is open
        self._unsettled: deque[int] = deque()  # tags delivered and not acknowledged yet, oldest first
        self._acked: set[int] = set()  # decided this pass, not sent yet
        self._requeued: set[int] = set()  # nacked (requeued): settled, never named in an ack

    def delivered(self, tag: int) -> None:
        self._unsettled.append(tag)

    def ack(self, tag: int) -> None:
        """Acknowledge `tag` at the end of this pass."""
        if not self._acked:
            self._ioloop.call_later(0, self._send)  # zero delay: after the pass's other callbacks
        self._acked.add(tag)

    def requeued(self, tag: int) -> None:
        self._requeued.add(tag)

    def take(self) -> tuple[int | None, list[int]]:
        """The acks to send now: the tag of one multiple ack (or None), and the tags to acknowledge singly."""
        unsettled, acked, requeued = self._unsettled, self._acked, self._requeued
        last: int | None = None
        while unsettled and (unsettled[0] in acked or unsettled[0] in requeued):
            tag = unsettled.popleft()
            if tag in acked:
                acked.discard(tag)
                last = tag
            else:
                requeued.discard(tag)
        singly = sorted(acked)
        if singly:  # behind a delivery still unsettled: acknowledged now, on their own
            self._unsettled = deque(tag for tag in unsettled if tag not in acked)
            acked.clear()
        return last, singly

    @guarded
    def _send(self) -> None:
        last, singly = self.take()
        if last is not None:
            self._send_ack(last, True)
        for tag in singly:
            self._send_ack(tag, False)

    def reset(self) -> None:
        self._unsettled.clear()
        self._acked.clear()
        self._requeued.clear()

    def __len__(self) -> int:
        """Deliveries not acknowledged yet (held back, or acknowledged at the end of this pass)."""
        return len(self._unsettled)
