import os

from asgiref.sync import async_to_sync
from channels.consumer import SyncConsumer
from channels.routing import ChannelNameRouter, ProtocolTypeRouter


class JobConsumer(SyncConsumer):
    """Runs `job.run` messages from the normal channel `jobs.runworker` and reports each to its `reply_to`."""

    def job_run(self, message: dict) -> None:
        async_to_sync(self.channel_layer.send)(
            message["reply_to"], {"type": "job.done", "id": message["id"], "pid": os.getpid()}
        )


application = ProtocolTypeRouter({"channel": ChannelNameRouter({"jobs.runworker": JobConsumer.as_asgi()})})
