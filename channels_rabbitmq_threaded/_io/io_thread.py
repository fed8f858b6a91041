"""The I/O thread: the one thread that runs pika, and the only way into it from other threads.

Theory of operation
-------------------
One `IOThread` per layer runs a pika `IOLoop` in a daemon thread. What runs on it is the `hub.Hub` and the two
sides it holds (`consumer.ConsumerSide`, `publisher.PublisherSide`), their links, and the routing state; this
module is the thread around them: its surface for other threads, its life, and its end.

Who touches what
----------------
* Other threads call only `submit(request)`, `submit_unwaited(publish)`, `take_ready` and `wait_ready` (and
  `start`, `stop_and_join`, `is_alive`, `let_go_in_child` in a forked child). `submit` goes through the
  `RequestFunnel`: it appends to a deque and wakes the loop with `add_callback_threadsafe` only when no wake is
  already pending, so a burst of requests costs one wake. Everything else runs in the I/O thread, which holds the
  pika lock whenever it runs, and lets go of it only while it waits in epoll (`LockedWait`).
* The one exception: a lone publish, submitted when the pika lock is free and nothing is queued ahead, is
  published by the caller's thread itself, holding that lock (`publish_now`): no wake-up of this thread on the
  way in, and its bytes on the socket at once (`Link.send_at_once`). The caller only tries the lock, so it never
  blocks its loop; when the try fails, or the publisher side cannot publish at once, the publish takes the funnel.
* The routing state (`SharedInbox`: buffers, waiters, membership) is owned by this thread, except that a
  receive() takes a buffered message, or starts waiting, on its own thread under the inbox's lock when that needs
  nothing else (`take_ready`, `wait_ready`; `shared_inbox` has the table).
* Answers leave through `handoffs.LoopReply`, `handoffs.ThreadReply` and `handoffs.Waiter`, which use the callers'
  own loops (or block the caller's own thread). This thread batches them: its `handoffs.LoopWakes` sends the
  answers of one pass of the pika loop as one wake-up per event loop (`_flush_wakes`, a zero-delay timer).
* With `wait_for_confirms=False`, publishes carry the shared `UnwaitedPublishes` reply, which logs failures as
  drops; `submit_unwaited` reads the backlog (queued, parked, unconfirmed) without a lock to bound it.

Rules
-----
* Every callback handed to pika is `guarded`: an exception is logged and never reaches pika.
* Nothing here blocks: no sleeps, no blocking puts, no waits on other threads.
* Nobody is left waiting, by construction: a request that needs a link waits in its parked requests at most
  `connect_timeout`; a request that waits for an RPC is registered in its link's `InFlight`, which the link empties
  when the connection ends; whatever is left when the thread ends is failed with the reason it ended (pika drops
  callbacks silently after its loop is closed, so `submit` checks for a stopped thread itself).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from pika.adapters.select_connection import IOLoop

from .._bridge.handoffs import LoopWakes, Waiter
from .._bridge.requests import Publish, Request, Stop
from .._config import Settings, is_process_specific
from .._routing.inbox import Message
from ..errors import LayerClosed, RabbitmqLayerError
from .hub import Hub
from .link import LinkState, let_go_in_child
from .logs import guarded

logger = logging.getLogger("channels_rabbitmq_threaded.io_thread")  # a public name: operations.md

LOOP_ESCAPES_TOLERATED = 10  # exceptions out of pika's loop (run_until_stopped) within LOOP_ESCAPE_WINDOW seconds
LOOP_ESCAPE_WINDOW = 10.0

# With wait_for_confirms=False, callers stop sending without waiting once this many publishes are queued, parked or
# unconfirmed: they wait for their confirm instead, so a broker that is slow, blocked or gone slows them down rather
# than filling this process's memory.
MAX_UNWAITED_BACKLOG = 10_000


class IOThread:
    """Owns the pika connections for one layer. See the module's theory of operation."""

    def __init__(self, settings: Settings, queue_name: str) -> None:
        self.settings = settings
        self.queue_name = queue_name
        self._death: BaseException = LayerClosed("the channel layer is closed")  # what late requests are told
        self._ioloop = IOLoop()
        self._thread = threading.Thread(target=self._run, name=f"channels-rabbitmq-io:{queue_name}", daemon=True)
        self.hub = Hub(settings, self._ioloop, queue_name, self._thread)  # the I/O thread's, from start() on
        self.unwaited = self.hub.unwaited
        self.figures = self.hub.figures
        self._wakes = LoopWakes(self._schedule_wakes)
        self._funnel = RequestFunnel(self._ioloop, self.hub.handle, self.hub.expiry.schedule)  # the one way in
        # Held by whoever runs pika code: the I/O thread, always but while it waits in epoll (`LockedWait`), or a
        # caller's thread publishing at once (`publish_now`), which only ever tries it.
        self._pika = threading.Lock()
        self._running = False  # from start() until the thread's last act

    # -- the thread-safe surface -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        self._thread.start()

    def is_alive(self) -> bool:
        """False once the thread has answered everyone and is ending (a flag: every call of the layer asks)."""
        return self._running

    def submit(self, *requests: Request) -> None:
        """Hand requests to the I/O thread, in order, with one wake-up (any thread; never blocks). A lone publish
        goes out at once from the calling thread when the way is clear (`publish_now`)."""
        if len(requests) == 1 and isinstance(requests[0], Publish) and self.publish_now(requests[0]):
            return
        self._funnel.submit(requests)

    def publish_now(self, publish: Publish) -> bool:
        """Publish on the calling thread, with no wake-up of the I/O thread, when that thread is waiting in epoll
        (the pika lock is free), nothing submitted before is still queued, and the publisher side can publish at
        once (`PublisherSide.publish_now`); False, and nothing done, otherwise. Never blocks: the lock is only tried.
        """
        if not self._pika.acquire(blocking=False):
            return False
        try:
            return self._running and not len(self._funnel) and self.hub.publish_now(publish)
        except Exception:  # pika refused before a byte went out (the channel closing, say): the I/O thread's way
            logger.debug("A publish could not go out at once; it goes through the I/O thread", exc_info=True)
            return False
        finally:
            self._pika.release()

    def take_ready(self, channel: str) -> Message | None:
        """A receive()'s message, taken on the caller's thread when its channel holds one that needs nothing more
        (`SharedInbox`); None: wait for one (`wait_ready`, or a `Take`)."""
        return self.hub.routing.take_ready(channel, time.monotonic())

    def wait_ready(self, waiter: Waiter) -> bool:
        """Let a receive() of a process-specific channel wait without a request, when the consumer link has started
        and nothing else is needed (`SharedInbox`); False: submit a `Take`."""
        # The link's state is read from the caller's thread: a link leaves IDLE once and never comes back to it.
        if self.hub.consumer.link.state is LinkState.IDLE or not is_process_specific(waiter.channel):
            return False  # the link must be started, or a normal channel's queue consumed: the I/O thread's work
        return self.hub.routing.wait_ready(waiter.channel, waiter)

    def submit_unwaited(self, publish: Publish) -> bool:
        """Hand over a publish that nobody will wait for (any thread). False, and nothing done, when the backlog of
        publishes is at `MAX_UNWAITED_BACKLOG`: the caller must then wait for this one's confirm.
        """
        # Lengths of containers owned by the I/O thread, read without a lock: approximate, which a bound can afford.
        if len(self._funnel) + self.hub.publisher.backlog() >= MAX_UNWAITED_BACKLOG:
            return False
        publish.reply = self.unwaited
        self.submit(publish)
        return True

    def stop_and_join(self, timeout: float) -> None:
        """Stop the thread from a thread with no event loop (process exit); waits at most `timeout` seconds."""
        if self._thread.is_alive():
            self.submit(Stop(reply=None))
            self._thread.join(timeout)

    def let_go_in_child(self) -> None:
        """In a forked child: close the inherited copies of the parent's sockets, saying nothing to anyone.

        Only file descriptors are closed (no AMQP close, no TCP shutdown), so the parent's connections are
        untouched; without this, children would keep a dead parent's connection, and its exclusive queue, alive.
        """
        self._funnel.close(LayerClosed("the channel layer was forked: this child starts a layer of its own"))
        for link in self.hub.links():
            let_go_in_child(link)
        try:
            self._ioloop.close()
        except Exception:
            logger.debug("after fork: could not close the inherited poller", exc_info=True)

    # -- the thread ------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        self._pika.acquire()  # the I/O thread's, but while it waits in epoll (`LockedWait`)
        try:
            self._wakes.install()
            self.hub.publisher.link.start()  # the consumer link starts on first need
            self.hub.reach.start()  # probes only while both links are ready
            run_until_stopped(self._ioloop, lambda: self.hub.stopping, self._let_go_while_waiting)
        except BaseException as exc:  # a bug: callbacks are guarded, and run_until_stopped forgives pika's races
            logger.exception("The channel layer's I/O thread stopped unexpectedly")
            self._death = RabbitmqLayerError(f"the channel layer's I/O thread stopped unexpectedly: {exc!r}")
        finally:
            self._wakes.uninstall()  # no more pika timers: answers from here on go out at once
            self._end(self._death)
            self._running = False
            self._pika.release()

    @guarded
    def _let_go_while_waiting(self) -> None:
        """Let go of the pika lock while pika's loop waits in epoll (its first pass, and after each restart)."""
        poller = getattr(self._ioloop, "_poller", None)
        epoll = getattr(poller, "_poll", None)
        if epoll is not None and not isinstance(epoll, LockedWait):
            poller._poll = LockedWait(epoll, self._pika)  # type: ignore[union-attr]

    def _end(self, death: BaseException) -> None:
        """The thread's last act: answer everyone still waiting, whatever they wait for."""
        self._funnel.close(death)
        for link in self.hub.links():
            link.inflight.fail_all(death)
            for request in link.parked.take_all():
                request.fail(death)
        waiters, _ = self.hub.routing.close()
        for waiter in waiters:
            waiter.fail(death)
        self.hub.drops.flush()
        self._ioloop.close()
        if self.hub.stop_request is not None:
            logger.info(
                "Closed the channel layer's connections to RabbitMQ (%s)",
                self.queue_name,
                extra={"event": "layer_closed", "queue": self.queue_name},
            )
            self.hub.stop_request.resolve()

    def _schedule_wakes(self) -> None:
        """Send the answers of this pass at its end: a zero-delay timer runs after the pass's other callbacks."""
        self._ioloop.call_later(0, self._flush_wakes)

    @guarded
    def _flush_wakes(self) -> None:
        self._wakes.flush()


