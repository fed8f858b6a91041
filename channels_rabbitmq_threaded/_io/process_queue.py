"""The process's queue: the address its channels carry, the queue bound to it now, and the queues left behind.

Theory of operation
-------------------
Every process-specific channel is named after its process's *address* (`<prefix>.<address>!<id>`), and a send to it
goes to the direct exchange with the address as its routing key (`_config.Settings.direct_exchange`). The process
binds its current queue there, so the queue behind an address may change while the names stay. The first queue is
named by the address itself, which is where older versions of this layer and channels_rabbitmq send.

A queue can be lost while the process lives:

* **deleted** (an operator, a policy, a tool): RabbitMQ cancels the process's consumer. The consumer link
  reconnects, and its setup declares the queue again under the same name and binds it again (`lost`);
* **its node is down** (a classic queue lives on one node): its declare or consume is refused with a 404 that names
  it and says it is out of reach (`queue_unavailable`: the words differ between RabbitMQ 3.x and 4.x), and no other
  node can declare, delete or unbind it until that node returns. The process *moves* (`move`): its next setup
  declares `<address>.<n>` on whichever node it reached, binds it to the address and to every local group, and
  consumes it.

A declare of a queue out of reach is not always refused at once: RabbitMQ 4.3 answers it after about 64 s
("due to timeout"), although the cluster knows within a second that the queue's node is gone. The process does not
wait that long: a declare that has no answer after `connect_timeout` (`declaring`), on a connection that has just
answered the exchange declares before it, is taken as that refusal, and the process moves.

What sat in a lost queue is lost with it: `lost_messages` counts it, from the queue's depth at its latest declare
(the last count the process has) and the deliveries it held unacknowledged when the loss was found.

A queue left behind comes back with its node, still bound to the address and to its groups: it takes copies of
what the process is sent, and once full, its reject-publish nacks would read as `ChannelFull` to senders and as
refused group copies. So each one is deleted as soon as RabbitMQ lets it (`delete_left_behind`, every
`LEFT_BEHIND_RETRY` seconds while any is left), on a channel of its own that a refusal closes without harm; one that
is gone already (its lease ran out) is forgotten too. At most `LEFT_BEHIND_KEPT` names are kept (beyond, the oldest
is left to its lease, `queue_lease`, which RabbitMQ enforces once its node is back).

Owned by the I/O thread: the consumer side (`consumer.ConsumerSide`) calls it, on that thread only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from .logs import guarded

logger = logging.getLogger("channels_rabbitmq_threaded.process_queue")  # a public name: operations.md

LEFT_BEHIND_RETRY = 2.0  # seconds between attempts to delete the queues left on nodes that were down
LEFT_BEHIND_KEPT = 16


def queue_unavailable(reason: BaseException, queue: str) -> bool:
    """True when `reason` (a channel closed by the broker) says that `queue` exists and cannot be used: its node is
    down ("home node … is down or inaccessible" on 3.x; "process is stopped by supervisor", "failed to perform
    operation on queue … due to timeout" on 4.x). A declare creates a queue that does not exist, so a 404 that
    names the queue and is not "no queue" means it is there, out of reach."""
    return (
        getattr(reason, "reply_code", None) == 404
        and f"queue '{queue}'" in str(getattr(reason, "reply_text", ""))
        and not queue_missing(reason, queue)
    )


def queue_missing(reason: BaseException, queue: str) -> bool:
    """True when `reason` says that `queue` does not exist (deleted, or its lease ran out)."""
    return getattr(reason, "reply_code", None) == 404 and f"no queue '{queue}'" in str(
        getattr(reason, "reply_text", "")
    )


class ProcessQueue:
    """The address, the current queue, and the queues left behind; see the module's theory of operation."""

    def __init__(self, address: str, ioloop: Any) -> None:
        self.address = address  # the name in the process's channels, and its routing key on the direct exchange
        self.name = address  # the queue bound to the address now
        self.losses = 0  # queues found deleted or on a node that is down, since start
        self.moves = 0  # times the process moved to a new queue, since start
        self.lost_messages = 0  # what sat in lost queues (their last count) and the deliveries they held unacked
        self.depth = 0  # messages in the queue at its latest declare
        self._ioloop = ioloop
        self._left_behind: list[str] = []  # queues on nodes that were down, to delete once they are back
        self._timer: Any = None
        self._counted = ""  # the queue whose loss was counted last (a cancel, then a 404 on the same queue: once)
        self._declare_timer: Any = None

    def declaring(self, timeout: float, too_slow: Callable[[], None]) -> None:
        """The queue's declare went out: call `too_slow` if it has no answer within `timeout` seconds."""
        self.stop_waiting()
        self._declare_timer = self._ioloop.call_later(timeout, functools.partial(self._too_slow, too_slow))

    def _too_slow(self, too_slow: Callable[[], None]) -> None:
        self._declare_timer = None
        too_slow()

    def stop_waiting(self) -> None:
        """The declare was answered, or its connection is gone."""
        if self._declare_timer is not None:
            self._ioloop.remove_timeout(self._declare_timer)
            self._declare_timer = None

    def declared(self, frame: Any) -> None:
        """The queue's `DeclareOk`: its depth is the last count the process has of it."""
        self.stop_waiting()
        self.depth = getattr(frame.method, "message_count", 0) or 0
        self._counted = ""  # a queue declared anew: its next loss is a loss of its own

    def lost(self, reason: str, unacknowledged: int) -> None:
        """The queue is gone (deleted, or its node is down); the reconnect that follows declares it again."""
        count = self._count_loss(unacknowledged)
        logger.warning(
            "Lost this process's queue %s (%s): about %d message(s) went with it; declaring it again",
            self.name,
            reason,
            count,
            extra={"event": "queue_lost", "queue": self.name, "count": count},
        )

    def move(self, unacknowledged: int) -> None:
        """The queue's node is down: the next setup declares a new queue for the address, on a live node."""
        count = self._count_loss(unacknowledged) if self._counted != self.name else 0
        self._left_behind = [*self._left_behind, self.name][-LEFT_BEHIND_KEPT:]
        self.moves += 1
        old, self.name = self.name, f"{self.address}.{self.moves}"
        logger.warning(
            "The node of this process's queue %s is down: moving to a new queue %s on a live node (channel names "
            "stay; about %d message(s) went with the old queue, which is deleted once its node is back)",
            old,
            self.name,
            count,
            extra={"event": "queue_moved", "queue": self.name, "from": old, "count": count},
        )

    def _count_loss(self, unacknowledged: int) -> int:
        """Count the loss of the current queue once: what it held at the last count, and what it had delivered and
        not seen acknowledged."""
        count = self.depth + unacknowledged
        self.losses += 1
        self.lost_messages += count
        self.depth = 0
        self._counted = self.name
        return count

    def delete_left_behind(self, connection: Any) -> None:
        """Try to delete every queue left behind, on `connection` (the consumer's, open); again later if refused."""
        if self._timer is not None or not self._left_behind:
            return
        try:
            for queue in self._left_behind:
                connection.channel(on_open_callback=functools.partial(self._delete, queue))
        except Exception as exc:  # no channel number free (a low channel_max): the next round tries again
            logger.debug("could not open a channel to delete a queue left behind: %r", exc)
        self._timer = self._ioloop.call_later(LEFT_BEHIND_RETRY, functools.partial(self._retry, connection))

    @property
    def left_behind(self) -> list[str]:
        return list(self._left_behind)

    def stop(self) -> None:
        self.stop_waiting()
        if self._timer is not None:
            self._ioloop.remove_timeout(self._timer)
            self._timer = None

    @guarded
    def _retry(self, connection: Any) -> None:
        self._timer = None
        if connection.is_open:  # else the next connection's setup tries again
            self.delete_left_behind(connection)

    @guarded
    def _delete(self, queue: str, channel: Any) -> None:
        channel.add_on_close_callback(functools.partial(self._refused, queue))
        channel.queue_delete(queue, callback=functools.partial(self._deleted, queue, channel))

    @guarded
    def _refused(self, queue: str, _channel: Any, reason: BaseException) -> None:
        if queue_missing(reason, queue):
            self._forget(queue, "gone already")  # its lease ran out, or someone deleted it
        # else: its node is still down (or the connection closed): tried again later

    @guarded
    def _deleted(self, queue: str, channel: Any, _frame: Any) -> None:
        self._forget(queue, "deleted")
        if channel.is_open:
            channel.close()

    def _forget(self, queue: str, how: str) -> None:
        if queue in self._left_behind:
            self._left_behind.remove(queue)
            logger.info(
                "The queue %s left on a node that was down is %s", queue, how, extra={"event": "left_queue_deleted"}
            )
        if not self._left_behind:
            self.stop()
