"""`process_queue.ProcessQueue` alone: moves, losses counted once each, the queues left behind. No broker."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from channels_rabbitmq_threaded._io.process_queue import (
    LEFT_BEHIND_KEPT,
    ProcessQueue,
    queue_missing,
    queue_unavailable,
)


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


@pytest.mark.parametrize(
    "text",
    [
        "NOT_FOUND - home node 'a@h' of durable queue 'channels_abc' in vhost '/' is down or inaccessible",  # 3.x
        "NOT_FOUND - queue 'channels_abc' in vhost '/' process is stopped by supervisor",  # 4.3, a node stopping
        "NOT_FOUND - failed to perform operation on queue 'channels_abc' in vhost '/' due to timeout",  # 4.3, dead
    ],
)
def test_a_queue_out_of_reach_is_read_from_the_refusal_of_this_queue_only(text: str) -> None:
    assert queue_unavailable(refusal(404, text), "channels_abc") and not queue_missing(
        refusal(404, text), "channels_abc"
    )
    assert not queue_unavailable(refusal(404, text), "channels_xyz")
    assert not queue_unavailable(refusal(405, text), "channels_abc")


def test_a_missing_queue_is_not_out_of_reach() -> None:
    missing = refusal(404, "NOT_FOUND - no queue 'channels_abc' in vhost '/'")
    assert queue_missing(missing, "channels_abc") and not queue_unavailable(missing, "channels_abc")


class Timers:
    """The two calls of pika's IOLoop that `ProcessQueue` uses; `fire` runs the timers still armed."""

    def __init__(self) -> None:
        self.armed: dict[int, object] = {}

    def call_later(self, _delay: float, callback: object) -> int:
        handle = len(self.armed) + 1
        self.armed[handle] = callback
        return handle

    def remove_timeout(self, handle: int) -> None:
        self.armed.pop(handle)

    def fire(self) -> None:
        armed, self.armed = self.armed, {}
        for callback in armed.values():
            callback()  # type: ignore[operator]


def test_a_declare_with_no_answer_in_time_is_reported_and_an_answered_one_is_not() -> None:
    timers, too_slow = Timers(), []
    queue = ProcessQueue("channels_abc", ioloop=timers)
    queue.declaring(10, lambda: too_slow.append(queue.name))
    queue.declared(declare_ok(0))
    timers.fire()
    assert too_slow == []
    queue.declaring(10, lambda: too_slow.append(queue.name))
    timers.fire()
    assert too_slow == ["channels_abc"]
    queue.declaring(10, lambda: too_slow.append("after a cut"))
    queue.stop_waiting()  # the connection went first
    timers.fire()
    assert too_slow == ["channels_abc"]
