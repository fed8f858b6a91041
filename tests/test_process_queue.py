"""`process_queue.ProcessQueue` alone: moves, losses counted once each, the queues left behind. No broker."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from channels_rabbitmq_threaded.process_queue import LEFT_BEHIND_KEPT, ProcessQueue, home_node_down

pytestmark = pytest.mark.unit


def declare_ok(messages: int) -> SimpleNamespace:
    return SimpleNamespace(method=SimpleNamespace(message_count=messages))


def refusal(code: int, text: str) -> SimpleNamespace:
    return SimpleNamespace(reply_code=code, reply_text=text)


def test_each_loss_of_a_queue_is_counted_once_whatever_says_so_first() -> None:
    queue = ProcessQueue("channels_abc", ioloop=None)
    queue.declared(declare_ok(5))
    queue.lost("cancelled", unacknowledged=2)  # the consumer was cancelled: 5 at the last count, 2 unacknowledged
    queue.move(unacknowledged=0)  # then its declare was refused (home node down): the same loss
    assert (queue.losses, queue.moves, queue.lost_messages, queue.name) == (1, 1, 7, "channels_abc.1")
    queue.declared(declare_ok(0))
    queue.move(unacknowledged=3)  # the new queue's node goes too: a loss of its own
    assert (queue.losses, queue.moves, queue.lost_messages, queue.name) == (2, 2, 10, "channels_abc.2")
    assert queue.left_behind == ["channels_abc", "channels_abc.1"]
    queue.declared(declare_ok(0))
    queue.lost("deleted", unacknowledged=0)  # deleted, then declared again under the same name
    queue.declared(declare_ok(0))
    queue.lost("deleted again", unacknowledged=0)
    assert (queue.losses, queue.name) == (4, "channels_abc.2")


def test_only_so_many_queues_left_behind_are_kept() -> None:
    queue = ProcessQueue("channels_abc", ioloop=None)
    for _ in range(LEFT_BEHIND_KEPT + 5):
        queue.move(unacknowledged=0)
    assert len(queue.left_behind) == LEFT_BEHIND_KEPT
    assert queue.left_behind[-1] == f"channels_abc.{LEFT_BEHIND_KEPT + 4}"  # the newest kept, the oldest let go


def test_home_node_down_is_read_from_the_refusal_of_this_queue_only() -> None:
    text = "NOT_FOUND - home node 'a@h' of durable queue 'channels_abc' in vhost '/' is down or inaccessible"
    assert home_node_down(refusal(404, text), "channels_abc")
    assert not home_node_down(refusal(404, text), "channels_xyz")
    assert not home_node_down(refusal(404, "NOT_FOUND - no queue 'channels_abc' in vhost '/'"), "channels_abc")
    assert not home_node_down(refusal(405, text), "channels_abc")
