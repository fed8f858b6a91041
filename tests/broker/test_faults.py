"""Faults the layer must survive: garbage on its queue, connections cut by the broker (private node only)."""

from __future__ import annotations

import asyncio
import logging

import pika
import pytest

from channels_rabbitmq_threaded import MessageTooLarge, RabbitmqLayerError
from channels_rabbitmq_threaded._io.io_thread import LOOP_ESCAPES_TOLERATED

from ..conftest import HOST, dropped, links


async def test_foreign_bodies_are_logged_dropped_and_consumption_goes_on(layer, caplog) -> None:
    caplog.set_level(logging.WARNING)
    channel = await layer.new_channel()
    garbage = [
        b"\xc1 not msgpack",
        b"\x93\x01\x02\x03",  # a list
        b"\x81\xa1a\x01",  # a map without recipient
        b"\x82\xb0__asgi_channel__\x01\xa1a\x01",  # a recipient that is not a str
        b"\xc1" * 8_000_000,  # huge
    ]

    def publish_garbage() -> None:  # another client publishing straight to our queue, in order (one channel)
        connection = pika.BlockingConnection(pika.URLParameters(HOST))
        try:
            publisher = connection.channel()
            for body in garbage:
                publisher.basic_publish("", layer.queue_name, body)
        finally:
            connection.close()

    await asyncio.to_thread(publish_garbage)
    await layer.send(channel, {"type": "fine"})
    assert await layer.receive(channel) == {"type": "fine"}
    assert layer._io_thread.is_alive()
    assert "is not ours: not msgpack" in caplog.text  # the first one is logged at once, with its reason
    await layer.close()  # the I/O thread logs the sum of the others as it ends
    assert dropped(caplog, "not ours") == len(garbage)


async def test_a_message_over_max_message_size_is_refused_and_the_connection_stays(make_layer) -> None:
    layer = make_layer(max_message_size=1000)
    channel = await layer.new_channel()
    connections = tuple(link.connection for link in links(layer))
    with pytest.raises(MessageTooLarge, match="max_message_size is 1000"):
        await layer.send(channel, {"type": "big", "blob": b"x" * 2000})
    with pytest.raises(ValueError):  # MessageTooLarge is a ValueError too
        await layer.group_send("g", {"type": "big", "blob": b"x" * 2000})
    await layer.send(channel, {"type": "small"})
    assert await layer.receive(channel) == {"type": "small"}
    assert tuple(link.connection for link in links(layer)) == connections


async def test_if_the_io_thread_dies_anyway_callers_get_a_clear_error(layer) -> None:
    channel = await layer.new_channel()
    pending = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.05)

    def crash() -> None:
        raise RuntimeError("simulated bug outside every guard")

    for _ in range(LOOP_ESCAPES_TOLERATED):  # unguarded on purpose: each ends ioloop.start(); so many end the thread
        layer._io_thread._ioloop.add_callback_threadsafe(crash)
    with pytest.raises(RabbitmqLayerError, match="stopped unexpectedly"):
        await asyncio.wait_for(pending, 10)
    for _ in range(2):  # while the thread ends, and after
        with pytest.raises(RabbitmqLayerError, match=r"I/O thread (has )?stopped"):
            await layer.send(channel, {"type": "x"})


async def test_an_exception_out_of_pikas_own_loop_does_not_end_the_layer(layer, caplog) -> None:
    """pika 1.4 raises out of its connection workflow when a connection is reset right after the TCP connect; the
    layer logs it and its loop goes on (here the exception is raised by a callback given straight to pika's loop)."""
    caplog.set_level(logging.WARNING)
    channel = await layer.new_channel()

    def pika_internal_failure() -> None:
        raise ValueError("Expected connected socket, but getpeername() failed (simulated)")

    layer._io_thread._ioloop.add_callback_threadsafe(pika_internal_failure)
    await layer.send(channel, {"type": "after"})
    assert await layer.receive(channel) == {"type": "after"}
    assert layer._io_thread.is_alive()
    assert "pika raised out of its I/O loop" in caplog.text
