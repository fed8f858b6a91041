"""The synchronous fast path: send_sync / group_send_sync from threads with no event loop."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded import LayerClosed

from ..conftest import in_plain_thread


async def test_send_sync_and_group_send_sync_from_a_plain_thread(layer) -> None:
    channel = await layer.new_channel()
    await layer.group_add("sync-group", channel)

    def celery_task() -> None:
        for n in range(20):
            layer.send_sync(channel, {"type": "direct", "n": n})
        layer.group_send_sync("sync-group", {"type": "group"})

    await asyncio.to_thread(in_plain_thread, celery_task)
    assert [(await layer.receive(channel))["n"] for _ in range(20)] == list(range(20))
    assert await layer.receive(channel) == {"type": "group"}


def test_send_sync_raises_channel_full_and_validates(make_layer) -> None:
    layer = make_layer(local_capacity=1, remote_capacity=1, prefetch_count=1)
    channel = async_to_sync(layer.new_channel)()

    def fill() -> None:
        for n in range(10):
            layer.send_sync(channel, {"type": "n", "n": n})

    with pytest.raises(ChannelFull):
        in_plain_thread(fill)
    with pytest.raises(TypeError):
        layer.send_sync("bad name!", {"type": "x"})
    with pytest.raises(TypeError):
        layer.send_sync(channel, ["not", "a", "dict"])


async def test_sync_methods_refuse_to_block_a_running_loop(layer) -> None:
    channel = await layer.new_channel()
    with pytest.raises(RuntimeError, match="use the async method"):
        layer.send_sync(channel, {"type": "x"})
    with pytest.raises(RuntimeError, match="use the async method"):
        layer.group_send_sync("g", {"type": "x"})


def test_send_sync_after_close(make_layer) -> None:
    layer = make_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.close)()
    with pytest.raises(LayerClosed):
        layer.send_sync(channel, {"type": "x"})


def test_sync_timeout_says_the_message_may_still_arrive(make_layer) -> None:
    """A publish parked for a connection that is slow to come: the caller's timeout ends its wait, not the publish."""
    from ..support.private_node import free_port

    layer = make_layer(host=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", connect_timeout=3)
    with pytest.raises(TimeoutError, match="may still be delivered"):
        layer.group_send_sync("g", {"type": "x"}, timeout=0.2)


@pytest.mark.parametrize(("timeout", "error"), [(0, ValueError), (-1, ValueError), ("5", TypeError), (True, TypeError)])
def test_sync_timeout_is_checked(layer, timeout, error) -> None:
    with pytest.raises(error, match="timeout"):
        layer.group_send_sync("g", {"type": "x"}, timeout=timeout)
    layer.group_send_sync("g", {"type": "x"})  # the layer keeps working
