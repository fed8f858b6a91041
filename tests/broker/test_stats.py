"""`layer.stats()` after real traffic, a refusal, a drop and a reconnect; `ping()` against a live, a stopped and a
frozen broker."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded import RabbitmqChannelLayer

from ..conftest import broker_ctl


def test_an_unused_layer_has_idle_stats_and_no_thread(make_layer) -> None:
    layer = make_layer()
    stats = layer.stats()
    assert not stats.started and stats.publisher.state == stats.consumer.state == "IDLE"
    assert layer._io_thread is None  # asking for stats started nothing


async def test_stats_count_calls_deliveries_refusals_drops_and_gauges(make_layer) -> None:
    receiver = make_layer(remote_capacity=1, local_capacity=1)
    sender = make_layer()
    channel = await receiver.new_channel()
    await receiver.group_add("counted", channel)
    await sender.send(channel, {"type": "one"})
    await sender.group_send("counted", {"type": "two"})
    assert await receiver.receive(channel) == {"type": "one"}
    assert await receiver.receive(channel) == {"type": "two"}
    await sender.send(channel, {"type": "fills local capacity"})  # routed into memory: local_capacity 1
    await sender.send(channel, {"type": "fills the queue"})  # held back: remote_capacity 1
    refused = 0
    for _ in range(20):  # the queue is full once the held message is in flight; a nack raises ChannelFull
        try:
            await sender.send(channel, {"type": "too many"})
        except ChannelFull:
            refused += 1
            break
    await sender.send("specific.channels_000000000000!gone", {"type": "unroutable"})
    waiting = asyncio.ensure_future(receiver.receive("specific." + receiver.queue_name + "!nobody-sends"))
    await asyncio.sleep(0.2)

    sent, received = sender.stats(), receiver.stats()
    assert refused == 1 and sent.calls["send_refused"] == 1
    assert sent.calls["send_confirmed"] >= 4 and sent.calls["group_send_confirmed"] == 1
    assert sent.calls["send_failed"] == 0
    assert sent.durations["send"].count == sum(sent.calls[f"send_{o}"] for o in ("confirmed", "refused", "failed"))
    assert sent.durations["send"].sum > 0
    assert await _eventually_dropped(sender)
    assert received.deliveries_received >= 3 and received.delivered_to_receivers == 2
    assert received.buffered >= 1 and received.waiting_receivers == 1 and received.local_groups == 1
    assert received.consumer.state == "READY" and received.consumer.connects == 1 and received.consumer.losses == 0
    assert "127.0.0.1" in received.consumer.url or "localhost" in received.consumer.url
    assert sent.publisher.state == "READY" and sent.consumer.state == "IDLE"  # a sender never receives
    assert received.consumer.last_error == sent.publisher.last_error == ""  # healthy: no error to report
    assert set(received.as_dict()) >= {"calls", "drops", "consumer", "publisher"}
    waiting.cancel()


async def _eventually_dropped(layer: RabbitmqChannelLayer) -> bool:
    """The return of an unroutable message may come just after its confirm."""
    for _ in range(50):
        if layer.stats().drops.get("unroutable"):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_stats_count_a_reconnect(make_layer) -> None:
    layer = make_layer()
    channel = await layer.new_channel()
    await asyncio.to_thread(broker_ctl, "close_connection", _connection_pid(layer), "test: cut")
    for _ in range(100):
        stats = layer.stats()
        if stats.consumer.losses == 1 and stats.consumer.state == "READY":
            break
        await asyncio.sleep(0.1)
    assert stats.consumer.losses == 1 and stats.consumer.connects == 2 and stats.consumer.last_error_at is not None
    await layer.send(channel, {"type": "after"})
    assert await layer.receive(channel) == {"type": "after"}


def _connection_pid(layer: RabbitmqChannelLayer) -> str:
    listing = broker_ctl("-q", "list_connections", "pid", "client_properties")
    return next(line.split()[0] for line in listing.splitlines() if f"{layer.queue_name} consumer" in line)


async def test_ping_proves_the_round_trip(make_layer) -> None:
    layer = make_layer()
    assert 0 < await layer.ping(timeout=5) < 5
    rtt = await asyncio.to_thread(layer.ping_sync, 5)
    assert 0 < rtt < 5
    with pytest.raises(ValueError, match="timeout"):
        await layer.ping(timeout=0)


def test_ping_sync_refuses_a_running_loop(make_layer) -> None:
    layer = make_layer()

    async def on_a_loop() -> None:
        with pytest.raises(RuntimeError, match="ping_sync"):
            layer.ping_sync(1)

    asyncio.run(on_a_loop())


def test_stats_are_read_from_any_thread(make_layer) -> None:
    layer = make_layer()
    layer.send_sync("specific.channels_000000000000!x", {"type": "warm up"})
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(layer.stats().calls["send_confirmed"])) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [1, 1, 1, 1]
