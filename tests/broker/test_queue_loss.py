"""A process whose queue is lost keeps receiving: its queue deleted under it (here), or its queue's node down
(tests/node/test_cluster.py). Channel names it handed out before keep working; what was lost is counted."""

from __future__ import annotations

import asyncio

import pika
import pytest

from ..conftest import HOST, TEST_EXCHANGE, broker_ctl, receives_again


@pytest.mark.parametrize("queue_lease", [60, 0])
async def test_a_process_whose_queue_is_deleted_receives_again_on_the_names_it_handed_out(
    make_layer, queue_lease: float
) -> None:
    layer, sender = make_layer(queue_lease=queue_lease), make_layer()
    channel = await layer.new_channel()
    await layer.group_add("deleted-under-it", channel)
    await sender.send(channel, {"type": "before"})
    assert await asyncio.wait_for(layer.receive(channel), 10) == {"type": "before"}

    await asyncio.to_thread(broker_ctl, "delete_queue", layer.stats().queue)

    await receives_again(layer, sender, channel, "deleted-under-it")
    stats = layer.stats()
    assert (stats.queue_losses, stats.queue_moves, stats.queue) == (1, 0, layer.queue_name)


async def test_a_send_reaches_a_process_that_binds_no_address(make_layer) -> None:
    """A process of an older version (or channels_rabbitmq) consumes a queue named by its address and binds nothing
    to the direct exchange: a send to one of its channels comes back from the direct exchange and goes to that
    queue by name; a send to a process that is gone is logged as unroutable, as before."""
    sender = make_layer()
    old = f"channels_{TEST_EXCHANGE.replace('-', '')[-12:]}"
    connection = pika.BlockingConnection(pika.URLParameters(HOST))
    try:
        connection.channel().queue_declare(old, exclusive=True)
        await sender.send(f"specific.{old}!abc", {"type": "to an old process"})
        method, _properties, body = connection.channel().basic_get(old, auto_ack=True)
        assert method is not None and b"to an old process" in body
    finally:
        connection.close()
    await sender.send("specific.channels_000000000000!gone", {"type": "to nobody"})  # returned twice: logged
    assert sender.stats().drops == {"unroutable": 1}
