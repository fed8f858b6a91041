"""Normal channels in groups: a normal channel's queue bound to a group on the groups exchange.

Theory of operation
-------------------
A normal channel (a name without `!`, `_config.Settings.normal_queue`) has a durable queue of its own that any
process may consume, so no process owns its memberships: `group_add(group, "jobs")` binds that queue to the group
on the groups exchange and `group_discard` unbinds it, and the binding lives on the broker, not in any process's
routing state. A `group_send` then puts one copy in the queue, which whichever process receives on the channel
takes (`consumer.ConsumerSide` delivers a group message found in a normal channel's queue to that channel).

Each change runs on a channel of its own on the publisher link's connection, which every process has (a process
that only sends needs no queue of its own for this), so that a refusal (a queue declared elsewhere with other
arguments) closes only that channel; its steps, each named by its RPC:

1. `channel.open` -> `_on_channel_open`
2. `queue.declare` of the normal queue, with the arguments every process declares it with -> `_on_declared`
3. `queue.bind` (or `queue.unbind`) on the groups exchange -> `_on_changed`: the caller is answered; the channel
   is closed.

A change waits in the link's `InFlight` (as a `BIND`): if the connection ends first, it runs again on the next one
(binds and unbinds are idempotent); a channel the broker closes answers it with the broker's reason.

Nothing here expires: `group_expiry` does not end such a membership, and the binding goes with its queue, which
RabbitMQ deletes once nobody has consumed or declared it for `group_expiry` seconds. `flush()` unbinds the
bindings this process made (the latest `names.NAMES_REMEMBERED`).

Owned by the I/O thread.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from .._bridge.requests import NormalGroupChange, UnbindNormalGroups
from .._config import Settings
from .._routing.names import RecentNames
from ..errors import RabbitmqLayerError
from .inflight import Waiting
from .link import Link
from .logs import guarded

logger = logging.getLogger("channels_rabbitmq_threaded.normal_groups")  # a public name: operations.md

_SEPARATOR = "\x00"  # between group and channel in a remembered binding: no valid name holds it


class NormalGroupBindings:
    """Binds and unbinds normal channels' queues to groups; see the module's theory of operation."""

    def __init__(self, settings: Settings, link: Link) -> None:
        self._settings = settings
        self._link = link
        self._made = RecentNames()  # "group\0channel" bindings this process made, for flush()

    def change(self, request: NormalGroupChange) -> None:
        """Make or remove one binding (the link is ready); answer `request` once RabbitMQ has."""
        connection = self._link.connection
        if connection is None:  # a ready link has one
            raise RabbitmqLayerError("the publisher link has no connection")
        self._link.inflight.add(Waiting.BIND, request)
        key = f"{request.group}{_SEPARATOR}{request.channel}"
        if request.joining:
            self._made.add(key)
        else:
            self._made.pop(key, None)
        connection.channel(on_open_callback=functools.partial(self._on_channel_open, request))

    def unbind_all(self, request: UnbindNormalGroups) -> list[NormalGroupChange]:
        """flush(): the changes that remove every binding this process made (run them); `request` is answered once
        the last is (at once if there is none). A failed one is logged: flush() goes on."""
        made = [key.split(_SEPARATOR, 1) for key in self._made]
        self._made.clear()
        if not made:
            request.resolve()
            return []
        reply = _AllAnswered(request, len(made))
        return [NormalGroupChange(reply=reply, group=group, channel=channel, joining=False) for group, channel in made]

    def __len__(self) -> int:
        return len(self._made)

    @guarded
    def _on_channel_open(self, request: NormalGroupChange, channel: Any) -> None:
        channel.add_on_close_callback(functools.partial(self._on_channel_closed, request))
        queue, arguments = self._settings.normal_queue(request.channel)
        channel.queue_declare(
            queue, durable=True, arguments=arguments, callback=functools.partial(self._on_declared, request, channel)
        )

    @guarded
    def _on_declared(self, request: NormalGroupChange, channel: Any, frame: Any) -> None:
        change = channel.queue_bind if request.joining else channel.queue_unbind
        change(
            frame.method.queue,  # DeclareOk names the queue just declared
            self._settings.groups_exchange,
            routing_key=request.group,
            callback=functools.partial(self._on_changed, request, channel),
        )

    @guarded
    def _on_changed(self, request: NormalGroupChange, channel: Any, _frame: Any) -> None:
        if self._link.inflight.settle(request):
            request.resolve()
        if channel.is_open:
            channel.close()

    @guarded
    def _on_channel_closed(self, request: NormalGroupChange, _channel: Any, reason: BaseException) -> None:
        connection = self._link.connection
        if connection is None or not connection.is_open:
            return  # the connection went: the link runs the change again on the next one
        if self._link.inflight.settle(request):  # refused by the broker
            verb = "add" if request.joining else "discard"
            request.fail(RabbitmqLayerError(f"RabbitMQ refused to {verb} {request.channel!r} in {request.group!r}: "
                                            f"{reason}"))  # fmt: skip


class _AllAnswered:
    """The reply of each of `count` changes: answers `request` once all are (a failure is logged, not raised)."""

    def __init__(self, request: UnbindNormalGroups, count: int) -> None:
        self._request = request
        self._left = count

    def resolve(self, value: object = None) -> None:
        self._left -= 1
        if self._left == 0:
            self._request.resolve()

    def fail(self, exc: BaseException) -> None:
        message = "flush() could not remove a normal channel's group binding: %s"
        logger.warning(message, exc, extra={"event": "normal_unbind_failed"})
        self.resolve()
