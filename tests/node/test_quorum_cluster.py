"""A private three-node cluster and quorum process queues (`queue_type="quorum"`): kill -9 of the node a member is
connected to, under load, loses nothing confirmed, duplicates nothing, and the member keeps its queue and its names;
in a rolling restart of the three nodes, members of both queue types receive after each step.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded import RabbitmqChannelLayer, RabbitmqLayerError

from ..support.private_node import PrivateNode, start_cluster

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
    member = RabbitmqChannelLayer(
        host=[url_a, url_b, url_c], queue_type="quorum", connect_timeout=5, remote_capacity=10_000
    )
    sender = RabbitmqChannelLayer(host=[url_b, url_c, url_a], connect_timeout=5)
    try:
        channel = await member.new_channel()
        await member.group_add("quorum-room", channel)
        confirmed: list[int] = []
        received: list[int] = []

        async def send(numbers: range) -> None:
            for n in numbers:  # direct sends: each is confirmed, refused (ChannelFull) or failed, and only a
                with contextlib.suppress(RabbitmqLayerError, ChannelFull):  # confirmed one is counted (a group_send
                    await sender.send(channel, {"type": "n", "n": n})  # returns even when a member's copy is refused)
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
        if a.process is None:
            await asyncio.to_thread(a.start)  # for the next test


async def first_probe_received(sender: RabbitmqChannelLayer, member: RabbitmqChannelLayer, channel: str) -> int:
    """Probe `channel` every 0.2 s until the member receives a probe; the probe's number (hang guard: ~60 s)."""
    for n in range(300):
        with contextlib.suppress(RabbitmqLayerError, ChannelFull):
            await sender.send(channel, {"type": "probe", "n": n})
        try:
            return int((await asyncio.wait_for(member.receive(channel), 0.2))["n"])
        except asyncio.TimeoutError:
            continue
    raise AssertionError(f"{channel} received nothing for 60 s")


@pytest.mark.timeout(300)
async def test_a_rolling_restart_of_all_three_nodes_under_load(three_nodes) -> None:
    nodes, urls = three_nodes
    quorum = RabbitmqChannelLayer(host=urls, queue_type="quorum", connect_timeout=5)
    classic = RabbitmqChannelLayer(host=urls[1:] + urls[:1], connect_timeout=5)
    sender = RabbitmqChannelLayer(host=urls[2:] + urls[:2], connect_timeout=5)
    try:
        channels = {quorum: await quorum.new_channel(), classic: await classic.new_channel()}
        confirmed: list[int] = []
        received: list[int] = []
        stop = asyncio.Event()

        async def load() -> None:  # group traffic to both members all along: only confirmed ones are counted
            n = 0
            while not stop.is_set():
                n += 1
                with contextlib.suppress(RabbitmqLayerError, ChannelFull):
                    await sender.send(channels[quorum], {"type": "load", "n": n})
                    confirmed.append(n)
                await asyncio.sleep(0.005)

        async def read() -> None:
            while True:
                message = await quorum.receive(channels[quorum])
                if message["type"] == "load":
                    received.append(message["n"])

        loading, reading = asyncio.ensure_future(load()), asyncio.ensure_future(read())
        for node in nodes:  # one at a time: stop, start, and both members receive before the next
            await asyncio.to_thread(node.stop, True)
            await asyncio.to_thread(node.start)
            await first_probe_received(sender, classic, channels[classic])
            before = len(received)
            for _ in range(300):  # hang guard: the quorum member receives load again within ~30 s
                if len(received) > before:
                    break
                await asyncio.sleep(0.1)
            assert len(received) > before, f"the quorum member received nothing after {node.nodename} restarted"
        stop.set()
        await loading
        for _ in range(300):  # hang guard: drain for at most ~30 s
            if set(confirmed) <= set(received):
                break
            await asyncio.sleep(0.1)
        reading.cancel()
        assert sorted(set(confirmed) - set(received)) == [] and len(received) == len(set(received))
        assert quorum.stats().queue_moves == 0
    finally:
        for layer in (sender, quorum, classic):
            await layer.close()
