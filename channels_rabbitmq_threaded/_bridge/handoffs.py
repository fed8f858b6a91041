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

`Waiter` is one pending `receive()` (a receive() whose message is already buffered takes it on its own thread and
needs none: `shared_inbox`). The I/O thread calls `offer(message)` at most once. The message then belongs
to whichever side *claims* the waiter first, with a non-blocking `threading.Lock.acquire(False)`:

* the caller's loop, in `_settle`: it sets the future's result; or, if the receive was already cancelled, it
  gives the message back (`on_refused`), to the head of its channel;
* the I/O thread, in `reclaim()`, when the receive was cancelled (`Forget`) or the loop is closed
  (`call_soon_threadsafe` raised): it puts the message back itself.

The caller awaits `waiter.wait()`, which holds the whole cancellation story: a receive cancelled *after* `_settle`
set its result (the task was cancelled before it resumed) finds the result in its future and gives it back; one
cancelled before any message reached it tells the I/O thread to forget it (`on_abandoned`, a `Forget` request),
which also reclaims a message offered meanwhile. A waiter whose loop died with the settle callback still queued is
garbage: `__del__` claims it and gives the message back. So a handed-off message is delivered once or put back
once, never both, never neither.

Why not janus: a janus queue binds to the first loop that touches its async side and cannot be rebound; with a new
loop per `async_to_sync` call a per-channel queue breaks on the second call, and a message already inside a queue
whose loop died, or fetched by a cancelled `get()`, has no way back to the head of its channel. The round-trip
benchmark (`benchmarks/handoff.py`, figures in `docs/design.md`) also measured per-waiter futures clearly faster.

Wake-ups are batched. Every answer bound for a loop goes out through `to_loop`. The I/O thread installs a
`LoopWakes` for the life of its pika loop: answers produced during one pass of that loop (the 25 local members of a
group message, the 50 publishes that one `multiple` confirm settles) are collected per event loop and sent as *one*
`call_soon_threadsafe` per event loop at the end of the pass, one self-pipe write and one wake-up instead of one
per answer. On any other thread (a caller failing its own request because the I/O thread is gone) an answer goes
out at once. If a loop closed before its batch was sent, the batch's answers are dropped; an offered message in it
goes back to its channel (`Waiter._give_back`).

Threads: `resolve`, `fail`, `offer`, `reclaim` may be called from any thread (in practice the I/O thread);
`_settle` and everything touching `future` run on the caller's loop. No method blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("channels_rabbitmq_threaded.bridge")  # a public name: operations.md

_NOTHING: Any = object()
_this_thread = threading.local()  # .wakes: the LoopWakes of the I/O thread, set on that thread only

OnLoop = Callable[[], None]  # runs on the caller's loop
Undeliverable = Callable[[], None] | None  # runs where the loop turned out closed (any thread)


class LoopWakes:
    """Answers bound for event loops, sent as one `call_soon_threadsafe` per loop per pass of the I/O thread.

    Owned by the I/O thread: `post` and `flush` run there only. `schedule_flush` arranges one `flush` at the end of
    the current pass (a zero-delay timer of the pika loop); the thread uninstalls it when its pika loop has stopped.
    """

    def __init__(self, schedule_flush: Callable[[], None]) -> None:
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[OnLoop, Undeliverable]]] = {}
        self._schedule_flush = schedule_flush

    def install(self) -> None:
        """Make `to_loop` batch through this object on the calling thread (the I/O thread, at its start)."""
        _this_thread.wakes = self

    def uninstall(self) -> None:
        """Send what is pending; from now on `to_loop` sends at once (the I/O thread's pika loop has stopped)."""
        _this_thread.wakes = None
        self.flush()

    def post(self, loop: asyncio.AbstractEventLoop, on_loop: OnLoop, undeliverable: Undeliverable) -> None:
        batch = self._pending.get(loop)
        if batch is None:
            if not self._pending:
                self._schedule_flush()
            batch = self._pending[loop] = []
        batch.append((on_loop, undeliverable))

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for loop, batch in pending.items():
            try:
                loop.call_soon_threadsafe(_run_batch, batch)
            except RuntimeError:  # the loop closed since the answers were posted
                for _, undeliverable in batch:
                    if undeliverable is not None:
                        undeliverable()


def _run_batch(batch: list[tuple[OnLoop, Undeliverable]]) -> None:  # on the caller's loop
    for on_loop, _ in batch:
        try:
            on_loop()
        except Exception:  # one answer's failure must not cost the others theirs
            logger.exception("Error handing an answer to an event loop")


