"""Reading the I/O thread's figures for `layer.stats()`: the owners of each figure, read without a lock.

`Figures` holds references to the objects that keep the figures (`stats.py`'s table says which), and builds one
`stats.LayerStats` from them when `stats()` is called, on the caller's thread: each int read is one its owner
wrote, and the snapshot as a whole is approximate, which is all a gauge promises.
"""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..stats import CallStats, LayerStats, LinkStats

if TYPE_CHECKING:
    from .._routing.inbox import Inbox
    from .consumer import ConsumerSide
    from .ledgers import DropLog
    from .link import Link
    from .publisher import PublisherSide
    from .reach import ReachProbe


def link_stats(link: Link) -> LinkStats:
    return LinkStats(
        state=link.state.name,
        url=link.url,
        connects=link.connects,
        losses=link.losses,
        blocked=link.blocked,
        last_error=link.last_error,
        last_error_at=link.last_error_at,
    )


@dataclass
class Figures:
    """The owners of the I/O thread's figures (`hub.Hub` makes one), read by `snapshot` from any thread."""

    routing: Inbox[Any, int]
    consumer: ConsumerSide
    publisher: PublisherSide
    drops: DropLog
    normal_queues: Sized  # the normal queues flush() purges
    reach: ReachProbe

    def snapshot(self, calls: CallStats, checked_names: int) -> LayerStats:
        """`checked_names`: the channel names the layer remembers as checked for receive()."""
        outcomes, durations = calls.read()
        routing = self.routing
        return LayerStats(
            calls=outcomes,
            durations=durations,
            deliveries_received=self.consumer.deliveries.received,
            delivered_to_receivers=routing.handed_over,
            put_backs=routing.put_backs,
            copies_dropped=self.consumer.deliveries.window.recent.copies,
            drops=dict(self.drops.totals),
            buffered=routing.in_memory,
            held=routing.held,
            waiting_receivers=routing.waiting,
            local_channels=routing.channel_count(),
            local_groups=routing.membership.group_count,
            publishes_in_flight=self.publisher.backlog(),
            consumption_paused=routing.held > 0,
            queue=self.consumer.queue.name,
            queue_losses=self.consumer.queue.losses,
            queue_moves=self.consumer.queue.moves,
            lost_with_queues=self.consumer.queue.lost_messages,
            reach_lost=self.reach.failures,
            confirms_stalled=self.publisher.confirm_watch.stalls,
            bookkeeping={
                **routing.bookkeeping(),
                **self.consumer.bookkeeping(),
                **self.consumer.deliveries.window.bookkeeping(),
                **self.publisher.bookkeeping(),
                "normal_queues": len(self.normal_queues),
                "queues_left_behind": len(self.consumer.queue.left_behind),
                "checked_names": checked_names,
            },
            consumer=link_stats(self.consumer.link),
            publisher=link_stats(self.publisher.link),
        )
