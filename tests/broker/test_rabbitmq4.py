"""The RabbitMQ 4.0 node of the rabbitmq4 tox env refuses what 4.3 refuses, so the suite's run there proves that the
layer declares no transient non-exclusive queue, which 4.3 refuses. (Global QoS, which 4.3 refuses too, 4.0 still
takes even with its deprecation denied, so only reading shows the layer's qos is per consumer.) Outside that env,
skipped."""

from __future__ import annotations

import asyncio
import os
import secrets

import pika
import pytest

from ..conftest import HOST, broker_ctl

pytestmark = pytest.mark.skipif(
    "RABBITMQ_4_REFUSES" not in os.environ, reason="runs against the node of `python -m tests.support.rabbitmq4` only"
)


def test_the_node_refuses_transient_non_exclusive_queues_as_rabbitmq_4_3_does() -> None:
    connection = pika.BlockingConnection(pika.URLParameters(HOST))
    try:
        channel = connection.channel()
        with pytest.raises(pika.exceptions.AMQPError, match="deprecated"):
            channel.queue_declare("refused-by-4.3", durable=False, exclusive=False)
    finally:
        if connection.is_open:
            connection.close()


async def test_on_a_vhost_whose_default_queue_type_is_quorum_the_layer_keeps_its_queue_types(make_layer) -> None:
    vhost = f"quorum-default-{secrets.token_hex(3)}"
    broker_ctl("add_vhost", vhost, "--default-queue-type", "quorum")
    try:
        broker_ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        layer = make_layer(host=HOST.replace("/%2F", f"/{vhost}"))
        channel = await layer.new_channel()  # the process's exclusive queue: classic whatever the default
        await layer.group_add("g", channel)
        await layer.group_send("g", {"type": "to the group"})
        assert await layer.receive(channel) == {"type": "to the group"}
        await layer.send("jobs.typed", {"type": "job"})
        assert await asyncio.wait_for(layer.receive("jobs.typed"), 10) == {"type": "job"}
        listing = broker_ctl("-q", "list_queues", "-p", vhost, "name", "type")
        types = dict(line.split("\t") for line in listing.splitlines() if "\t" in line)
        assert types["channels.jobs.typed"] == "classic"  # said explicitly, so the vhost's default does not apply
        assert types[layer.queue_name] == "classic"
    finally:
        broker_ctl("delete_vhost", vhost)
