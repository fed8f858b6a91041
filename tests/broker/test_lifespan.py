"""`CloseLayersAtShutdown`: the ASGI lifespan protocol, driven as a server drives it, closes the layers."""

from __future__ import annotations

import asyncio

import pytest

from channels_rabbitmq_threaded import LayerClosed
from channels_rabbitmq_threaded.lifespan import CloseLayersAtShutdown


async def test_shutdown_closes_the_layers_and_other_scopes_pass_through(make_layer) -> None:
    layer = make_layer()
    channel = await layer.new_channel()
    seen = []

    async def router(scope, receive, send) -> None:
        seen.append(scope["type"])

    application = CloseLayersAtShutdown(router)
    await application({"type": "websocket"}, None, None)
    assert seen == ["websocket"]

    events = asyncio.Queue()
    for message in ({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}):
        events.put_nowait(message)
    answers = []

    async def send(message) -> None:
        answers.append(message["type"])

    await asyncio.wait_for(application({"type": "lifespan"}, events.get, send), 30)
    assert answers == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert seen == ["websocket"]  # the router never saw the lifespan scope
    with pytest.raises(LayerClosed):
        await layer.send(channel, {"type": "too late"})
