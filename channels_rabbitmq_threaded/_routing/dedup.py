"""Message ids, and the window that keeps a process from receiving one message twice.

Theory of operation
-------------------
With a queue that outlives its connection (`queue_lease`), RabbitMQ delivers again whatever it had sent and not
yet seen acknowledged when a connection ended: deliveries still unacknowledged, and deliveries whose ack was lost
with the connection although the layer had already routed them. A publisher that lost a confirm to a cut publishes
again (the copy may follow an original that arrived). So every publish carries a `message_id`, unique in the
deployment (`MessageIds`: a random per-process prefix and a counter), and each receiving process keeps the ids of
the messages it routed lately (`RecentIds`): a delivery whose id is in the window is a copy, acknowledged and
dropped, never handed to `receive()` twice.

The window is bounded by count (`WINDOW` ids, oldest out first): it covers the copies of a cut (at most
`prefetch_count` unacknowledged deliveries, plus acks in flight) and a publisher's re-publishes within
`connect_timeout`, at up to `WINDOW / connect_timeout` messages per second into the process (2,000/s at the
defaults). A delivery the process did not keep must not count as seen: `DeliveryWindow` forgets the ids of the
deliveries still unacknowledged when their connection ends (held back by `local_capacity`: RabbitMQ delivers them
again) and of those requeued (a normal channel's message nobody here waits for any more).

Pure state, no I/O: owned by the I/O thread.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections import deque

logger = logging.getLogger("channels_rabbitmq_threaded.dedup")  # a public name: operations.md

WINDOW = 20_000


class MessageIds:
    """Ids unique in a deployment: 12 random hex digits for this process, then a counter. Not thread-safe."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(6) + "."
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


class RecentIds:
    """The ids of the last `size` messages routed by this process."""

    def __init__(self, size: int = WINDOW) -> None:
        self._size = size
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self.copies = 0  # deliveries recognised as copies, since start

    def first_time(self, message_id: str) -> bool:
        """Remember `message_id`; False (and counted) if it is already in the window."""
        if message_id in self._seen:
            self.copies += 1
            return False
        self._seen.add(message_id)
        self._order.append(message_id)
        if len(self._order) > self._size:
            self._seen.discard(self._order.popleft())
        return True

    def __len__(self) -> int:
        return len(self._order)

    def forget(self, message_id: str) -> None:
        """The delivery was not kept (requeued, or held unacknowledged when its connection ended): its next delivery
        is not a copy. (Its old place in the order stays: a window may hold a few less ids than `size`.)"""
        self._seen.discard(message_id)


class DeliveryWindow:
    """`RecentIds` for one consumer connection after another; see the module's theory of operation."""

    def __init__(self, size: int = WINDOW) -> None:
        self.recent = RecentIds(size)
        self._unacked: dict[int, str] = {}  # delivery tag -> message id, routed and not yet acknowledged

    def is_copy(self, message_id: str | None) -> bool:
        """True if a message with this id was received lately (counted in `recent.copies`, logged); else remember
        it."""
        if not message_id or self.recent.first_time(message_id):
            return False
        copies = self.recent.copies
        text = "Dropped a copy of message %s, received already (%d copies so far)"
        logger.info(text, message_id, copies, extra={"event": "copy_dropped", "count": copies})
        return True

    def routed(self, tag: int, message_id: str | None) -> None:
        if message_id:
            self._unacked[tag] = message_id

    def acked(self, tags: list[int]) -> None:
        for tag in tags:
            self._unacked.pop(tag, None)

    def not_kept(self, message_id: str | None) -> None:
        """The delivery went back to its queue: its next delivery is no copy."""
        if message_id:
            self.recent.forget(message_id)

    def bookkeeping(self) -> dict[str, int]:
        return {"message_ids": len(self.recent), "unacknowledged_ids": len(self._unacked)}

    def connection_ended(self) -> None:
        for message_id in self._unacked.values():
            self.recent.forget(message_id)
        self._unacked.clear()