def to_loop(loop: asyncio.AbstractEventLoop, on_loop: OnLoop, undeliverable: Undeliverable = None) -> None:
    """Run `on_loop` on `loop`: batched on the I/O thread, at once elsewhere. RuntimeError if `loop` is closed."""
    if loop.is_closed():
        raise RuntimeError("Event loop is closed")
    wakes: LoopWakes | None = getattr(_this_thread, "wakes", None)
    if wakes is None:
        loop.call_soon_threadsafe(on_loop)
    else:
        wakes.post(loop, on_loop, undeliverable)


class LoopReply:
    """The answer to one request, delivered once on the caller's event loop."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def resolve(self, value: Any = None) -> None:
        self._send(functools.partial(self._set_result, value))

    def fail(self, exc: BaseException) -> None:
        self._send(functools.partial(self._set_exception, exc))

    def _send(self, on_loop: OnLoop) -> None:
        try:
            to_loop(self.loop, on_loop)
        except RuntimeError:  # the caller's loop is closed: nobody is waiting for this answer any more
            logger.debug("dropped an answer for a closed event loop")

    def _set_result(self, value: Any) -> None:  # on the caller's loop
        if not self.future.done():
            self.future.set_result(value)

    def _set_exception(self, exc: BaseException) -> None:  # on the caller's loop
        if not self.future.done():
            self.future.set_exception(copy.copy(exc))  # one failure may answer many callers: each gets its own


def refuse_blocking_on_a_loop(method: str) -> None:
    """A blocking `*_sync` method called on a thread that runs an event loop: RuntimeError, naming the method."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop in this thread: blocking is fine
    raise RuntimeError(
        f"{method}() blocks its thread, and this thread runs an event loop: use the async method with await"
    )


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
            raise TimeoutError(
                f"no confirm from RabbitMQ within timeout={timeout}s: the message may still be delivered (it was "
                "handed to the I/O thread, which goes on publishing it; connect_timeout bounds that)"
            )
        if self._exc is not None:
            raise self._exc
        return self._value


class Waiter:
    """One pending receive(): the slot through which the I/O thread hands it exactly one message."""

    __slots__ = (
        "__weakref__",
        "_claim",
        "_message",
        "_on_abandoned",
        "_on_refused",
        "channel",
        "expires_at",
        "future",
        "loop",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        channel: str,
        on_refused: Callable[[str, dict[str, Any], float], None],
        on_abandoned: Callable[[Waiter], None],
    ) -> None:
        self.loop = loop
        self.future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.channel = channel
        self.expires_at = 0.0
        self._message: dict[str, Any] = _NOTHING
        self._claim = threading.Lock()
        self._on_refused = on_refused  # (channel, message, expires_at) -> put the message back; any thread
        self._on_abandoned = on_abandoned  # the receive() was cancelled with nothing in hand: tell the I/O thread

    async def wait(self) -> dict[str, Any]:
        """Await the message (on the waiter's loop). Cancellation-safe: a message that reached a cancelled wait goes
        back to the head of its channel; a wait cancelled with nothing in hand stops waiting at the I/O thread.

        Register the waiter (`IOThread.wait_ready`, or a `Take`) and await this in one coroutine (as
        `RabbitmqChannelLayer.receive` does): a task cancelled before its first step never runs this body, so it
        must not have registered the waiter either.
        """
        try:
            return await self.future
        except asyncio.CancelledError:
            future = self.future
            if future.done() and not future.cancelled() and future.exception() is None:
                # The message arrived, but this task was cancelled before it resumed: give the message back.
                self._on_refused(self.channel, future.result(), self.expires_at)
            else:
                self._on_abandoned(self)
            raise

    def offer(self, message: dict[str, Any], expires_at: float) -> bool:
        """Hand `message` to this receive(). False when its loop is closed: the caller keeps the message."""
        self._message = message
        self.expires_at = expires_at
        try:
            to_loop(self.loop, self._settle, self._give_back)
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
            to_loop(self.loop, functools.partial(self._set_exception, exc))

    def _give_back(self) -> None:
        """The loop closed before the offered message reached it (any thread): the message goes back."""
        message = self.reclaim()
        if message is not None:
            self._on_refused(self.channel, message, self.expires_at)

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
        try:  # never raise from a finalizer (the interpreter may be shutting down); try costs nothing when quiet
            if self._message is not _NOTHING:
                self._give_back()
        except Exception:
            pass
