"""The routing state that the I/O thread shares with receivers: a `inbox.Inbox` behind one lock.

Theory of operation
-------------------
A receive() whose channel already holds a message takes it on its own thread and loop: no request to the I/O
thread, no wake-up, no future (`take_ready`). A receive() that must wait registers its `handoffs.Waiter` the same
way (`wait_ready`), and the I/O thread hands it the next message as before. Only these two cases run on a
receiver's thread, and only when they need nothing but the channel's own buffer (`routing.Inbox.take_ready` and
`wait_ready` say when); every other case (an expired head, held deliveries to let in, a normal channel to
consume, a wait that was cancelled) is a request to the I/O thread, as it always was.

Who touches what
----------------
| state                                   | I/O thread              | a receiver's thread (any loop)          |
|-----------------------------------------|-------------------------|-----------------------------------------|
| buffers, waiters, held, counts, expiry  | every `Inbox` call      | `take_ready`, `wait_ready`              |
| group membership (`Inbox.membership`)   | all of it               | never                                   |
| `closed`                                | set by `close()`        | read by `wait_ready`                    |

`take_ready` first looks without the lock whether the channel holds anything at all, and returns None at once if
not: a message that arrives just after is found by `wait_ready`, which looks again under the lock before it lets
the receiver wait. Every other call that reads or changes what both touch holds `lock`, one `threading.Lock` (not
re-entrant: no `Inbox` method calls another public one). A receiver holds it for a dictionary look-up and a
`popleft`. An uncontended acquire and release costs a small fraction of the two thread crossings and the loop
wake-up that a `Take` and its answer would cost (docs/performance.md has the figure). Membership needs no lock:
receivers never touch it.

Once the I/O thread has closed the inbox (the layer is closing), `wait_ready` refuses: a waiter registered after
the I/O thread emptied the inbox would wait for ever, while a `Take` request is answered by the thread or by its
funnel whatever state they are in. Figures for `stats()` (`in_memory`, `held`, `waiting`, `channel_count`) are
read without the lock: a snapshot may be a pass old.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from .._routing.envelope import Recipient
from .._routing.inbox import Effects, Inbox, Message

W = TypeVar("W")
T = TypeVar("T")


class SharedInbox(Inbox[W, T]):
    """An `Inbox` whose every buffer-touching call holds `lock`; see the module's theory of operation."""

    def __init__(
        self, local_capacity: int, expiry: float, group_expiry: float, channel_capacity: Callable[[str], int]
    ) -> None:
        super().__init__(local_capacity, expiry, group_expiry, channel_capacity)
        self.lock = threading.Lock()
        self.closed = False

    # -- a receiver's thread ----------------------------------------------------------------------------------------

    def take_ready(self, channel: str, now: float) -> Message | None:
        buffer = self._buffers.get(channel)  # unlocked: one dict look-up and one length, each atomic under the GIL
        if buffer is None or not buffer.messages:
            return None  # nothing here a moment ago: the receiver goes on to `wait_ready`, which looks again, locked
        with self.lock:
            return super().take_ready(channel, now)

    def wait_ready(self, channel: str, waiter: W) -> bool:
        with self.lock:
            return not self.closed and super().wait_ready(channel, waiter)

    # -- the I/O thread ---------------------------------------------------------------------------------------------

    def offer(self, token: T, recipient: Recipient, message: Message, now: float) -> Effects[W, T]:
        with self.lock:
            return super().offer(token, recipient, message, now)

    def discard_held(self) -> int:
        with self.lock:
            return super().discard_held()

    def take(self, channel: str, waiter: W, now: float) -> Effects[W, T]:
        with self.lock:
            return super().take(channel, waiter, now)

    def forget(self, channel: str, waiter: W) -> bool:
        with self.lock:
            return super().forget(channel, waiter)

    def put_back(self, channel: str, message: Message, expires_at: float, now: float) -> Effects[W, T]:
        with self.lock:
            return super().put_back(channel, message, expires_at, now)

    def expire(self, now: float) -> Effects[W, T]:
        with self.lock:
            return super().expire(now)

    def next_expiry(self) -> float | None:
        with self.lock:
            return super().next_expiry()

    def waiting_channels(self) -> list[str]:
        with self.lock:
            return super().waiting_channels()

    def waiting_on(self, channel: str) -> int:
        with self.lock:
            return super().waiting_on(channel)

    def biggest_backlogs(self, count: int = 3) -> list[tuple[str, int]]:
        with self.lock:
            return super().biggest_backlogs(count)

    def flush(self) -> tuple[list[T], list[str], int]:
        with self.lock:
            return super().flush()

    def close(self) -> tuple[list[W], int]:
        with self.lock:
            self.closed = True
            return super().close()
