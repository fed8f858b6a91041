"""fork() after the layer was used (Celery prefork, gunicorn --preload): the child starts afresh, the parent goes on."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from asgiref.sync import async_to_sync

from channels_rabbitmq_threaded import RabbitmqChannelLayer

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
    links = (layer._io_thread._consumer.link, layer._io_thread._publisher.link)
    return layer, channel, [link.connection._transport._sock.fileno() for link in links]


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
