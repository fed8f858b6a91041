"""One AMQP connection with one channel, kept open for the layer's life: the connection life cycle.

Theory of operation
-------------------
A `Link` walks an explicit life cycle of small named callbacks, on the I/O thread's pika `IOLoop`:

    IDLE -> (first request that needs it: `start`) -> CONNECTING
    CONNECTING: connection open -> channel open -> the owner's setup steps -> READY
    any failure -> the owner is told (`on_lost`) -> WAITING: backoff (exponential, jitter, capped) -> CONNECTING
    `stop` -> STOPPING -> (connection closed) -> STOPPED

A link starts IDLE and opens its connection only when a request first needs it, so a process that only sends never
opens the consumer's connection or declares a queue. The owner's setup steps are chained RPC callbacks wrapped with
`Link.step`: a step whose channel is no longer the one being set up (the link is stopping, or the connection dropped
mid-setup) is skipped, not run against a closing channel. Shutdown that races setup is a normal event: `stop` on a
connection still opening waits for it to open (or fail) and then closes it, because pika 1.4 cannot abort an AMQP
handshake (`close()` then trips an assertion in its connection workflow that ends the whole `IOLoop`).

Every attempt builds a *fresh* `SelectConnection` from fresh parameters (pika mutates them) and goes to the next
host of the list, so a cluster fails over by itself. What the channel is for (declares, binds, confirm mode) is the
owner's business (`LinkOwner.setup(channel, done)`). The requests that wait for an RPC of the current connection
are registered in the link's `inflight.InFlight`, which the link empties when the connection ends (lost or
stopped), so nobody is left waiting on a connection that is gone. A link is *ready* when its setup is done and
RabbitMQ is not blocking it (a resource alarm: `Connection.Blocked`). Requests that need a link that is not ready
wait in its `ParkedRequests`, each for at most `connect_timeout`; a refusal that retrying can't fix fails them at
once.

Rules
-----
* Everything here runs in the I/O thread, or on a caller's thread that holds the pika lock (`IOThread.publish_now`,
  while the I/O thread waits in epoll); nothing is thread-safe by itself, nothing blocks.
* Every callback given to pika goes through `guarded`: an exception is logged and never reaches pika (which would
  end `ioloop.start()` or tear the connection down).
"""

from __future__ import annotations

import enum
import functools
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

import pika
from pika.adapters.select_connection import IOLoop
from pika.exceptions import (
    AMQPConnectionError,
    AMQPHeartbeatTimeout,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    StreamLostError,
)

from .._bridge.requests import Publish, Request
from .._config import Settings
from ..errors import BrokerRefused, BrokerUnavailable, ConfirmLost, LayerClosed
from . import writes
from .inflight import Ending, InFlight
from .logs import RepeatedWarning, guarded

logger = logging.getLogger("channels_rabbitmq_threaded.link")  # a public name: operations.md

F = TypeVar("F", bound=Callable[..., Any])

RECONNECT_FIRST_DELAY = 0.2  # seconds before the first retry (times a jitter of 0.5-1)
RECONNECT_MAX_DELAY = 5.0


class LinkState(enum.Enum):
    IDLE = "not needed yet"
    CONNECTING = "connecting"
    READY = "ready"
    WAITING = "waiting to reconnect"
    STOPPING = "stopping"
    STOPPED = "stopped"


IDLE, CONNECTING, READY, WAITING = LinkState.IDLE, LinkState.CONNECTING, LinkState.READY, LinkState.WAITING
STOPPING, STOPPED = LinkState.STOPPING, LinkState.STOPPED

# The life cycle as a table: the states a link may move to from each state (`Link._move` checks every move).
TRANSITIONS: dict[LinkState, frozenset[LinkState]] = {
    IDLE: frozenset({CONNECTING, STOPPING}),  # the first request that needs the link, or the layer closes first
    CONNECTING: frozenset({READY, WAITING, STOPPING}),  # set up, failed, or closing
    READY: frozenset({WAITING, STOPPING}),  # lost, or closing
    WAITING: frozenset({CONNECTING, STOPPING}),  # the backoff is over, or closing
    STOPPING: frozenset({STOPPED}),  # the connection is closed
    STOPPED: frozenset(),
}


