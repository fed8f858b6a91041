"""Broker faults on a private node: connections cut, a graceful restart, kill -9 and restart, a frozen broker, a
memory alarm.

The traffic tests keep messages flowing (one at a time, direct and through a group) while the fault happens, then
assert that the waiting receiver resumed, the group membership survived, and every message is accounted for; the
others check what a caller sees meanwhile (`ping()` within its timeout, receivers still waiting, groups rebound).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

import pytest

from channels_rabbitmq_threaded import BrokerUnavailable, RabbitmqChannelLayer, RabbitmqLayerError

from ..conftest import HOST, TEST_EXCHANGE
from ..support.private_node import PrivateNode
from ..support.traffic import PingPong


def restart(node: PrivateNode) -> None:
    node.stop(keep_data=True)
    node.start()


def kill9_and_start(node: PrivateNode) -> None:
    node.kill9()
    node.start()


FAULTS: dict[str, Callable[[PrivateNode], object]] = {
    "close_all_connections": lambda node: node.ctl("close_all_connections", "test: cut"),
    "restart": restart,
    "kill -9": kill9_and_start,
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_traffic_survives(amqp_node: PrivateNode, fault: str) -> None:
    host = f"amqp://guest:guest@127.0.0.1:{amqp_node.port}/%2F"
    member = RabbitmqChannelLayer(host=host, connect_timeout=1)
    sender = RabbitmqChannelLayer(host=host, connect_timeout=1)
    channel = await member.new_channel()
    await member.group_add("faults", channel)
    traffic = PingPong(sender, member, channel, "faults")
    traffic.start()
    try:
        for n in range(10):
            assert await traffic.one(via_group=n % 2 == 1), "before the fault, everything arrives"

        injected = asyncio.ensure_future(asyncio.to_thread(FAULTS[fault], amqp_node))

        async def until_recovered() -> None:
            recovered = {False: False, True: False}  # direct, group: delivered after the fault was over
            while not (injected.done() and all(recovered.values())):
                via_group = recovered[False]
                over = injected.done()
                if await traffic.one(via_group) and over:
                    recovered[via_group] = True

        await asyncio.wait_for(until_recovered(), 90)
        await injected

        for n in range(10):
            assert await traffic.one(via_group=n % 2 == 1), "after recovery, direct and group traffic all arrive"
        assert traffic.receiving, "the receive() that waited across the fault is still serving"
        tally = traffic.tally()
        print(f"\n{fault}: {tally}")
        assert tally["duplicates"] == 0 and tally["delivered but refused"] == 0
        # A message confirmed into the member's queue at the instant its connection died goes with the queue:
        # at most the one message in flight. Everything else is delivered, refused, uncertain or returned.
        assert tally["unexplained"] <= 1, tally
        assert sum(tally[k] for k in ("delivered", "refused", "uncertain", "returned", "unexplained")) == tally["sent"]
    finally:
        await traffic.stop()
        await member.close()
        await sender.close()


@pytest.mark.timeout(120)
class LogLineEvent(logging.Handler):
    """An asyncio.Event set (thread-safely) when a log line containing `text` is emitted."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.loop.call_soon_threadsafe(self.event.set)


async def test_frozen_broker_is_detected_by_heartbeat_and_the_layer_moves_to_the_next_host(
    amqp_node: PrivateNode,
) -> None:
    """SIGSTOP the node a member is connected to; with `host=[frozen node, another broker]` it must move on.

    The other broker is the machine's own, used only as an ordinary client (it is never reconfigured).
    """
    frozen_url = f"amqp://guest:guest@127.0.0.1:{amqp_node.port}/%2F"
    member = RabbitmqChannelLayer(
        host=[frozen_url, HOST], heartbeat=2, connect_timeout=1, groups_exchange=TEST_EXCHANGE
    )
    sender = RabbitmqChannelLayer(host=HOST, groups_exchange=TEST_EXCHANGE)
    channel = await member.new_channel()
    await member.group_add("frozen", channel)
    waiting = asyncio.ensure_future(member.receive(channel))
    loop = asyncio.get_running_loop()
    detected = LogLineEvent("RabbitMQ sent nothing for")
    logging.getLogger("channels_rabbitmq_threaded").addHandler(detected)
    amqp_node.freeze()
    frozen_at = loop.time()
    try:
        await asyncio.wait_for(detected.event.wait(), 60)  # no timing assertion: just that it is detected
        print(f"\nfrozen broker detected after {loop.time() - frozen_at:.1f}s with heartbeat=2")

        async def until_delivered() -> dict:
            while not waiting.done():  # the member re-declares its queue and re-binds its group on the next host
                await sender.group_send("frozen", {"type": "via-the-next-host"})
                await asyncio.wait({waiting}, timeout=0.5)
            return waiting.result()

        assert await asyncio.wait_for(until_delivered(), 60) == {"type": "via-the-next-host"}
        print(f"group traffic reached the member through the next host {loop.time() - frozen_at:.1f}s after SIGSTOP")
    finally:
        amqp_node.thaw()
        logging.getLogger("channels_rabbitmq_threaded").removeHandler(detected)
        await member.close()
        await sender.close()


