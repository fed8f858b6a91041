"""What waits on one connection: the requests answered by an RPC's reply, emptied at once when the connection ends.

Theory of operation
-------------------
The idea of aiormq's `FutureStore`: every request that waits for an answer of the broker on a link's current
connection (a `BindOk`, a `PurgeOk`, a `DeclareOk`, a publisher confirm) is registered in that link's `InFlight`
when its RPC goes out, and taken out again (`settle`) when the answer comes. Only a request that `settle` returns
True for may be answered by the RPC's callback. When the connection ends, the link calls `end` once: every request
still registered is failed with the exception the table below gives, and the reset hooks of the owner's
per-connection state run (the purge count, the binds in flight, the declared queues...). pika drops the callbacks
of RPCs pending on a channel that closes without calling them, so without this registry such a caller would wait
for ever.

What a caller is told, by what it waited for and how the connection ended:

| waiting for                      | connection lost (it reconnects)                         | layer closed |
|----------------------------------|---------------------------------------------------------|--------------|
| `BIND` (`group_add`)             | answered again on the next connection, once re-bound (`resend`) | LayerClosed |
| `PURGE` (`flush`)                | BrokerUnavailable: flush() did not finish                | LayerClosed  |
| `DECLARE` (normal `send`)        | sent again on the next connection (`resend`)             | LayerClosed  |
| `CONFIRM` (`send`, `group_send`) | published again, same message id, on the next connection (`resend`) | LayerClosed |

A publish or a `group_add` is sent again rather than failed because a cut shorter than `connect_timeout` must be
invisible to its caller: `resend` parks it in the link's `ParkedRequests`, which runs it on the next connection or,
after `connect_timeout`, fails it (`ConfirmLost` for a publish that went out: it may or may not have been
delivered; `BrokerUnavailable` otherwise). A publish's copy carries the message id of the original, so a receiver
that had the original drops it (`_routing/dedup.py`). A `group_add` run again finds its membership kept and its
group bound again by the reconnect's setup, so it is answered as soon as the link is ready; a `group_discard` made
meanwhile was parked after it and runs after it.

`fail_all(exc)` answers everything with one exception (the I/O thread died); `fail(kind, exc)` answers one kind
(publishes blocked by an alarm for too long). Each request is answered exactly once: whoever takes it out of the
registry first answers it.

Owned by the I/O thread; no I/O, no locks. Reading `len()` from another thread gives an approximate figure.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from .._bridge.requests import Request
from ..errors import BrokerUnavailable, LayerClosed


class Waiting(enum.Enum):
    """What a registered request waits for."""

    BIND = "its binding was made"
    PURGE = "the purge finished"
    DECLARE = "the message was sent"
    CONFIRM = "RabbitMQ confirmed"


class Ending(enum.Enum):
    """How a connection ended."""

    LOST = "lost"  # the link reconnects on its own
    CLOSED = "closed"  # close(): the layer is done


_AFTER_LOSS: dict[Waiting, tuple[type[BrokerUnavailable], str] | None] = {  # None: sent again
    Waiting.BIND: None,
    Waiting.PURGE: (BrokerUnavailable, "flush() did not finish: call it again"),
    Waiting.DECLARE: None,
    Waiting.CONFIRM: None,
}


def exception_for(kind: Waiting, ending: Ending, reason: str) -> BaseException | None:
    """The table of the module's docstring: what a request waiting for `kind` is told when its connection ends, or
    None when it is sent again on the next connection."""
    if ending is Ending.CLOSED:
        return LayerClosed(f"the channel layer was closed before {kind.value}")
    if (after_loss := _AFTER_LOSS[kind]) is None:
        return None
    error, consequence = after_loss
    return error(f"{reason}; {consequence}")


class InFlight:
    """The requests waiting on one link's current connection; see the module's theory of operation."""

    def __init__(self) -> None:
        self._waiting: dict[int, tuple[Waiting, Request]] = {}  # id(request) -> what it waits for, the request
        self._resets: list[Callable[[], None]] = []

    def on_end(self, reset: Callable[[], None]) -> None:
        """Run `reset` whenever a connection of this link ends (before its requests are answered)."""
        self._resets.append(reset)

    def add(self, kind: Waiting, request: Request) -> None:
        self._waiting[id(request)] = (kind, request)

    def settle(self, request: Request) -> bool:
        """Take `request` out; True if it was still registered, and so is the caller's to answer."""
        return self._waiting.pop(id(request), None) is not None

    def end(self, ending: Ending, reason: str, resend: Callable[[Request], None]) -> None:
        """The connection ended: reset the owner's state, then answer every registered request from the table (in
        the order they were registered), or hand it to `resend`."""
        waiting, self._waiting = self._waiting, {}
        for reset in self._resets:
            reset()
        for kind, request in waiting.values():
            if (exc := exception_for(kind, ending, reason)) is None:
                resend(request)
            else:
                request.fail(exc)

    def fail(self, kind: Waiting, exc: BaseException) -> None:
        """Answer every request waiting for `kind` with `exc`."""
        for key, (waits_for, request) in list(self._waiting.items()):
            if waits_for is kind:
                del self._waiting[key]
                request.fail(exc)

    def fail_all(self, exc: BaseException) -> None:
        """Answer every registered request with `exc` (the I/O thread is ending), and reset."""
        waiting, self._waiting = self._waiting, {}
        for reset in self._resets:
            reset()
        for _, request in waiting.values():
            request.fail(exc)

    def __len__(self) -> int:
        return len(self._waiting)
