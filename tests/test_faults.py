"""Faults the layer must survive: garbage on its queue, connections cut by the broker (private node only)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

import pika

from channels_rabbitmq_threaded import RabbitmqChannelLayer, RabbitmqLayerError

from .conftest import HOST
from .private_node import PrivateNode


async def test_foreign_bodies_are_logged_dropped_and_consumption_goes_on(layer, caplog) -> None:
    caplog.set_level(logging.WARNING)
    channel = await layer.new_channel()
    garbage = [b"\xc1 not msgpack", b"\x93\x01\x02\x03", b"\x81\xa1a\x01", b"\x82\xb0__asgi_channel__\x01\xa1a\x01"]

    def publish_garbage() -> None:  # another client publishing straight to our queue
        connection = pika.BlockingConnection(pika.URLParameters(HOST))
        try:
            for body in garbage:
                connection.channel().basic_publish("", layer.queue_name, body)
        finally:
            connection.close()

    await asyncio.to_thread(publish_garbage)
    await layer.send(channel, {"type": "fine"})
    assert await layer.receive(channel) == {"type": "fine"}
    assert caplog.text.count("that is not ours") == len(garbage)
    assert layer._io_thread.is_alive()


async def test_connection_cut_rebinds_groups_and_keeps_receivers_waiting(
    tls_node: PrivateNode, client_ssl_context: ssl.SSLContext
) -> None:
    host = f"amqps://guest:guest@localhost:{tls_node.port}/%2F"
    member = RabbitmqChannelLayer(host=host, ssl_context=client_ssl_context)
    sender = RabbitmqChannelLayer(host=host, ssl_context=client_ssl_context)
    try:
        channel = await member.new_channel()
        await member.group_add("survivors", channel)
        await sender.new_channel()
        waiting = asyncio.ensure_future(member.receive(channel))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(tls_node.ctl, "close_all_connections", "test: cut")

        async def probe_until_back() -> None:
            while not waiting.done():  # probes sent while the member's queue is gone are dropped; keep trying
                with contextlib.suppress(RabbitmqLayerError):
                    await sender.send(channel, {"type": "probe"})
                await asyncio.wait({waiting}, timeout=0.2)

        await asyncio.wait_for(probe_until_back(), 30)
        assert (await waiting)["type"] == "probe"  # the receive() that waited across the outage got a message
        # The member's groups were bound again before it consumed anything: group traffic flows.
        await sender.group_send("survivors", {"type": "after"})

        async def next_non_probe() -> dict:
            while (message := await member.receive(channel))["type"] == "probe":
                pass
            return message

        assert await asyncio.wait_for(next_non_probe(), 10) == {"type": "after"}
    finally:
        await member.close()
        await sender.close()
