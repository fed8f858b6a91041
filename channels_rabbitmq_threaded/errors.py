"""The package's exceptions.

Theory of operation: every error this package raises on its own account derives from `RabbitmqLayerError`, so a
caller can catch "anything the layer says went wrong" in one clause. Channels' own exceptions (`ChannelFull`,
`StopConsumer`) are used where the Channels specification names them. Nothing here does I/O.
"""

from __future__ import annotations

from channels.exceptions import StopConsumer


class RabbitmqLayerError(Exception):
    """Base class of the errors raised by `channels_rabbitmq_threaded`."""


class BrokerUnavailable(RabbitmqLayerError):
    """The layer could not reach RabbitMQ (or lost it) while this call needed it.

    The message carries the broker's or the socket's reason. The layer keeps reconnecting in the background, so a
    later call may succeed.
    """


class BrokerRefused(BrokerUnavailable):
    """RabbitMQ refused the connection for a reason that retrying can't fix until someone acts.

    Wrong credentials, a missing vhost or missing permissions, a TLS certificate that does not verify. The message
    carries the broker's reason; the layer keeps retrying in the background in case an operator fixes it.
    """


class ConfirmLost(BrokerUnavailable):
    """A message was published, and RabbitMQ's confirm did not come within `connect_timeout`.

    The connection died before the confirm and no new one came in time (a shorter cut is invisible: the layer
    publishes the message again), or a resource alarm blocked publishing that long. The message may or may not have
    been delivered; it is never delivered twice (receivers drop copies by message id).
    """


class MessageTooLarge(RabbitmqLayerError, ValueError):
    """The encoded message is larger than `max_message_size` (RabbitMQ's limit); nothing was sent."""


class LayerClosed(RabbitmqLayerError, StopConsumer):
    """The layer was closed with `close()`; it accepts no more calls.

    It is also a `StopConsumer`, so a Channels consumer that meets it stops cleanly.
    """
