"""Which channel layers a benchmark run measures, and how each is built.

Theory of operation: a `LayerSpec` is what a `CHANNEL_LAYERS` entry is, a dotted class path and keyword options,
plus a label for the table. It is plain data, so it crosses into the cell and member processes (pickled by
`multiprocessing`, JSON on the cell's command line) and each process builds its own layer from it, as each Django
process does. Under ``--compare`` our layer is measured twice: as configured by default ("ours": publisher
confirms awaited) and in its opt-in ``wait_for_confirms=False`` mode ("ours_nowait"); then `peers()`, the other
layers, each if it imports and its server answers a TCP connect.

channels_nats delivers over NATS core pub/sub, which drops what a slow subscriber cannot take: every scenario counts
messages delivered, never messages sent, and a cell whose receivers got less says so.

Capacities are raised to 100,000 (``local_capacity`` to 50,000, since channels_rabbitmq uses it as its prefetch
count, which AMQP caps at 65,535) in every default configuration: the scenarios measure speed, and a sender that
outruns a 100-message channel would measure `ChannelFull` instead. The configuration each layer ran with is
printed in the report and written to the JSON.
"""

from __future__ import annotations

import importlib
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

OURS = "channels_rabbitmq_threaded.core.RabbitmqChannelLayer"
BIG = 100_000  # capacity for every layer in the default configurations (see the module docstring)
DEFAULT_NATS = "nats://127.0.0.1:4222"
LOCAL_BIG = 50_000  # local_capacity: channels_rabbitmq uses it as the AMQP prefetch count, at most 65,535


@dataclass(frozen=True)
class LayerSpec:
    label: str
    path: str
    config: dict[str, Any] = field(default_factory=dict)
    cross_process: bool = True  # False: the layer only reaches receivers in its own process (the in-memory layer)
    server: str | None = None  # URL whose host and port must accept a TCP connection for the layer to run

    def build(self) -> Any:
        module_name, _, class_name = self.path.rpartition(".")
        if not module_name:
            raise ValueError(f"layer path {self.path!r} is not a dotted path to a class")
        return getattr(importlib.import_module(module_name), class_name)(**self.config)

    def importable(self) -> bool:
        try:
            importlib.import_module(self.path.rpartition(".")[0])
        except ImportError:
            return False
        return True

    def reachable(self) -> bool:
        return self.server is None or server_answers(self.server)

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "path": self.path, "config": self.config, "cross_process": self.cross_process}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LayerSpec:
        return cls(data["label"], data["path"], data["config"], data["cross_process"])


def ours(amqp_url: str, wait_for_confirms: bool = True) -> LayerSpec:
    """Our layer; with `wait_for_confirms=False` the opt-in mode, measured as a layer of its own ("ours_nowait")."""
    config: dict[str, Any] = {"host": amqp_url, "local_capacity": LOCAL_BIG, "remote_capacity": BIG, "capacity": BIG}
    if not wait_for_confirms:
        config["wait_for_confirms"] = False
    return LayerSpec("ours" if wait_for_confirms else "ours_nowait", OURS, config, server=amqp_url)


def peers(amqp_url: str, redis_url: str, nats_url: str = DEFAULT_NATS) -> list[LayerSpec]:
    """The other layers `--compare` measures when they are installed and their server answers."""
    redis_hosts = [redis_url]
    return [
        LayerSpec(
            "channels_rabbitmq",
            "channels_rabbitmq.core.RabbitmqChannelLayer",
            {"host": amqp_url, "local_capacity": LOCAL_BIG, "remote_capacity": BIG},
            server=amqp_url,
        ),
        LayerSpec(
            "channels_redis",
            "channels_redis.core.RedisChannelLayer",
            {"hosts": redis_hosts, "capacity": BIG},
            server=redis_url,
        ),
        LayerSpec(
            "redis_pubsub", "channels_redis.pubsub.RedisPubSubChannelLayer", {"hosts": redis_hosts}, server=redis_url
        ),
        LayerSpec(
            "channels_nats",
            "channels_nats.NatsChannelLayer",
            {"servers": [nats_url], "capacity": BIG},
            server=nats_url,
        ),
        LayerSpec("in_memory", "channels.layers.InMemoryChannelLayer", {"capacity": BIG}, cross_process=False),
    ]


def custom(path: str, config: dict[str, Any]) -> LayerSpec:
    """A layer named on the command line (`--layer PATH --config JSON`)."""
    label = path.rpartition(".")[0] or path
    return LayerSpec(label, path, config, cross_process=path != "channels.layers.InMemoryChannelLayer")


def server_answers(url: str, timeout: float = 1.0) -> bool:
    parts = urlsplit(url)
    default_port = {"amqp": 5672, "amqps": 5671, "redis": 6379, "rediss": 6379, "nats": 4222}.get(parts.scheme, 0)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout).close()
    except OSError:
        return False
    return True
