"""A Celery app whose task sends one group message, as a task reporting progress to a room would.

Broker and names come from the environment: AMQP_URL (Celery's broker is the layer's RabbitMQ), GROUPS_EXCHANGE,
CELERY_QUEUE (the test's own task queue, deleted afterwards) and WORKER_MODEL (the pool). Under the gevent pool the
task calls `group_send_sync`, which blocks only the calling greenlet; elsewhere `async_to_sync(layer.group_send)`.
The message carries the layer's queue name, so the test can find each worker process's connections on the broker.
"""

from __future__ import annotations

import os

from asgiref.sync import async_to_sync
from celery import Celery

from channels_rabbitmq_threaded import RabbitmqChannelLayer

app = Celery("worker_models", broker=os.environ["AMQP_URL"])
app.conf.update(
    task_default_queue=os.environ["CELERY_QUEUE"],
    task_ignore_result=True,
    worker_enable_remote_control=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
layer = RabbitmqChannelLayer(host=os.environ["AMQP_URL"], groups_exchange=os.environ["GROUPS_EXCHANGE"], heartbeat=2)
GEVENT = os.environ.get("WORKER_MODEL") == "gevent"


@app.task(name="send")
def send(n: int) -> None:
    message = {"type": "n", "n": n, "sender": layer.queue_name}
    if GEVENT:
        layer.group_send_sync("workers", message)
    else:
        async_to_sync(layer.group_send)("workers", message)
