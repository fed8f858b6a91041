"""Bulk sends: many messages, one validation pass, one hand-off to the I/O thread, one wait for all confirms.

Theory of operation
-------------------
`send_many` and `group_send_many` (and their `_sync` twins, for code with no event loop) build every `Publish`
first, so that a bad item raises `TypeError` or `ValueError` naming its index before anything is sent. The
publishes then go to the I/O thread together (one `IOThread.submit`: one wake-up), each answering one slot of a
`BatchReply`; when the last slot is answered (confirmed, refused by a full queue, or failed) the batch answers its
caller once, on the caller's loop or thread. What the call then does:

| the items | what `send_many` does |
|---|---|
| all confirmed | returns |
| some refused by a full queue, none failed | raises `ChannelFull` naming them (`.channels`); the others were sent |
| some failed (`ConfirmLost`, ...) | raises the first failure's type, with how many and which (`.names`) |

`group_send_many` never raises `ChannelFull`: a member's full queue drops that member's copy, logged, as
`group_send` does; only failures raise. The items are published in the order given, so two messages for one
channel arrive in that order. `BatchReply` is answered on the I/O thread, or on a caller's thread if the I/O thread
has ended; a lock makes the count exact either way.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from channels.exceptions import ChannelFull

from ._bridge.handoffs import LoopReply, ThreadReply, refuse_blocking_on_a_loop
from ._bridge.requests import Publish
from ._config import optional_positive_seconds
from .stats import CallStats

Item = tuple[str, dict[str, Any]]


class BatchReply:
    """Collects the answers of a batch's publishes; answers `outer` once, with the list of them, when all are in."""

    def __init__(self, outer: CountedReply, count: int) -> None:
        self._outer = outer
        self._answers: list[Any] = [None] * count
        self._left = count
        self._lock = threading.Lock()

    def slot(self, index: int) -> Slot:
        return Slot(self, index)

    def answered(self, index: int, answer: Any) -> None:
        with self._lock:
            self._answers[index] = answer
            self._left -= 1
            done = self._left == 0
        if done:
            self._outer.resolve(self._answers)


class Slot:
    """One publish's reply within a batch (a `requests.Reply`)."""

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: BatchReply, index: int) -> None:
        self._batch, self._index = batch, index

    def resolve(self, value: Any = None) -> None:
        self._batch.answered(self._index, value)

    def fail(self, exc: BaseException) -> None:
        self._batch.answered(self._index, exc)


BuildPublish = Callable[[str, dict[str, Any]], Publish]  # validates and encodes one (name, message), sends nothing


class BulkSender:
    """The bulk sends of one layer (`core.RabbitmqChannelLayer` holds one); see the module's theory of operation.

    Built from what it needs of the layer: how to build a channel's and a group's publish (the layer's own
    validation), how to hand publishes to its I/O thread, and where calls are counted. Bulk sends always wait for
    the confirms, also with `wait_for_confirms=False`: one wait for the whole batch.
    """

    def __init__(
        self, to_channel: BuildPublish, to_group: BuildPublish, submit: Callable[..., None], calls: CallStats
    ) -> None:
        self._build = {False: to_channel, True: to_group}
        self._submit = submit  # hands publishes to the I/O thread, starting it if need be (any thread)
        self._calls = calls

    async def send(self, items: Iterable[Item], to_groups: bool) -> None:
        names, publishes = self._publishes(items, to_groups)
        if publishes:
            reply = LoopReply(asyncio.get_running_loop())
            self._hand_over(publishes, reply, to_groups)
            raise_for(names, await reply.future, to_groups)

    def send_sync(self, method: str, items: Iterable[Item], timeout: object, to_groups: bool) -> None:
        refuse_blocking_on_a_loop(method)
        seconds = optional_positive_seconds("timeout", timeout)  # before anything is sent, as send_sync does
        names, publishes = self._publishes(items, to_groups)
        if publishes:
            reply = ThreadReply()
            self._hand_over(publishes, reply, to_groups)
            raise_for(names, reply.wait(seconds), to_groups)

    def _publishes(self, items: Iterable[Item], to_groups: bool) -> tuple[list[str], list[Publish]]:
        """Validate and encode every item (a `TypeError`/`ValueError` names the bad one's index); nothing is sent."""
        if isinstance(items, (str, bytes, dict)):
            raise TypeError(f"expected an iterable of (name, message) pairs, not {type(items).__name__}")
        build = self._build[to_groups]
        names, publishes = [], []
        for index, item in enumerate(items):
            if not isinstance(item, tuple) or len(item) != 2:
                raise TypeError(f"item {index} is not a (name, message) pair: {type(item).__name__}")
            name, message = item
            try:
                publish = build(name, message)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"item {index}: {exc}") from None
            names.append(name)
            publishes.append(publish)
        return names, publishes

    def _hand_over(self, publishes: list[Publish], outer: LoopReply | ThreadReply, to_groups: bool) -> None:
        call = "group_send" if to_groups else "send"
        batch = BatchReply(CountedReply(outer, self._calls, call), len(publishes))
        for index, publish in enumerate(publishes):
            publish.reply = batch.slot(index)
        self._submit(*publishes)


def raise_for(names: list[str], answers: list[Any], to_groups: bool) -> None:
    """The table of the module's docstring."""
    failed = [(name, answer) for name, answer in zip(names, answers, strict=True) if isinstance(answer, BaseException)]
    if failed:
        first = failed[0][1]
        error = type(first)(f"{len(failed)} of {len(names)} message(s) failed, the first with: {first}")
        error.names = [name for name, _ in failed]  # type: ignore[attr-defined]
        raise error
    refused = [name for name, answer in zip(names, answers, strict=True) if answer is False]
    if refused and not to_groups:
        error = ChannelFull(f"{len(refused)} of {len(names)} message(s) refused by a full queue: {refused[:10]}")
        error.channels = refused  # type: ignore[attr-defined]
        raise error


class CountedReply:
    """Counts a batch's answers in the layer's `CallStats` (with the batch's duration) before answering."""

    __slots__ = ("_call", "_calls", "_outer", "_started")

    def __init__(self, outer: LoopReply | ThreadReply, calls: CallStats, call: str) -> None:
        self._outer, self._calls, self._call, self._started = outer, calls, call, time.perf_counter()

    def resolve(self, answers: list[Any]) -> None:
        self._calls.record_batch(self._call, answers, time.perf_counter() - self._started)
        self._outer.resolve(answers)
