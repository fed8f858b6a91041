"""Bounded binding churn: a group's binding outlives its last local member for `group_unbind_delay`, so a member
that leaves and joins again costs no broker operation; `close()` removes every binding before the queue goes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from channels_rabbitmq_threaded import RabbitmqChannelLayer

from ..conftest import TEST_EXCHANGE, broker_ctl


def bound_groups(queue: str) -> set[str]:
    """The groups the broker has bound to `queue` on this session's groups exchange."""
    listing = broker_ctl("-q", "list_bindings", "source_name", "destination_name", "routing_key")
    rows = (line.split("\t") for line in listing.splitlines())
    return {row[2] for row in rows if len(row) == 3 and row[0] == TEST_EXCHANGE and row[1] == queue}


def count_calls(layer: RabbitmqChannelLayer, method: str) -> list[Any]:
    """Record each call of the group bindings' `method` (on the I/O thread), and let it run as usual."""
    side = layer._io_thread.hub.consumer.bindings
    original: Callable[..., Any] = getattr(side, method)
    calls: list[Any] = []

    def counted(*args: Any) -> Any:
        calls.append(args[0])
        return original(*args)

    setattr(side, method, counted)
    return calls


async def test_a_member_that_leaves_and_joins_again_costs_no_broker_operation(make_layer) -> None:
    layer = make_layer(group_unbind_delay=60)
    channel = await layer.new_channel()
    await layer.group_add("grace", channel)
    binds, unbinds = count_calls(layer, "bind"), count_calls(layer, "unbind")
    await layer.group_discard("grace", channel)
    assert await asyncio.to_thread(bound_groups, layer.queue_name) == {"grace"}  # still bound at the broker
    received = layer.stats().deliveries_received
    await layer.group_send("grace", {"type": "while nobody is a member"})  # reaches the process, which drops it
    for _ in range(100):  # a hang guard: the confirm can come back before the delivery reaches the process
        if layer.stats().deliveries_received > received:
            break
        await asyncio.sleep(0.1)
    await layer.group_add("grace", channel)  # a websocket reconnecting to the same process
    assert binds == [] and unbinds == []  # no broker operation at all
    await layer.group_send("grace", {"type": "after the rejoin"})
    assert await asyncio.wait_for(layer.receive(channel), 10) == {"type": "after the rejoin"}


async def test_the_binding_goes_once_the_delay_has_passed(make_layer) -> None:
    layer = make_layer(group_unbind_delay=0.3)
    channel = await layer.new_channel()
    await layer.group_add("brief", channel)
    await layer.group_discard("brief", channel)
    for _ in range(100):  # at most 10 s
        if not await asyncio.to_thread(bound_groups, layer.queue_name):
            break
        await asyncio.sleep(0.1)
    assert await asyncio.to_thread(bound_groups, layer.queue_name) == set()


async def test_zero_unbinds_at_once_and_close_unbinds_every_group_first(make_layer) -> None:
    layer = make_layer(group_unbind_delay=0)
    channel = await layer.new_channel()
    for n in range(20):
        await layer.group_add(f"many-{n}", channel)
    await layer.group_discard("many-0", channel)
    assert "many-0" not in await asyncio.to_thread(bound_groups, layer.queue_name)
    unbinds = count_calls(layer, "unbind_now")
    await layer.close()
    assert sorted(unbinds) == sorted(f"many-{n}" for n in range(1, 20))  # the last UnbindOk stops the link
