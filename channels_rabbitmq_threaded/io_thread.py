"""The I/O thread: the only code that touches pika.

Theory of operation
-------------------
One `IOThread` per layer runs a pika `IOLoop` in a daemon thread. On that loop it keeps one `SelectConnection` at
a time with one channel, and walks an explicit life cycle of small named callbacks:

    connect -> connection open -> channel open -> confirm mode -> declare groups exchange -> declare queue
    -> re-bind the groups that have local members -> qos -> consume -> READY

(Groups are bound before consuming starts, so once anything arrives after a reconnect, group traffic does too.)

Any failure on the way, or later, closes the connection; the thread then waits a backoff (exponential with jitter,
capped) and starts again with a *fresh* `SelectConnection` (pika mutates its parameters) on the same queue name.

Who touches what
----------------
* Other threads call only `submit(request)` (and `start`, `stop_and_join`, `is_alive`). `submit` appends to a
  deque and wakes the loop with `add_callback_threadsafe` only when no wake is already pending, so a burst of
  requests costs one wake. Everything else in this class runs in the I/O thread.
* The routing state (`routing.Inbox`: buffers, waiters, membership) is owned by this thread alone.
* Answers leave through `bridge.LoopReply` and `bridge.Waiter`, which use the callers' own loops.

Rules
-----
* Every callback handed to pika is wrapped by `_guarded`: an exception is logged and never reaches pika (where it
  would end `ioloop.start()` or tear the connection down).
* Nothing here blocks: no sleeps, no blocking puts, no waits on other threads.
* Nobody is left waiting: requests needing the broker are parked while (re)connecting and failed with
  `BrokerUnavailable` if the attempt fails; unconfirmed publishes fail with `ConfirmLost` when the connection dies;
  whatever is left when the thread ends is failed with `LayerClosed` (pika drops callbacks silently after its loop
  is closed, so `submit` checks for a stopped thread itself).
"""

from __future__ import annotations

import functools
import logging
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pika
import pika.spec
from channels.exceptions import StopConsumer
from pika.adapters.select_connection import IOLoop
from pika.exceptions import AMQPHeartbeatTimeout, ProbableAccessDeniedError, ProbableAuthenticationError

from .bridge import Waiter
from .config import Settings
from .envelope import MalformedBody, decode
from .errors import BrokerRefused, BrokerUnavailable, ConfirmLost, LayerClosed, RabbitmqLayerError
from .requests import (
    AwaitReady,
    Forget,
    GroupAdd,
    GroupDiscard,
    Publish,
    PutBack,
    Request,
    Stop,
    Take,
)
from .routing import Effects, Inbox

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

RECONNECT_FIRST_DELAY = 0.2  # seconds before the first retry
RECONNECT_MAX_DELAY = 5.0
STOP_TIMEOUT = 5.0  # how long a clean close may take before the loop is stopped anyway
DROP_LOG_WINDOW = 5.0  # seconds over which repeated drops are summed into one log line

# Connection states
CONNECTING, READY, WAITING, STOPPING = "connecting", "ready", "waiting to reconnect", "stopping"


def _guarded(method: F) -> F:
    """Wrap a callback given to pika: log any exception instead of letting it end the loop or the connection."""

    @functools.wraps(method)
    def guarded(self: Any, *args: Any) -> Any:
        try:
            return method(self, *args)
        except Exception:
            logger.exception("Error in %s (the I/O thread carries on)", method.__name__)
            return None

    return guarded  # type: ignore[return-value]


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


class DropLog:
    """Logs dropped messages at WARNING: the first at once, the rest of a burst summed per window (I/O thread)."""

    def __init__(self, ioloop: IOLoop) -> None:
        self._ioloop = ioloop
        self._counts: dict[str, int] = {}  # reason -> drops not yet logged
        self._window_open = False

    def log(self, reason: str, detail: str) -> None:
        if not self._window_open:
            self._window_open = True
            self._ioloop.call_later(DROP_LOG_WINDOW, self._close_window)
            logger.warning("Dropped a message: %s", detail)
        else:
            self._counts[reason] = self._counts.get(reason, 0) + 1

    @_guarded
    def _close_window(self) -> None:
        counts, self._counts = self._counts, {}
        self._window_open = False
        for reason, count in counts.items():
            logger.warning("Dropped %d more message(s) in the last %gs: %s", count, DROP_LOG_WINDOW, reason)