@pytest.mark.timeout(120)
async def test_memory_alarm_blocks_publishing_only_and_traffic_resumes(amqp_node: PrivateNode) -> None:
    host = f"amqp://guest:guest@127.0.0.1:{amqp_node.port}/%2F"
    member = RabbitmqChannelLayer(host=host, connect_timeout=1)
    sender = RabbitmqChannelLayer(host=host, connect_timeout=1)
    try:
        channel = await member.new_channel()
        await member.group_add("alarm", channel)
        await sender.send(channel, {"type": "before"})
        assert await member.receive(channel) == {"type": "before"}
        await asyncio.to_thread(amqp_node.ctl, "set_vm_memory_high_watermark", "0")
        try:

            async def send_until_refused() -> BrokerUnavailable:
                while True:  # the alarm takes effect within a moment; then sends fail within connect_timeout
                    try:
                        await sender.send(channel, {"type": "during"})
                    except BrokerUnavailable as exc:
                        return exc

            refusal = await asyncio.wait_for(send_until_refused(), 60)
            assert "block" in str(refusal), refusal
            # The consuming side is not blocked: bindings still change while the alarm lasts.
            other = await member.new_channel()
            await asyncio.wait_for(member.group_add("alarm", other), 30)
            await member.group_discard("alarm", other)
        finally:
            await asyncio.to_thread(amqp_node.ctl, "set_vm_memory_high_watermark", "0.4")

        async def until_sent() -> None:
            while True:
                try:
                    await sender.group_send("alarm", {"type": "after"})
                    return
                except BrokerUnavailable:
                    pass

        await asyncio.wait_for(until_sent(), 60)

        async def next_after() -> dict:
            while (message := await member.receive(channel))["type"] == "during":
                pass  # a "during" message RabbitMQ took before blocking may arrive
            return message

        assert await asyncio.wait_for(next_after(), 30) == {"type": "after"}
    finally:
        await member.close()
        await sender.close()


async def test_connection_cut_rebinds_groups_and_keeps_receivers_waiting(
    tls_node: PrivateNode, client_ssl_context: ssl.SSLContext
) -> None:
    host = f"amqps://guest:guest@localhost:{tls_node.port}/%2F"
    member = RabbitmqChannelLayer(host=host, ssl_context=client_ssl_context)
    sender = RabbitmqChannelLayer(host=host, ssl_context=client_ssl_context)
    try:
        channel = await member.new_channel()
        await member.group_add("survivors", channel)
        await sender.new_channel()
        waiting = asyncio.ensure_future(member.receive(channel))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(tls_node.ctl, "close_all_connections", "test: cut")

        async def probe_until_back() -> None:
            while not waiting.done():  # probes sent while the member's queue is gone are dropped; keep trying
                with contextlib.suppress(RabbitmqLayerError):
                    await sender.send(channel, {"type": "probe"})
                await asyncio.wait({waiting}, timeout=0.2)

        await asyncio.wait_for(probe_until_back(), 30)
        assert (await waiting)["type"] == "probe"  # the receive() that waited across the outage got a message
        # The member's groups were bound again before it consumed anything: group traffic flows.
        await sender.group_send("survivors", {"type": "after"})

        async def next_non_probe() -> dict:
            while (message := await member.receive(channel))["type"] == "probe":
                pass
            return message

        assert await asyncio.wait_for(next_non_probe(), 10) == {"type": "after"}
    finally:
        await member.close()
        await sender.close()


@pytest.mark.timeout(180)
async def test_ping_answers_within_its_timeout_when_the_broker_is_stopped_or_frozen(amqp_node: PrivateNode) -> None:
    host = f"amqp://guest:guest@127.0.0.1:{amqp_node.port}/%2F"
    layer = RabbitmqChannelLayer(host=host, heartbeat=2, connect_timeout=2)
    try:
        assert await layer.ping(timeout=5) > 0
        amqp_node.freeze()
        try:
            with pytest.raises(BrokerUnavailable, match="no round trip"):
                await asyncio.wait_for(layer.ping(timeout=2), 10)  # the outer bound only catches a hang
        finally:
            amqp_node.thaw()
        assert await layer.ping(timeout=30) > 0
        await asyncio.to_thread(amqp_node.ctl, "stop_app")
        with pytest.raises(BrokerUnavailable):
            await asyncio.wait_for(layer.ping(timeout=2), 10)
        await asyncio.to_thread(amqp_node.ctl, "start_app")
        # The links' backoff (up to 5 s while the node was down) may outlast connect_timeout (2 s), which bounds
        # each call that waits for a link: wait until both links are back (hang guard ~30 s), then ping.
        for _ in range(300):
            if layer.stats().consumer.state == layer.stats().publisher.state == "READY":
                break
            await asyncio.sleep(0.1)
        assert await layer.ping(timeout=30) > 0
    finally:
        await layer.close()
