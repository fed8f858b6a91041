"""`RedisChannelLayer`, as channels_redis's tests build it, made of this project's layer (see the package)."""

from __future__ import annotations

import os
from typing import Any

from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded import RabbitmqChannelLayer

from . import scope

__all__ = ["ChannelFull", "RedisChannelLayer"]

HOST = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


class RedisChannelLayer(RabbitmqChannelLayer):
    def __init__(
        self,
        hosts: Any = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: int = 86400,
        capacity: int = 100,
        channel_capacity: dict[str, int] | None = None,
        symmetric_encryption_keys: list[str] | None = None,
        **_redis_only: Any,
    ) -> None:
        super().__init__(
            host=HOST,
            groups_exchange=f"{scope.PREFIX}-{scope.current}-{prefix}",
            normal_channel_prefix=f"{scope.PREFIX}-{scope.current}.",
            expiry=expiry,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
            symmetric_encryption_keys=symmetric_encryption_keys,
        )

    async def close_pools(self) -> None:
        """channels_redis closes the connections of the calling loop here and stays usable: this layer's connections
        belong to no loop, so there is nothing to close."""
