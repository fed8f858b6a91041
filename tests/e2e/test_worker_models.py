"""The layer under the worker models a Django site runs, each a real server or pool (`tests/support/worker_apps/`):
gunicorn's `sync`, `gthread` and `gevent` workers; uWSGI's master with preforked or lazy apps, with and without
threads; Celery's `prefork`, `threads`, `solo` and `gevent` pools; and `manage.py runserver`, Django's and Daphne's.

Each server or pool sends group messages from several workers at once, idles for longer than two heartbeats
(`heartbeat=2`: a worker that runs no Python between requests must not lose its connection), and sends again: every
message reaches a receiver in this process. Each worker holds one connection and no queue (it only sends), and once
the server or pool is stopped, none of the workers' connections is left on the broker. runserver, stopped as a
terminal stops it, closes its layer: its queue goes at once rather than after `queue_lease`.
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
from pathlib import Path

import pytest
from celery import Celery

from ..conftest import HOST, ROOT, TEST_EXCHANGE, connections_of, queue_exists
from ..support.private_node import free_port

pytestmark = pytest.mark.timeout(180)

REQUESTS = 12
IDLE = 5.0  # seconds: more than two heartbeats of 2 s


def environment(model: str, **more: str) -> dict[str, str]:
    return {**os.environ, "AMQP_URL": HOST, "GROUPS_EXCHANGE": TEST_EXCHANGE, "WORKER_MODEL": model, **more}


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Workers:
    """A running server or pool: `send(numbers)` has its workers send those messages, all at once."""

    process: subprocess.Popen[bytes]
    send: Callable[[range], None]

    def stop(self) -> str:
        """SIGTERM, as a deploy does (a warm shutdown for Celery); what the server printed."""
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
               "--graceful-timeout", "5", "tests.support.worker_apps.wsgi_app:application"]  # fmt: skip
    yield from http_workers(command, model, port)


UWSGI_MODES = {
    "preforked": [],  # the app is imported once in the master, then the workers are forked
    "lazy-apps-enable-threads": ["--lazy-apps", "--enable-threads"],  # each worker imports the app itself
    "preforked-threads": ["--threads", "4"],  # four request threads per worker
}


@pytest.fixture
def uwsgi(request: pytest.FixtureRequest) -> Iterator[Workers]:
    """uWSGI's master and 2 workers; SIGTERM stops them (`--die-on-term`: in uWSGI 2.0 it would reload them)."""
    port = free_port()
    uwsgi = str(Path(sys.executable).with_name("uwsgi"))  # pyuwsgi's script, beside this Python
    command = [uwsgi, "--master", "--processes", "2", "--http", f"127.0.0.1:{port}", "--need-app", "--strict",
               "--die-on-term", "--module", "tests.support.worker_apps.wsgi_app:application"]  # fmt: skip
    command += UWSGI_MODES[request.param]
    yield from http_workers(command, "uwsgi", port)


def http_workers(command: list[str], model: str, port: int) -> Iterator[Workers]:
    """Start a WSGI server, wait until it listens; `send` makes one request per message, all at once."""
    process = start(command, environment(model))
    for _ in range(300):  # hang guard: 60 s
        if accepts(port) or process.poll() is not None:
            break
        time.sleep(0.2)

    def get(n: int) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?{n}", timeout=30) as response:
            response.read()

    def send(numbers: range) -> None:
        with concurrent.futures.ThreadPoolExecutor(len(numbers)) as pool:
            list(pool.map(get, numbers))

    workers = Workers(process, send)
    yield workers
    workers.stop()


@pytest.fixture
def celery_worker(request: pytest.FixtureRequest) -> Iterator[Workers]:
    """`celery worker -P <pool>` on a task queue of the test's own, under the session's prefix (so the session
    removes it and its exchange at its end, with the rest of what it made: tests/support/leftovers.py)."""
    pool, task_queue = request.param, f"{TEST_EXCHANGE}-celery-{request.param}"
    command = [sys.executable, "-m", "celery", "-A", "tests.support.worker_apps.celery_app", "worker", "-P", pool,
               "-c", "2", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]  # fmt: skip
    process = start(command, environment(pool, CELERY_QUEUE=task_queue))
    client = Celery("test", broker=HOST)

    def send(numbers: range) -> None:
        for n in numbers:
            client.send_task("send", args=(n,), queue=task_queue)

    workers = Workers(process, send)
    yield workers
    workers.stop()
    client.close()


async def exercise(make_layer, workers: Workers) -> None:
    """Send from the workers, idle, send again: every message arrives, each worker holds one connection and no
    queue; once stopped, none of their connections is left."""
    receiver = make_layer()
    channel = await receiver.new_channel()
    await receiver.group_add("workers", channel)
    senders: set[str] = set()
    for batch in (range(REQUESTS), range(REQUESTS, 2 * REQUESTS)):
        if batch.start:
            await asyncio.sleep(IDLE)
        await asyncio.to_thread(workers.send, batch)
        messages = [await asyncio.wait_for(receiver.receive(channel), 60) for _ in batch]
        assert sorted(message["n"] for message in messages) == list(batch)
        senders.update(message["sender"] for message in messages)
    for name in senders:
        assert await asyncio.to_thread(connections_of, name) == ["publisher"]  # one connection, no queue
    output = await asyncio.to_thread(workers.stop)
    assert "Traceback" not in output, output
    assert await gone(senders), output


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


@pytest.mark.parametrize("uwsgi", list(UWSGI_MODES), indirect=True)
async def test_uwsgi_workers(make_layer, uwsgi: Workers) -> None:
    await exercise(make_layer, uwsgi)


def runserver(server: str, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """`manage.py runserver` (Django's, or Daphne's with `server="daphne"`) in a session of its own, as a terminal
    runs it, once it has answered a request that made its process queue; with that queue's name."""
    port = free_port()
    env = environment(server, DJANGO_SETTINGS_MODULE="tests.support.worker_apps.runserver_site", RUNSERVER=server)
    command = [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", *options]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    for _ in range(300):  # hang guard: 60 s
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
                return process, response.read().decode()
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail(f"runserver did not answer: {process.communicate()[0].decode(errors='replace')}")


def stop(process: subprocess.Popen[bytes], signal_number: int) -> str:
    """Signal the whole session (Ctrl-C signals the terminal's foreground group: the autoreloader and its child);
    what it printed once it ended."""
    os.killpg(process.pid, signal_number)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    return output.decode(errors="replace")


@pytest.mark.parametrize(
    ("server", "options", "signal_number"),
    [
        ("django", (), signal.SIGINT),
        ("django", ("--noreload",), signal.SIGINT),
        ("daphne", (), signal.SIGINT),
        ("daphne", ("--noreload",), signal.SIGTERM),
    ],
    ids=["django-ctrl-c", "django-noreload-ctrl-c", "daphne-ctrl-c", "daphne-noreload-sigterm"],
)
def test_runserver_stopped_closes_its_layer(server: str, options: tuple[str, ...], signal_number: int) -> None:
    """The process closes its layer as it ends (the `atexit` hook; the library installs no signal handler): its
    queue is deleted at once rather than left for `queue_lease`."""
    process, queue_name = runserver(server, *options)
    assert queue_exists(queue_name)
    output = stop(process, signal_number)
    assert "Closed the channel layer's connections to RabbitMQ" in output, output
    assert "Traceback" not in output, output
    assert not queue_exists(queue_name)


@pytest.mark.parametrize("celery_worker", ["prefork", "threads", "solo", "gevent"], indirect=True)
async def test_celery_pools(make_layer, celery_worker: Workers) -> None:
    await exercise(make_layer, celery_worker)
