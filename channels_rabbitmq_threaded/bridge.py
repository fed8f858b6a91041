"""The hand-offs between the I/O thread and the callers' event loops.

Theory of operation
-------------------
A caller runs on *some* event loop: the ASGI server's, or a fresh one that `async_to_sync` makes for a single call
and closes right after. The I/O thread must answer it on that loop, and must never be hurt when that loop is gone.
Two one-shot objects carry everything that goes out of the I/O thread:

`LoopReply` answers one request (a publish confirm, a bind, readiness, close). The caller creates it on its loop and
awaits `reply.future`; the I/O thread (or, if that thread is gone, whoever finds the request) calls `resolve` or
`fail` once. The answer travels by `loop.call_soon_threadsafe`; if the loop is closed the caller is gone and the
answer is dropped; if the caller was cancelled the answer is ignored. `ThreadReply` does the same for a caller with
no event loop (`send_sync`, `group_send_sync`), which blocks its own thread on a `threading.Event`.

`Waiter` is one pending `receive()`. The I/O thread calls `offer(message)` at most once. The message then belongs
to whichever side *claims* the waiter first, with a non-blocking `threading.Lock.acquire(False)`:

* the caller's loop, in `_settle`: it sets the future's result; or, if the receive was already cancelled, it
  gives the message back (`on_refused`), to the head of its channel;
* the I/O thread, in `reclaim()`, when the receive was cancelled (`Forget`) or the loop is closed
  (`call_soon_threadsafe` raised): it puts the message back itself.

A receive cancelled *after* `_settle` set its result (the task was cancelled before it resumed) finds the result in
its future and gives it back (`core.RabbitmqChannelLayer.receive`). A waiter whose loop died with the settle callback
still queued is garbage: `__del__` claims it and gives the message back. So a handed-off message is delivered once
or put back once, never both, never neither.

Why not janus: a janus queue binds to the first loop that touches its async side and cannot be rebound; with a new
loop per `async_to_sync` call a per-channel queue breaks on the second call, and a message already inside a queue
whose loop died, or fetched by a cancelled `get()`, has no way back to the head of its channel. The round-trip
benchmark (`benchmarks/handoff.py`, figures in `docs/design.md`) also measured per-waiter futures clearly faster.

Threads: `resolve`, `fail`, `offer`, `reclaim` may be called from any thread (in practice the I/O thread);
`_settle` and everything touching `future` run on the caller's loop. No method blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_NOTHING: Any = object()


class LoopReply:
    """The answer to one request, delivered once on the caller's event loop."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def resolve(self, value: Any = None) -> None:
        self._send(self._set_result, value)

    def fail(self, exc: BaseException) -> None:
        self._send(self._set_exception, exc)

    def _send(self, setter: Callable[[Any], None], value: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(setter, value)
        except RuntimeError:  # the caller's loop is closed: nobody is waiting for this answer any more
            logger.debug("dropped an answer for a closed event loop")

    def _set_result(self, value: Any) -> None:  # on the caller's loop
        if not self.future.done():
            self.future.set_result(value)

    def _set_exception(self, exc: BaseException) -> None:  # on the caller's loop
        if not self.future.done():
            self.future.set_exception(copy.copy(exc))  # one failure may answer many callers: each gets its own


class ThreadReply:
    """The answer to one request from a thread with no event loop (the synchronous fast path).

    The caller blocks in `wait()`, which is only allowed where no event loop runs (the layer checks); the I/O thread
    answers once with `resolve` or `fail`.
    """

    __slots__ = ("_done", "_exc", "_value")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: Any = None
        self._exc: BaseException | None = None

    def resolve(self, value: Any = None) -> None:
        if not self._done.is_set():
            self._value = value
            self._done.set()

    def fail(self, exc: BaseException) -> None:
        if not self._done.is_set():
            self._exc = copy.copy(exc)  # one failure may answer many callers: each gets its own
            self._done.set()

    def wait(self, timeout: float | None) -> Any:
        if not self._done.wait(timeout):
            raise TimeoutError(f"no answer from the channel layer's I/O thread within {timeout}s")
        if self._exc is not None:
            raise self._exc
        return self._value


class Waiter:
    """One pending receive(): the slot through which the I/O thread hands it exactly one message."""

    __slots__ = ("__weakref__", "_claim", "_message", "_on_refused", "channel", "expires_at", "future", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        channel: str,
        on_refused: Callable[[str, dict[str, Any], float], None],
    ) -> None:
        self.loop = loop
        self.future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.channel = channel
        self.expires_at = 0.0
        self._message: dict[str, Any] = _NOTHING
        self._claim = threading.Lock()
        self._on_refused = on_refused  # (channel, message, expires_at) -> put the message back; any thread

    def offer(self, message: dict[str, Any], expires_at: float) -> bool:
        """Hand `message` to this receive(). False when its loop is closed: the caller keeps the message."""
        self._message = message
        self.expires_at = expires_at
        try:
            self.loop.call_soon_threadsafe(self._settle)
        except RuntimeError:  # the loop is closed
            self._claim.acquire(blocking=False)
            self._message = _NOTHING
            return False
        return True

    def reclaim(self) -> dict[str, Any] | None:
        """Take the offered message back if the loop has not claimed it yet (None if it has, or none was offered)."""
        if self._message is _NOTHING or not self._claim.acquire(blocking=False):
            return None
        message, self._message = self._message, _NOTHING
        return message

    def fail(self, exc: BaseException) -> None:
        """Wake this receive() with an exception (it was never offered a message)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(self._set_exception, exc)

    def _set_exception(self, exc: BaseException) -> None:  # on the caller's loop
        if not self.future.done():
            self.future.set_exception(copy.copy(exc))  # one failure may answer many callers: each gets its own

    def _settle(self) -> None:  # on the caller's loop
        if not self._claim.acquire(blocking=False):
            return  # the I/O thread reclaimed the message
        message, self._message = self._message, _NOTHING
        if self.future.done():  # cancelled while the message was on its way
            self._on_refused(self.channel, message, self.expires_at)
        else:
            self.future.set_result(message)

    def __del__(self) -> None:
        # A loop closed with our _settle still queued: the message would vanish with the waiter. Give it back.
        try:
            message = self.reclaim()
            if message is not None:
                self._on_refused(self.channel, message, self.expires_at)
        except Exception:  # never raise from a finalizer (the interpreter may be shutting down)
            pass
