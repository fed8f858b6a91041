"""Quiet, useful logs: a repeated warning is logged once and then summed; a pause of consumption only when it lasts;
every record of the layer's events carries `extra` fields (an event name and counts) for JSON log pipelines."""

from __future__ import annotations

import asyncio
import logging

import pytest
from asgiref.sync import async_to_sync

from channels_rabbitmq_threaded import BrokerUnavailable
from channels_rabbitmq_threaded._io.ledgers import PAUSE_LOG_AFTER

from ..support.private_node import free_port


def layer_records(caplog, event: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if getattr(record, "event", None) == event]


def test_repeated_drops_are_logged_once_then_summed(make_layer, caplog) -> None:
    sender, gone = make_layer(), make_layer()
    channel = async_to_sync(gone.new_channel)()
    async_to_sync(gone.close)()  # its queue is gone: every send to its channel comes back unroutable
    caplog.set_level(logging.WARNING)
    for n in range(50):
        sender.send_sync(channel, {"type": "x", "n": n})
    async_to_sync(sender.close)()  # the I/O thread logs what it has not logged yet as it ends
    first = layer_records(caplog, "message_dropped")
    summed = layer_records(caplog, "messages_dropped")
    assert len(first) == 1 and first[0].reason == "unroutable" and first[0].count == 1
    assert "RabbitMQ has no queue" in first[0].getMessage()
    assert len(summed) == 1 and summed[0].reason == "unroutable" and summed[0].count == 49
    assert "Dropped 49 more message(s)" in summed[0].getMessage()


async def test_a_receiver_slower_than_its_senders_logs_no_pause(make_layer, caplog) -> None:
    caplog.set_level(logging.INFO)
    sender, receiver = make_layer(), make_layer(local_capacity=5, prefetch_count=5, remote_capacity=5000)
    channel = await receiver.new_channel()
    count = 1000

    async def slow_reader() -> None:
        for _ in range(count):
            await receiver.receive(channel)

    reading = asyncio.ensure_future(slow_reader())
    await asyncio.gather(*(sender.send(channel, {"type": "x"}) for _ in range(count)))
    await asyncio.wait_for(reading, 60)
    assert not layer_records(caplog, "consumption_paused")
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


async def test_a_lasting_pause_is_logged_once_with_its_figures(make_layer, caplog) -> None:
    caplog.set_level(logging.INFO)
    layer = make_layer(local_capacity=5, prefetch_count=5, remote_capacity=100)
    channel = await layer.new_channel()
    for n in range(20):
        await layer.send(channel, {"type": "x", "n": n})
    await asyncio.sleep(PAUSE_LOG_AFTER + 1.5)  # nobody receives: consumption stays paused
    paused = layer_records(caplog, "consumption_paused")
    assert len(paused) == 1
    assert paused[0].levelno == logging.WARNING and paused[0].seconds >= PAUSE_LOG_AFTER and paused[0].count >= 1
    assert "local_capacity (5) reached" in paused[0].getMessage()
    assert [(await layer.receive(channel))["n"] for _ in range(20)] == list(range(20))  # nothing was lost


async def test_connection_events_carry_extra_fields(make_layer, caplog) -> None:
    caplog.set_level(logging.INFO)
    layer = make_layer()
    await layer.new_channel()
    connected = layer_records(caplog, "link_connected")
    assert sorted(record.link for record in connected) == ["consumer", "publisher"]


def test_a_broker_that_stays_down_is_logged_once(make_layer, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="channels_rabbitmq_threaded")
    layer = make_layer(host=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", connect_timeout=2)
    with pytest.raises(BrokerUnavailable):
        layer.group_send_sync("g", {"type": "x"})  # waits connect_timeout while the publisher link retries
    failures = layer_records(caplog, "link_connect_failed")
    assert len(failures) >= 3  # attempts at about 0, 0.1-0.2, 0.3-0.6 and 0.7-1.4 s
    warnings = [record for record in failures if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].link == "publisher"
    assert "ConnectionRefusedError" in warnings[0].getMessage()
