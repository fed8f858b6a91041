"""Network faults between the layer and the machine's broker, injected by `tests.support.fault_proxy` (all on
127.0.0.1)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from channels_rabbitmq_threaded import BrokerUnavailable

from ..conftest import HOST
from ..support.fault_proxy import DOWN, UP, FaultProxy


def through(proxy: FaultProxy) -> str:
    """HOST, aimed at the proxy."""
    parts = urlsplit(HOST)
    userinfo = parts.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{userinfo}@127.0.0.1:{proxy.port}").geturl()


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    proxy = FaultProxy(urlsplit(HOST).port or 5672)
    yield proxy
    proxy.close()


async def test_a_blackholed_first_host_is_given_up_in_time_for_the_next(proxy: FaultProxy, make_layer) -> None:
    """A host that accepts and never answers must not hold the attempt past half of connect_timeout."""
    proxy.blackhole(True)
    receiver = make_layer()
    channel = await receiver.new_channel()
    sender = make_layer(host=[through(proxy), HOST], connect_timeout=4)  # pika's own defaults would wait 10-15 s
    await sender.send(channel, {"type": "made it"})
    assert await receiver.receive(channel) == {"type": "made it"}
    assert proxy.accepted >= 1


async def test_a_blackholed_only_host_fails_the_call_with_the_reason(proxy: FaultProxy, make_layer) -> None:
    proxy.blackhole(True)
    sender = make_layer(host=through(proxy), connect_timeout=1)
    with pytest.raises(BrokerUnavailable, match=r"(?i)timeout|timed out"):
        await sender.send("specific.channels_000000000000!x", {"type": "nobody"})


async def receive_numbers(layer, channel: str, count: int) -> list[int]:
    return [(await asyncio.wait_for(layer.receive(channel), 30))["n"] for _ in range(count)]


async def test_messages_waiting_in_the_queue_survive_a_cut(proxy: FaultProxy, make_layer) -> None:
    """Confirmed sends sit in the receiver's queue while its connection is cut: the leased queue keeps them, and
    its group binding, for the receiver's next connection. (With `queue_lease=0` they go with the queue.)"""
    receiver = make_layer(host=through(proxy), heartbeat=0)
    sender = make_layer()
    channel = await receiver.new_channel()
    await receiver.group_add("survivors", channel)
    proxy.stall()  # the receiver's connection hangs: what is sent now waits in its queue at the broker
    for n in range(5):
        await sender.send(channel, {"type": "direct", "n": n})  # confirmed: the broker has it in the queue
    for n in range(5, 10):
        await sender.group_send("survivors", {"type": "group", "n": n})
    proxy.reset()  # the connection is cut; the layer reconnects through the proxy
    proxy.resume()
    assert await receive_numbers(receiver, channel, 10) == list(range(10))


async def test_deliveries_whose_ack_was_lost_are_not_received_twice(proxy: FaultProxy, make_layer, caplog) -> None:
    """Routed and acknowledged, but the acks never reach RabbitMQ before the cut: it delivers them again."""
    caplog.set_level(logging.INFO)
    receiver = make_layer(host=through(proxy), heartbeat=0)
    sender = make_layer()
    channel = await receiver.new_channel()
    proxy.stall(UP)  # deliveries come down; the acks going up are held
    for n in range(5):
        await sender.send(channel, {"type": "direct", "n": n})
    assert await receive_numbers(receiver, channel, 5) == list(range(5))
    proxy.reset()  # the acks are lost: RabbitMQ redelivers all five to the new connection
    proxy.resume()
    await sender.send(channel, {"type": "after", "n": 5})
    assert await receive_numbers(receiver, channel, 1) == [5]  # not a copy of 0-4
    assert [r.count for r in caplog.records if getattr(r, "event", "") == "copy_dropped"][-1:] == [5]


@pytest.mark.parametrize("call", ["send", "group_send", "send_sync"])
async def test_a_cut_between_publish_and_confirm_is_invisible_to_the_caller(
    proxy: FaultProxy, make_layer, call: str
) -> None:
    """The confirm is lost with the connection: the layer publishes again (same id), the receiver drops the copy."""
    receiver = make_layer()
    sender = make_layer(host=through(proxy), heartbeat=0)
    channel = await receiver.new_channel()
    await receiver.group_add("confirmed", channel)
    await sender.send(channel, {"type": "warm-up", "n": -1})  # the sender's connection is open
    assert await receive_numbers(receiver, channel, 1) == [-1]
    proxy.stall(DOWN)  # the publish goes up; its confirm does not come down
    message = {"type": "once", "n": 0}
    if call == "send":
        sending = asyncio.ensure_future(sender.send(channel, message))
    elif call == "group_send":
        sending = asyncio.ensure_future(sender.group_send("confirmed", message))
    else:
        sending = asyncio.ensure_future(asyncio.to_thread(sender.send_sync, channel, message))
    assert await receive_numbers(receiver, channel, 1) == [0]  # delivered; the sender still waits for the confirm
    assert not sending.done()
    proxy.reset()
    proxy.resume()
    await asyncio.wait_for(sending, 30)  # no ConfirmLost: published again on the new connection, and confirmed
    await sender.send(channel, {"type": "after", "n": 1})
    assert await receive_numbers(receiver, channel, 1) == [1]  # the copy of 0 was dropped


FAULTS: dict[str, Callable[[FaultProxy], None]] = {
    "latency": lambda proxy: proxy.latency(0.2),
    "throttle": lambda proxy: proxy.throttle(20_000),
    "stall": lambda proxy: proxy.stall(),
    "reset": lambda proxy: proxy.reset(),
    "refuse": lambda proxy: (proxy.refuse(True), proxy.reset()),
    "blackhole": lambda proxy: (proxy.blackhole(True), proxy.reset()),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_group_add_and_a_waiting_receive_ride_out_each_fault(proxy: FaultProxy, make_layer, fault: str) -> None:
    """A second of each fault on the member's connections, while it joins a group and a receive() waits."""
    member = make_layer(host=through(proxy), heartbeat=2)
    sender = make_layer()
    channel = await member.new_channel()
    waiting = asyncio.ensure_future(member.receive(channel))
    FAULTS[fault](proxy)
    adding = asyncio.ensure_future(member.group_add("ride-out", channel))
    await asyncio.sleep(1)
    proxy.clear()
    await asyncio.wait_for(adding, 15)  # shorter than connect_timeout: the caller sees no fault
    await sender.group_send("ride-out", {"type": "joined", "n": 0})
    assert (await asyncio.wait_for(waiting, 15))["n"] == 0
