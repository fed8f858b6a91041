"""TLS with a client certificate, against a private node that requires one (verify_peer, fail_if_no_peer_cert)."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from channels_rabbitmq_threaded import BrokerRefused, RabbitmqChannelLayer

from ..conftest import run_cli
from ..support.private_node import PrivateNode


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


async def test_joined_writes_over_tls_keep_every_byte_in_order(
    tls_node: PrivateNode, client_ssl_context: ssl.SSLContext
) -> None:
    """A bulk send larger than `writes.JOIN_LIMIT` many times over leaves in joined pieces through TLS's own writer
    (partial writes included): every message arrives, in order, intact."""
    layer = RabbitmqChannelLayer(
        host=f"amqps://guest:guest@localhost:{tls_node.port}/%2F", ssl_context=client_ssl_context, capacity=5_000
    )
    try:
        channel = await layer.new_channel()
        bodies = [bytes([n % 251]) * (500 + n % 3_000) for n in range(2_000)]
        await layer.send_many((channel, {"type": "m", "n": n, "body": body}) for n, body in enumerate(bodies))
        for n, body in enumerate(bodies):
            assert await layer.receive(channel) == {"type": "m", "n": n, "body": body}
    finally:
        await layer.close()


@pytest.mark.parametrize("client", ["no client certificate", "untrusted server"])
async def test_tls_refusals_fail_at_once_as_broker_refused(tls_node: PrivateNode, certificates, client: str) -> None:
    if client == "no client certificate":
        context = ssl.create_default_context(cafile=str(certificates / "ca.cert"))  # trusts the server only
    else:
        context = ssl.create_default_context()  # system CAs: our test CA is not among them
    layer = RabbitmqChannelLayer(
        host=f"amqps://guest:guest@localhost:{tls_node.port}/%2F", ssl_context=context, connect_timeout=300
    )
    try:
        with pytest.raises(BrokerRefused, match=r"cannot connect.*SSL"):
            await asyncio.wait_for(layer.new_channel(), 30)
    finally:
        await layer.close()


def test_check_on_a_tls_port(tls_node: PrivateNode, certificates) -> None:
    url = f"amqps://guest:guest@localhost:{tls_node.port}/%2F"
    untrusted = run_cli("check", "--host", url, "--count", "1")
    assert "(certificate not trusted)" in untrusted.stdout and "--cafile" in untrusted.stdout, untrusted.stdout
    no_client = run_cli("check", "--host", url, "--count", "1", "--cafile", str(certificates / "ca.cert"))
    assert "(client certificate required)" in no_client.stdout and "--certfile" in no_client.stdout, no_client.stdout
    plain = run_cli("check", "--host", url.replace("amqps://", "amqp://"), "--count", "1")
    assert "(plain AMQP to a TLS port)" in plain.stdout and "use amqps://" in plain.stdout, plain.stdout
    passed = run_cli(
        "check", "--host", url, "--count", "3",
        "--cafile", str(certificates / "ca.cert"),
        "--certfile", str(certificates / "client.certchain"),
        "--keyfile", str(certificates / "client.key"),
    )  # fmt: skip
    assert passed.returncode == 0 and passed.stdout.rstrip().endswith("OK"), passed.stdout + passed.stderr
    for result in (untrusted, no_client, plain):
        assert result.returncode == 1
        assert "Traceback" not in result.stdout + result.stderr
