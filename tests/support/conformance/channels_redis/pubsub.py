"""`RedisPubSubChannelLayer`, as channels_redis's tests build it: the same stand-in as `core` (see the package)."""

from __future__ import annotations

from .core import RedisChannelLayer as RedisPubSubChannelLayer

__all__ = ["RedisPubSubChannelLayer"]