class LivenessWatch:
    """Declares a connection dead when RabbitMQ has sent nothing for 1.5 heartbeat intervals (I/O thread).

    RabbitMQ sends a heartbeat frame every `heartbeat / 2` seconds, so silence for `1.5 x heartbeat` means three
    frames missed. Checked every `heartbeat / 4`, a frozen or partitioned broker is noticed within 1.75 heartbeat
    intervals; pika's own checker (every `heartbeat + 5` s) may take up to `2 x (heartbeat + 5)` s.
    """

    def __init__(self, ioloop: IOLoop, connection: pika.SelectConnection, heartbeat: int) -> None:
        self._ioloop = ioloop
        self._connection = connection
        self._heartbeat = heartbeat
        self._seen = connection.bytes_received
        self._seen_at = time.monotonic()
        self._timer: Any = ioloop.call_later(heartbeat / 4, self._check)

    def stop(self) -> None:
        if self._timer is not None:
            self._ioloop.remove_timeout(self._timer)
            self._timer = None

    @_guarded
    def _check(self) -> None:
        self._timer = None
        connection, now = self._connection, time.monotonic()
        if connection.is_closing or connection.is_closed:
            return
        if connection.bytes_received != self._seen:
            self._seen, self._seen_at = connection.bytes_received, now
        elif now - self._seen_at > 1.5 * self._heartbeat:
            silence = now - self._seen_at
            logger.warning(
                "RabbitMQ sent nothing for %.1fs (heartbeat %ds): dropping the connection", silence, self._heartbeat
            )
            # What pika's own heartbeat checker does: abort the stream; on_close_callback follows.
            connection._terminate_stream(AMQPHeartbeatTimeout(f"no data from RabbitMQ for {silence:.1f}s"))
            return
        self._timer = self._ioloop.call_later(self._heartbeat / 4, self._check)


class ParkedRequests:
    """Requests that need the broker, waiting for a connection, each for at most `timeout` seconds (I/O thread)."""

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

    def release(self) -> list[Request]:
        """Take every waiting request out (to run it, or to fail it)."""
        if self._timer is not None:
            self._ioloop.remove_timeout(self._timer)
            self._timer = None
        released = [request for _, request in self._waiting]
        self._waiting.clear()
        return released

    @_guarded
    def _on_deadline(self) -> None:
        self._timer = None
        now = time.monotonic()
        while self._waiting and self._waiting[0][0] <= now:
            self._on_timeout(self._waiting.popleft()[1])
        if self._waiting:
            self._timer = self._ioloop.call_later(self._waiting[0][0] - now, self._on_deadline)


_DROP_REASONS = {
    "capacity": "local_capacity reached while receivers wait; dropped the oldest message of the biggest backlog",
    "expired": "waited longer than local_expiry; its channel was removed from its groups",
}


