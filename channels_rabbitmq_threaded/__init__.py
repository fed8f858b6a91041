"""A Django Channels layer on RabbitMQ whose connection lives in one background thread, so it works from any loop."""

from .core import RabbitmqChannelLayer, close_all_layers
from .errors import (
    BrokerRefused,
    BrokerUnavailable,
    ConfirmLost,
    LayerClosed,
    MessageTooLarge,
    RabbitmqLayerError,
)

__all__ = [
    "BrokerRefused",
    "BrokerUnavailable",
    "ConfirmLost",
    "LayerClosed",
    "MessageTooLarge",
    "RabbitmqChannelLayer",
    "RabbitmqLayerError",
    "close_all_layers",
]
__version__ = "0.1.0"
