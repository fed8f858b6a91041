"""Log lines of the I/O thread that must neither end it nor flood: `guarded` and the one throttle rule.

Theory of operation
-------------------
`guarded` wraps every callback handed to pika: an exception is logged and the I/O thread carries on, since an
exception that reached pika would end its loop or the connection.

An event that can repeat many times a second (a connection attempt that fails, a dropped message, a pause of
consumption) is counted per key (its cause, its drop reason) by a `Throttle`: a line about a key is due at most once
per `window` seconds, and says how many were passed over since the last one. One rule, three users, each choosing
when to ask: a failed connection attempt asks at once (`RepeatedWarning`, for `link.Link`), a drop asks at once and
its window's summary comes from `Throttle.take_counts` (`ledgers.DropLog`), a pause asks once it has lasted
(`ledgers.PauseWatch`). Keys are few (causes, reasons), so a throttle stays small. No timer and no I/O here but the
logging: the users keep their timers. Owned by the I/O thread.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

# The logger of connections, whose name the operations guide gives: guarded callbacks report there too.
link_logger = logging.getLogger("channels_rabbitmq_threaded.link")

F = TypeVar("F", bound=Callable[..., Any])
K = TypeVar("K")

REPEAT_LOG_WINDOW = 30.0  # a connection failure that repeats is logged at WARNING at most this often


def guarded(method: F) -> F:
    """Wrap a callback given to pika: log any exception instead of letting it end the loop or the connection."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any) -> Any:
        try:
            return method(self, *args)
        except Exception:
            link_logger.exception("Error in %s (the I/O thread carries on)", method.__name__)
            return None

    return wrapper  # type: ignore[return-value]


class Due(NamedTuple):
    """A line is due: it reports `passed_over` events since the last line about its key, `seconds` ago (None: the
    first line about it)."""

    passed_over: int
    seconds: float | None


class Throttle(Generic[K]):
    """At most one line per `window` seconds for each key, each with the count of the events passed over since."""

    def __init__(self, window: float) -> None:
        self._window = window
        self._last: dict[K, float] = {}  # key -> when its last line was logged (time.monotonic())
        self._passed_over: dict[K, int] = {}  # key -> events counted since its last line

    def count(self, key: K) -> None:
        """One more event of `key` that no line reports yet."""
        self._passed_over[key] = self._passed_over.get(key, 0) + 1

    def due(self, key: K, now: float) -> Due | None:
        """A line about `key` now, if none was logged in the last `window` seconds (the count is then reset);
        else None (the caller counts the event, or not)."""
        last = self._last.get(key)
        if last is not None and now - last < self._window:
            return None
        self._last[key] = now
        return Due(self._passed_over.pop(key, 0), None if last is None else now - last)

    def take_counts(self) -> dict[K, int]:
        """The events passed over, per key, for a summary line (a window's end, the thread's); reset to none."""
        counts, self._passed_over = self._passed_over, {}
        return counts

    def forget(self) -> None:
        """The trouble is over: the next event of any key is news."""
        self._last.clear()
        self._passed_over.clear()


class RepeatedWarning:
    """A WARNING that may repeat, throttled per kind (`REPEAT_LOG_WINDOW`); those passed over go to DEBUG."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._throttle: Throttle[str] = Throttle(REPEAT_LOG_WINDOW)

    def log(self, kind: str, message: str, *args: Any, extra: dict[str, Any]) -> None:
        due = self._throttle.due(kind, time.monotonic())
        if due is None:
            self._throttle.count(kind)
            self._logger.debug(message, *args, extra=extra)
            return
        if due.passed_over and due.seconds is not None:
            message += f" ({due.passed_over} more like it in the last {due.seconds:.0f}s)"
        self._logger.warning(message, *args, extra={**extra, "count": due.passed_over + 1})

    def reset(self) -> None:
        """The trouble is over (a connection is ready): the next failure is news, whatever its kind."""
        self._throttle.forget()
