"""How long a process is deaf after its queue is lost: deleted, its node's app stopped, its node's VM killed -9.

    python benchmarks/node_loss.py [--rabbitmq4] [--groups 100] [--rounds 3] [--nodes 3]

Starts a private cluster (3.10 from this machine; with --rabbitmq4, 4.3 from the cached root), a member
layer with the default settings joined to `--groups` groups, and a prober on the other node that sends the member
a numbered message every 20 ms. For each failure mode, on the node that holds the member's queue, it measures the
time from the fault to the first message the member receives that was sent after it: the deaf time, every group
bound again included (the member binds its groups before it consumes). Then it restores the node and waits until
the queue left behind is deleted. Prints one line per round and the median per mode.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded import RabbitmqChannelLayer, RabbitmqLayerError
from tests.private_node import PrivateNode, private_cluster
from tests.rabbitmq4 import build_root

PROBE_EVERY = 0.02


async def deaf_time(member: RabbitmqChannelLayer, prober: RabbitmqChannelLayer, channel: str,
                    fault: Callable[[], object]) -> float:  # fmt: skip
    """Seconds from `fault` until the member receives a probe sent after it."""
    sent_at: dict[int, float] = {}
    refused: list[int] = []
    failed: list[int] = []
    stop = asyncio.Event()

    async def probe() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            sent_at[n] = time.monotonic()
            try:
                await prober.send(channel, {"type": "probe", "n": n})
            except RabbitmqLayerError:
                failed.append(n)
            except ChannelFull:  # a nack: RabbitMQ may refuse what was on its way to a queue that stopped
                refused.append(n)
            await asyncio.sleep(PROBE_EVERY)

    probing = asyncio.ensure_future(probe())
    await asyncio.sleep(0.5)
    faulted = time.monotonic()
    await asyncio.to_thread(fault)
    try:
        while True:
            message = await asyncio.wait_for(member.receive(channel), 120)
            if sent_at.get(message.get("n", 0), 0.0) > faulted:
                deaf = time.monotonic() - faulted
                print(f"   {len(refused)} probe(s) refused (ChannelFull), {len(failed)} failed")
                return deaf
    finally:
        stop.set()
        await probing
        while True:  # drain what is left
            try:
                await asyncio.wait_for(member.receive(channel), 0.3)
            except asyncio.TimeoutError:
                break


def node_of(queue: str, nodes: list[PrivateNode]) -> PrivateNode:
    """The node that holds `queue` (a classic queue's process runs there), from the broker's own listing."""
    for node in nodes:
        if node.process is None:
            continue
        listing = node.ctl("list_queues", "-q", "name", "pid")
        pids = dict(line.split("\t") for line in listing.splitlines() if "\t" in line)
        return next(candidate for candidate in nodes if f"<{candidate.nodename}." in pids[queue])
    raise RuntimeError("no node is up")


async def run(args: argparse.Namespace, nodes: list[PrivateNode], ports: list[int]) -> None:
    urls = [f"amqp://guest:guest@127.0.0.1:{port}/%2F" for port in ports]
    member = RabbitmqChannelLayer(host=urls)
    prober = RabbitmqChannelLayer(host=urls[::-1])
    channel = await member.new_channel()
    for n in range(args.groups):
        await member.group_add(f"deaf-{n}", channel)
    results: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        for mode in ("delete", "stop_app", "kill -9"):
            queue = member.stats().queue
            victim = await asyncio.to_thread(node_of, queue, nodes)
            faults: dict[str, Callable[[], object]] = {
                "delete": functools.partial(victim.ctl, "delete_queue", queue),
                "stop_app": functools.partial(victim.ctl, "stop_app"),
                "kill -9": victim.kill9,
            }
            seconds = await deaf_time(member, prober, channel, faults[mode])
            results.setdefault(mode, []).append(seconds)
            print(f"round {round_ + 1} {mode:9s} deaf {seconds:6.2f} s (queue {queue} -> {member.stats().queue})")
            if mode == "stop_app":
                await asyncio.to_thread(victim.ctl, "start_app")
            elif mode == "kill -9":
                await asyncio.to_thread(victim.start)
            for _ in range(240):
                if not member.stats().bookkeeping.get("queues_left_behind"):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(2)
            listing = await asyncio.to_thread(nodes[0].ctl, "list_queues", "-q", "name", "messages")
            print("   queues of the member now:", [line for line in listing.splitlines() if member.queue_name in line])
    for mode, times in results.items():
        print(f"{mode:9s} median {statistics.median(times):6.2f} s, max {max(times):6.2f} s over {len(times)} rounds")
    stats = member.stats()
    print(f"moves {stats.queue_moves}, losses {stats.queue_losses}, groups {stats.local_groups}")
    await prober.close()
    await member.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rabbitmq4", action="store_true")
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=3, help="cluster size (Khepri needs a majority left: 3 or more)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("channels_rabbitmq_threaded.process_queue").setLevel(logging.INFO)
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    with private_cluster(args.nodes, root=build_root() if args.rabbitmq4 else None) as (nodes, ports):
        asyncio.run(run(args, nodes, ports))


if __name__ == "__main__":
    main()