def declare_exchange(link: Link, name: str, kind: str, then: Callable[[Any], None]) -> None:
    """A setup step: `exchange.declare` of `name` (`kind`: a pika `ExchangeType`) on `link`'s channel; the
    `DeclareOk` goes to `then`, through `Link.step`."""
    link.channel.exchange_declare(exchange=name, exchange_type=kind, callback=link.step(then))


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the causes pika wraps inside it, outermost first (its connection errors often print as '')."""
    while True:
        yield exc
        if getattr(exc, "exceptions", None):  # AMQPConnectionWorkflowFailed: one per attempt, the last is latest
            exc = exc.exceptions[-1]  # type: ignore[attr-defined]
        elif isinstance(getattr(exc, "exception", None), BaseException):  # AMQPConnector*Error: one phase's cause
            exc = exc.exception  # type: ignore[attr-defined]
        elif len(exc.args) == 1 and isinstance(exc.args[0], BaseException):  # AMQPConnectionError(cause)
            exc = exc.args[0]
        else:
            return


def describe(exc: BaseException) -> str:
    """A readable reason for a failed connection: its innermost cause."""
    *_, cause = causes(exc)
    return f"{type(cause).__name__}: {cause}" if str(cause) else repr(cause)


_REFUSALS = (ProbableAuthenticationError, ProbableAccessDeniedError, ssl.SSLError)


def is_refusal(exc: BaseException) -> bool:
    """Whether RabbitMQ refused us for a reason retrying can't fix until someone acts (credentials, vhost, TLS)."""
    return any(
        isinstance(cause, _REFUSALS)
        # a TLS handshake the server aborted (e.g. no client certificate): pika keeps only the SSLError's text
        or "[SSL:" in str(cause)
        for cause in causes(exc)
    )


class Repeating:
    """Calls `callback` every `interval` seconds on the I/O thread's loop, from `start` until `stop`."""

    def __init__(self, ioloop: Any, interval: float, callback: Callable[[], None]) -> None:
        self._ioloop = ioloop
        self._interval = interval
        self._callback = callback
        self._timer: Any = None

    def start(self) -> None:
        if self._timer is None:
            self._timer = self._ioloop.call_later(self._interval, self._fire)

    def stop(self) -> None:
        if self._timer is not None:
            self._ioloop.remove_timeout(self._timer)
            self._timer = None

    @guarded
    def _fire(self) -> None:
        self._timer = self._ioloop.call_later(self._interval, self._fire)
        self._callback()


class LivenessWatch:
    """Declares a connection dead when RabbitMQ has sent nothing for 1.5 heartbeat intervals.

    RabbitMQ sends a heartbeat frame every `heartbeat / 2` seconds, so silence for `1.5 x heartbeat` means three
    frames missed. Checked every `heartbeat / 4`, a frozen or partitioned broker is noticed within 1.75 heartbeat
    intervals; pika's own checker (every `heartbeat + 5` s) may take up to `2 x (heartbeat + 5)` s.
    """

    def __init__(self, ioloop: IOLoop, connection: pika.SelectConnection, heartbeat: int) -> None:
        self._connection = connection
        self._heartbeat = heartbeat
        self._seen = connection.bytes_received
        self._seen_at = time.monotonic()
        self._timer = Repeating(ioloop, heartbeat / 4, self._check)
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _check(self) -> None:
        connection, now = self._connection, time.monotonic()
        if connection.is_closing or connection.is_closed:
            self.stop()
            return
        if connection.bytes_received != self._seen:
            self._seen, self._seen_at = connection.bytes_received, now
        elif now - self._seen_at > 1.5 * self._heartbeat:
            silence = now - self._seen_at
            logger.warning(
                "RabbitMQ sent nothing for %.1fs (heartbeat %ds): dropping the connection",
                silence,
                self._heartbeat,
                extra={"event": "broker_silent", "seconds": round(silence, 1)},
            )
            # What pika's own heartbeat checker does: abort the stream; on_close_callback follows.
            terminate = connection._terminate_stream  # type: ignore[attr-defined]  # pika's private abort
            self.stop()
            terminate(AMQPHeartbeatTimeout(f"no data from RabbitMQ for {silence:.1f}s"))


