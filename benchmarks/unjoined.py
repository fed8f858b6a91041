"""The layer with its writes left as pika makes them (one send per frame), for an A/B run of the bench on one commit.

    python -m channels_rabbitmq_threaded bench --layer benchmarks.unjoined.UnjoinedLayer \
        --config '{"local_capacity": 50000, "remote_capacity": 100000, "capacity": 100000}' --scenarios concurrent,...

`writes.join_writes` becomes a no-op in the process that builds this layer, so a pass of the I/O thread sends each
frame of each publish by itself, as pika does. Run from the repository's root (so that `benchmarks` imports);
measure it beside the layer itself, alternating, to see what joining the writes buys.
"""

from __future__ import annotations

from typing import Any

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from channels_rabbitmq_threaded._io import writes


class UnjoinedLayer(RabbitmqChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        writes.join_writes = _as_pika_does  # every layer of this process: a bench cell builds no other
        super().__init__(*args, **kwargs)


def _as_pika_does(_connection: Any) -> None:
    pass
