"""What `layer.stats()` returns: counters since the layer started and gauges of the moment, read cheaply.

Theory of operation
-------------------
Nothing here is on the hot path beyond an integer increment or two. Each figure is kept by the one object that
owns it, as a plain int that only its owner's thread writes (or, where a lock is named, any thread holding it):

| figure | kept by | written on |
|---|---|---|
| send and group_send calls: outcomes, durations | `CallStats` (the layer) | callers' threads, locked |
| deliveries received, copies dropped | `deliveries.Deliveries` | the I/O thread |
| messages handed to `receive()`, put back | `SharedInbox` | the I/O thread, receivers (locked) |
| drops, by reason | `ledgers.DropLog` | the I/O thread |
| connects, losses, state, node, last error | each `link.Link` | the I/O thread |
| buffered, held, waiting receivers, channels, groups | `SharedInbox` | the I/O thread, receivers (locked) |
| publishes in flight | `publisher.PublisherSide` | the I/O thread |
| the process's queue: its name, losses, moves, messages lost with it | `process_queue.ProcessQueue` | the I/O thread |
| `bookkeeping`: entries of each structure kept by name, message or delivery | each owner (`bookkeeping()`) | its own |

`Figures` holds references to those owners and reads them when `stats()` is called, from the caller's thread,
without a lock: an int read is atomic, so each figure is one its owner wrote, and the snapshot as a whole is
approximate (not taken at one instant), which is all a gauge promises. Call counts are taken under `CallStats`'s
lock, so they are exact and consistent with each other. Durations go into fixed buckets (Prometheus' default
ones), so the exporters can show a histogram without keeping samples.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

CallObserver = Callable[[str, str, float], None]  # (call, outcome, seconds), on the caller's thread
OBSERVERS: list[CallObserver] = []  # told of every timed call (otel.py adds one); empty: nothing to do

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)  # seconds, then +Inf
CALLS = ("send", "group_send")
OUTCOMES = ("confirmed", "refused", "failed")  # refused: a full queue (ChannelFull, or a group copy dropped)


@dataclass(frozen=True)
class Durations:
    """A histogram: `counts[i]` calls took at most `BUCKETS[i]` seconds (cumulative; the last is every call)."""

    counts: tuple[int, ...]
    sum: float

    @property
    def count(self) -> int:
        return self.counts[-1]


def outcome_of(answer: Any) -> str:
    """One of OUTCOMES for a publish's answer: an exception (failed), False (refused by a full queue), else
    confirmed."""
    if isinstance(answer, BaseException):
        return "failed"
    return "refused" if answer is False else "confirmed"


class Timing:
    """One call timed by `CallStats.timing`, from `with` to its end (a class: cheaper than a generator per call)."""

    __slots__ = ("_answers", "_call", "_started", "_stats")

    def __init__(self, stats: CallStats, call: str) -> None:
        self._stats = stats
        self._call = call
        self._answers: list[Any] = []
        self._started = 0.0

    def __enter__(self) -> list[Any]:
        self._started = time.perf_counter()
        return self._answers

    def __exit__(self, *_exc: object) -> None:
        outcome = outcome_of(self._answers[0]) if self._answers else "failed"
        self._stats._record(self._call, outcome, time.perf_counter() - self._started)


class CallStats:
    """Counts and times the send and group_send calls that reached the I/O thread. Any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outcomes = {(call, outcome): 0 for call in CALLS for outcome in OUTCOMES}
        self._buckets = {call: [0] * (len(BUCKETS) + 1) for call in CALLS}
        self._sums = dict.fromkeys(CALLS, 0.0)

    def timing(self, call: str) -> Timing:
        """Time one call (`with stats.timing(call) as answers:`); the caller appends the I/O thread's answer (True:
        confirmed, False: refused) to the list it gets. No answer (the call raised) counts as failed."""
        return Timing(self, call)

    def record_batch(self, call: str, answers: list[Any], seconds: float) -> None:
        """A bulk call's items: each counted by its outcome, each with the batch's duration."""
        for answer in answers:
            self._record(call, outcome_of(answer), seconds)

    def _record(self, call: str, outcome: str, seconds: float) -> None:
        with self._lock:
            self._outcomes[(call, outcome)] += 1
            self._buckets[call][bisect.bisect_left(BUCKETS, seconds)] += 1
            self._sums[call] += seconds
        for observe in OBSERVERS:
            observe(call, outcome, seconds)

    def read(self) -> tuple[dict[str, int], dict[str, Durations]]:
        with self._lock:
            outcomes = {f"{call}_{outcome}": count for (call, outcome), count in self._outcomes.items()}
            durations = {}
            for call in CALLS:
                cumulative, total = [], 0
                for count in self._buckets[call]:
                    total += count
                    cumulative.append(total)
                durations[call] = Durations(tuple(cumulative), self._sums[call])
        return outcomes, durations