class ParkedRequests:
    """Requests waiting for a link to be ready, each for at most `timeout` seconds."""

    def __init__(self, ioloop: IOLoop, timeout: float, on_timeout: Callable[[Request], None]) -> None:
        self._ioloop = ioloop
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._waiting: deque[tuple[float, Request]] = deque()  # in deadline order: every wait is `timeout` long
        self._timer: Any = None

    def park(self, request: Request) -> None:
        self._waiting.append((time.monotonic() + self._timeout, request))
        if self._timer is None:
            self._timer = self._ioloop.call_later(self._timeout, self._on_deadline)

    def __len__(self) -> int:  # safe to read from any thread (an approximate figure there)
        return len(self._waiting)

    def take_all(self) -> list[Request]:
        """Take every waiting request out (to run it, or to fail it)."""
        if self._timer is not None:
            self._ioloop.remove_timeout(self._timer)
            self._timer = None
        taken = [request for _, request in self._waiting]
        self._waiting.clear()
        return taken

    @guarded
    def _on_deadline(self) -> None:
        self._timer = None
        now = time.monotonic()
        while self._waiting and self._waiting[0][0] <= now:
            self._on_timeout(self._waiting.popleft()[1])
        if self._waiting:
            self._timer = self._ioloop.call_later(self._waiting[0][0] - now, self._on_deadline)


class LinkOwner(Protocol):
    """What a `Link` tells the side that uses it (`consumer.ConsumerSide`, `publisher.PublisherSide`)."""

    def setup(self, channel: Any, done: Callable[[], None]) -> None:
        """A new channel is open: declare what the side needs (each step through `Link.step`), then call `done`."""

    def on_ready(self, requests: list[Request]) -> None:
        """The link is ready, or no longer blocked: run the requests that waited for it."""

    def on_lost(self, reason: str) -> None:
        """The connection is gone (its `InFlight` was emptied just before); the link reconnects by itself."""

    def on_stopped(self) -> None:
        """`stop()` is complete: the connection is closed for good."""

    def on_blocked(self) -> None:
        """RabbitMQ started blocking this connection (a resource alarm)."""


class HostRotation:
    """Which host each connection attempt of a link goes to: the next one of `settings.hosts`, round and round, and,
    when there are several, never the one another link is on (`keep_apart_from`), once that link has started."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._attempt = -1  # attempt n uses host n modulo count
        self._apart_from: HostRotation | None = None

    @property
    def current(self) -> int:
        """The index of the latest attempt's host (of the first attempt's, before it)."""
        return max(self._attempt, 0) % self._count

    def keep_apart_from(self, other: HostRotation) -> None:
        self._apart_from = other

    @property
    def started(self) -> bool:
        return self._attempt >= 0

    @property
    def shared(self) -> bool:
        """Whether the other link is on this host although there are several."""
        other = self._apart_from
        return other is not None and other.started and self._count > 1 and other.current == self.current

    def next(self, keep_apart: bool = True) -> int:
        """The number of the next attempt (`Settings.connection_parameters` picks its host). Without `keep_apart`
        (the last attempt failed: the host kept apart from may be the only one up), the other link's host is fine."""
        self._attempt += 1
        if keep_apart and self.shared:
            self._attempt += 1
        return self._attempt


