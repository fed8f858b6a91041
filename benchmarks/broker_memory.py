"""What a process queue and a group binding cost the broker in memory.

    python benchmarks/broker_memory.py [--host URL] [--connections 200] [--queues 1000] [--bindings 20000]

Reads the broker node's Erlang memory (`rabbitmqctl eval 'erlang:memory(total).'`, or the command in RABBITMQCTL)
before and after it opens `--connections` connections with a channel each (a receiving process holds two, a
sender one), before and after it declares `--queues` empty queues of the layer's process-queue shape (exclusive, with
`x-max-length`, `reject-publish` and `x-message-ttl`), then before and after it binds one queue `--bindings` times
to a direct exchange with distinct routing keys (per-user groups). Prints bytes per queue and per binding. Each
reading is the median of five, a second apart, so a garbage collection in between does not decide it. Against 4.0:
`python -m tests.support.rabbitmq4 python benchmarks/broker_memory.py` (it takes AMQP_URL and RABBITMQCTL).

Run it against a broker nothing else is using: another client's traffic moves the figure.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import time

import pika

EXCHANGE = "broker-memory-groups"
PROCESS_QUEUE_ARGUMENTS = {"x-max-length": 100, "x-overflow": "reject-publish", "x-message-ttl": 60_000}


def node_memory() -> int:
    ctl = shlex.split(os.environ.get("RABBITMQCTL", "rabbitmqctl"))
    readings = []
    for _ in range(5):
        output = subprocess.run([*ctl, "eval", "erlang:memory(total)."], capture_output=True, text=True, check=True)
        readings.append(int(output.stdout.strip()))
        time.sleep(1)
    return int(statistics.median(readings))


def per_item(before: int, after: int, count: int) -> str:
    return f"{(after - before) / count:,.0f} bytes each ({(after - before) / 2**20:,.1f} MiB for {count:,})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--queues", type=int, default=1000)
    parser.add_argument("--bindings", type=int, default=20000)
    args = parser.parse_args()
    connection = pika.BlockingConnection(pika.URLParameters(args.host))
    print(f"RabbitMQ {connection._impl.server_properties['version']}")  # type: ignore[union-attr]
    channel = connection.channel()
    extra: list[pika.BlockingConnection] = []
    try:
        before = node_memory()
        for _ in range(args.connections):
            extra.append(pika.BlockingConnection(pika.URLParameters(args.host)))
            extra[-1].channel()
        print(f"connection with a channel: {per_item(before, node_memory(), args.connections)}")
        for other in extra:
            other.close()
        before = node_memory()
        for _ in range(args.queues):
            channel.queue_declare("", exclusive=True, arguments=PROCESS_QUEUE_ARGUMENTS)
        print(f"process queue: {per_item(before, node_memory(), args.queues)}")
        channel.exchange_declare(EXCHANGE, "direct", auto_delete=False)
        queue = channel.queue_declare("", exclusive=True, arguments=PROCESS_QUEUE_ARGUMENTS).method.queue
        before = node_memory()
        for n in range(args.bindings):
            channel.queue_bind(queue, EXCHANGE, routing_key=f"user-{n}")
        print(f"binding: {per_item(before, node_memory(), args.bindings)}")
    finally:
        channel.exchange_delete(EXCHANGE)
        connection.close()  # the exclusive queues and their bindings go with it


if __name__ == "__main__":
    main()
