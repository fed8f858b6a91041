"""How fast one connection binds when its binds are spread over K channels (pika runs one RPC at a time per channel).

Run: `python benchmarks/bind_channels.py [--host URL] [--binds N] K [K ...]`. For each K: one pika connection opens K
channels, declares an exclusive queue, sends N `queue.bind`s of it to a fresh direct exchange (bind i on channel
i mod K, all at once; pika queues each channel's RPCs behind the one in flight), and prints the binds per second from
the first bind to the last `BindOk`. The layer binds over `consumer.BIND_CHANNELS` channels because of this figure.
"""

from __future__ import annotations

import argparse
import secrets
import time
from typing import Any

import pika

from channels_rabbitmq_threaded._config import DEFAULT_HOST


def binds_per_second(url: str, channels: int, binds: int) -> float:
    exchange = "bench-binds-" + secrets.token_hex(3)
    opened: list[Any] = []
    state = {"queue": "", "started": 0.0, "done": 0, "rate": 0.0}
    connection = pika.SelectConnection(pika.URLParameters(url))

    def on_connection_open(_connection: Any) -> None:
        for _ in range(channels):
            connection.channel(on_open_callback=on_channel_open)

    def on_channel_open(channel: Any) -> None:
        opened.append(channel)
        if len(opened) == channels:
            channel.exchange_declare(exchange, "direct", callback=lambda _f: declare_queue(channel))

    def declare_queue(channel: Any) -> None:
        channel.queue_declare("", exclusive=True, callback=on_queue_declared)

    def on_queue_declared(frame: Any) -> None:
        state["queue"], state["started"] = frame.method.queue, time.perf_counter()
        for n in range(binds):
            opened[n % channels].queue_bind(state["queue"], exchange, routing_key=f"g{n}", callback=on_bound)

    def on_bound(_frame: Any) -> None:
        state["done"] += 1
        if state["done"] == binds:
            state["rate"] = binds / (time.perf_counter() - state["started"])
            opened[0].exchange_delete(exchange, callback=lambda _f: connection.close())

    connection.add_on_open_callback(on_connection_open)
    connection.add_on_close_callback(lambda _connection, _reason: connection.ioloop.stop())
    connection.ioloop.start()
    return state["rate"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--binds", type=int, default=3000)
    parser.add_argument("channels", type=int, nargs="+")
    args = parser.parse_args()
    for count in args.channels:
        print(f"{count} channel(s): {binds_per_second(args.host, count, args.binds):,.0f} binds/s")
