"""Normal channels (no "!"): one shared queue per channel; receivers in any process compete for its messages."""

from __future__ import annotations

import asyncio
import random

import pytest
from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded import RabbitmqLayerError

from ..conftest import TEST_EXCHANGE

JOBS = 500
NORMAL = {"normal_channel_prefix": f"{TEST_EXCHANGE}."}  # this session's own queues


async def test_a_send_before_any_receiver_is_kept(make_layer) -> None:
    sender, worker = make_layer(**NORMAL), make_layer(**NORMAL)
    await sender.send("jobs.early", {"type": "job", "n": 1})  # nobody has ever received on it: declared on send
    assert await asyncio.wait_for(worker.receive("jobs.early"), 10) == {"type": "job", "n": 1}


async def test_competing_receivers_each_message_once(make_layer) -> None:
    sender, one, two = make_layer(**NORMAL), make_layer(**NORMAL), make_layer(**NORMAL)
    got: dict[str, list[int]] = {"one": [], "two": []}
    finished = asyncio.Event()

    async def work(name: str, layer) -> None:
        while True:
            got[name].append((await layer.receive("jobs.shared"))["n"])
            if len(got["one"]) + len(got["two"]) == 40:
                finished.set()

    workers = [asyncio.ensure_future(work("one", one)), asyncio.ensure_future(work("two", two))]
    for n in range(40):
        await sender.send("jobs.shared", {"type": "job", "n": n})

    try:
        await asyncio.wait_for(finished.wait(), 30)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    # Every job once, none twice. (Order is best effort, as the spec allows for normal channels: a job requeued by a
    # worker whose receive() had just gone can come back after a later one.)
    assert sorted(got["one"] + got["two"]) == list(range(40))


async def test_a_cancelled_receive_leaves_the_job_for_others(make_layer) -> None:
    sender, quitter, worker = make_layer(**NORMAL), make_layer(**NORMAL), make_layer(**NORMAL)
    pending = asyncio.ensure_future(quitter.receive("jobs.left"))
    await asyncio.sleep(0.2)
    pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)
    await asyncio.sleep(0.2)  # the quitter stopped consuming
    await sender.send("jobs.left", {"type": "job"})
    assert await asyncio.wait_for(worker.receive("jobs.left"), 10) == {"type": "job"}


async def test_a_full_normal_channel_raises_channel_full(make_layer) -> None:
    layer = make_layer(channel_capacity={"jobs.tiny": 2}, **NORMAL)
    await layer.send("jobs.tiny", {"type": "job"})
    await layer.send("jobs.tiny", {"type": "job"})
    with pytest.raises(ChannelFull):
        await layer.send("jobs.tiny", {"type": "job"})
    assert await layer.receive("jobs.tiny") == {"type": "job"}


async def test_flush_purges_the_normal_channel_queues_used(make_layer) -> None:
    layer = make_layer(**NORMAL)
    for n in range(3):
        await layer.send("jobs.flushed", {"type": "before", "n": n})
    await layer.flush()
    await layer.send("jobs.flushed", {"type": "after"})
    assert await asyncio.wait_for(layer.receive("jobs.flushed"), 10) == {"type": "after"}


async def test_messages_expire_in_a_normal_channel(make_layer) -> None:
    layer = make_layer(expiry=0.2, **NORMAL)  # the queue's x-message-ttl
    await layer.send("jobs.expiring", {"type": "stale"})
    await asyncio.sleep(0.6)
    await layer.send("jobs.expiring", {"type": "fresh"})
    assert await asyncio.wait_for(layer.receive("jobs.expiring"), 10) == {"type": "fresh"}


