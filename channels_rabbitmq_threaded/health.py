"""A django-health-check check for the channel layer (the `health` extra, django-health-check 4 or newer).

Theory of operation: `ChannelLayer` is a `health_check.base.HealthCheck` whose `run()` awaits the layer's own
`ping()`: a message to a new channel of this process, through RabbitMQ, back to `receive()`. It proves the whole
way (connection, broker, the process's queue, consumption), unlike a check that only connects, and it answers
within its `timeout`, also when the broker is stopped or frozen. django-health-check runs it on whatever event loop
it uses; the layer works from any loop. Only this module imports `health_check`, and only when it is imported.

    # urls.py
    from health_check.views import HealthCheckView
    path("health/", HealthCheckView.as_view(checks=["channels_rabbitmq_threaded.health.ChannelLayer"]))
"""

from __future__ import annotations

import dataclasses

from channels.layers import get_channel_layer
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

from .errors import RabbitmqLayerError


@dataclasses.dataclass
class ChannelLayer(HealthCheck):
    """The `CHANNEL_LAYERS` entry `alias` answers a ping within the check's timeout (5 s by default)."""

    alias: str = "default"

    async def run(self) -> None:
        layer = get_channel_layer(self.alias)
        if layer is None or not hasattr(layer, "ping"):
            raise ServiceUnavailable(f"CHANNEL_LAYERS[{self.alias!r}] is not a channels_rabbitmq_threaded layer")
        try:
            await layer.ping(timeout=self.timeout.total_seconds())
        except RabbitmqLayerError as exc:
            raise ServiceUnavailable(f"the channel layer: {exc}") from exc
