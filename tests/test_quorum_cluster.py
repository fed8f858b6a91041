"""A private three-node cluster and quorum process queues (`queue_type="quorum"`): kill -9 of the node a member is
connected to, under load, loses nothing confirmed, duplicates nothing, and the member keeps its queue and its names.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded import RabbitmqChannelLayer, RabbitmqLayerError

from .private_node import PrivateNode, start_cluster

SENT_BEFORE_THE_KILL = 300
SENT_AFTER_THE_KILL = 300


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[PrivateNode], list[str]]]:
    nodes, ports = start_cluster(tmp_path_factory.mktemp("three"), size=3)
    try:
        yield nodes, [f"amqp://guest:guest@127.0.0.1:{port}/%2F" for port in ports]
    finally:
        for node in reversed(nodes):
            node.stop()


@pytest.mark.timeout(300)
async def test_killing_a_node_under_load_loses_nothing_confirmed_with_quorum_queues(three_nodes) -> None:
    (a, _b, _c), (url_a, url_b, url_c) = three_nodes
    member = RabbitmqChannelLayer(host=[url_a, url_b, url_c], queue_type="quorum", connect_timeout=5)
    sender = RabbitmqChannelLayer(host=[url_b, url_c, url_a], connect_timeout=5)
    try:
        channel = await member.new_channel()
        await member.group_add("quorum-room", channel)
        confirmed: list[int] = []
        received: list[int] = []

        async def send(numbers: range) -> None:
            for n in numbers:  # direct sends and group messages, alternately; only a confirmed one is counted
                with contextlib.suppress(RabbitmqLayerError, ChannelFull):  # refused or failed: not confirmed
                    if n % 2:
                        await sender.send(channel, {"type": "n", "n": n})
                    else:
                        await sender.group_send("quorum-room", {"type": "n", "n": n})
                    confirmed.append(n)

        async def receive() -> None:
            while True:
                received.append((await member.receive(channel))["n"])
                await asyncio.sleep(0.002)  # a slow reader: messages wait in the queue when the node dies

        reading = asyncio.ensure_future(receive())
        await send(range(SENT_BEFORE_THE_KILL))
        await asyncio.to_thread(a.kill9)  # the member's node (and, most likely, its queue's Raft leader)
        await send(range(SENT_BEFORE_THE_KILL, SENT_BEFORE_THE_KILL + SENT_AFTER_THE_KILL))
        for _ in range(300):  # a hang guard: the member drains for at most about 30 s
            if set(confirmed) <= set(received):
                break
            await asyncio.sleep(0.1)
        reading.cancel()
        assert sorted(set(confirmed) - set(received)) == []  # nothing confirmed was lost
        assert len(received) == len(set(received))  # nothing came twice
        stats = member.stats()
        assert stats.queue == member.queue_name and stats.queue_moves == 0  # the same queue, replicated
        assert stats.consumer.losses >= 1 and len(confirmed) >= SENT_AFTER_THE_KILL
    finally:
        await sender.close()
        await member.close()
