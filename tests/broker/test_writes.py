"""The frames of one pass of the I/O thread leave for the broker in few sends, not one per frame.

pika hands its transport each chunk by itself (a frame it marshals, or a publish the layer framed) and sends them
one by one; `writes.join_writes` joins what waits in the transport's buffer first. A socket that counts its sends
stands in under the transport.
"""

from __future__ import annotations

import asyncio
import threading
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
