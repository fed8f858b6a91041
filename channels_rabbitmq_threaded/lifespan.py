"""Close the channel layers when an ASGI server shuts down: the ASGI lifespan protocol for a Channels application.

Theory of operation
-------------------
Channels' `ProtocolTypeRouter` has no handler for the ``lifespan`` scope, so an application built from it never
hears that its server is stopping. Most of the time the layer's `atexit` hook closes its connections as the
interpreter exits. Uvicorn is the exception: on SIGTERM or SIGINT it shuts down gracefully and then raises the same
signal again with its default action, so the process dies without running `atexit` hooks and RabbitMQ sees the
connections drop instead of close.

`CloseLayersAtShutdown(application)` wraps the application: it answers ``lifespan.startup`` at once and, on
``lifespan.shutdown``, awaits `close()` of every `RabbitmqChannelLayer` of this process before it answers
``lifespan.shutdown.complete``. Every other scope goes to the wrapped application untouched. Servers that send no
lifespan events (Daphne) never call it that way, and there `atexit` does the work. Nothing here touches pika or
blocks the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .core import close_all_layers

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class CloseLayersAtShutdown:
    """ASGI middleware: answers the lifespan protocol and closes this package's channel layers at shutdown."""

    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.application(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await close_all_layers()
                except Exception as exc:  # the server must still hear that shutdown is complete
                    logger.exception("Closing the channel layers at shutdown failed")
                    await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return
