"""The least-privilege recipe of docs/deployment.md, on a private node: a vhost of its own and a user who may touch
only the layer's own queues and exchanges. Every feature works with it, and the user can do nothing else."""

from __future__ import annotations

import asyncio

import pika
import pytest

from channels_rabbitmq_threaded import BrokerRefused, RabbitmqChannelLayer

from ..support.private_node import PrivateNode

# Word for word the regexes in docs/deployment.md (default groups_exchange and normal_channel_prefix).
CONFIGURE = r"^(channels_.*|channels\..*|groups|groups\.control|groups\.direct)$"
WRITE = r"^(channels_.*|channels\..*|groups|groups\.control|groups\.direct|amq\.default)$"
READ = r"^(channels_.*|channels\..*|groups|groups\.control|groups\.direct)$"


@pytest.fixture(scope="module")
def chat_vhost(module_amqp_node: PrivateNode) -> str:
    module_amqp_node.ctl("add_vhost", "chat")
    module_amqp_node.ctl("add_user", "chat", "chat-secret")
    module_amqp_node.ctl("set_permissions", "-p", "chat", "chat", CONFIGURE, WRITE, READ)
    return f"amqp://chat:chat-secret@127.0.0.1:{module_amqp_node.port}/chat"


@pytest.mark.timeout(120)
async def test_every_feature_works_with_the_documented_permissions(chat_vhost: str) -> None:
    a, b = RabbitmqChannelLayer(host=chat_vhost), RabbitmqChannelLayer(host=chat_vhost)
    try:
        channel = await b.new_channel()
        await b.group_add("room", channel)
        await a.send(channel, {"type": "direct"})
        await a.group_send("room", {"type": "group"})
        assert [(await b.receive(channel))["type"] for _ in range(2)] == ["direct", "group"]
        await a.send("jobs.permitted", {"type": "job"})  # a normal channel: its durable queue channels.jobs.permitted
        assert (await asyncio.wait_for(b.receive("jobs.permitted"), 10))["type"] == "job"
        await a.group_add("room", "jobs.permitted")  # a normal channel in a group: its queue bound to it
        await a.group_send("room", {"type": "group job"})
        assert (await asyncio.wait_for(b.receive("jobs.permitted"), 10))["type"] == "group job"
        await a.flush()
        await b.group_discard("room", channel)
    finally:
        await a.close()
        await b.close()


@pytest.mark.timeout(60)
async def test_the_user_can_touch_nothing_else(chat_vhost: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(chat_vhost))
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="ACCESS_REFUSED"):
            connection.channel().queue_declare("celery")
    finally:
        connection.close()
    with pytest.raises(BrokerRefused):
        layer = RabbitmqChannelLayer(host=chat_vhost.replace("/chat", "/%2F"), connect_timeout=5)  # no access to "/"
        try:
            await layer.new_channel()
        finally:
            await layer.close()
