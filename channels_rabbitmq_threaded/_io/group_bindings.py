"""The process queue's bindings on the groups exchange: one per group with a local member, unbound after a delay.

Theory of operation
-------------------
A `group_add` that makes a group's first local member binds the group (`queue.bind`, routing key = the group) and
is answered by its `BindOk`; the requests of a bind in flight wait for it, registered in the link's `InFlight`
(`Waiting.BIND`), which answers them if the connection ends first. The last member's leaving unbinds the group
after `group_unbind_delay` seconds (`DelayedUnbinds`): a websocket that reconnects to the same process, or a member
that leaves and joins again, costs no broker operation; a group message that arrives meanwhile finds no local
member and is dropped, as it would be unbound.

Binds and unbinds are spread over the consumer connection's channels (`Link.open_more_channels`): pika runs one RPC
at a time per channel, and a join storm of per-user groups binds faster over several (`docs/performance.md`). A
group always uses the same channel (a hash of its name), so its binds and unbinds stay in order.

A leased queue keeps its bindings over a cut: an unbind that could not be sent, or that was still waiting for its
delay, is remembered as stale and sent once reconnected (`GroupBindings.rebind`); an exclusive queue's bindings die
with it. Everything here runs on the I/O thread.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

from .._bridge.requests import GroupAdd
from .._config import Settings
from .inflight import Waiting
from .link import Link
from .logs import guarded
from .process_queue import ProcessQueue


class GroupBindings:
    """The bindings of the process's queue on the groups exchange, one per group with a local member.

    A `group_add` that makes a group's first local member binds it and is answered by its `BindOk` (the requests of
    a bind in flight wait for it, registered in the link's `InFlight`); the last member's leaving unbinds it after
    `group_unbind_delay` (`DelayedUnbinds`). A leased queue keeps its bindings over a cut, so an unbind that could
    not be sent, or that was still waiting for its delay, is sent once reconnected (`rebind`). Binds and unbinds are
    spread over the link's channels, a group always on the same one, so that its binds and unbinds stay in order.
    Owned by the I/O thread.
    """

    def __init__(self, settings: Settings, ioloop: Any, link: Link, queue: ProcessQueue) -> None:
        self._settings = settings
        self._link = link
        self._queue = queue
        self._binds: dict[str, list[GroupAdd]] = {}  # group -> requests answered by its bind in flight
        self._delayed = DelayedUnbinds(ioloop, settings.group_unbind_delay, self.unbind)
        self._stale: set[str] = set()  # groups to unbind once reconnected (a leased queue keeps its bindings)

    def bookkeeping(self) -> dict[str, int]:
        return {
            "binds_in_flight": len(self._binds),
            "delayed_unbinds": len(self._delayed),
            "stale_bindings": len(self._stale),
        }

    def add_member(self, request: GroupAdd, first: bool) -> None:
        """A `group_add`: bind the group for its first local member; answer once the binding is in effect."""
        group = request.group
        if first and self._delayed.cancel(group):  # its binding is still there: no broker operation
            first = False
        if first:
            requests = self._binds[group] = [request]
            self._link.inflight.add(Waiting.BIND, request)
            self.bind(group, lambda _frame: self._on_bound(group, requests))
        elif group in self._binds:  # its bind is in flight: answer when it is done
            self._binds[group].append(request)
            self._link.inflight.add(Waiting.BIND, request)
        else:
            request.resolve()

    def bind(self, group: str, callback: Callable[[Any], None]) -> None:
        self._channel_of(group).queue_bind(
            self._queue.name, self._settings.groups_exchange, routing_key=group, callback=callback
        )

    def rebind(self, groups: list[str], each_done: Callable[[Any], None]) -> None:
        """After a (re)connect: unbind the stale groups that have no member now, bind every group in `groups`."""
        for group in sorted(self._stale.difference(groups)):
            self.unbind_now(group)
        self._stale.clear()
        for group in groups:
            self.bind(group, each_done)

    def _channel_of(self, group: str) -> Any:
        """The channel that binds and unbinds `group`: always the same one, so that they stay in order."""
        channels = [self._link.channel, *self._link.more_channels]
        return channels[zlib.crc32(group.encode()) % len(channels)]

    @guarded
    def _on_bound(self, group: str, requests: list[GroupAdd]) -> None:
        if self._binds.get(group) is requests:
            del self._binds[group]
        for request in requests:
            if self._link.inflight.settle(request):
                request.resolve()

    def unbind_later(self, group: str) -> None:
        """The group's last local member left: unbind it after `group_unbind_delay`, unless a member joins again."""
        self._delayed.unbind_later(group)

    def unbind(self, group: str) -> None:
        self._delayed.cancel(group)
        self._binds.pop(group, None)  # a later group_add binds anew; the bind in flight still answers its own
        if self._link.channel_open:
            self.unbind_now(group)
        elif self._settings.queue_lease:
            self._stale.add(group)  # the queue keeps the binding: unbind it once reconnected

    def unbind_now(self, group: str, callback: Callable[[Any], None] = lambda _frame: None) -> None:
        self._channel_of(group).queue_unbind(
            self._queue.name, self._settings.groups_exchange, routing_key=group, callback=callback
        )

    def all_to_unbind(self, groups: list[str]) -> list[str]:
        """close(): `groups` and those waiting for their delayed unbind, which no longer wait."""
        groups = sorted({*groups, *self._delayed.pending()})
        self._delayed.clear()
        return groups

    def connection_ended(self) -> None:
        """Binds in flight are answered by the link; a leased queue keeps its bindings, an exclusive one does not."""
        self._binds.clear()
        if self._settings.queue_lease:  # the queue and its bindings outlive the connection: unbind these once back
            self._stale.update(self._delayed.pending())
        self._delayed.clear()  # an exclusive queue's bindings die with it; only groups with members are bound again

    def queue_moved(self) -> None:
        """The process has a new queue, with no binding: nothing stale to unbind on it."""
        self._stale.clear()


