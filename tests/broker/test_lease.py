"""The process's queue and its lease (`queue_lease`): deleted by `close()` at once, by RabbitMQ after the lease when
the process dies, and an exclusive queue with `queue_lease=0`."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull

from ..conftest import HOST, ROOT, TEST_EXCHANGE, broker_ctl, queue_exists


def queue_arguments(name: str) -> str:
    """The broker's listing of the queue: durable, exclusive and its arguments, or "" if there is none."""
    listing = broker_ctl("-q", "list_queues", "name", "durable", "exclusive", "arguments")
    return next((line for line in listing.splitlines() if line.startswith(name)), "")


def test_the_leased_queue_is_durable_classic_with_x_expires_and_close_deletes_it(make_layer) -> None:
    layer = make_layer(queue_lease=30)
    async_to_sync(layer.new_channel)()
    listing = queue_arguments(layer.queue_name)
    assert "true\tfalse" in listing and "x-expires" in listing and "30000" in listing and "classic" in listing
    async_to_sync(layer.close)()
    assert not queue_exists(layer.queue_name)  # not left for its lease


def test_with_no_lease_the_queue_is_exclusive(make_layer) -> None:
    layer = make_layer(queue_lease=0)
    async_to_sync(layer.new_channel)()
    listing = queue_arguments(layer.queue_name)
    assert "false\ttrue" in listing and "x-expires" not in listing


def test_rabbitmq_deletes_the_queue_of_a_dead_process_after_its_lease() -> None:
    script = textwrap.dedent(f"""
        import os, sys, time
        from asgiref.sync import async_to_sync
        from channels_rabbitmq_threaded import RabbitmqChannelLayer
        layer = RabbitmqChannelLayer(host={HOST!r}, groups_exchange={TEST_EXCHANGE!r}, queue_lease=1)
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)("lease-group", channel)
        print(layer.queue_name, flush=True)
        time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    queue = process.stdout.readline().strip()
    assert queue_exists(queue)
    process.send_signal(signal.SIGKILL)  # no close(): the queue stays for its lease
    process.wait(30)
    assert queue_exists(queue)
    for _ in range(
        15
    ):  # asking renews the lease (a declare counts as use): ask less often than the lease, 30 s at most
        time.sleep(2)
        if not queue_exists(queue):
            break
    assert not queue_exists(queue)


def test_a_quorum_process_queue_carries_messages_groups_and_channel_full(make_layer) -> None:
    layer = make_layer(queue_type="quorum", local_capacity=1, remote_capacity=2, prefetch_count=1)
    channel = async_to_sync(layer.new_channel)()
    listing = queue_arguments(layer.queue_name)
    assert (
        listing.split("\t")[1:3] == ["true", ""] and "quorum" in listing and "x-expires" in listing
    )  # durable, not exclusive
    async_to_sync(layer.group_add)("quorum-room", channel)
    async_to_sync(layer.group_send)("quorum-room", {"type": "to the room"})
    assert async_to_sync(layer.receive)(channel) == {"type": "to the room"}
    accepted = 0
    with pytest.raises(ChannelFull):  # nobody reads: one in memory, one held, then the queue's limit (one past it)
        for n in range(20):
            async_to_sync(layer.send)(channel, {"type": "n", "n": n})
            accepted += 1
    assert [async_to_sync(layer.receive)(channel)["n"] for _ in range(accepted)] == list(range(accepted))
    async_to_sync(layer.close)()
    assert not queue_exists(layer.queue_name)
