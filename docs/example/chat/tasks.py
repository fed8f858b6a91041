"""The long job, run by a Celery prefork worker: it reports each step to the room."""

import time

from celery import shared_task
from channels.layers import get_channel_layer

from .rooms import group_of


@shared_task
def long_job(room: str, job: str, steps: int, pause: float) -> None:
    layer = get_channel_layer()  # one per worker process, made after the fork; its I/O thread is this process's
    for step in range(1, steps + 1):
        time.sleep(pause)  # the work
        # The synchronous fast path: no event loop is made for it (async_to_sync(layer.group_send) works too).
        layer.group_send_sync(group_of(room), {"type": "job.progress", "job": job, "step": step, "steps": steps})
