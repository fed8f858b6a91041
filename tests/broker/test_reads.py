"""The process's deliveries and its publisher confirms are read by the layer before pika parses them, and the rest
still reaches pika.

`reads.DeliveryReader` takes whole deliveries of the process's own consumer from the consumer connection's input;
messages it leaves to pika (one over its wait, one published by another client with other properties) arrive as
well, among them, and none twice. `reads.ConfirmReader` takes the confirms from the publisher connection's input;
every send is confirmed, refusals (a full queue) included.
"""

from __future__ import annotations

import asyncio

import pika
from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from channels_rabbitmq_threaded._routing.envelope import Recipient, encode

from ..conftest import HOST, input_reader, links

MESSAGES = 300


async def test_the_process_s_deliveries_are_read_by_the_layer_and_the_rest_by_pika(
    layer: RabbitmqChannelLayer,
) -> None:
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "warm"})  # the consumer is ready
    await layer.receive(channel)
    reader = input_reader(links(layer).consumer)
    taken_before = reader.taken
    big = "x" * 300_000  # over the reader's wait and pika's frame size: pika takes it frame by frame

    def publish_with_other_properties() -> None:  # another client, straight to the process's queue
        body = encode({"type": "foreign", "n": -1}, Recipient(is_group=False, name=channel))
        connection = pika.BlockingConnection(pika.URLParameters(HOST))
        try:
            properties = pika.BasicProperties(content_type="application/msgpack", headers={"via": "test"})
            connection.channel().basic_publish("", layer.queue_name, body, properties)
        finally:
            connection.close()

    foreign = asyncio.to_thread(publish_with_other_properties)
    await asyncio.gather(foreign, layer.send_many((channel, {"type": "m", "n": n}) for n in range(MESSAGES)))
    await layer.send(channel, {"type": "big", "n": MESSAGES, "blob": big})
    received = [await layer.receive(channel) for _ in range(MESSAGES + 2)]
    numbers = [message["n"] for message in received]
    assert sorted(numbers) == [-1, *range(MESSAGES + 1)]
    assert [n for n in numbers if n >= 0] == list(range(MESSAGES + 1))  # one sender's order holds
    assert next(message for message in received if message["n"] == MESSAGES)["blob"] == big
    taken = reader.taken - taken_before
    assert taken == MESSAGES, f"{taken} of {MESSAGES + 2} deliveries read by the layer, {MESSAGES} expected"


async def test_the_publisher_s_confirms_are_read_by_the_layer(make_layer) -> None:
    layer, roomy = make_layer(), make_layer()
    tight = make_layer(remote_capacity=5, local_capacity=1, prefetch_count=1)  # its queue refuses (basic.nack)
    channel, full = await roomy.new_channel(), await tight.new_channel()
    await layer.send(channel, {"type": "warm"})  # the publisher is in confirm mode
    await roomy.receive(channel)
    reader = input_reader(links(layer).publisher)
    taken_before = reader.taken
    for n in range(MESSAGES):  # one at a time: one basic.ack each
        await layer.send(channel, {"type": "m", "n": n})
        assert (await roomy.receive(channel))["n"] == n
    outcomes = await asyncio.gather(
        *(layer.send(full, {"type": "m", "n": n}) for n in range(20)), return_exceptions=True
    )
    assert {type(outcome) for outcome in outcomes} == {type(None), ChannelFull}, outcomes  # acks and nacks
    taken = reader.taken - taken_before
    assert taken >= MESSAGES + 1, f"{taken} confirms read by the layer for {MESSAGES + 20} sends"
