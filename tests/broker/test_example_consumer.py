"""The example's consumer tested the way users test theirs: Channels' WebsocketCommunicator, with our layer."""

from __future__ import annotations

import sys

from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path

from ..conftest import ROOT, configure_django

configure_django()
sys.path.insert(0, str(ROOT / "docs" / "example"))
from chat.consumers import RoomConsumer  # noqa: E402 - after the settings and the path it needs

application = URLRouter([path("ws/rooms/<slug:room>/", RoomConsumer.as_asgi())])


async def test_what_one_browser_types_reaches_everyone_in_the_room() -> None:
    alice = WebsocketCommunicator(application, "/ws/rooms/unit/")
    bob = WebsocketCommunicator(application, "/ws/rooms/unit/")
    assert (await alice.connect())[0] and (await bob.connect())[0]
    await alice.send_json_to({"text": "hello"})
    for communicator in (alice, bob):
        assert await communicator.receive_json_from(timeout=5) == {
            "kind": "message", "text": "hello", "source": "websocket"
        }  # fmt: skip
    await alice.disconnect()
    await bob.disconnect()


async def test_a_jobs_progress_sent_from_anywhere_reaches_the_room() -> None:
    carol = WebsocketCommunicator(application, "/ws/rooms/progress/")
    assert (await carol.connect())[0]
    await get_channel_layer().group_send("room-progress", {"type": "job.progress", "job": "j1", "step": 1, "steps": 2})
    assert await carol.receive_json_from(timeout=5) == {"kind": "progress", "job": "j1", "step": 1, "steps": 2}
    await carol.disconnect()
    await get_channel_layer().group_send("room-progress", {"type": "job.progress", "job": "j1", "step": 2, "steps": 2})
    assert await carol.receive_nothing(timeout=0.5)  # after disconnect it has left the group
