"""The frames of one pass of the I/O thread leave for the broker in few sends, not one per frame.

pika hands its transport each chunk by itself (a frame it marshals, or a publish the layer framed) and sends them
one by one; `writes.join_writes` joins what waits in the transport's buffer first. A socket that counts its sends
stands in under the transport.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from channels_rabbitmq_threaded import RabbitmqChannelLayer

from ..conftest import links

MESSAGES = 300


class CountingSocket:
    """Stands in for the publisher's socket: counts the calls to `send`, passes everything through."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.sends = 0

    def send(self, data: bytes) -> int:
        self.sends += 1
        return self._sock.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def count_sends(layer: RabbitmqChannelLayer) -> CountingSocket:
    """Put a counting socket under the publisher's transport, on the I/O thread (the owner of pika's objects)."""
    assert layer._io_thread is not None
    transport = links(layer).publisher.connection._transport  # type: ignore[union-attr]
    done = threading.Event()
    counting = CountingSocket(transport._sock)

    def swap() -> None:
        transport._sock = counting
        done.set()

    layer._io_thread._ioloop.add_callback_threadsafe(swap)
    assert done.wait(10), "the I/O thread did not run the swap"
    return counting


def test_one_bulk_send_leaves_in_fewer_sends_than_messages(layer: RabbitmqChannelLayer) -> None:
    async def run() -> list[int]:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "warm"})  # connects the publisher
        await layer.receive(channel)
        counting = count_sends(layer)
        await layer.send_many((channel, {"type": "m", "n": n}) for n in range(MESSAGES))
        received = [(await layer.receive(channel))["n"] for _ in range(MESSAGES)]
        assert counting.sends < MESSAGES, f"{counting.sends} sends for {MESSAGES} messages (one chunk each)"
        return received

    assert asyncio.run(run()) == list(range(MESSAGES))


def test_the_consumer_s_acks_leave_at_once_not_through_pika_s_writer(layer: RabbitmqChannelLayer) -> None:
    """The acks of a pass go on the socket as they are sent (`writes.send_at_once`); none waits in pika's buffer
    for the I/O thread to see the socket writable and run pika's writer."""

    async def run() -> int:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "warm"})  # the consumer is ready
        await layer.receive(channel)
        writer_runs = count_writer_runs(layer)
        for n in range(MESSAGES):
            await layer.send(channel, {"type": "m", "n": n})
            assert (await layer.receive(channel))["n"] == n
        return writer_runs()

    # one at a time, so each delivery is acknowledged in a pass of its own; a heartbeat may use the writer once
    runs = asyncio.run(run())
    assert runs <= 1, f"pika's writer ran {runs} times on the consumer connection for {MESSAGES} acks"


def count_writer_runs(layer: RabbitmqChannelLayer) -> Callable[[], int]:
    """Count the runs of pika's writer (the transport's `_produce`) on the consumer connection, from now on."""
    assert layer._io_thread is not None
    transport = links(layer).consumer.connection._transport  # type: ignore[union-attr]
    runs = [0]
    done = threading.Event()

    def swap() -> None:
        produce = transport._produce

        def counted() -> None:
            runs[0] += 1
            produce()

        transport._produce = counted
        done.set()

    layer._io_thread._ioloop.add_callback_threadsafe(swap)
    assert done.wait(10), "the I/O thread did not run the swap"
    return lambda: runs[0]
