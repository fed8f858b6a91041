"""What callers ask of the I/O thread: one small value per request.

Theory of operation: a caller builds a request, hands it to `IOThread.submit` and awaits its `LoopReply` (if it
has one). The I/O thread runs it (`Hub._handlers` maps each type to its handler) or, when it can't,
calls `fail(exc)`: every request is answered exactly once, whatever happens to the connection or the thread.
Requests that need a connection (`Hub._link_of` says which one) wait while it is not ready, each up
to `connect_timeout`; the others only touch in-memory routing state and run at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .handoffs import Waiter


class Reply(Protocol):
    """How a request is answered: `handoffs.LoopReply`, `handoffs.ThreadReply` or `ledgers.UnwaitedPublishes`."""

    def resolve(self, value: Any = None) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


@dataclass(slots=True)
class Request:
    def fail(self, exc: BaseException) -> None:
        """Answer the caller with `exc` (requests without a caller have nothing to answer)."""


@dataclass(slots=True)
class Answered(Request):
    """A request whose caller waits for its answer through `reply` (None: nobody waits)."""

    reply: Reply | None

    def fail(self, exc: BaseException) -> None:
        if self.reply is not None:
            self.reply.fail(exc)

    def resolve(self, value: Any = None) -> None:
        if self.reply is not None:
            self.reply.resolve(value)


@dataclass(slots=True)
class Publish(Answered):
    """Publish `body` with a publisher confirm; answered True (ack) or False (nack: a queue was full)."""

    exchange: str = ""
    routing_key: str = ""
    body: bytes = b""
    mandatory: bool = False
    declare: tuple[str, dict[str, Any]] | None = None  # a normal channel's queue: declared before the first publish
    message_id: str = ""  # stamped at the first publish, kept for a re-publish (dedup.py)


@dataclass(slots=True)
class _MembershipChange(Answered):
    group: str = ""
    channel: str = ""


@dataclass(slots=True)
class GroupAdd(_MembershipChange):
    """Add a local channel to a group; answered once the group's binding is in effect at the broker."""


@dataclass(slots=True)
class GroupDiscard(_MembershipChange):
    """Remove a local channel from a group (unbinding the group when it was the last local member)."""


@dataclass(slots=True)
class NormalGroupChange(_MembershipChange):
    """Bind (`joining`) or unbind a normal channel's queue and a group (`normal_groups.py`); answered once done."""

    joining: bool = True


@dataclass(slots=True)
class UnbindNormalGroups(Answered):
    """flush(): remove the normal channels' group bindings this process made; answered once RabbitMQ has."""


@dataclass(slots=True)
class AwaitReady(Answered):
    """Answered once the queue is declared and consumed (at once when it already is)."""


@dataclass(slots=True)
class Flush(Answered):
    """flush(): drop this process's messages and memberships and purge its queue; answered after the purge."""


@dataclass(slots=True)
class Stop(Answered):
    """Close the connection and end the I/O thread; answered when the thread is done."""


@dataclass(slots=True)
class Take(Request):
    """A receive() call: hand `waiter` the next message of its channel."""

    waiter: Waiter

    def fail(self, exc: BaseException) -> None:
        self.waiter.fail(exc)


@dataclass(slots=True)
class Forget(Request):
    """A receive() call was cancelled: stop waiting, or put back the message it was handed."""

    waiter: Waiter


@dataclass(slots=True)
class PutBack(Request):
    """A message handed to a receive() that did not take it: back to the head of its channel."""

    channel: str
    message: dict[str, Any]
    expires_at: float
