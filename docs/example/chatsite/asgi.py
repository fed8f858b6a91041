"""The ASGI side (Daphne or Uvicorn): WebSockets only; pages and posts go to the WSGI server."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django_asgi = get_asgi_application()  # sets Django up before the consumers are imported

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from channels_rabbitmq_threaded.lifespan import CloseLayersAtShutdown  # noqa: E402
from chat.consumers import RoomConsumer  # noqa: E402

# CloseLayersAtShutdown: under Uvicorn, closes the layer's connections at shutdown (docs/quickstart.md, "Stopping").
application = CloseLayersAtShutdown(
    ProtocolTypeRouter(
        {
            "http": django_asgi,
            "websocket": AllowedHostsOriginValidator(
                URLRouter([path("ws/rooms/<slug:room>/", RoomConsumer.as_asgi())])
            ),
        }
    )
)
