"""The layer under the worker models a Django site runs, each a real server or pool (`tests/worker_apps/`):
gunicorn's `sync`, `gthread` and `gevent` workers (Celery's prefork pool is run by `test_example_site.py`; the
other pools' runs are not in the suite yet: docs/deployment.md, "Worker models").

Each sends group messages from several workers at once, idles for longer than two heartbeats (`heartbeat=2`: a
worker that runs no Python between requests must not lose its connection), and sends again: every message reaches
a receiver in this process. Each worker holds one connection and no queue (it only sends), and once the server
or pool is stopped, none of the workers' connections is left on the broker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from .conftest import HOST, ROOT, TEST_EXCHANGE
from .private_node import free_port
from .test_process_life import connections_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

REQUESTS = 12
IDLE = 5.0  # seconds: more than two heartbeats of 2 s


def environment(model: str, **more: str) -> dict[str, str]:
    return {**os.environ, "AMQP_URL": HOST, "GROUPS_EXCHANGE": TEST_EXCHANGE, "WORKER_MODEL": model, **more}


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Workers:
    """A running server or pool: `send(numbers)` has its workers send those messages, all at once, and returns the
    queue names of the workers that did."""

    process: subprocess.Popen[bytes]
    send: Callable[[range], list[str]]

    def stop(self) -> str:
        """SIGTERM, as a deploy or Ctrl-C does; what the server printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        assert self.process.stdout is not None
        return self.process.stdout.read().decode(errors="replace")


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.fixture
def gunicorn(request: pytest.FixtureRequest) -> Iterator[Workers]:
    model, port = request.param, free_port()
    threads = ["--threads", "4"] if model == "gthread" else []
    command = [sys.executable, "-m", "gunicorn", "-k", model, "-w", "2", *threads, "-b", f"127.0.0.1:{port}",
               "--graceful-timeout", "5", "tests.worker_apps.wsgi_app:application"]  # fmt: skip
    process = start(command, environment(model))
    for _ in range(300):  # hang guard: 60 s
        if accepts(port) or process.poll() is not None:
            break
        time.sleep(0.2)

    def get(n: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?{n}", timeout=30) as response:
            return response.read().decode()

    def send(numbers: range) -> list[str]:
        with concurrent.futures.ThreadPoolExecutor(len(numbers)) as pool:
            return list(pool.map(get, numbers))

    workers = Workers(process, send)
    yield workers
    workers.stop()


async def exercise(make_layer, workers: Workers) -> None:
    """Send from the workers, idle, send again: every message arrives, each worker holds one connection and no
    queue; once stopped, none of their connections is left."""
    receiver = make_layer()
    channel = await receiver.new_channel()
    await receiver.group_add("workers", channel)
    names = set(await asyncio.to_thread(workers.send, range(REQUESTS)))
    await asyncio.sleep(IDLE)
    names.update(await asyncio.to_thread(workers.send, range(REQUESTS, 2 * REQUESTS)))
    received = {(await asyncio.wait_for(receiver.receive(channel), 30))["n"] for _ in range(2 * REQUESTS)}
    assert received == set(range(2 * REQUESTS))
    for name in names:
        assert await asyncio.to_thread(connections_of, name) == ["publisher"]  # one connection, no queue
    output = await asyncio.to_thread(workers.stop)
    assert "Traceback" not in output, output
    assert await gone(names), output


async def gone(names: set[str]) -> bool:
    """True once none of the workers' connections is on the broker (hang guard: about 20 s)."""
    for _ in range(40):
        if not any([await asyncio.to_thread(connections_of, name) for name in names]):
            return True
        await asyncio.sleep(0.5)
    return False


@pytest.mark.parametrize("gunicorn", ["sync", "gthread", "gevent"], indirect=True)
async def test_gunicorn_workers(make_layer, gunicorn: Workers) -> None:
    await exercise(make_layer, gunicorn)