class LockedWait:
    """Stands in for pika's epoll object: the I/O thread lets go of the pika lock while it waits, and takes it
    back before it runs anything, so a caller may publish in the meantime (`IOThread.publish_now`)."""

    def __init__(self, epoll: Any, lock: threading.Lock) -> None:
        self._epoll = epoll
        self._lock = lock

    def poll(self, timeout: float = -1) -> Any:
        self._lock.release()
        try:
            return self._epoll.poll(timeout)
        finally:
            self._lock.acquire()

    def __getattr__(self, name: str) -> Any:  # register, modify, unregister, close: pika's own use
        return getattr(self._epoll, name)


def run_until_stopped(ioloop: IOLoop, stopping: Callable[[], bool], on_start: Callable[[], None]) -> None:
    """Run pika's loop until the thread stops it, forgiving exceptions that escape pika's own callbacks.

    pika 1.4 raises out of its connection workflow when a TCP connection is reset between the connect and the
    stream's set-up (`getpeername()` fails: "Expected connected socket"), as a refused or flapping listener does.
    That is a network fault, not a reason to end the layer: the loop goes on, and the attempt's own stack timeout
    (`Settings.attempt_timeout`) reports it as a failed attempt, so the link tries again. More than
    `LOOP_ESCAPES_TOLERATED` escapes within `LOOP_ESCAPE_WINDOW` seconds is a bug, not a fault: it is raised.
    """
    escapes: deque[float] = deque(maxlen=LOOP_ESCAPES_TOLERATED)
    while True:
        try:
            ioloop.add_callback_threadsafe(on_start)
            ioloop.start()
            return
        except Exception as exc:
            now = time.monotonic()
            escapes.append(now)
            if stopping() or (len(escapes) == LOOP_ESCAPES_TOLERATED and now - escapes[0] < LOOP_ESCAPE_WINDOW):
                raise
            logger.warning(
                "pika raised out of its I/O loop (%r); the loop goes on",
                exc,
                exc_info=True,
                extra={"event": "loop_error"},
            )