class DelayedUnbinds:
    """Groups whose last local member left, each unbound `delay` seconds later unless a member joins again first.

    One pika timer serves them all: the delay is the same for every group, so the order of the `unbind_later`
    calls is due order. Owned by the I/O thread.
    """

    def __init__(self, ioloop: Any, delay: float, unbind: Callable[[str], None]) -> None:
        self._ioloop = ioloop
        self._delay = delay
        self._unbind = unbind
        self._due: dict[str, float] = {}  # group -> when it is unbound
        self._order: deque[tuple[float, str]] = deque()  # (due, group), oldest first; may hold reclaimed groups
        self._timer: Any = None

    def unbind_later(self, group: str) -> None:
        if self._delay <= 0:
            self._unbind(group)
            return
        due = time.monotonic() + self._delay
        self._due[group] = due
        self._order.append((due, group))
        if self._timer is None:
            self._timer = self._ioloop.call_later(self._delay, self._on_due)

    def cancel(self, group: str) -> bool:
        """The group no longer waits for its delayed unbind (a member joined again, or it is unbound now). True if
        it was waiting."""
        return self._due.pop(group, None) is not None

    def pending(self) -> list[str]:
        return list(self._due)

    def __len__(self) -> int:
        """Entries kept: a group's entry lives `delay` seconds at most, its timer's entry as long."""
        return len(self._order)

    def clear(self) -> None:
        self._due.clear()
        self._order.clear()
        if self._timer is not None:
            self._ioloop.remove_timeout(self._timer)
            self._timer = None

    @guarded
    def _on_due(self) -> None:
        self._timer = None
        now = time.monotonic()
        while self._order and self._order[0][0] <= now:
            due, group = self._order.popleft()
            if self._due.get(group) == due:  # not reclaimed, nor given up again later
                del self._due[group]
                self._unbind(group)
        if self._order:
            self._timer = self._ioloop.call_later(self._order[0][0] - now, self._on_due)
