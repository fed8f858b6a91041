"""`_close_redis`, which channels_redis's pub/sub tests call on a layer's Redis connection: nothing to do here."""

from __future__ import annotations

from typing import Any


async def _close_redis(_connection: Any) -> None:
    return None
