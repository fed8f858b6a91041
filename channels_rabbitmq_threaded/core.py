"""`RabbitmqChannelLayer`: the Channels API, as a thin facade over the I/O thread.

Theory of operation: each method validates its arguments on the caller's thread (bad input raises `TypeError` or
`ValueError` at once and changes nothing), builds a request, hands it to the layer's `IOThread` and awaits the
answer on the caller's own event loop, whichever loop that is (with ``wait_for_confirms=False``, sends are handed
over without an answer, up to a bound: `IOThread.submit_unwaited`). Nothing here keeps loop-bound state, so the same
layer serves the ASGI server's loop and every short-lived loop that `async_to_sync` makes. Nothing here touches
pika or blocks a loop: the only lock guards the one-time start of the I/O thread.

Names: `new_channel()` returns `<prefix>.<address>!<id>`, where `<address>` (`queue_name`) names this process: its
queue is bound to the direct exchange by it (`process_queue.py`). A direct `send()` to any `...<address>!...` name
publishes to the direct exchange with the address as routing key; groups are bindings of the queue on the groups
exchange, one per group with a local member. A name without `!` is a normal
channel: one durable queue shared by every process that receives on it (`Settings.normal_queue`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import reprlib
import secrets
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from ._bridge.handoffs import LoopReply, ThreadReply, Waiter, refuse_blocking_on_a_loop
from ._bridge.requests import (
    Answered,
    AwaitReady,
    Flush,
    Forget,
    GroupAdd,
    GroupDiscard,
    NormalGroupChange,
    Publish,
    PutBack,
    Request,
    Stop,
    Take,
    UnbindNormalGroups,
)
from ._bulk import BulkSender, Item
from ._config import Settings, is_process_specific, optional_positive_seconds, positive_seconds
from ._io.io_thread import IOThread
from ._routing.envelope import FLUSH_GROUP, Recipient, encode
from ._routing.names import RecentNames
from .errors import BrokerUnavailable, LayerClosed, MessageTooLarge, RabbitmqLayerError
from .stats import CallStats, LayerStats, idle

logger = logging.getLogger(__name__)

_live_threads: weakref.WeakSet[IOThread] = weakref.WeakSet()
_warned_once: set[str] = set()
_all_layers: weakref.WeakSet[RabbitmqChannelLayer] = weakref.WeakSet()
EXIT_TIMEOUT = 2.0  # seconds each I/O thread gets to close its connection when the interpreter exits


@atexit.register
def _close_at_exit() -> None:
    for io_thread in list(_live_threads):
        io_thread.stop_and_join(EXIT_TIMEOUT)


async def close_all_layers() -> None:
    """Close every `RabbitmqChannelLayer` of this process (at an ASGI server's shutdown: `CloseLayersAtShutdown`)."""
    for layer in list(_all_layers):
        await layer.close()


def _after_fork_in_child() -> None:
    """In a forked child (Celery prefork, gunicorn --preload) no I/O thread runs: start afresh on first use."""
    _live_threads.clear()
    for layer in list(_all_layers):
        layer._become_child(fresh_lock=True)


os.register_at_fork(after_in_child=_after_fork_in_child)


def channels_layers() -> dict[str, RabbitmqChannelLayer]:
    """The layers of this backend that Channels has built in this process, by `CHANNEL_LAYERS` alias (what the
    Prometheus and OpenTelemetry exporters watch by default)."""
    from channels.layers import channel_layers

    return {alias: layer for alias, layer in channel_layers.backends.items() if isinstance(layer, RabbitmqChannelLayer)}


class RabbitmqChannelLayer(BaseChannelLayer):
    """A Channels layer on RabbitMQ whose connection lives in its own thread, so it works from any event loop.

    Options: all keyword, those of channels_rabbitmq and more; `_config.Settings.from_options` takes and checks them
    (`_config.OPTION_NAMES` lists them), and ``docs/configuration.md`` has a section for each.
    """

    extensions: ClassVar[list[str]] = ["groups", "flush"]

    def __init__(self, **options: Any) -> None:
        self.settings = Settings.from_options(**options)
        # Channels keeps `expiry` as given (its stubs say int; seconds may be a float here) and compiles
        # `channel_capacity` into a list of (pattern, capacity) itself (its stubs say dict): ours is compiled already.
        super().__init__(expiry=self.settings.expiry, capacity=self.settings.capacity)  # type: ignore[arg-type]
        self.channel_capacity = list(self.settings.channel_capacity)  # type: ignore[assignment]
        self.group_expiry = self.settings.group_expiry
        self._queue_name = _new_queue_name()
        self._pid = os.getpid()  # the process this layer's queue name and I/O thread belong to
        self._io_thread: IOThread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._calls = CallStats()
        self._bulk = BulkSender(self._send_request, self._group_send_request, self._submit, self._calls)
        self._receivable = RecentNames()  # names receive() has checked already (a receiver calls it in a loop)
        self._sendable = RecentNames()  # names send() has checked already
        _all_layers.add(self)

    @property
    def queue_name(self) -> str:
        """This process's queue (`channels_<12 hex>`), the address in its channel names; a forked child has its own."""
        if self._pid != os.getpid():
            self._adopt_this_process()
        return self._queue_name

    # -- the Channels API -----------------------------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new process-specific channel of this layer, `<prefix>.<queue>!<id>`, ready to receive."""
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        name = f"{prefix}.{self.queue_name}!{secrets.token_hex(8)}"
        self.require_valid_channel_name(name)
        await self._ask(AwaitReady(reply=None))
        return name

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send `message` to `channel`; raises ChannelFull when the receiving queue is full.

        Returns once RabbitMQ has confirmed the message. With ``wait_for_confirms=False`` it returns as soon as the
        I/O thread has it, and a full queue is logged as a dropped message instead of raising ChannelFull.
        """
        publish = self._send_request(channel, message)
        if self._sent_unwaited(publish):
            return
        with self._calls.timing("send") as answers:
            answers.append(await self._ask(publish))
        if not answers[0]:
            raise ChannelFull(channel)

    def send_sync(self, channel: str, message: dict[str, Any], timeout: float | None = None) -> None:
        """`send` for code with no event loop (Celery tasks, WSGI views, management commands, plain threads).

        Hands the publish straight to the I/O thread and blocks this thread until RabbitMQ confirms it: no event
        loop is made, unlike `async_to_sync(layer.send)`. Same validation and `ChannelFull`. Refuses to run in a
        thread whose event loop is running (it would block that loop): use `await layer.send(...)` there.
        `timeout` (seconds, default none) bounds the wait with a `TimeoutError`; the layer's own bounds
        (`connect_timeout`, heartbeats) apply anyway.
        """
        refuse_blocking_on_a_loop("send_sync")
        optional_positive_seconds("timeout", timeout)
        publish = self._send_request(channel, message)
        if self._sent_unwaited(publish):
            return
        with self._calls.timing("send") as answers:
            answers.append(self._ask_sync(publish, timeout))
        if not answers[0]:
            raise ChannelFull(channel)

    def _send_request(self, channel: str, message: dict[str, Any]) -> Publish:
        if type(channel) is not str or channel not in self._sendable:
            self.require_valid_channel_name(channel)
            self._sendable.add(channel)
        body = self._encode(message, Recipient(is_group=False, name=channel))
        if is_process_specific(channel):  # process-specific: to the address of the process named in it
            exchange = self.settings.direct_exchange
            return Publish(reply=None, exchange=exchange, routing_key=_queue_of(channel), body=body, mandatory=True)
        # normal: a queue shared by every process that receives on it, declared before the first publish
        queue, arguments = self.settings.normal_queue(channel)
        return Publish(reply=None, routing_key=queue, body=body, mandatory=True, declare=(queue, arguments))

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message for one of this layer's channels, on whichever event loop calls it.

        Cancellation-safe: a message that reached a cancelled receive() goes back to the head of its channel.
        """
        if channel not in self._receivable:
            self.require_valid_channel_name(channel)
            if is_process_specific(channel):
                self._require_local(channel)
            self._receivable.add(channel)
        io_thread = self._io()
        message = io_thread.take_ready(channel)  # already here: no request, no wake-up, no future
        if message is not None:
            return message
        waiter = Waiter(asyncio.get_running_loop(), channel, self._refused, lambda w: io_thread.submit(Forget(w)))
        if not io_thread.wait_ready(waiter):
            io_thread.submit(Take(waiter))
        return await waiter.wait()

    async def group_add(self, group: str, channel: str) -> None:
        """Add `channel` to `group`; returns once the group's binding is in effect. A process-specific channel must
        be one of this layer's; a normal channel's queue is bound to the group (`normal_groups.py`)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        if not is_process_specific(channel):
            await self._ask(NormalGroupChange(reply=None, group=group, channel=channel, joining=True))
            return
        self._require_local(channel)
        await self._ask(GroupAdd(reply=None, group=group, channel=channel))

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove `channel` from `group` (nothing happens if it is not a member)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        if not is_process_specific(channel):
            await self._ask(NormalGroupChange(reply=None, group=group, channel=channel, joining=False))
            return
        self._require_local(channel)
        await self._ask(GroupDiscard(reply=None, group=group, channel=channel))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send `message` to every member of `group`, in every process. Never raises ChannelFull."""
        publish = self._group_send_request(group, message)
        if not self._sent_unwaited(publish):
            with self._calls.timing("group_send") as answers:  # a nack (a member's queue full) is logged as a drop
                answers.append(await self._ask(publish))

    def group_send_sync(self, group: str, message: dict[str, Any], timeout: float | None = None) -> None:
        """`group_send` for code with no event loop; see `send_sync`."""
        refuse_blocking_on_a_loop("group_send_sync")
        optional_positive_seconds("timeout", timeout)
        publish = self._group_send_request(group, message)
        if not self._sent_unwaited(publish):
            with self._calls.timing("group_send") as answers:
                answers.append(self._ask_sync(publish, timeout))

    def _group_send_request(self, group: str, message: dict[str, Any]) -> Publish:
        self.require_valid_group_name(group)
        body = self._encode(message, Recipient(is_group=True, name=group))
        return Publish(reply=None, exchange=self.settings.groups_exchange, routing_key=group, body=body, mandatory=True)

    async def send_many(self, messages: Iterable[Item]) -> None:
        """Send each `(channel, message)` pair; returns once RabbitMQ confirmed them all.

        Every item is checked before anything is sent. Raises `ChannelFull` naming the channels (`.channels`) whose
        queue was full (the others were sent), or the first failure's type naming the items that failed (`.names`).
        Always waits for the confirms, also with `wait_for_confirms=False`: one wait for the whole batch.
        """
        await self._bulk.send(messages, to_groups=False)

    def send_many_sync(self, messages: Iterable[Item], timeout: float | None = None) -> None:
        """`send_many` for code with no event loop; `timeout` as in `send_sync`."""
        self._bulk.send_sync("send_many_sync", messages, timeout, to_groups=False)

    async def group_send_many(self, messages: Iterable[Item]) -> None:
        """Send each `(group, message)` pair to every member of its group; one wait for all the confirms. Never
        raises `ChannelFull` (a member's full queue drops that member's copy, as in `group_send`)."""
        await self._bulk.send(messages, to_groups=True)

    def group_send_many_sync(self, messages: Iterable[Item], timeout: float | None = None) -> None:
        """`group_send_many` for code with no event loop (a Celery task that notifies many users' groups)."""
        self._bulk.send_sync("group_send_many_sync", messages, timeout, to_groups=True)

    async def flush(self) -> None:
        """Reset this layer to blank, for tests (as in channels_redis).

        When it returns, no message sent before it will be delivered by this process, and this process's group
        memberships are gone. The other processes of the deployment (same broker and `groups_exchange`) drop their
        memberships too, when the control message reaches them (milliseconds later; not awaited). Waiting
        receive() calls keep waiting.
        """
        await self._ask(Flush(reply=None))
        await self._ask(UnbindNormalGroups(reply=None))
        body = encode({"from": self.queue_name}, Recipient(is_group=True, name=FLUSH_GROUP), self.settings.fernet)
        await self._ask(Publish(reply=None, exchange=self.settings.control_exchange, routing_key="", body=body))

    async def close(self) -> None:
        """Close the connection and stop the I/O thread. Pending receive() calls get StopConsumer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        io_thread = self._io_thread
        if io_thread is not None and io_thread.is_alive():
            reply = LoopReply(asyncio.get_running_loop())
            io_thread.submit(Stop(reply=reply))
            with contextlib.suppress(RabbitmqLayerError):  # the thread ended on its own meanwhile: closed anyway
                await reply.future

    # -- watching the layer -------------------------------------------------------------------------------------

    def stats(self) -> LayerStats:
        """A snapshot of the layer's counters and gauges, cheap and safe from any thread (docs/operations.md)."""
        io_thread = self._io_thread
        if io_thread is None:
            return idle(self._calls)
        return io_thread.figures.snapshot(self._calls, checked_names=len(self._receivable))

    async def ping(self, timeout: float = 5.0) -> float:
        """Prove the whole way, as a health check: a message to a new channel of this process, through RabbitMQ and
        back to receive(). Returns the round trip in seconds; raises `BrokerUnavailable` within `timeout` seconds."""
        timeout = positive_seconds("timeout", timeout)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._round_trip(), timeout)
        except asyncio.TimeoutError:
            stats = self.stats()
            links = f"publisher {stats.publisher.state}, consumer {stats.consumer.state}"
            failing = stats.consumer if stats.consumer.state != "READY" else stats.publisher
            raise BrokerUnavailable(
                f"no round trip through RabbitMQ within {timeout:g}s ({links}; last error: "
                f"{failing.last_error or 'none'})"
            ) from None
        return time.perf_counter() - started

    def ping_sync(self, timeout: float = 5.0) -> float:
        """`ping` for code with no event loop (a health-check view under WSGI, a management command)."""
        refuse_blocking_on_a_loop("ping_sync")
        return asyncio.run(self.ping(timeout))

    async def _round_trip(self) -> None:
        channel = await self.new_channel("ping")
        await self.send(channel, {"type": "ping"})
        await self.receive(channel)

    # -- validation -----------------------------------------------------------------------------------------------

    def require_valid_channel_name(self, name: Any, receive: bool = False) -> bool:
        """Channels' check, with the offending name (shortened) and its length in the `TypeError`."""
        return _explained(super().require_valid_channel_name, name, receive)

    def require_valid_group_name(self, name: Any) -> bool:
        """Channels' check, with the offending name (shortened) and its length in the `TypeError`."""
        return _explained(super().require_valid_group_name, name)

    # -- plumbing -------------------------------------------------------------------------------------------------

    def _io(self) -> IOThread:
        """The running I/O thread, started on first use in each process."""
        if self._closed:
            raise LayerClosed("the channel layer is closed")
        if self._pid != os.getpid():
            self._adopt_this_process()
        io_thread = self._io_thread
        if io_thread is None:
            with self._start_lock:  # held only while a thread object is made and started, once per layer and process
                if self._io_thread is None:
                    _warn_once_under_gevent()
                    self._io_thread = IOThread(self.settings, self._queue_name)
                    self._io_thread.start()
                    _live_threads.add(self._io_thread)
                io_thread = self._io_thread
        elif not io_thread.is_alive():
            raise RabbitmqLayerError("the channel layer's I/O thread has stopped; see the log for why")
        return io_thread

    def _adopt_this_process(self) -> None:
        """`_after_fork_in_child`, for a child forked without Python's hooks (uWSGI forks its workers in C)."""
        with self._start_lock:
            if self._pid != os.getpid():
                self._become_child()

    async def _ask(self, request: Answered) -> Any:
        """Submit a request that has a reply, and await the reply on this loop."""
        io_thread = self._io()
        reply = LoopReply(asyncio.get_running_loop())
        request.reply = reply
        io_thread.submit(request)
        return await reply.future

    def _encode(self, message: dict[str, Any], recipient: Recipient) -> bytes:
        body = encode(message, recipient, self.settings.fernet)
        if len(body) > self.settings.max_message_size:
            # RabbitMQ would close the channel over it, failing every publish in flight: refuse it here instead.
            raise MessageTooLarge(
                f"message for {recipient.name!r} is {len(body)} bytes encoded; max_message_size is "
                f"{self.settings.max_message_size}"
            )
        return body

    def _become_child(self, fresh_lock: bool = False) -> None:
        """After fork, in the child: the parent's thread, connection, queue and channels are not ours."""
        if fresh_lock:
            self._start_lock = threading.Lock()  # it may have been held by a thread that does not exist here
        io_thread, self._io_thread = self._io_thread, None
        self._queue_name = _new_queue_name()
        self._receivable.clear()  # they were the parent's channels
        self._pid = os.getpid()  # last: a thread that sees its own pid here takes the name above without the lock
        if io_thread is not None:
            _live_threads.discard(io_thread)
            io_thread.let_go_in_child()

    def _submit(self, *requests: Request) -> None:
        """Hand requests to the I/O thread (starting it on first use), in order, with one wake-up."""
        self._io().submit(*requests)

    def _sent_unwaited(self, publish: Publish) -> bool:
        """With `wait_for_confirms=False`: hand the publish over without waiting for it (True), unless too many
        publishes are already in flight (False: the caller waits for this one's confirm, which slows it down)."""
        return not self.settings.wait_for_confirms and self._io().submit_unwaited(publish)

    def _ask_sync(self, request: Answered, timeout: float | None) -> Any:
        """Submit a request that has a reply, and block this (loopless) thread until it is answered."""
        io_thread = self._io()
        reply = ThreadReply()
        request.reply = reply
        io_thread.submit(request)
        return reply.wait(timeout)

    def _refused(self, channel: str, message: dict[str, Any], expires_at: float) -> None:
        """A message handed to a receive() that did not take it (any thread): back to its channel."""
        io_thread = self._io_thread
        if io_thread is not None:
            io_thread.submit(PutBack(channel, message, expires_at))

    def _require_local(self, channel: str) -> None:
        if _queue_of(channel) != self.queue_name:
            raise ValueError(
                f"channel {channel!r} does not belong to this process's layer "
                "(only names from this layer's new_channel() can be received on or added to groups here)"
            )


