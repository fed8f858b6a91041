"""The WebSocket side of a room (runs in the ASGI server, on its event loop)."""

import logging

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .rooms import group_of

logger = logging.getLogger(__name__)


class RoomConsumer(AsyncJsonWebsocketConsumer):
    """A browser in a room: joins the room's group, relays what it types, and forwards what the room hears."""

    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(group_of(self.room), self.channel_name)
        await self.accept()
        logger.info("joined room %s: %s", self.room, self.channel_name)

    async def disconnect(self, code: int) -> None:
        # Also runs when the browser vanished without a closing handshake: the server notices the dead socket.
        await self.channel_layer.group_discard(group_of(self.room), self.channel_name)
        logger.info("left room %s: %s (code %s)", self.room, self.channel_name, code)

    async def receive_json(self, content: dict, **kwargs: object) -> None:
        text = str(content.get("text", ""))[:500]
        await self.channel_layer.group_send(
            group_of(self.room), {"type": "chat.message", "text": text, "source": "websocket"}
        )

    async def chat_message(self, event: dict) -> None:
        await self.send_json({"kind": "message", "text": event["text"], "source": event["source"]})

    async def job_progress(self, event: dict) -> None:
        await self.send_json({"kind": "progress", "job": event["job"], "step": event["step"], "steps": event["steps"]})