@dataclass(frozen=True)
class LinkStats:
    state: str  # a `link.LinkState` name: IDLE, CONNECTING, READY, WAITING, STOPPING, STOPPED
    url: str  # the node it is connected (or connecting) to, password redacted
    connects: int  # connections made ready since start
    losses: int  # connections lost since start (each followed by a reconnect)
    blocked: str | None  # RabbitMQ's reason while it blocks this connection (resource alarm)
    last_error: str  # "" while no attempt has failed and no connection has ended
    last_error_at: float | None  # time.time() of the last error, None if none yet


@dataclass(frozen=True)
class LayerStats:
    """One snapshot of a layer; see `docs/operations.md` ("Metrics") for what each figure means."""

    calls: dict[str, int]  # send_confirmed, send_refused, send_failed, group_send_confirmed, ...
    durations: dict[str, Durations]  # "send", "group_send"
    deliveries_received: int
    delivered_to_receivers: int
    put_backs: int
    copies_dropped: int
    drops: dict[str, int]  # by `inbox.DropReason` value
    buffered: int
    held: int
    waiting_receivers: int
    local_channels: int
    local_groups: int
    publishes_in_flight: int
    consumption_paused: bool
    queue: str  # the process's queue now (its address, or `<address>.<n>` after n moves)
    queue_losses: int  # times the queue was found deleted, or on a node that is down
    queue_moves: int  # times the process moved to a new queue because its queue's node was down
    lost_with_queues: int  # messages that sat in lost queues (their last count) or were delivered and unacknowledged
    reach_lost: int  # reach probes that found the process cut off from the nodes that route to it (reach.py)
    confirms_stalled: int  # publisher reconnects because a confirm was awaited for connect_timeout (ConfirmWatch)
    bookkeeping: dict[str, int]  # entries of each structure kept by name, message or delivery (each one bounded)
    consumer: LinkStats
    publisher: LinkStats
    started: bool = True  # False: the layer has not been used yet (no thread, no connection)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for JSON)."""
        return asdict(self)


def idle(calls: CallStats) -> LayerStats:
    """The stats of a layer not used yet (its I/O thread has not started)."""
    never = LinkStats("IDLE", "", 0, 0, blocked=None, last_error="not connected yet", last_error_at=None)
    outcomes, durations = calls.read()
    zero = dict.fromkeys(GAUGES_AND_COUNTERS, 0)
    return LayerStats(
        calls=outcomes, durations=durations, drops={}, consumption_paused=False, queue="", bookkeeping={},
        consumer=never, publisher=never, started=False, **zero,
    )  # fmt: skip


GAUGES_AND_COUNTERS = (
    "deliveries_received", "delivered_to_receivers", "put_backs", "copies_dropped", "buffered", "held",
    "waiting_receivers", "local_channels", "local_groups", "publishes_in_flight", "queue_losses", "queue_moves",
    "lost_with_queues", "reach_lost", "confirms_stalled",
)  # fmt: skip