class Link:
    """One connection and its channel, (re)opened forever. See the module's theory of operation."""

    def __init__(self, role: str, settings: Settings, ioloop: IOLoop, connection_name: str, owner: LinkOwner) -> None:
        self.role = role  # "consumer" or "publisher": for log lines
        self.settings = settings
        self._ioloop = ioloop
        self._connection_name = connection_name
        self._owner = owner
        self.inflight = InFlight()  # requests answered by RPCs on the current connection: emptied when it ends
        self.state = IDLE  # changed only by `_move`
        self.connection: pika.SelectConnection | None = None
        self.channel: Any = None  # the pika Channel of the current connection, once open
        self.more_channels: list[Any] = []  # further channels of the current connection (`open_more_channels`)
        self.blocked: str | None = None  # RabbitMQ's reason while it blocks this connection (resource alarm)
        self.last_error = ""  # why the latest attempt failed or the latest connection ended ("": none has)
        self.last_error_at: float | None = None  # its time.time()
        self.connects = 0  # connections made ready since start (figures for stats())
        self.losses = 0  # connections lost since start
        self.parked = ParkedRequests(ioloop, settings.connect_timeout, self._on_park_timeout)
        self.hosts = HostRotation(len(settings.hosts))
        self._attempt_failed = False  # the latest attempt failed to connect: the next may go to any host
        self.url = settings.redacted_host(0)  # the (redacted) URL of the current attempt, for log lines
        self._retry_delay = RECONNECT_FIRST_DELAY
        self._liveness: LivenessWatch | None = None
        self._repeats = RepeatedWarning(logger)

    @property
    def ready(self) -> bool:
        return self.state is READY and self.blocked is None

    @property
    def channel_open(self) -> bool:
        return self.channel is not None and self.channel.is_open

    def send_at_once(self, frame: Callable[[], None]) -> None:
        """Run `frame` (which frames methods on this link's connection) and put its bytes on the socket at once.

        For a caller holding the pika lock (`IOThread.publish_now`), and for the I/O thread's acks
        (`Deliveries`): see `writes.send_at_once`.
        """
        writes.send_at_once(self.connection, frame)

    def step(self, callback: Callable[..., None]) -> Callable[..., None]:
        """Wrap the owner's next setup callback: it runs only if this link is still setting up the same channel.

        A setup RPC's answer can arrive after `stop` (or a lost connection) has started closing its channel; sending
        the next RPC there would raise `ChannelWrongStateError`. Such a step is skipped: the link is stopping, or
        setup starts over on the next connection.
        """
        channel = self.channel

        @functools.wraps(callback)
        def step_if_current(*args: Any) -> None:
            if self.state is CONNECTING and self.channel is channel and channel is not None and channel.is_open:
                callback(*args)
            else:
                logger.debug("%s link: skipped setup step %s (its channel is closing)", self.role, callback.__name__)

        return step_if_current

    def open_more_channels(self, count: int, then: Callable[[], None]) -> None:
        """A setup step: open `count` more channels on this connection, then call `then`.

        pika runs a channel's RPCs one at a time, each waiting for the previous one's answer; RPCs spread over
        several channels run side by side. A channel the broker closes takes the whole connection with it, as the
        main one does (the link reconnects), so every channel in `more_channels` is open while the link is ready.
        A connection whose negotiated `channel_max` is lower gets fewer (none with `channel_max=1`).
        """
        self.more_channels = []
        connection = self.connection
        if connection is not None and connection.params is not None:  # no more than channel_max allows (0: none)
            count = min(count, (connection.params.channel_max or 65535) - 1)
        if count <= 0 or connection is None:
            then()  # (no connection: a setup step runs only on an open one)
            return

        def opened(channel: Any) -> None:
            channel.add_on_close_callback(self._on_channel_closed)
            self.more_channels.append(channel)
            if len(self.more_channels) == count:
                then()

        for _ in range(count):
            connection.channel(on_open_callback=self.step(opened))

    def _move(self, to: LinkState) -> None:
        """Enter `to`; a move that `TRANSITIONS` does not allow is a bug, logged (the caller's clean-up still runs)."""
        if to not in TRANSITIONS[self.state]:
            _log_bad_move(self, to)
        self.state = to

    # -- life cycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the connection if nobody has needed it yet (the first request that needs this link calls it)."""
        if self.state is IDLE:
            self.connect()

    @guarded
    def connect(self) -> None:
        if self.state not in (IDLE, WAITING):  # stopping, stopped, or an attempt already under way
            return
        self._move(CONNECTING)
        attempt = self.hosts.next(keep_apart=self._attempt_failed is False)
        self.url = self.settings.redacted_host(attempt)
        logger.debug("Connecting the %s link to RabbitMQ at %s", self.role, self.url)
        try:
            self.connection = pika.SelectConnection(
                self.settings.connection_parameters(self._connection_name, attempt),
                on_open_callback=self._on_connection_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_connection_closed,
                custom_ioloop=self._ioloop,
            )
        except Exception as exc:
            self._on_open_error(None, exc)

    @guarded
    def _on_connection_open(self, connection: Any) -> None:
        if self.state is STOPPING:  # stop() came while the handshake ran: close now that pika can do it safely
            connection.close()
            return
        heartbeat = connection.params.heartbeat  # the negotiated value, once the connection is open
        if isinstance(heartbeat, int) and heartbeat > 0:
            self._liveness = LivenessWatch(self._ioloop, connection, heartbeat)
        writes.join_writes(connection)
        connection.add_on_connection_blocked_callback(self._on_blocked)
        connection.add_on_connection_unblocked_callback(self._on_unblocked)
        connection.channel(on_open_callback=self._on_channel_open)

    @guarded
    def _on_channel_open(self, channel: Any) -> None:
        if self.state is not CONNECTING:  # stop() closed the connection meanwhile
            return
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        self._owner.setup(channel, self._on_setup_done)

    def _on_setup_done(self) -> None:
        if self.state is not CONNECTING:
            return
        self._move(READY)
        self.connects += 1
        self._attempt_failed = False
        self._retry_delay = RECONNECT_FIRST_DELAY
        self._repeats.reset()
        logger.info(
            "Connected the %s link to RabbitMQ at %s (connection name %r)",
            self.role,
            self.url,
            self._connection_name,
            extra={
                "event": "link_connected",
                "link": self.role,
                "url": self.url,
                "connection_name": self._connection_name,
            },
        )
        self._owner.on_ready(self.parked.take_all())

    @guarded
    def _on_open_error(self, _connection: Any, error: BaseException | str) -> None:
        exc = error if isinstance(error, BaseException) else AMQPConnectionError(error)
        self.connection = None
        if self.state is STOPPING:
            self._stopped()
            return
        self._attempt_failed = True
        reason = f"cannot connect to RabbitMQ at {self.url}: {describe(exc)}"
        if is_refusal(exc):  # retrying won't help until an operator acts: tell the waiting callers now
            refused = BrokerRefused(reason)
            for request in self.parked.take_all():
                request.fail(refused)
        self._lost(reason, describe(exc), "link_connect_failed")

    @guarded
    def _on_connection_closed(self, _connection: Any, reason: BaseException) -> None:
        self.connection = None
        self.channel = None
        self.more_channels = []
        self.blocked = None
        if self._liveness is not None:
            self._liveness.stop()
            self._liveness = None
        if self.state is STOPPING:
            self._stopped()
            return
        self._lost(f"lost the connection to RabbitMQ at {self.url}: {describe(reason)}", describe(reason), "link_lost")

    @guarded
    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        connection = self.connection
        if self.state is STOPPING or connection is None or connection.is_closing or connection.is_closed:
            return
        logger.warning(
            "RabbitMQ closed the %s channel (%s); reconnecting",
            self.role,
            reason,
            extra={"event": "channel_closed_by_broker", "link": self.role},
        )
        connection.close()

    def reconnect(self, reason: str, abort: bool = False) -> None:
        """Close the current connection: the owner found its state gone at the broker (its queue deleted, say).
        The link reconnects as after a loss, and the owner's setup declares everything again.

        With `abort`, the TCP stream is dropped without the AMQP close handshake: RabbitMQ answers a close only
        once the connection's channels have ended, and a channel stuck in an RPC that the broker answers late (a
        declare of a queue whose node was killed: 64 s on 4.3) would hold the reconnect that long. pika has no
        public abort: its stream termination is what a lost connection goes through."""
        connection = self.connection
        if self.state not in (CONNECTING, READY) or connection is None or not connection.is_open:
            return
        if abort:
            connection._terminate_stream(StreamLostError(reason))  # type: ignore[attr-defined]
        else:
            connection.close(reply_text=reason[:200])

    def _lost(self, reason: str, cause: str, event: str) -> None:
        """The connection failed or ended: the owner fails what was in flight; reconnect after a backoff.

        Parked requests keep waiting for the next connection, each up to `connect_timeout`. The WARNING is logged
        once per `cause` and then at most once per `REPEAT_LOG_WINDOW` while the same cause repeats (a broker that
        stays down), with the count of the attempts in between; the others go to DEBUG.
        """
        if self.state is READY:
            self.losses += 1
        self._move(WAITING)
        self.last_error, self.last_error_at = reason, time.time()
        self.inflight.end(Ending.LOST, reason, resend=self.parked.park)
        self._owner.on_lost(reason)
        delay = self._retry_delay * random.uniform(0.5, 1.0)
        self._retry_delay = min(self._retry_delay * 2, RECONNECT_MAX_DELAY)
        self._repeats.log(
            cause,
            "%s; retrying in %.2fs (%s link)",
            reason,
            delay,
            self.role,
            extra={"event": event, "link": self.role, "url": self.url, "reason": cause},
        )
        self._ioloop.call_later(delay, self.connect)

    def _on_park_timeout(self, request: Request) -> None:
        waited = self.settings.connect_timeout
        if self.blocked:
            why = f"RabbitMQ kept blocking publishers for {waited:g}s ({self.blocked})"
        else:
            why = f"no connection to RabbitMQ within {waited:g}s: {self.last_error or 'no attempt has finished yet'}"
        if isinstance(request, Publish) and request.message_id:  # published before a cut, and not confirmed
            request.fail(ConfirmLost(f"{why}; the message may or may not have been delivered"))
        else:
            request.fail(BrokerUnavailable(why))

    # -- resource alarms ------------------------------------------------------------------------------------------

    @guarded
    def _on_blocked(self, _connection: Any, frame: Any) -> None:
        self.blocked = getattr(frame.method, "reason", "") or "resource alarm"
        logger.warning(
            "RabbitMQ blocks the %s connection: %s; its requests wait (each up to %gs)",
            self.role,
            self.blocked,
            self.settings.connect_timeout,
            extra={"event": "link_blocked", "link": self.role, "reason": self.blocked},
        )
        self._owner.on_blocked()

    @guarded
    def _on_unblocked(self, _connection: Any, _frame: Any) -> None:
        logger.info(
            "RabbitMQ unblocked the %s connection", self.role, extra={"event": "link_unblocked", "link": self.role}
        )
        self.blocked = None
        if self.state is READY:
            self._owner.on_ready(self.parked.take_all())

    # -- the end ----------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Fail waiting requests and close the connection; `on_stopped` follows once it is closed.

        A connection still opening is left to finish its handshake: `_on_connection_open` then closes it, or
        `_on_open_error` ends the link (pika cannot abort a handshake; see the module's theory of operation).
        """
        if self.state in (STOPPING, STOPPED):
            return
        self._move(STOPPING)
        closed = LayerClosed("the channel layer is closed")
        for request in self.parked.take_all():
            request.fail(closed)
        connection = self.connection
        if connection is None or connection.is_closed:
            self._stopped()
        elif connection.is_open:
            connection.close()

    def _stopped(self) -> None:
        if self.state is not STOPPED:
            self._move(STOPPED)
            self.inflight.end(Ending.CLOSED, "the channel layer is closed", resend=self.parked.park)
            self._owner.on_stopped()


def let_go_in_child(link: Link) -> None:
    """In a forked child: close the inherited copy of `link`'s socket, sending nothing.

    Best effort: it reaches into pika's transport for the socket.
    """
    sock = getattr(getattr(link.connection, "_transport", None), "_sock", None)
    try:
        if sock is not None:
            sock.close()
    except Exception:
        logger.debug("after fork: could not close an inherited socket", exc_info=True)


def _log_bad_move(link: Link, to: LinkState) -> None:
    logger.error(
        "The %s link moved from %s to %s, which its life cycle does not allow: please report this bug",
        link.role, link.state.name, to.name,
        extra={"event": "link_bad_move", "link": link.role},
    )  # fmt: skip
