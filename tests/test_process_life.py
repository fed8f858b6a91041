"""A process's life as users live it: a send-only process opens one connection and no queue; short scripts (a
management command, a cron job, a one-off Celery script) exit without an ERROR line or a traceback."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pika
import pytest
from asgiref.sync import async_to_sync

from .conftest import HOST, ROOT, TEST_EXCHANGE, broker_ctl

RUNS = 20  # per script


def connections_of(queue_name: str) -> list[str]:
    """The client-given names of the broker's connections that belong to the layer with this queue."""
    listing = broker_ctl("-q", "list_connections", "client_properties")
    return [
        role for line in listing.splitlines() for role in ("consumer", "publisher") if f"{queue_name} {role}" in line
    ]


def queue_exists(name: str) -> bool:
    """Asked from a connection of its own: 404 means no such queue; 405 (RESOURCE_LOCKED) an exclusive one."""
    connection = pika.BlockingConnection(pika.URLParameters(HOST))
    try:
        connection.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code in (404, 405), exc
        return exc.reply_code == 405
    finally:
        connection.close()


def test_a_send_only_process_opens_one_connection_and_no_queue(make_layer) -> None:
    sender, receiver = make_layer(), make_layer()
    channel = async_to_sync(receiver.new_channel)()
    sender.send_sync(channel, {"type": "direct"})
    async_to_sync(sender.group_send)("nobody-here", {"type": "group"})
    assert async_to_sync(receiver.receive)(channel) == {"type": "direct"}
    assert connections_of(sender.queue_name) == ["publisher"]
    assert not queue_exists(sender.queue_name)
    assert sorted(connections_of(receiver.queue_name)) == ["consumer", "publisher"]
    assert queue_exists(receiver.queue_name)


@pytest.mark.parametrize("first_need", ["new_channel", "receive", "group_add", "flush"])
def test_the_consumer_link_opens_on_first_need(make_layer, first_need: str) -> None:
    layer = make_layer()
    layer.group_send_sync("nobody-here", {"type": "warm up the publisher"})
    assert not queue_exists(layer.queue_name)
    channel = f"specific.{layer.queue_name}!first"

    async def first_use() -> None:
        if first_need == "new_channel":
            channel_name = await layer.new_channel()
            await layer.send(channel_name, {"type": "hello"})
            assert await layer.receive(channel_name) == {"type": "hello"}
        elif first_need == "receive":
            receiving = asyncio.ensure_future(layer.receive(channel))
            for _ in range(200):  # the queue appears once the consumer link is set up: poll for at most 10 s
                if await asyncio.to_thread(queue_exists, layer.queue_name):
                    break
                await asyncio.sleep(0.05)
            await layer.send(channel, {"type": "hello"})
            assert await asyncio.wait_for(receiving, 10) == {"type": "hello"}
        elif first_need == "group_add":
            await layer.group_add("first-need", channel)
            await layer.group_send("first-need", {"type": "hello"})
            assert await layer.receive(channel) == {"type": "hello"}
        else:
            await layer.flush()

    async_to_sync(first_use)()
    assert queue_exists(layer.queue_name)
    assert sorted(connections_of(layer.queue_name)) == ["consumer", "publisher"]


# Each script is what users write: build the layer, do one thing, exit. Logging at INFO shows everything the layer
# and pika say; none of it may be an ERROR, and no traceback may appear.
PREAMBLE = f"""
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
from asgiref.sync import async_to_sync
from channels_rabbitmq_threaded import RabbitmqChannelLayer
layer = RabbitmqChannelLayer(host={HOST!r}, groups_exchange={TEST_EXCHANGE!r})
"""
RECEIVE = """
async def receive_one():
    channel = await layer.new_channel()
    await layer.group_add("script", channel)
    await layer.send(channel, {"type": "x"})
    await layer.receive(channel)
"""
SCRIPTS = {
    "group_send_sync": 'layer.group_send_sync("script", {"type": "x"})',
    "async_to_sync(group_send)": 'async_to_sync(layer.group_send)("script", {"type": "x"})',
    "group_send_sync, close()": 'layer.group_send_sync("script", {"type": "x"})\nasync_to_sync(layer.close)()',
    "async_to_sync, close()": 'async_to_sync(layer.group_send)("script", {"type": "x"})\nasync_to_sync(layer.close)()',
    "receiver": RECEIVE + "async_to_sync(receive_one)()",
    "receiver, close()": RECEIVE + "async_to_sync(receive_one)()\nasync_to_sync(layer.close)()",
    "new_channel, exit at once": "async_to_sync(layer.new_channel)()",
}


def run_script(body: str) -> subprocess.CompletedProcess[str]:
    code = PREAMBLE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)


def assert_quiet(output: str) -> None:
    bad = [line for line in output.splitlines() if line.startswith(("ERROR", "CRITICAL")) or "Traceback" in line]
    assert not bad, output


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCRIPTS))
def test_short_scripts_exit_cleanly(name: str) -> None:
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run_script, [SCRIPTS[name]] * RUNS))
    for result in results:
        assert result.returncode == 0, result.stderr
        assert_quiet(result.stdout + result.stderr)


@pytest.mark.slow
def test_a_script_killed_with_sigterm_mid_send_exits_quietly() -> None:
    code = PREAMBLE + textwrap.dedent("""
        n = 0
        while True:
            layer.group_send_sync("script", {"type": "x", "n": n})
            n += 1
            if n == 10:
                print("sending", flush=True)
    """)
    for _ in range(RUNS):
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert process.stdout is not None
        assert process.stdout.readline() == "sending\n"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == -signal.SIGTERM
        assert_quiet(stdout + stderr)
