"""What a quorum process queue costs against a classic one, on a private three-node cluster.

    python benchmarks/queue_types.py [--rabbitmq4] [--queues 1000] [--messages 5000]

For each `queue_type`: the time to declare `--queues` process queues with the layer's own arguments (one
connection, one declare at a time, as processes starting one after another), the broker memory they take (the sum
over the three nodes of the Erlang VM's total, before and after), and the throughput of one receiving process fed
by one sending process (`--messages` sends, 50 awaited at once, every one received). Prints one line per type.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from channels_rabbitmq_threaded._config import Settings
from tests.support.private_node import PrivateNode, private_cluster
from tests.support.rabbitmq4 import build_root

IN_FLIGHT = 50


def broker_memory(nodes: list[PrivateNode]) -> int:
    return sum(int(node.ctl("eval", "erlang:memory(total).").strip()) for node in nodes)


def declare_many(url: str, queue_type: str, count: int) -> float:
    """Seconds to declare `count` process queues of `queue_type`, one after another; they are left in place."""
    arguments = Settings.from_options(queue_type=queue_type).process_queue()
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    started = time.perf_counter()
    for n in range(count):
        channel.queue_declare(f"bench-{queue_type}-{n}", **arguments)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def delete_many(url: str, queue_type: str, count: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for n in range(count):
        channel.queue_delete(f"bench-{queue_type}-{n}")
    connection.close()


async def throughput(urls: list[str], queue_type: str, messages: int) -> tuple[float, int]:
    """Messages per second from one sending layer to one receiving layer of `queue_type` (every confirmed one
    received), and how many sends were refused with ChannelFull although the receiver kept up."""
    receiver = RabbitmqChannelLayer(
        host=urls, queue_type=queue_type, local_capacity=1000, remote_capacity=1000, capacity=messages
    )
    sender = RabbitmqChannelLayer(host=urls[1:] + urls[:1])
    channel = await receiver.new_channel()
    await sender.send(channel, {"type": "warm"})
    await receiver.receive(channel)
    started = time.perf_counter()

    refused = 0

    async def send(worker: int) -> None:
        nonlocal refused
        for n in range(worker, messages, IN_FLIGHT):
            try:
                await sender.send(channel, {"type": "n", "n": n})
            except ChannelFull:
                refused += 1

    async def receive() -> None:
        while (await receiver.receive(channel))["type"] != "last":  # sent after every other send was answered
            pass

    receiving = asyncio.ensure_future(receive())
    await asyncio.gather(*(send(worker) for worker in range(IN_FLIGHT)))
    for _ in range(100):  # the end marker, once the queue takes it
        try:
            await sender.send(channel, {"type": "last"})
            break
        except ChannelFull:
            await asyncio.sleep(0.05)
    await receiving
    rate = messages / (time.perf_counter() - started)
    await sender.close()
    await receiver.close()
    return rate, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rabbitmq4", action="store_true")
    parser.add_argument("--queues", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args()
    with private_cluster(3, root=build_root() if args.rabbitmq4 else None) as (nodes, ports):
        urls = [f"amqp://guest:guest@127.0.0.1:{port}/%2F" for port in ports]
        for queue_type in ("classic", "quorum"):
            before = broker_memory(nodes)
            seconds = declare_many(urls[0], queue_type, args.queues)
            time.sleep(2)  # let the replicas settle before reading memory
            per_queue = (broker_memory(nodes) - before) / args.queues
            delete_many(urls[0], queue_type, args.queues)
            rate, refused = asyncio.run(throughput(urls, queue_type, args.messages))
            print(
                f"{queue_type:8s} declare {1000 * seconds / args.queues:6.2f} ms/queue, "
                f"broker memory {per_queue / 1024:7.1f} KB/queue (3 nodes), send+receive {rate:7.0f} msg/s, "
                f"{refused} of {args.messages} sends refused (ChannelFull, remote_capacity 1000)"
            )


if __name__ == "__main__":
    main()