def _warn_once_under_gevent() -> None:
    """In a process gevent has patched (`gunicorn -k gevent`, `celery -P gevent`), asgiref's `async_to_sync` raises
    before any layer is called; the `_sync` methods work there (the I/O thread runs as gevent lets it). Say so once."""
    monkey = sys.modules.get("gevent.monkey")
    if "gevent" in _warned_once or monkey is None or not monkey.is_module_patched("threading"):
        return
    _warned_once.add("gevent")
    logger.warning(
        "This process is patched by gevent: asgiref's async_to_sync(layer.group_send) raises 'You cannot use "
        "AsyncToSync in the same thread as an async event loop' here; call layer.group_send_sync and "
        "layer.send_sync instead (docs/worker-models.md)",
        extra={"event": "gevent_patched"},
    )


def _explained(check: Callable[..., bool], name: Any, *more: Any) -> bool:
    """Channels' name check, its `TypeError` completed with the offending name."""
    try:
        return check(name, *more)
    except TypeError as exc:
        raise TypeError(f"{exc} Got {_describe_name(name)}.") from None


def _describe_name(name: Any, shown: int = 60) -> str:
    """A name for an error message: its repr cut to `shown` characters, and its length (or its type)."""
    if not isinstance(name, str):
        return f"{type(name).__name__} {reprlib.repr(name)}"
    text = repr(name) if len(name) <= shown else f"{name[:shown]!r}... (cut)"
    return f"{text}, {len(name)} characters"


def _new_queue_name() -> str:
    return "channels_" + secrets.token_hex(6)


def _queue_of(channel: str) -> str:
    """The queue of a process-specific channel: the part between the last '.' and the '!'. ValueError if normal."""
    local, bang, _ = channel.partition("!")
    if not bang:
        raise ValueError(
            f"channel {channel!r} is a normal channel (no '!'): only process-specific channels from new_channel() "
            "can join groups"
        )
    return local.rpartition(".")[2]
