"""wait_for_confirms=False: sends return without waiting for RabbitMQ, and every loss is logged instead of raised."""

from __future__ import annotations

import asyncio
import logging

import pytest
from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded._io import io_thread

from ..conftest import in_plain_thread
from ..support.private_node import free_port


async def receive_until_quiet(layer, channel: str, quiet: float = 1.0) -> list[dict]:
    received = []
    while True:
        try:
            received.append(await asyncio.wait_for(layer.receive(channel), quiet))
        except asyncio.TimeoutError:
            return received


async def test_unwaited_sends_arrive_in_order(make_layer) -> None:
    sender, receiver = make_layer(wait_for_confirms=False), make_layer()
    channel = await receiver.new_channel()
    await receiver.group_add("unwaited", channel)
    for n in range(50):
        await sender.send(channel, {"type": "direct", "n": n})
    await sender.group_send("unwaited", {"type": "group", "n": 50})
    in_plain_thread(lambda: sender.send_sync(channel, {"type": "direct", "n": 51}))
    in_plain_thread(lambda: sender.group_send_sync("unwaited", {"type": "group", "n": 52}))
    received = await receive_until_quiet(receiver, channel)
    assert [message["n"] for message in received] == list(range(53))


async def test_a_full_queue_is_logged_not_raised(make_layer, caplog) -> None:
    caplog.set_level(logging.WARNING)
    receiver = make_layer(remote_capacity=1, prefetch_count=1, local_capacity=1)
    sender = make_layer(wait_for_confirms=False)
    channel = await receiver.new_channel()  # nobody receives: the queue fills up
    for n in range(30):
        await sender.send(channel, {"type": "direct", "n": n})  # never raises ChannelFull
    await asyncio.sleep(1.0)
    assert "Dropped a message: RabbitMQ refused a message sent without waiting: the receiving queue was full" in (
        caplog.text
    )
    assert 0 < len(await receive_until_quiet(receiver, channel)) < 30


async def test_past_the_backlog_bound_sends_wait_again(make_layer, monkeypatch) -> None:
    monkeypatch.setattr(io_thread, "MAX_UNWAITED_BACKLOG", 0)  # every send is over the bound: it waits, as usual
    receiver = make_layer(remote_capacity=1, prefetch_count=1, local_capacity=1)
    sender = make_layer(wait_for_confirms=False)
    channel = await receiver.new_channel()
    with pytest.raises(ChannelFull):
        for n in range(30):
            await sender.send(channel, {"type": "direct", "n": n})


async def test_sends_to_a_broker_that_is_not_there_are_logged_as_lost(make_layer, caplog) -> None:
    caplog.set_level(logging.WARNING)
    layer = make_layer(
        host=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", connect_timeout=0.5, wait_for_confirms=False
    )
    await layer.send("specific.channels_nowhere!x", {"type": "lost"})  # returns at once
    await asyncio.sleep(1.5)
    assert "Dropped a message: a message sent without waiting was not confirmed" in caplog.text


async def test_close_lets_sends_already_handed_over_finish(make_layer) -> None:
    receiver = make_layer()
    channel = await receiver.new_channel()
    sender = make_layer(wait_for_confirms=False)  # not connected yet: the sends wait for its connection
    for n in range(100):
        await sender.send(channel, {"type": "direct", "n": n})
    await sender.close()
    assert [message["n"] for message in await receive_until_quiet(receiver, channel)] == list(range(100))
