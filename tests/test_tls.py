"""TLS with a client certificate, against a private node that requires one (verify_peer, fail_if_no_peer_cert)."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from channels_rabbitmq_threaded import BrokerUnavailable, RabbitmqChannelLayer

from .private_node import PrivateNode


async def test_mutual_tls_round_trip_and_groups(tls_node: PrivateNode, client_ssl_context: ssl.SSLContext) -> None:
    layer = RabbitmqChannelLayer(
        host=f"amqps://guest:guest@localhost:{tls_node.port}/%2F", ssl_context=client_ssl_context
    )
    try:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "secure"})
        assert await layer.receive(channel) == {"type": "secure"}
        await layer.group_add("tls-group", channel)
        await layer.group_send("tls-group", {"type": "group"})
        assert await layer.receive(channel) == {"type": "group"}
    finally:
        await layer.close()


async def test_tls_without_client_certificate_is_refused(tls_node: PrivateNode, certificates) -> None:
    context = ssl.create_default_context(cafile=str(certificates / "ca.cert"))  # trusts the server, no client cert
    layer = RabbitmqChannelLayer(host=f"amqps://guest:guest@localhost:{tls_node.port}/%2F", ssl_context=context)
    try:
        with pytest.raises(BrokerUnavailable, match="cannot connect"):
            await asyncio.wait_for(layer.new_channel(), 30)
    finally:
        await layer.close()


async def test_tls_with_an_untrusted_server_is_refused(tls_node: PrivateNode) -> None:
    layer = RabbitmqChannelLayer(host=f"amqps://guest:guest@localhost:{tls_node.port}/%2F")  # system CAs only
    try:
        with pytest.raises(BrokerUnavailable, match="cannot connect"):
            await asyncio.wait_for(layer.new_channel(), 30)
    finally:
        await layer.close()
