"""A private two-node cluster: the node of a process's queue dies, or the node the members are connected to stops;
they receive again through the other node.

A leased queue lives on one node: when that node dies, the process moves to a new queue on the other one, and the
names it handed out keep working (the first test). The failover members of the second use `queue_lease=0`
(exclusive queues, declared again under the same names on the other node).

Members run in two other OS processes with `host=[A, B]`, so they connect to A; the sender uses `host=[B, A]`.
After `stop_app` on A, the members reconnect to B, declare their queues again under the same names, re-bind their
group, and answer group messages again.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterator

import pytest

from channels_rabbitmq_threaded import RabbitmqChannelLayer, RabbitmqLayerError

from ..conftest import receives_again
from ..support.private_node import PrivateNode, start_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrivateNode, PrivateNode, list[int]]]:
    (a, b), ports = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield a, b, ports
    finally:
        b.stop()  # B first: A's app may be stopped by the test, and neither is restarted afterwards
        a.stop()


def member_process(hosts: list[str], group: str, names, ready) -> None:
    """Joins `group` and answers every group message on its `reply_to` channel until told to stop."""

    async def main() -> None:
        # queue_lease=0: an exclusive queue fails over at once; a leased one waits for its node (deployment.md)
        layer = RabbitmqChannelLayer(host=hosts, heartbeat=5, connect_timeout=2, queue_lease=0)
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        names.put(channel)
        ready.set()
        while (message := await layer.receive(channel))["type"] != "stop":
            while True:  # the reply may meet this member's own reconnect: retry until it goes out
                try:
                    await layer.send(message["reply_to"], {"type": "echo", "n": message["n"], "from": channel})
                    break
                except RabbitmqLayerError:
                    await asyncio.sleep(0.2)
        await layer.close()

    asyncio.run(main())


@pytest.mark.timeout(300)
async def test_a_process_whose_queues_node_dies_moves_and_keeps_its_channel_names(cluster) -> None:
    """Runs first (the next test stops A for good). The member's leased queue lives on A; A's VM is killed. The
    member moves to a new queue on B and receives on the names it handed out, groups included; once A is back, the
    queue left there is deleted, and the member still receives."""
    a, b, (port_a, port_b) = cluster
    url_a, url_b = (f"amqp://guest:guest@127.0.0.1:{port}/%2F" for port in (port_a, port_b))
    member = RabbitmqChannelLayer(host=[url_a, url_b], heartbeat=5, connect_timeout=2)  # queue_lease: the default
    sender = RabbitmqChannelLayer(host=[url_b, url_a], connect_timeout=2)
    try:
        channel = await member.new_channel()
        await member.group_add("moved", channel)
        await sender.group_send("moved", {"type": "before"})
        assert (await asyncio.wait_for(member.receive(channel), 10))["type"] == "before"
        left_behind = member.stats().queue
        await asyncio.to_thread(a.kill9)  # the queue's node dies; B says its home node is down

        await receives_again(member, sender, channel, "moved")
        stats = member.stats()
        assert (stats.queue_losses, stats.queue_moves) == (1, 1)
        assert stats.queue == f"{member.queue_name}.1" and stats.bookkeeping["queues_left_behind"] == 1

        await asyncio.to_thread(a.start)  # back, with the old queue bound to the address and the group
        for _ in range(120):  # a hang guard: at most about 60 s
            queues = (await asyncio.to_thread(b.ctl, "list_queues", "-q", "name")).split()
            if left_behind not in queues and member.stats().bookkeeping["queues_left_behind"] == 0:
                break
            await asyncio.sleep(0.5)
        assert left_behind not in queues and member.stats().bookkeeping["queues_left_behind"] == 0
        await receives_again(member, sender, channel, "moved")
    finally:
        await sender.close()
        await member.close()
        if a.process is None:
            await asyncio.to_thread(a.start)  # for the next test, whatever happened in this one


@pytest.mark.timeout(240)
async def test_stopping_the_members_node_fails_over_to_the_other(cluster) -> None:
    a, _b, (port_a, port_b) = cluster
    url_a, url_b = (f"amqp://guest:guest@127.0.0.1:{port}/%2F" for port in (port_a, port_b))
    context = multiprocessing.get_context("spawn")
    names, processes, ready_events = context.Queue(), [], []
    for _ in range(2):
        ready = context.Event()
        process = context.Process(target=member_process, args=([url_a, url_b], "failover", names, ready))
        process.start()
        processes.append(process)
        ready_events.append(ready)
    sender = RabbitmqChannelLayer(host=[url_b, url_a], connect_timeout=2)
    try:
        for ready in ready_events:
            assert await asyncio.to_thread(ready.wait, 60)
        members = {names.get(timeout=5) for _ in range(2)}
        inbox = await sender.new_channel()

        async def echoes_from_all(n: int) -> None:
            """group_send `n` until every member has echoed it."""
            seen: set[str] = set()
            while seen != members:
                await sender.group_send("failover", {"type": "ping", "n": n, "reply_to": inbox})
                try:
                    while True:
                        echo = await asyncio.wait_for(sender.receive(inbox), 0.5)
                        if echo["n"] == n:
                            seen.add(echo["from"])
                except asyncio.TimeoutError:
                    pass

        await asyncio.wait_for(echoes_from_all(1), 30)
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(a.ctl, "stop_app")  # the members' node goes away
        stopped_at = loop.time()
        await asyncio.wait_for(echoes_from_all(2), 60)
        print(f"\ngroup traffic flowed again through the other node {loop.time() - stopped_at:.1f}s after stop_app")
        await sender.group_send("failover", {"type": "stop"})
    finally:
        await sender.close()
        for process in processes:
            process.join(20)
            if process.is_alive():
                process.kill()
