"""A WSGI application for gunicorn's workers: each request sends one group message, as a Django view would.

Each worker process builds its layer on import (after the fork) from the environment: AMQP_URL, GROUPS_EXCHANGE.
Under gevent (WORKER_MODEL=gevent) it calls `group_send_sync`, which blocks only the calling greenlet; elsewhere
`async_to_sync(layer.group_send)`, as a view does. The message carries the layer's queue name, so the test can
find the worker's connections on the broker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import async_to_sync

from channels_rabbitmq_threaded import RabbitmqChannelLayer

layer = RabbitmqChannelLayer(host=os.environ["AMQP_URL"], groups_exchange=os.environ["GROUPS_EXCHANGE"], heartbeat=2)
GEVENT = os.environ.get("WORKER_MODEL") == "gevent"


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    message = {"type": "n", "n": int(environ.get("QUERY_STRING") or 0), "sender": layer.queue_name}
    if GEVENT:
        layer.group_send_sync("workers", message)
    else:
        async_to_sync(layer.group_send)("workers", message)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"sent"]
