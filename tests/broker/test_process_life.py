"""A process's life as users live it: a send-only process opens one connection and no queue; short scripts (a
management command, a cron job, a one-off Celery script) exit without an ERROR line or a traceback."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync

from ..conftest import connections_of, queue_exists


def test_a_send_only_process_opens_one_connection_and_no_queue(make_layer) -> None:
    sender, receiver = make_layer(), make_layer()
    channel = async_to_sync(receiver.new_channel)()
    sender.send_sync(channel, {"type": "direct"})
    async_to_sync(sender.group_send)("nobody-here", {"type": "group"})
    assert async_to_sync(receiver.receive)(channel) == {"type": "direct"}
    assert connections_of(sender.queue_name) == ["publisher"]
    assert not queue_exists(sender.queue_name)
    assert sorted(connections_of(receiver.queue_name)) == ["consumer", "publisher"]
    assert queue_exists(receiver.queue_name)


@pytest.mark.parametrize("first_need", ["new_channel", "receive", "group_add", "flush"])
def test_the_consumer_link_opens_on_first_need(make_layer, first_need: str) -> None:
    layer = make_layer()
    layer.group_send_sync("nobody-here", {"type": "warm up the publisher"})
    assert not queue_exists(layer.queue_name)
    channel = f"specific.{layer.queue_name}!first"

    async def first_use() -> None:
        if first_need == "new_channel":
            channel_name = await layer.new_channel()
            await layer.send(channel_name, {"type": "hello"})
            assert await layer.receive(channel_name) == {"type": "hello"}
        elif first_need == "receive":
            receiving = asyncio.ensure_future(layer.receive(channel))
            for _ in range(200):  # the queue appears once the consumer link is set up: poll for at most 10 s
                if await asyncio.to_thread(queue_exists, layer.queue_name):
                    break
                await asyncio.sleep(0.05)
            await layer.send(channel, {"type": "hello"})
            assert await asyncio.wait_for(receiving, 10) == {"type": "hello"}
        elif first_need == "group_add":
            await layer.group_add("first-need", channel)
            await layer.group_send("first-need", {"type": "hello"})
            assert await layer.receive(channel) == {"type": "hello"}
        else:
            await layer.flush()

    async_to_sync(first_use)()
    assert queue_exists(layer.queue_name)
    assert sorted(connections_of(layer.queue_name)) == ["consumer", "publisher"]
