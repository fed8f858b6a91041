"""The layer with its at-once publish turned off, for an A/B run of the bench on one commit.

    python -m channels_rabbitmq_threaded bench --layer benchmarks.two_crossings.TwoCrossingsLayer \
        --config '{"local_capacity": 50000, "remote_capacity": 100000, "capacity": 100000}' --scenarios sequential,...

Every publish then takes the I/O thread's funnel, as before `IOThread.publish_now` existed: two thread crossings
for an awaited send. Run from the repository's root (so that `benchmarks` imports); measure it beside the layer
itself, alternating, to see what the at-once publish buys.
"""

from __future__ import annotations

from typing import Any

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from channels_rabbitmq_threaded._io.io_thread import IOThread


class TwoCrossingsLayer(RabbitmqChannelLayer):
    def _io(self) -> IOThread:
        io_thread = super()._io()
        io_thread.publish_now = _never  # type: ignore[method-assign]
        return io_thread


def _never(_publish: Any) -> bool:
    return False
