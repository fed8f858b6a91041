"""Callers that publish on their own thread (`IOThread.publish_now`) against the I/O thread, under faults.

Four event loops and four plain threads send at once while the senders' connection is reset again and again (the
fault proxy) and a memory alarm on the node comes and goes. Every call ends exactly once, confirmed or failed; every
confirmed message reaches the receiver, and none arrives twice; the order of one sender's confirmed messages holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time

import pytest

from channels_rabbitmq_threaded import RabbitmqChannelLayer, RabbitmqLayerError
from channels_rabbitmq_threaded._io import hub as hub_module

from ..support.fault_proxy import FaultProxy
from ..support.private_node import PrivateNode

SENDERS = 8  # four event loops and four plain threads
PER_SENDER = 150
PAUSE = 0.01  # at most, between two sends of one sender: the publisher is often idle, so callers publish at once
FAULT_ROUNDS = 12  # a hang guard as much as a count: each round is a reset and, one round in two, an alarm


def host_of(port: int) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/%2F"


@pytest.mark.timeout(240)
def test_callers_publishing_at_once_lose_nothing_confirmed_under_cuts_and_alarms(
    amqp_node: PrivateNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_once = {"published": 0}
    publish_now = hub_module.Hub.publish_now

    def counted(self: hub_module.Hub, request: object) -> bool:
        done = publish_now(self, request)  # type: ignore[arg-type]
        at_once["published"] += done
        return done

    monkeypatch.setattr(hub_module.Hub, "publish_now", counted)
    proxy = FaultProxy(amqp_node.port)
    receiver = RabbitmqChannelLayer(
        host=host_of(amqp_node.port), capacity=10_000, local_capacity=10_000, remote_capacity=10_000
    )
    sender = RabbitmqChannelLayer(host=host_of(proxy.port), connect_timeout=3, remote_capacity=10_000)
    try:
        channel = asyncio.run(receiver.new_channel())
        outcomes: dict[int, list[tuple[int, str]]] = {n: [] for n in range(SENDERS)}  # sender -> (index, outcome)

        def loop_sender(n: int) -> None:
            async def run() -> None:
                for i in range(PER_SENDER):
                    await asyncio.sleep(random.uniform(0, PAUSE))
                    try:
                        await sender.send(channel, {"type": "m", "sender": n, "i": i})
                        outcomes[n].append((i, "confirmed"))
                    except RabbitmqLayerError:
                        outcomes[n].append((i, "failed"))

            asyncio.run(run())

        def thread_sender(n: int) -> None:
            for i in range(PER_SENDER):
                time.sleep(random.uniform(0, PAUSE))
                try:
                    sender.send_sync(channel, {"type": "m", "sender": n, "i": i})
                    outcomes[n].append((i, "confirmed"))
                except RabbitmqLayerError:
                    outcomes[n].append((i, "failed"))

        threads = [threading.Thread(target=loop_sender if n < 4 else thread_sender, args=(n,)) for n in range(SENDERS)]
        for thread in threads:
            thread.start()
        for round_ in range(FAULT_ROUNDS):
            time.sleep(0.4)
            proxy.reset()
            if round_ % 2:
                amqp_node.ctl("set_vm_memory_high_watermark", "0")
                time.sleep(0.3)
                amqp_node.ctl("set_vm_memory_high_watermark", "0.4")
        for thread in threads:
            thread.join(180)
        assert not any(thread.is_alive() for thread in threads), "a sender was left waiting"
        for n, ends in outcomes.items():  # every call ended exactly once
            assert [i for i, _ in ends] == list(range(PER_SENDER)), n
        confirmed = {(n, i) for n, ends in outcomes.items() for i, outcome in ends if outcome == "confirmed"}
        assert confirmed, "nothing was confirmed"

        async def receive_all() -> list[tuple[int, int]]:
            received: list[tuple[int, int]] = []
            deadline = time.monotonic() + 60  # a hang guard
            while time.monotonic() < deadline:
                with contextlib.suppress(asyncio.TimeoutError):
                    message = await asyncio.wait_for(receiver.receive(channel), 3)
                    received.append((message["sender"], message["i"]))
                    continue
                if confirmed <= set(received):
                    break
            return received

        received = asyncio.run(receive_all())
        assert len(received) == len(set(received)), "a message arrived twice"
        assert confirmed <= set(received), sorted(confirmed - set(received))[:10]
        for n in range(SENDERS):  # one sender's confirmed messages arrive in the order it sent them
            order = [i for sender_n, i in received if sender_n == n and (n, i) in confirmed]
            assert order == sorted(order), n
        assert at_once["published"] > 0, "no caller published at once: the path under test never ran"
    finally:
        amqp_node.ctl("set_vm_memory_high_watermark", "0.4")
        for layer in (sender, receiver):
            with contextlib.suppress(Exception):
                asyncio.run(layer.close())
        proxy.close()
