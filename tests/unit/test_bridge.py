"""The hand-off contract, without a broker: a message handed toward a receive() is delivered once or put back once.

A stand-in I/O thread plays its part with the real routing state (`shared_inbox.SharedInbox`) and the real
`handoffs.Waiter`: it offers numbered messages while receivers on several event loops at once take them (on their own
threads when a message is buffered, or by waiting, registered on their own thread or by a `Take`), cancel at random
await points, and loops close with receives pending (as `async_to_sync`'s loops do after each call). At the end
every message must have been received exactly once: none lost, none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import queue
import random
import threading
import time
from typing import Any

import pytest

from channels_rabbitmq_threaded._bridge.handoffs import Waiter
from channels_rabbitmq_threaded._bridge.requests import Forget, PutBack, Request, Take
from channels_rabbitmq_threaded._bridge.shared_inbox import SharedInbox
from channels_rabbitmq_threaded._routing.envelope import Recipient
from channels_rabbitmq_threaded._routing.inbox import Effects

CHANNEL = "specific.channels_test!1"
COUNT = 3000


class FakeIOThread:
    """The I/O thread's side of the hand-off: Take, Forget, PutBack and deliveries, on one thread, with `Inbox`."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[Request | int | None] = queue.SimpleQueue()
        self._inbox: SharedInbox[Waiter, int] = SharedInbox(COUNT, 600.0, 86400, lambda channel: COUNT)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def submit(self, request: Request | int | None) -> None:
        self._requests.put(request)

    def stop(self) -> None:
        self.submit(None)
        self._thread.join(10)

    def waiter(self, loop: asyncio.AbstractEventLoop) -> Waiter:
        return Waiter(loop, CHANNEL, lambda c, m, e: self.submit(PutBack(c, m, e)), lambda w: self.submit(Forget(w)))

    def take_ready(self) -> dict[str, Any] | None:  # on the receiver's thread
        return self._inbox.take_ready(CHANNEL, time.monotonic())

    def register(self, waiter: Waiter, on_this_thread: bool) -> None:
        """Let `waiter` wait: on the receiver's own thread when the inbox allows it, else by a `Take`."""
        if not (on_this_thread and self._inbox.wait_ready(CHANNEL, waiter)):
            self.submit(Take(waiter))

    def _run(self) -> None:
        while (request := self._requests.get()) is not None:
            now = time.monotonic()
            if isinstance(request, int):  # a delivery from the broker: message number `request`
                self._apply(self._inbox.offer(request, Recipient(False, CHANNEL), {"n": request}, now))
            elif isinstance(request, Take):
                self._apply(self._inbox.take(CHANNEL, request.waiter, now))
            elif isinstance(request, Forget):
                if not self._inbox.forget(CHANNEL, request.waiter):
                    message = request.waiter.reclaim()
                    if message is not None:
                        self._apply(self._inbox.put_back(CHANNEL, message, request.waiter.expires_at, now))
            elif isinstance(request, PutBack):
                self._apply(self._inbox.put_back(request.channel, request.message, request.expires_at, now))

    def _apply(self, effects: Effects[Waiter, int]) -> None:
        for handoff in effects.handoffs:
            if not handoff.waiter.offer(handoff.message, handoff.expires_at):  # its loop is closed
                self._apply(self._inbox.put_back(CHANNEL, handoff.message, handoff.expires_at, time.monotonic()))


def test_delivered_once_or_put_back_once_across_cancellations_and_dying_loops() -> None:
    io_thread = FakeIOThread()
    received: list[int] = []  # list.append is atomic: receivers on many threads share it

    async def receive() -> dict[str, Any]:  # what RabbitmqChannelLayer.receive does, in one coroutine
        message = io_thread.take_ready()
        if message is not None:
            return message
        waiter = io_thread.waiter(asyncio.get_running_loop())
        io_thread.register(waiter, on_this_thread=random.random() < 0.5)  # both ways of waiting, mixed
        return await waiter.wait()

    async def receiver(seed: int, rounds: int) -> None:
        rng = random.Random(seed)
        for _ in range(rounds):
            task = asyncio.ensure_future(receive())
            for _ in range(rng.randrange(4)):  # cancel at a random await point, or not at all
                await asyncio.sleep(0)
            if rng.random() < 0.3:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                received.append((await task)["n"])

    def dying_loop(seed: int) -> None:
        """Loops that end with receives pending: as `asyncio.run` ends (their tasks are cancelled), or abruptly
        (closed without running again, some waiters already offered a message that never reached the loop)."""
        rng = random.Random(seed)
        for _ in range(20):
            loop = asyncio.new_event_loop()
            if rng.random() < 0.5:
                tasks = [loop.create_task(receive()) for _ in range(rng.randrange(1, 6))]
                loop.run_until_complete(asyncio.sleep(rng.random() / 1000))
                for task in tasks:
                    task.cancel()
                outcomes = loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                received.extend(outcome["n"] for outcome in outcomes if isinstance(outcome, dict))
            else:
                waiters = [io_thread.waiter(loop) for _ in range(rng.randrange(1, 6))]
                for waiter in waiters:
                    io_thread.register(waiter, on_this_thread=rng.random() < 0.5)
                time.sleep(rng.random() / 1000)  # offers land meanwhile; the loop never runs them
                del waiters
            loop.close()

    threads = [threading.Thread(target=asyncio.run, args=(receiver(seed, 600),)) for seed in range(4)]
    threads += [threading.Thread(target=dying_loop, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for n in range(COUNT):
        io_thread.submit(n)
    for thread in threads:
        thread.join(30)
    gc.collect()  # waiters of dead loops with a message in flight give it back from their finalizer

    async def drain() -> None:
        loop = asyncio.get_running_loop()
        while len(received) < COUNT:
            waiter = io_thread.waiter(loop)
            io_thread.submit(Take(waiter))
            received.append((await asyncio.wait_for(waiter.wait(), 5))["n"])

    asyncio.run(drain())
    io_thread.stop()
    assert sorted(received) == list(range(COUNT))  # every message once: none lost, none twice


def test_a_wait_cancelled_after_its_message_arrived_gives_it_back() -> None:
    put_back: list[Any] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        waiter = Waiter(loop, CHANNEL, lambda c, m, e: put_back.append(m), lambda w: put_back.append("forgotten"))
        task = asyncio.ensure_future(waiter.wait())
        await asyncio.sleep(0)
        assert waiter.offer({"n": 1}, 0.0)
        await asyncio.sleep(0)  # _settle runs: the result is in the future, the task not yet resumed
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert put_back == [{"n": 1}]


def test_a_wait_cancelled_with_nothing_in_hand_is_forgotten() -> None:
    abandoned: list[Waiter] = []

    async def scenario() -> None:
        waiter = Waiter(asyncio.get_running_loop(), CHANNEL, lambda c, m, e: None, abandoned.append)
        task = asyncio.ensure_future(waiter.wait())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert abandoned == [waiter]

    asyncio.run(scenario())
