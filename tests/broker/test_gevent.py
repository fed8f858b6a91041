"""A process that gevent has patched (`gunicorn -k gevent`, `celery -P gevent`): its greenlets call the `_sync`
methods, all messages arrive, and the layer says once, in the log, that asgiref's `async_to_sync` cannot work there
and what to call instead."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from ..conftest import HOST, TEST_EXCHANGE

GREENLETS = 40

SCRIPT = """
from gevent import monkey

monkey.patch_all()

import logging
import sys

import gevent

from channels_rabbitmq_threaded import RabbitmqChannelLayer

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
host, exchange, group, channel, count = sys.argv[1:6]
layers = [RabbitmqChannelLayer(host=host, groups_exchange=exchange) for _ in range(2)]


def work(n):
    if n % 2:
        layers[n % 4 // 2].group_send_sync(group, {"type": "n", "n": n})
    else:
        layers[n % 4 // 2].send_sync(channel, {"type": "n", "n": n})


gevent.joinall([gevent.spawn(work, n) for n in range(int(count))], raise_error=True)
print("sent", count)
"""


@pytest.mark.timeout(180)
async def test_greenlets_send_through_the_sync_methods_and_are_told_once_about_async_to_sync(make_layer) -> None:
    pytest.importorskip("gevent")
    receiver = make_layer()
    channel = await receiver.new_channel()
    await receiver.group_add("gevent-group", channel)
    arguments = [HOST, TEST_EXCHANGE, "gevent-group", channel, str(GREENLETS)]
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", SCRIPT, *arguments], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sent {GREENLETS}"
    received = [(await asyncio.wait_for(receiver.receive(channel), 30))["n"] for _ in range(GREENLETS)]
    assert sorted(received) == list(range(GREENLETS))
    assert done.stderr.count("patched by gevent") == 1 and "group_send_sync" in done.stderr
