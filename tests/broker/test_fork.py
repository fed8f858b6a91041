"""fork() after the layer was used (Celery prefork, gunicorn --preload): the child starts afresh, the parent goes on;
and a fork made in C, without Python's at-fork hooks (uWSGI's workers, forked from a master that imported the app),
gives the child a queue of its own too.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap

import pytest
from asgiref.sync import async_to_sync

from channels_rabbitmq_threaded import RabbitmqChannelLayer

from ..conftest import HOST, ROOT, TEST_EXCHANGE, links

# Forking a process whose layer runs an I/O thread is what these tests are about; Python 3.12+ warns about any fork
# of a multi-threaded process. The layer's at-fork handler is what makes it safe for the layer.
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")


def child_work(layer: RabbitmqChannelLayer, parent_queue: str, parent_channel: str, parent_fds: list[int]) -> None:
    """Runs in the forked child; raises on any failure."""
    for fd in parent_fds:
        try:
            os.fstat(fd)
        except OSError:
            pass
        else:
            raise AssertionError("the child still holds one of the parent's broker sockets")
    assert layer.queue_name != parent_queue, "the child must have its own queue"
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("forked", channel)
    async_to_sync(layer.send)(channel, {"type": "child.self"})
    assert async_to_sync(layer.receive)(channel) == {"type": "child.self"}
    async_to_sync(layer.group_send)("forked", {"type": "from.child"})  # reaches the parent's member too
    assert async_to_sync(layer.receive)(channel) == {"type": "from.child"}
    async_to_sync(layer.send)(parent_channel, {"type": "child.to.parent"})
    async_to_sync(layer.close)()


def in_fork(target, *args) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            target(*args)
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def connected_parent(make_layer) -> tuple[RabbitmqChannelLayer, str, list[int]]:
    layer = make_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("forked", channel)
    async_to_sync(layer.group_send)("forked", {"type": "warm.up"})  # both links are connected now
    assert async_to_sync(layer.receive)(channel) == {"type": "warm.up"}
    return layer, channel, [link.connection._transport._sock.fileno() for link in links(layer)]


def check_parent_unaffected(layer: RabbitmqChannelLayer, channel: str) -> None:
    messages = [async_to_sync(layer.receive)(channel) for _ in range(2)]
    assert sorted(m["type"] for m in messages) == ["child.to.parent", "from.child"]
    async_to_sync(layer.group_send)("forked", {"type": "parent.after"})
    assert async_to_sync(layer.receive)(channel) == {"type": "parent.after"}


def test_os_fork(make_layer) -> None:
    layer, channel, parent_fds = connected_parent(make_layer)
    assert in_fork(child_work, layer, layer.queue_name, channel, parent_fds) == 0
    check_parent_unaffected(layer, channel)


def test_multiprocessing_fork(make_layer) -> None:
    layer, channel, parent_fds = connected_parent(make_layer)
    process = multiprocessing.get_context("fork").Process(
        target=child_work, args=(layer, layer.queue_name, channel, parent_fds)
    )
    process.start()
    process.join(60)
    assert process.exitcode == 0
    check_parent_unaffected(layer, channel)


# Run in a fresh interpreter: a C fork is only safe from a process with one thread, as uWSGI's master is.
C_FORK = """
import asyncio, ctypes, os, sys, threading
from channels_rabbitmq_threaded import RabbitmqChannelLayer

layer = RabbitmqChannelLayer(host=sys.argv[1], groups_exchange=sys.argv[2])  # built in the "master", not used there
parent_queue = layer.queue_name


def first_reads_at_once() -> None:
    # A worker's request threads all meet the layer for the first time at once: they must all see one new name.
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to open any window between two steps
    barrier, seen = threading.Barrier(8), []
    threads = [threading.Thread(target=lambda: (barrier.wait(), seen.append(layer.queue_name))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1 and parent_queue not in seen, seen


async def exchange() -> None:
    assert layer.queue_name != parent_queue, "the child must have its own queue"
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "child.self"})
    assert await layer.receive(channel) == {"type": "child.self"}
    await layer.close()


def in_c_fork(child) -> int:
    pid = ctypes.CDLL(None).fork()  # libc's fork: Python's os.register_at_fork hooks do not run
    if pid == 0:
        code = 1
        try:
            child()
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


failures = sum(in_c_fork(first_reads_at_once) != 0 for _ in range(20))
assert failures == 0, f"{failures} of 20 children saw more than one queue name"
sys.exit(in_c_fork(lambda: asyncio.run(exchange())))
"""


def test_fork_without_pythons_hooks() -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(C_FORK), HOST, TEST_EXCHANGE],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
