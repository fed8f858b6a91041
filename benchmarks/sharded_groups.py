"""A prototype of sharded group routing, measured: the mitigation of the crash cost that the layer does not build.

    python benchmarks/sharded_groups.py [--host URL] [--processes 4] [--groups 2500] [--messages 20000]
                                        [--shards 0 16 64 256]

Sharded routing would publish a group message with the routing key `shard-<crc32(group) % N>` instead of the
group's name, bind each process's queue once per shard that holds one of its groups, and drop locally what is for
groups with no local member. It caps the bindings a process can leave behind when it dies at N. This prototype,
with raw pika and no layer, measures for each N (0: one binding per group, as the layer does):

* bindings per process and the time to make them (the join storm of a restart);
* the messages each process receives against the messages it needs, with `--messages` group messages sent to
  groups drawn uniformly from all `--processes` x `--groups` per-user groups (the bandwidth cost);
* the crash cost follows from the bindings: `benchmarks/crash_cost.py --bindings N` measures it.

Against 4.0: `python -m tests.support.rabbitmq4 python benchmarks/sharded_groups.py` (it takes AMQP_URL).
"""

from __future__ import annotations

import argparse
import os
import random
import time
import zlib

import pika

EXCHANGE = "sharded-groups"


def key(group: str, shards: int) -> str:
    return group if shards == 0 else f"shard-{zlib.crc32(group.encode()) % shards}"


def measure(url: str, processes: int, groups: int, messages: int, shards: int) -> dict[str, float]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.exchange_declare(EXCHANGE, "direct", auto_delete=False)
    owners = {f"user-{p}-{g}": p for p in range(processes) for g in range(groups)}
    queues = [channel.queue_declare("", exclusive=True).method.queue for _ in range(processes)]
    keys_of = [{key(group, shards) for group, owner in owners.items() if owner == p} for p in range(processes)]
    started = time.perf_counter()
    for queue, keys in zip(queues, keys_of, strict=True):
        for routing_key in keys:
            channel.queue_bind(queue, EXCHANGE, routing_key=routing_key)
    bind_seconds = time.perf_counter() - started
    channel.confirm_delivery()
    rng = random.Random(shards)
    targets = rng.choices(list(owners), k=messages)
    for group in targets:
        channel.basic_publish(EXCHANGE, key(group, shards), group.encode())
    received = [channel.queue_declare(queue, passive=True).method.message_count for queue in queues]
    needed = [sum(1 for group in targets if owners[group] == p) for p in range(processes)]
    channel.exchange_delete(EXCHANGE)
    connection.close()
    return {
        "bindings per process": sum(len(keys) for keys in keys_of) / processes,
        "joins/s (binds, one channel)": processes * groups / bind_seconds,
        "received / needed": sum(received) / sum(needed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--groups", type=int, default=2500, help="per-user groups per process")
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--shards", type=int, nargs="+", default=[0, 16, 64, 256])
    args = parser.parse_args()
    for shards in args.shards:
        figures = measure(args.host, args.processes, args.groups, args.messages, shards)
        label = "per group" if shards == 0 else f"{shards} shards"
        print(f"{label:>10}: " + ", ".join(f"{name} {value:,.1f}" for name, value in figures.items()))


if __name__ == "__main__":
    main()
