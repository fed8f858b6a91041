"""Bulk sends (`send_many`, `group_send_many`, and their `_sync` twins): one validation pass, one hand-off, one wait,
and what a full queue or a failure means for a batch (the table in `channels_rabbitmq_threaded/bulk.py`)."""

from __future__ import annotations

import asyncio

import pytest
from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded import BrokerUnavailable

from ..support.private_node import free_port


async def test_send_many_delivers_every_message_in_order(make_layer) -> None:
    receiver, sender = make_layer(), make_layer()
    channels = [await receiver.new_channel() for _ in range(3)]
    await sender.send_many([(channels[n % 3], {"type": "bulk", "n": n}) for n in range(30)])
    for index, channel in enumerate(channels):
        assert [(await receiver.receive(channel))["n"] for _ in range(10)] == list(range(index, 30, 3))
    assert sender.stats().calls["send_confirmed"] == 30


async def test_group_send_many_reaches_each_groups_members(make_layer) -> None:
    member, sender = make_layer(), make_layer()
    channels = [await member.new_channel() for _ in range(3)]
    for n, channel in enumerate(channels):
        await member.group_add(f"user-{n}", channel)
    await sender.group_send_many([(f"user-{n}", {"type": "note", "n": n}) for n in range(1000)])  # 997 reach nobody
    for n, channel in enumerate(channels):
        assert (await member.receive(channel))["n"] == n
    assert sender.stats().calls["group_send_confirmed"] == 1000


async def test_a_bad_item_is_named_and_nothing_is_sent(make_layer) -> None:
    receiver, sender = make_layer(), make_layer()
    channel = await receiver.new_channel()
    with pytest.raises(TypeError, match="item 1"):
        await sender.send_many([(channel, {"type": "fine"}), ("bad name!!", {"type": "x"})])
    with pytest.raises(TypeError, match="item 0 is not a"):
        await sender.send_many([channel])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="iterable of"):
        await sender.send_many({channel: {"type": "x"}})  # type: ignore[arg-type]
    await sender.send_many([])
    await sender.send(channel, {"type": "after"})
    assert await receiver.receive(channel) == {"type": "after"}  # the valid first item was never sent


async def test_a_full_queue_raises_channel_full_naming_the_refused_after_the_others_were_sent(make_layer) -> None:
    receiver, sender = make_layer(remote_capacity=2, local_capacity=1, prefetch_count=1), make_layer()
    channel, other = await receiver.new_channel(), await receiver.new_channel()
    with pytest.raises(ChannelFull) as raised:
        await sender.send_many([(channel, {"type": "m", "n": n}) for n in range(20)] + [(other, {"type": "o"})])
    refused = raised.value.channels  # type: ignore[attr-defined]
    assert refused and set(refused) <= {channel, other} and len(refused) < 21  # one queue holds both channels
    assert "refused by a full queue" in str(raised.value)
    first = await receiver.receive(channel)
    assert first["n"] == 0  # the ones that fitted were delivered, in order


def test_the_sync_twins_from_a_plain_thread(make_layer) -> None:
    receiver, sender = make_layer(), make_layer()

    async def setup() -> str:
        channel = await receiver.new_channel()
        await receiver.group_add("sync-bulk", channel)
        return channel

    channel = asyncio.run(setup())
    sender.send_many_sync([(channel, {"type": "direct"})], timeout=30)
    sender.group_send_many_sync([("sync-bulk", {"type": "group"})])

    async def both() -> list[str]:
        return [(await receiver.receive(channel))["type"] for _ in range(2)]

    assert asyncio.run(both()) == ["direct", "group"]

    async def on_a_loop() -> None:
        with pytest.raises(RuntimeError, match="send_many_sync"):
            sender.send_many_sync([(channel, {"type": "x"})])

    asyncio.run(on_a_loop())


async def test_failures_raise_the_first_failures_type_with_the_names(make_layer) -> None:
    sender = make_layer(host=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", connect_timeout=1)
    with pytest.raises(BrokerUnavailable, match="2 of 2 message") as raised:
        await asyncio.wait_for(sender.group_send_many([("a", {"type": "x"}), ("b", {"type": "y"})]), 30)
    assert raised.value.names == ["a", "b"]  # type: ignore[attr-defined]
    assert sender.stats().calls["group_send_failed"] == 2


def test_a_bad_timeout_is_refused_before_anything_is_sent(make_layer) -> None:
    receiver, sender = make_layer(), make_layer()
    channel = asyncio.run(receiver.new_channel())
    with pytest.raises(ValueError, match="timeout"):
        sender.send_many_sync([(channel, {"type": "never"})], timeout=0)
    sender.send_sync(channel, {"type": "after"})

    async def next_message() -> dict:
        return await receiver.receive(channel)

    assert asyncio.run(next_message()) == {"type": "after"}  # the batch was never sent
