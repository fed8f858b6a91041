"""Loop churn: the layer serves the brand-new loop of every async_to_sync call, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
import tracemalloc

import pytest
from asgiref.sync import async_to_sync

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from channels_rabbitmq_threaded._routing import dedup


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def run_in_plain_thread(function) -> None:
    """Run `function` in a thread with no event loop (a Celery worker, a WSGI view, a management command)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            function()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def test_construct_in_one_thread_use_from_many(make_layer) -> None:
    layer = make_layer()
    names: list[str] = []
    run_in_plain_thread(lambda: names.append(async_to_sync(layer.new_channel)()))
    run_in_plain_thread(lambda: async_to_sync(layer.send)(names[0], {"type": "x"}))
    results: list[dict] = []
    run_in_plain_thread(lambda: results.append(async_to_sync(layer.receive)(names[0])))
    assert results == [{"type": "x"}]


# Slow: on Python 3.10 only, after some 180 other tests in the same process, tracemalloc charges about 2.5 MB
# to asyncio/base_events.py (16 blocks of 160 KB) during the measured window, whichever subset of them ran before;
# alone, or after any third of them, the growth is 80 KB. It runs in the full suite (py3), where it holds.
@pytest.mark.slow
def test_a_thousand_async_to_sync_calls_leave_nothing_behind(make_layer, monkeypatch) -> None:
    # The message-id window keeps the last 20,000 ids by design (bounded: tests/test_dedup.py). Made small here, so
    # that the warm-up fills it and what is measured is what calls leave behind.
    monkeypatch.setattr(dedup.DeliveryWindow.__init__, "__defaults__", (50,))
    layer: RabbitmqChannelLayer = make_layer()

    def churn() -> None:
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)("churn", channel)

        def cycle(n: int) -> None:
            async_to_sync(layer.send)(channel, {"type": "n", "n": n})
            assert async_to_sync(layer.receive)(channel) == {"type": "n", "n": n}
            async_to_sync(layer.group_send)("churn", {"type": "g", "n": n})
            assert async_to_sync(layer.receive)(channel) == {"type": "g", "n": n}

        for n in range(50):  # warm up: caches, the I/O thread, asgiref's executors
            cycle(n)
        gc.collect()
        threads, fds = threading.active_count(), open_fds()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for n in range(250):  # 250 cycles x 4 calls = 1,000 async_to_sync calls, 1,000 event loops
            cycle(n)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        assert threading.active_count() == threads
        assert open_fds() == fds
        assert growth < 100_000, f"{growth} bytes kept after 1,000 calls"
        io_thread = layer._io_thread
        assert io_thread is not None
        # routing state holds nothing per call: no buffer, no waiter, no leftover channel entry
        assert io_thread.hub.routing.channel_count() == 0 and io_thread.hub.routing.waiting == 0

    run_in_plain_thread(churn)


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