async def test_jobs_in_flight_to_a_cancelled_consumer_go_back_to_the_queue(make_layer) -> None:
    """A worker that keeps starting and abandoning receives churns consume/cancel; no job may be lost."""
    room = {"channel_capacity": {"jobs.churn": 1000}, **NORMAL}  # every layer declares the queue alike
    sender, flaky, steady = make_layer(**room), make_layer(**room), make_layer(**room)
    got: list[int] = []
    done = asyncio.Event()

    async def steady_worker() -> None:
        while True:
            got.append((await steady.receive("jobs.churn"))["n"])
            if len(got) == JOBS:
                done.set()

    async def flaky_worker() -> None:
        while not done.is_set():
            pending = asyncio.ensure_future(flaky.receive("jobs.churn"))
            await asyncio.sleep(random.random() / 1000)  # 0-1 ms: cancels land in every phase of a delivery
            pending.cancel()
            try:
                got.append((await pending)["n"])  # it may have arrived before the cancel
                if len(got) == JOBS:
                    done.set()
            except asyncio.CancelledError:
                pass

    workers = [asyncio.ensure_future(steady_worker()), asyncio.ensure_future(flaky_worker())]
    try:
        for n in range(JOBS):
            await sender.send("jobs.churn", {"type": "job", "n": n})
        await asyncio.wait_for(done.wait(), 60)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    assert sorted(got) == list(range(JOBS))


async def test_a_quorum_normal_channel_keeps_the_semantics(make_layer) -> None:
    quorum = {**NORMAL, "normal_queue_type": "quorum", "channel_capacity": {"jobs.quorum": 3}}
    sender, worker = make_layer(**quorum), make_layer(**quorum)
    accepted = 0
    with pytest.raises(ChannelFull):  # reject-publish: a quorum queue admits one message past its limit, then nacks
        for n in range(10):
            await sender.send("jobs.quorum", {"type": "job", "n": n})  # declared as a quorum queue before the first
            accepted += 1
    assert accepted == 4
    received = [(await asyncio.wait_for(worker.receive("jobs.quorum"), 10))["n"] for _ in range(accepted)]
    assert sorted(received) == list(range(accepted))  # each once; order is best effort on normal channels
    arguments = make_layer(**quorum).settings.normal_queue("jobs.quorum")[1]
    assert arguments["x-queue-type"] == "quorum"


async def test_a_normal_channel_in_a_group_gets_one_copy_for_its_receivers(make_layer) -> None:
    adder, sender, worker = make_layer(**NORMAL), make_layer(**NORMAL), make_layer(**NORMAL)
    member = await worker.new_channel()
    await worker.group_add("jobs-group", member)
    await adder.group_add("jobs-group", "jobs.grouped")  # a send-only process binds a queue it never reads
    await sender.group_send("jobs-group", {"type": "g", "n": 1})
    assert await asyncio.wait_for(worker.receive("jobs.grouped"), 10) == {"type": "g", "n": 1}
    assert await asyncio.wait_for(worker.receive(member), 10) == {"type": "g", "n": 1}

    await adder.group_discard("jobs-group", "jobs.grouped")
    await sender.group_send("jobs-group", {"type": "g", "n": 2})
    await sender.send("jobs.grouped", {"type": "direct"})  # same queue: had the group message gone in, it came first
    assert await asyncio.wait_for(worker.receive(member), 10) == {"type": "g", "n": 2}
    assert await asyncio.wait_for(worker.receive("jobs.grouped"), 10) == {"type": "direct"}


async def test_flush_removes_the_normal_channels_a_process_added_to_groups(make_layer) -> None:
    layer, worker = make_layer(**NORMAL), make_layer(**NORMAL)
    await layer.group_add("flushed-group", "jobs.flushed")
    await layer.flush()
    await layer.group_send("flushed-group", {"type": "g"})
    await layer.send("jobs.flushed", {"type": "direct"})
    assert await asyncio.wait_for(worker.receive("jobs.flushed"), 10) == {"type": "direct"}


async def test_a_refused_normal_binding_raises_and_the_layer_goes_on(make_layer) -> None:
    other = make_layer(normal_channel_prefix=NORMAL["normal_channel_prefix"], channel_capacity={"jobs.odd": 3})
    await other.send("jobs.odd", {"type": "declared with x-max-length 3"})
    layer = make_layer(**NORMAL)
    with pytest.raises(RabbitmqLayerError, match=r"refused to add 'jobs\.odd' in 'odd-group'.*PRECONDITION_FAILED"):
        await asyncio.wait_for(layer.group_add("odd-group", "jobs.odd"), 30)  # hang guard
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "still working"})
    assert await asyncio.wait_for(layer.receive(channel), 10) == {"type": "still working"}
