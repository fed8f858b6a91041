"""The I/O thread's bookkeeping: publishes awaiting their confirm, and messages dropped (logged, summed).

Theory of operation: plain objects owned by the I/O thread (`io_thread.IOThread` makes one of each), kept apart
from it so that the thread's module holds only the connection life cycle and the request handlers. Nothing here
touches pika except through the `IOLoop` timer that closes a `DropLog` window; nothing here blocks. The one
exception to "I/O thread only" is `UnwaitedPublishes`, which a caller's thread may also call when the I/O thread
has ended (it then logs directly).
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from pika.adapters.select_connection import IOLoop

from .link import guarded
from .requests import Publish

logger = logging.getLogger(__name__)

DROP_LOG_WINDOW = 5.0  # seconds over which repeated drops are summed into one log line


class DropLog:
    """Logs dropped messages at WARNING: the first at once, the rest of a burst summed per window."""

    def __init__(self, ioloop: IOLoop) -> None:
        self._ioloop = ioloop
        self._counts: dict[str, int] = {}  # reason -> drops not yet logged
        self._window_open = False

    def log(self, reason: str, detail: str) -> None:
        if not self._window_open:
            self._window_open = True
            self._ioloop.call_later(DROP_LOG_WINDOW, self._close_window)
            logger.warning("Dropped a message: %s", detail)
        else:
            self._counts[reason] = self._counts.get(reason, 0) + 1

    @guarded
    def _close_window(self) -> None:
        self.flush()

    def flush(self) -> None:
        """Log the drops not logged yet (the window's end, or the thread's)."""
        counts, self._counts = self._counts, {}
        self._window_open = False
        for reason, count in counts.items():
            logger.warning("Dropped %d more message(s) in the last %gs: %s", count, DROP_LOG_WINDOW, reason)


class UnwaitedPublishes:
    """The one reply of every publish that no caller waits for (`wait_for_confirms=False`): logs what is lost.

    A nack (a full queue) or a failure (connection lost, blocked too long, layer closed) is a dropped message, and
    is logged through the `DropLog` like every other drop. Called on the I/O thread, except when that thread has
    ended and `submit` fails requests on the caller's thread: then the line is logged directly.
    """

    __slots__ = ("_drops", "_io_thread")

    def __init__(self, drops: DropLog, io_thread: threading.Thread) -> None:
        self._drops = drops
        self._io_thread = io_thread

    def resolve(self, acked: bool = True) -> None:
        if not acked:
            self._drop("nacked", "RabbitMQ refused a message sent without waiting: the receiving queue was full")

    def fail(self, exc: BaseException) -> None:
        self._drop("failed", f"a message sent without waiting was not confirmed: {exc}")

    def _drop(self, reason: str, detail: str) -> None:
        if threading.current_thread() is self._io_thread:
            self._drops.log(reason, detail)
        else:
            logger.warning("Dropped a message: %s", detail)


class PendingConfirms:
    """Publishes awaiting RabbitMQ's confirm, by delivery tag (both sides count from 1 on each channel)."""

    def __init__(self) -> None:
        self._by_tag: dict[int, Publish] = {}
        self._order: deque[int] = deque()  # tags in publish order; may hold tags already answered singly
        self.next_tag = 1

    def add(self, publish: Publish) -> None:
        self._by_tag[self.next_tag] = publish
        self._order.append(self.next_tag)
        self.next_tag += 1

    def settle(self, tag: int, multiple: bool, acked: bool) -> None:
        if multiple:  # every outstanding tag up to `tag`
            while self._order and self._order[0] <= tag:
                publish = self._by_tag.pop(self._order.popleft(), None)
                if publish is not None:
                    publish.resolve(acked)
            return
        publish = self._by_tag.pop(tag, None)
        if publish is not None:
            publish.resolve(acked)
        while self._order and self._order[0] not in self._by_tag:
            self._order.popleft()

    def fail_all(self, exc: BaseException) -> None:
        pending, self._by_tag = self._by_tag, {}
        self._order.clear()
        for publish in pending.values():
            publish.fail(exc)

    def __len__(self) -> int:  # safe to read from any thread (an approximate figure there)
        return len(self._by_tag)
