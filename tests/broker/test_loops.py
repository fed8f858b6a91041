"""Loop churn: the layer serves the brand-new loop of every async_to_sync call, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import async_to_sync

from ..conftest import in_plain_thread


def test_construct_in_one_thread_use_from_many(make_layer) -> None:
    layer = make_layer()
    names: list[str] = []
    in_plain_thread(lambda: names.append(async_to_sync(layer.new_channel)()))
    in_plain_thread(lambda: async_to_sync(layer.send)(names[0], {"type": "x"}))
    results: list[dict] = []
    in_plain_thread(lambda: results.append(async_to_sync(layer.receive)(names[0])))
    assert results == [{"type": "x"}]


def test_receive_abandoned_by_a_closing_loop_loses_nothing(make_layer) -> None:
    """asyncio.run cancels a pending receive when its loop ends: the next loop still gets the message."""
    layer = make_layer()
    channel = async_to_sync(layer.new_channel)()

    async def start_receive_and_leave() -> None:
        pending = asyncio.ensure_future(layer.receive(channel))  # still pending when the loop is torn down
        await asyncio.sleep(0.01)
        assert not pending.done()

    for _ in range(20):
        async_to_sync(start_receive_and_leave)()
    async_to_sync(layer.send)(channel, {"type": "kept"})
    assert async_to_sync(layer.receive)(channel) == {"type": "kept"}


def test_idle_layer_uses_no_cpu(layer) -> None:
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.send)(channel, {"type": "warm"})
    async_to_sync(layer.receive)(channel)
    native_id = layer._io_thread._thread.native_id

    def cpu_ticks() -> int:
        with open(f"/proc/self/task/{native_id}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks

    before = cpu_ticks()
    time.sleep(2)
    assert cpu_ticks() - before <= 1  # no polling: the I/O thread sleeps in the poller


def test_a_message_offered_to_a_dead_loops_receive_goes_to_the_next_receive(make_layer) -> None:
    """A loop closed with a receive() waiting (never cancelled, never run again): its message is not lost."""
    layer = make_layer()
    channel = async_to_sync(layer.new_channel)()
    loop = asyncio.new_event_loop()
    abandoned = loop.create_task(layer.receive(channel))
    loop.run_until_complete(asyncio.sleep(0.05))  # the receive() now waits on this loop
    assert layer.stats().waiting_receivers == 1
    loop.close()
    async_to_sync(layer.send)(channel, {"type": "kept"})
    assert async_to_sync(layer.receive)(channel) == {"type": "kept"}
    assert not abandoned.done()
