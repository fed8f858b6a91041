"""Network faults between the layer and the machine's broker, injected by `tests.fault_proxy` (all on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from channels_rabbitmq_threaded import BrokerUnavailable

from .conftest import HOST
from .fault_proxy import FaultProxy


def through(proxy: FaultProxy) -> str:
    """HOST, aimed at the proxy."""
    parts = urlsplit(HOST)
    userinfo = parts.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{userinfo}@127.0.0.1:{proxy.port}").geturl()


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    proxy = FaultProxy(urlsplit(HOST).port or 5672)
    yield proxy
    proxy.close()


async def test_a_blackholed_first_host_is_given_up_in_time_for_the_next(proxy: FaultProxy, make_layer) -> None:
    """A host that accepts and never answers must not hold the attempt past half of connect_timeout."""
    proxy.blackhole(True)
    receiver = make_layer()
    channel = await receiver.new_channel()
    sender = make_layer(host=[through(proxy), HOST], connect_timeout=4)  # pika's own defaults would wait 10-15 s
    await sender.send(channel, {"type": "made it"})
    assert await receiver.receive(channel) == {"type": "made it"}
    assert proxy.accepted >= 1


async def test_a_blackholed_only_host_fails_the_call_with_the_reason(proxy: FaultProxy, make_layer) -> None:
    proxy.blackhole(True)
    sender = make_layer(host=through(proxy), connect_timeout=1)
    with pytest.raises(BrokerUnavailable, match=r"(?i)timeout|timed out"):
        await sender.send("specific.channels_000000000000!x", {"type": "nobody"})