class IOThread:
    """Owns the pika connection for one layer. See the module's theory of operation."""

    def __init__(self, settings: Settings, queue_name: str) -> None:
        self.settings = settings
        self.queue_name = queue_name
        self._requests: deque[Request] = deque()  # any thread appends; the I/O thread pops
        self._wake_pending = False
        self._stopped = False  # set by the I/O thread as it ends; afterwards submit() fails requests itself
        self._death: BaseException = LayerClosed("the channel layer is closed")  # what late requests are told
        self._ioloop = IOLoop()
        self._thread = threading.Thread(target=self._run, name=f"channels-rabbitmq-io:{queue_name}", daemon=True)
        self._handlers: dict[type[Request], Callable[[Any], None]] = {
            Publish: self._publish,
            GroupAdd: self._group_add,
            GroupDiscard: self._group_discard,
            AwaitReady: self._await_ready,
            Stop: self._stop,
            Take: self._take,
            Forget: self._forget,
            PutBack: self._put_back,
        }
        # Everything below belongs to the I/O thread.
        self._routing: Inbox[Waiter, int] = Inbox(settings.local_capacity, settings.local_expiry)
        self._drops = DropLog(self._ioloop)
        self._state = CONNECTING
        self._connection: pika.SelectConnection | None = None
        self._channel: Any = None  # pika.channel.Channel of the current connection
        self._parked = ParkedRequests(self._ioloop, settings.connect_timeout, self._on_park_timeout)
        self._last_error = "not connected yet"  # why the latest connection attempt failed, for callers
        self._confirms: dict[int, Publish] = {}  # delivery tag -> publish awaiting its confirm
        self._confirm_order: deque[int] = deque()
        self._next_tag = 1
        self._binds: dict[str, list[GroupAdd]] = {}  # group -> requests answered by its bind in flight
        self._rebinds_left = 0
        self._retry_delay = RECONNECT_FIRST_DELAY
        self._expiry_timer: Any = None
        self._expiry_due: float | None = None
        self._stop_request: Stop | None = None
        self._liveness: LivenessWatch | None = None
        self._attempt = -1  # connection attempts so far; attempt n uses host n modulo the number of hosts
        self._url = settings.redacted_host(0)  # the (redacted) URL of the current attempt, for log lines

    # -- the thread-safe surface -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, request: Request) -> None:
        """Hand a request to the I/O thread (any thread; never blocks)."""
        self._requests.append(request)
        if self._stopped:  # the thread has ended, or is draining for the last time: nobody else will run this
            self._fail_requests(self._death)
            return
        if not self._wake_pending:
            self._wake_pending = True
            self._ioloop.add_callback_threadsafe(self._drain)

    def stop_and_join(self, timeout: float) -> None:
        """Stop the thread from a thread with no event loop (process exit); waits at most `timeout` seconds."""
        if self._thread.is_alive():
            self.submit(Stop(reply=None))
            self._thread.join(timeout)

    def let_go_in_child(self) -> None:
        """In a forked child: close the inherited copies of the parent's sockets, saying nothing to anyone.

        Only file descriptors are closed (no AMQP close, no TCP shutdown), so the parent's connection is untouched;
        without this, children would keep the parent's TCP connection open after the parent dies, and with it the
        parent's exclusive queue. Best effort: it reaches into pika's transport for the socket.
        """
        self._stopped = True
        connection = self._connection
        sock = getattr(getattr(connection, "_transport", None), "_sock", None)
        for close in (getattr(sock, "close", None), self._ioloop.close):
            try:
                if close is not None:
                    close()
            except Exception:
                logger.debug("after fork: could not close an inherited descriptor", exc_info=True)

    # -- the thread ------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._connect()
            self._ioloop.start()
        except BaseException as exc:  # a bug: callbacks are guarded, so this should never happen
            logger.exception("The channel layer's I/O thread stopped unexpectedly")
            self._death = RabbitmqLayerError(f"the channel layer's I/O thread stopped unexpectedly: {exc!r}")
        finally:
            death = self._death
            self._stopped = True
            self._fail_requests(death)
            self._fail_inflight(death, death)
            waiters, _ = self._routing.close()
            for waiter in waiters:
                waiter.fail(death)
            for request in self._parked.release():
                request.fail(death)
            self._ioloop.close()
            if self._stop_request is not None:
                self._stop_request.resolve()

    def _fail_requests(self, exc: BaseException) -> None:
        while True:
            try:
                request = self._requests.popleft()
            except IndexError:
                return
            request.fail(exc)

    @_guarded
    def _drain(self) -> None:
        self._wake_pending = False  # before popping: a request appended from now on brings its own wake
        while self._requests:
            self._handle(self._requests.popleft())
        self._schedule_expiry()

    def _handle(self, request: Request) -> None:
        try:
            if request.needs_broker and self._state != READY:
                if self._state == STOPPING:
                    request.fail(LayerClosed("the channel layer is closed"))
                else:
                    self._parked.park(request)
                return
            self._handlers[type(request)](request)
        except Exception as exc:
            logger.exception("Error handling %s", type(request).__name__)
            request.fail(RabbitmqLayerError(f"internal error handling {type(request).__name__}: {exc!r}"))

    # -- connection life cycle -------------------------------------------------------------------------------------

    @_guarded
    def _connect(self) -> None:
        self._state = CONNECTING
        self._attempt += 1
        self._url = self.settings.redacted_host(self._attempt)
        logger.debug("Connecting to RabbitMQ at %s", self._url)
        try:
            self._connection = pika.SelectConnection(
                self.settings.connection_parameters(f"channels_rabbitmq_threaded {self.queue_name}", self._attempt),
                on_open_callback=self._on_connection_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_connection_closed,
                custom_ioloop=self._ioloop,
            )
        except Exception as exc:
            self._on_open_error(None, exc)

    @_guarded
    def _on_connection_open(self, connection: pika.SelectConnection) -> None:
        heartbeat = connection.params.heartbeat  # the negotiated value, once the connection is open
        if heartbeat:
            self._liveness = LivenessWatch(self._ioloop, connection, heartbeat)
        connection.channel(on_open_callback=self._on_channel_open)

    @_guarded
    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=self._on_confirm_mode)

    @_guarded
    def _on_confirm_mode(self, _frame: Any) -> None:
        self._next_tag = 1  # both sides count publishes from 1 on every channel
        self._channel.exchange_declare(
            exchange=self.settings.groups_exchange,
            exchange_type="direct",
            durable=False,
            callback=self._on_exchange_declared,
        )

    @_guarded
    def _on_exchange_declared(self, _frame: Any) -> None:
        self._channel.queue_declare(
            queue=self.queue_name,
            exclusive=True,
            arguments={
                "x-max-length": self.settings.remote_capacity,
                "x-overflow": "reject-publish",
                "x-message-ttl": int(self.settings.expiry * 1000),
            },
            callback=self._on_queue_declared,
        )

    @_guarded
    def _on_queue_declared(self, _frame: Any) -> None:
        groups = self._routing.membership.groups()  # after a reconnect: the groups that still have local members
        self._rebinds_left = len(groups)
        if not groups:
            self._on_groups_bound()
        for group in groups:
            self._bind(group, self._on_rebound)

    @_guarded
    def _on_rebound(self, _frame: Any) -> None:
        self._rebinds_left -= 1
        if self._rebinds_left == 0:
            self._on_groups_bound()

    def _on_groups_bound(self) -> None:
        self._channel.basic_qos(prefetch_count=self.settings.prefetch_count, callback=self._on_qos_set)

    @_guarded
    def _on_qos_set(self, _frame: Any) -> None:
        self._channel.basic_consume(self.queue_name, self._on_delivery, callback=self._on_consuming)

    @_guarded
    def _on_consuming(self, _frame: Any) -> None:
        self._on_ready()

    def _on_ready(self) -> None:
        self._state = READY
        self._retry_delay = RECONNECT_FIRST_DELAY
        logger.info("Connected to RabbitMQ at %s; consuming queue %s", self._url, self.queue_name)
        for request in self._parked.release():
            self._handle(request)

    @_guarded
    def _on_open_error(self, _connection: Any, exc: BaseException) -> None:
        self._connection = None
        if self._state == STOPPING:
            self._ioloop.stop()
            return
        reason = f"cannot connect to RabbitMQ at {self._url}: {describe(exc)}"
        if is_refusal(exc):  # retrying won't help until an operator acts: tell the waiting callers now
            refused = BrokerRefused(reason)
            for request in self._parked.release():
                request.fail(refused)
        self._lost(reason)

    @_guarded
    def _on_connection_closed(self, _connection: Any, reason: BaseException) -> None:
        self._connection = None
        self._channel = None
        if self._liveness is not None:
            self._liveness.stop()
            self._liveness = None
        if self._state == STOPPING:
            self._fail_inflight(LayerClosed("the channel layer was closed before RabbitMQ confirmed"), None)
            self._ioloop.stop()
            return
        self._lost(f"lost the connection to RabbitMQ at {self._url}: {describe(reason)}")

    @_guarded
    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        connection = self._connection
        if self._state == STOPPING or connection is None or connection.is_closing or connection.is_closed:
            return
        logger.warning("RabbitMQ closed the channel (%s); reconnecting", reason)
        connection.close()

    def _lost(self, reason: str) -> None:
        """The connection failed or ended: answer what was in flight on it, then reconnect after a backoff.

        Parked requests keep waiting for the next connection, each up to `connect_timeout`.
        """
        self._state = WAITING
        self._last_error = reason
        self._fail_inflight(ConfirmLost(f"{reason}; the message may or may not have been delivered"), None)
        lost = self._routing.discard_held()
        if lost:
            logger.warning("%d message(s) received but not yet routed were lost with the connection", lost)
        delay = self._retry_delay * random.uniform(0.5, 1.0)
        self._retry_delay = min(self._retry_delay * 2, RECONNECT_MAX_DELAY)
        logger.warning("%s; retrying in %.2fs", reason, delay)
        self._ioloop.call_later(delay, self._connect)

    def _fail_inflight(self, confirm_exc: BaseException, bind_exc: BaseException | None) -> None:
        """Fail the publishes awaiting a confirm and the group_adds awaiting a bind on a connection that is gone."""
        confirms, self._confirms = self._confirms, {}
        self._confirm_order.clear()
        for publish in confirms.values():
            publish.fail(confirm_exc)
        bind_exc = bind_exc or BrokerUnavailable(
            f"{self._last_error}; the membership is kept and its binding restored on reconnect"
        )
        binds, self._binds = self._binds, {}
        for requests in binds.values():
            for request in requests:
                request.fail(bind_exc)

    def _on_park_timeout(self, request: Request) -> None:
        request.fail(
            BrokerUnavailable(
                f"no connection to RabbitMQ within {self.settings.connect_timeout:g}s: {self._last_error}"
            )
        )

    # -- requests ----------------------------------------------------------------------------------------------------

    def _publish(self, request: Publish) -> None:
        self._channel.basic_publish(request.exchange, request.routing_key, request.body, mandatory=request.mandatory)
        tag, self._next_tag = self._next_tag, self._next_tag + 1
        self._confirms[tag] = request
        self._confirm_order.append(tag)

    def _group_add(self, request: GroupAdd) -> None:
        first = self._routing.add_member(request.group, request.channel, time.monotonic())
        if first:
            self._binds[request.group] = [request]
            self._bind(request.group, functools.partial(self._on_bound, request.group, self._binds[request.group]))
        elif request.group in self._binds:  # its bind is in flight: answer when it is done
            self._binds[request.group].append(request)
        else:
            request.resolve()

    def _bind(self, group: str, callback: Callable[[Any], None]) -> None:
        self._channel.queue_bind(self.queue_name, self.settings.groups_exchange, routing_key=group, callback=callback)

    @_guarded
    def _on_bound(self, group: str, requests: list[GroupAdd], _frame: Any) -> None:
        if self._binds.get(group) is requests:
            del self._binds[group]
        for request in requests:
            request.resolve()

    def _group_discard(self, request: GroupDiscard) -> None:
        if self._routing.discard_member(request.group, request.channel):
            self._unbind(request.group)
        request.resolve()

    def _unbind(self, group: str) -> None:
        self._binds.pop(group, None)  # a later group_add binds anew; the bind in flight still answers its own
        if self._channel is not None and self._channel.is_open:
            self._channel.queue_unbind(
                self.queue_name, self.settings.groups_exchange, routing_key=group, callback=self._on_unbound
            )

    @_guarded
    def _on_unbound(self, _frame: Any) -> None:
        pass

    def _await_ready(self, request: AwaitReady) -> None:
        request.resolve()

    def _stop(self, request: Stop) -> None:
        if self._state == STOPPING:
            request.resolve()  # a second close(): the first one reports the end
            return
        self._state = STOPPING
        self._stop_request = request
        closed = LayerClosed("the channel layer is closed")
        for parked_request in self._parked.release():
            parked_request.fail(closed)
        waiters, dropped = self._routing.close()
        for waiter in waiters:
            waiter.fail(StopConsumer())
        if dropped:
            logger.warning("Closing the channel layer dropped %d undelivered message(s)", dropped)
        self._ioloop.call_later(STOP_TIMEOUT, self._ioloop.stop)
        connection = self._connection
        if connection is None or connection.is_closing or connection.is_closed:
            self._ioloop.stop()
        else:
            connection.close()

    def _take(self, request: Take) -> None:
        self._apply(self._routing.take(request.waiter.channel, request.waiter, time.monotonic()))

    def _forget(self, request: Forget) -> None:
        waiter = request.waiter
        if not self._routing.forget(waiter.channel, waiter):
            message = waiter.reclaim()
            if message is not None:
                self._put_back(PutBack(waiter.channel, message, waiter.expires_at))

    def _put_back(self, request: PutBack) -> None:
        now = time.monotonic()
        self._apply(self._routing.put_back(request.channel, request.message, request.expires_at, now))

    # -- deliveries and confirms -------------------------------------------------------------------------------------

    @_guarded
    def _on_delivery(self, channel: Any, method: pika.spec.Basic.Deliver, _props: Any, body: bytes) -> None:
        tag: int = method.delivery_tag  # type: ignore[assignment]
        try:
            recipient, message = decode(body)
        except MalformedBody as exc:
            logger.warning(
                "Dropped a %d-byte message on queue %s that is not ours: %s", len(body), self.queue_name, exc
            )
            channel.basic_ack(tag)
            return
        self._apply(self._routing.offer(tag, recipient, message, time.monotonic()))
        self._schedule_expiry()

    def _apply(self, effects: Effects[Waiter, int]) -> None:
        """Carry out what the routing state decided: hand-offs, acks, log lines, unbinds."""
        handoffs = deque(effects.handoffs)
        while handoffs:
            handoff = handoffs.popleft()
            if not handoff.waiter.offer(handoff.message, handoff.expires_at):  # its loop is closed
                retry = self._routing.put_back(handoff.channel, handoff.message, handoff.expires_at, time.monotonic())
                handoffs.extend(retry.handoffs)
                self._apply_rest(retry)
        self._apply_rest(effects)

    def _apply_rest(self, effects: Effects[Waiter, int]) -> None:
        channel = self._channel
        if effects.acks and channel is not None and channel.is_open:
            for tag in effects.acks:
                channel.basic_ack(tag)
        for drop in effects.drops:
            if drop.reason == "no local member":
                logger.debug("Group message for %s arrived with no local member; acknowledged", drop.channel)
            else:
                detail = f"channel {drop.channel}: {_DROP_REASONS[drop.reason]}"
                self._drops.log(drop.reason, f"{detail}; biggest backlogs: {self._routing.biggest_backlogs()}")
        for group in effects.unbind:
            self._unbind(group)
        if effects.paused:
            logger.warning(
                "local_capacity (%d) reached and no receive() is waiting: pausing consumption; RabbitMQ keeps the "
                "backlog and senders get ChannelFull at remote_capacity. Biggest backlogs: %s",
                self._routing.capacity,
                self._routing.biggest_backlogs(),
            )

    @_guarded
    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tag = method.delivery_tag
        if method.multiple:
            order = self._confirm_order
            while order and order[0] <= tag:
                publish = self._confirms.pop(order.popleft(), None)
                if publish is not None:
                    publish.resolve(acked)
        else:
            publish = self._confirms.pop(tag, None)
            if publish is not None:
                publish.resolve(acked)
            while self._confirm_order and self._confirm_order[0] not in self._confirms:
                self._confirm_order.popleft()

    @_guarded
    def _on_return(self, _channel: Any, method: Any, _props: Any, body: bytes) -> None:
        if method.exchange:  # a group_send that no process is subscribed to: normal for an empty group
            logger.debug(
                "group_send to %r reached no process (%s); %d bytes dropped",
                method.routing_key,
                method.reply_text,
                len(body),
            )
            return
        logger.warning(
            "Dropped a %d-byte message: RabbitMQ has no queue %r (%s %s); the process that owned that channel is gone",
            len(body),
            method.routing_key,
            method.reply_code,
            method.reply_text,
        )

    # -- local expiry ------------------------------------------------------------------------------------------------

    def _schedule_expiry(self) -> None:
        due = self._routing.next_expiry()
        if due == self._expiry_due:
            return
        if self._expiry_timer is not None:
            self._ioloop.remove_timeout(self._expiry_timer)
            self._expiry_timer = None
        self._expiry_due = due
        if due is not None:
            self._expiry_timer = self._ioloop.call_later(max(0.0, due - time.monotonic()), self._on_expiry_due)

    @_guarded
    def _on_expiry_due(self) -> None:
        self._expiry_timer = None
        self._expiry_due = None
        self._apply(self._routing.expire(time.monotonic()))
        self._schedule_expiry()
