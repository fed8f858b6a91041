"""A private two-node cluster: stop the node the members are connected to; group traffic flows through the other.

The failover members use `queue_lease=0` (exclusive queues): a leased queue lives on its node and waits for it to
return, which the first test shows.

Members run in two other OS processes with `host=[A, B]`, so they connect to A; the sender uses `host=[B, A]`.
After `stop_app` on A, the members reconnect to B, declare their queues again under the same names, re-bind their
group, and answer group messages again.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Iterator

import pytest

from channels_rabbitmq_threaded import RabbitmqChannelLayer, RabbitmqLayerError

from .private_node import PrivateNode, start_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrivateNode, PrivateNode, list[int]]]:
    a, b, ports = start_cluster(tmp_path_factory.mktemp("cluster"))
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


@pytest.mark.timeout(240)
async def test_a_leased_queue_waits_for_its_node_and_comes_back_with_its_groups(cluster) -> None:
    """Runs first (the next test stops A for good): A stops and starts again; the member consumes again."""
    a, _b, (port_a, port_b) = cluster
    url_a, url_b = (f"amqp://guest:guest@127.0.0.1:{port}/%2F" for port in (port_a, port_b))
    member = RabbitmqChannelLayer(host=[url_a, url_b], heartbeat=5, connect_timeout=2)  # queue_lease: the default
    sender = RabbitmqChannelLayer(host=[url_b, url_a], connect_timeout=2)
    try:
        channel = await member.new_channel()
        await member.group_add("leased", channel)
        await sender.group_send("leased", {"type": "before"})
        assert (await asyncio.wait_for(member.receive(channel), 10))["type"] == "before"
        await asyncio.to_thread(a.ctl, "stop_app")  # the queue's node goes; B says its home node is down
        await asyncio.to_thread(a.ctl, "start_app")
        waiting = asyncio.ensure_future(member.receive(channel))
        for _ in range(120):  # probes, until the member consumes its queue again (at most 60 s)
            with contextlib.suppress(RabbitmqLayerError):
                await sender.group_send("leased", {"type": "after"})
            done, _ = await asyncio.wait({waiting}, timeout=0.5)
            if done:
                break
        assert waiting.done() and waiting.result()["type"] == "after"  # through the binding the group kept
        assert await member.group_send("leased", {"type": "self"}) is None
    finally:
        await sender.close()
        await member.close()


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
