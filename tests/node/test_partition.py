"""A real partition: three nodes, each in a network namespace of its own (`netns_cluster.py`), and the node that
holds a member's queue, and serves its consumer, cut off from the other two while the test still reaches it.

On 3.x the cut-off node pauses (`pause_minority`) once `net_ticktime` has passed; on 4.3 it keeps serving its
clients for as long as the partition lasts. Either way the member finds out (the reach probe, `reach.py`, or the
node's pause), moves to a queue on the majority, and receives again on the names it handed out, groups included;
after the heal the queue left on the cut-off node is deleted, the member still receives, and nothing came twice.

A process that only sends, through the node that is cut off, to a quorum queue on the other side: on 4.3 its
publishes are never confirmed while the partition lasts, and the publisher link moves to another node once a
confirm has been awaited for `connect_timeout` (`publisher.ConfirmWatch`), so its caller is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded import RabbitmqChannelLayer, RabbitmqLayerError

from ..conftest import receives_again
from ..support.netns_cluster import NamespacedCluster


@pytest.fixture
async def member_and_sender(netns_three: NamespacedCluster) -> AsyncIterator[tuple[RabbitmqChannelLayer, ...]]:
    urls = netns_three.urls
    member = RabbitmqChannelLayer(host=urls, connect_timeout=3)  # consumer on node 0, publisher then on node 1
    sender = RabbitmqChannelLayer(host=urls[1:], connect_timeout=3)  # only sends: on node 1 (or 2), never on node 0
    try:
        yield member, sender
    finally:
        netns_three.heal()
        await sender.close()
        await member.close()


async def first_received_after(member: RabbitmqChannelLayer, sender: RabbitmqChannelLayer, channel: str,
                               received: list[int], since: int) -> None:  # fmt: skip
    """Send numbered messages (direct, then group, in turn) from `since` on until the member receives one of
    them; every number the member receives goes into `received` (hang guard: 120 s)."""
    deadline = time.monotonic() + 120
    for n in itertools.count(since):
        if time.monotonic() > deadline:
            break
        with contextlib.suppress(ChannelFull, RabbitmqLayerError, asyncio.TimeoutError):
            if n % 2:
                await asyncio.wait_for(sender.group_send("cut-off", {"type": "n", "n": n}), 5)
            else:
                await asyncio.wait_for(sender.send(channel, {"type": "n", "n": n}), 5)
        with contextlib.suppress(asyncio.TimeoutError):
            while True:
                number = (await asyncio.wait_for(member.receive(channel), 0.2))["n"]
                received.append(number)
                if number >= since:
                    return
    raise AssertionError(f"{channel} received nothing sent after message {since}")


async def listed_nowhere(cluster: NamespacedCluster, queue: str) -> bool:
    """True once no node lists `queue`. On 4.3 a node answers `list_queues` from its own copy of the metadata,
    which a node back from a partition brings up to date a few seconds after its clients see the delete
    (hang guard: about 60 s)."""
    for _ in range(60):
        listings = [await asyncio.to_thread(node.ctl, "list_queues", "-q", "name") for node in cluster.nodes]
        if not any(queue in listing.split() for listing in listings):
            return True
        await asyncio.sleep(1)
    return False


@pytest.mark.timeout(420)
async def test_a_member_cut_off_with_its_node_moves_and_keeps_its_names(netns_three, member_and_sender) -> None:
    member, sender = member_and_sender
    cut_off = netns_three.nodes[0]
    channel = await member.new_channel()
    await member.group_add("cut-off", channel)
    received: list[int] = []
    await first_received_after(member, sender, channel, received, since=0)
    queue_before = member.stats().queue

    await asyncio.to_thread(netns_three.partition, cut_off)
    await first_received_after(member, sender, channel, received, since=1000)
    stats = member.stats()
    assert stats.queue_moves >= 1 and stats.queue != queue_before  # a queue on the majority now
    assert stats.consumer.url != cut_off.url.replace("guest:guest", "guest:***")

    await asyncio.to_thread(netns_three.heal)
    for _ in range(240):  # hang guard: about 120 s for the cut-off node to rejoin and the queue left there to go
        if member.stats().bookkeeping["queues_left_behind"] == 0:
            break
        await asyncio.sleep(0.5)
    assert member.stats().bookkeeping["queues_left_behind"] == 0
    assert await listed_nowhere(netns_three, queue_before)
    await first_received_after(member, sender, channel, received, since=2000)
    await receives_again(member, sender, channel, "cut-off")
    assert len(received) == len(set(received))  # nothing came twice


@pytest.mark.timeout(300)
async def test_a_sender_cut_off_with_its_node_is_answered_through_another(netns_three: NamespacedCluster) -> None:
    urls = netns_three.urls
    member = RabbitmqChannelLayer(host=urls[1:] + urls[:1], queue_type="quorum", connect_timeout=3)
    sender = RabbitmqChannelLayer(host=urls, connect_timeout=3)  # only sends: on the first host, node 0
    try:
        channel = await member.new_channel()
        await sender.send(channel, {"type": "n", "n": 0})
        assert (await asyncio.wait_for(member.receive(channel), 30))["n"] == 0
        assert sender.stats().publisher.url == netns_three.urls[0].replace("guest:guest", "guest:***")

        await asyncio.to_thread(netns_three.partition, netns_three.nodes[0])
        await asyncio.wait_for(sender.send(channel, {"type": "n", "n": 1}), 120)  # hang guard
        assert (await asyncio.wait_for(member.receive(channel), 60))["n"] == 1
    finally:
        await asyncio.to_thread(netns_three.heal)
        await sender.close()
        await member.close()