class RequestFunnel:
    """Requests from any thread into the I/O thread: a deque, and one pika wake-up per burst.

    `submit` appends and calls `add_callback_threadsafe(drain)` only when no drain is pending, so a burst of requests
    costs one wake. pika drops callbacks silently once its loop is closed, so the thread `close`s the funnel before
    its last act: from then on `submit` fails each request itself with the reason the thread ended.
    """

    def __init__(self, ioloop: IOLoop, handle: Callable[[Request], None], after_drain: Callable[[], None]) -> None:
        self._ioloop = ioloop
        self._handle = handle  # runs one request, on the I/O thread
        self._after_drain = after_drain
        self._requests: deque[Request] = deque()  # any thread appends; the I/O thread pops
        self._wake_pending = False
        self._closed: BaseException | None = None  # why the thread ended; set by it as it ends

    def submit(self, requests: Iterable[Request]) -> None:
        self._requests.extend(requests)
        if self._closed is not None:  # the thread has ended, or is draining for the last time
            self._fail_all(self._closed)
            return
        if not self._wake_pending:
            self._wake_pending = True
            self._ioloop.add_callback_threadsafe(self._drain)

    def close(self, reason: BaseException) -> None:
        self._closed = reason
        self._fail_all(reason)

    def __len__(self) -> int:  # safe to read from any thread (an approximate figure there)
        return len(self._requests)

    def _fail_all(self, exc: BaseException) -> None:
        while True:
            try:
                request = self._requests.popleft()
            except IndexError:
                return
            request.fail(exc)

    @guarded
    def _drain(self) -> None:
        self._wake_pending = False  # before popping: a request appended from now on brings its own wake
        while self._requests:
            self._handle(self._requests.popleft())
        self._after_drain()
