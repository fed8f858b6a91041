"""How long a process is deaf after its queue is lost: deleted, its node's app stopped, its node's VM killed -9,
and, with --netns, its node cut off from the other nodes (partition) or from everyone (vanish).

    python benchmarks/node_loss.py [--rabbitmq4] [--netns] [--groups 100] [--rounds 3] [--nodes 3]

Starts a private cluster (3.10 from this machine; with --rabbitmq4, 4.3 from the cached root; with --netns, each
node in a network namespace of its own, tests/support/netns_cluster.py) and a member layer with the default settings
joined to `--groups` groups. For each failure mode, on the node that holds the member's queue, with a prober
connected to another node that sends the member a numbered message every 20 ms, it measures the time from the
fault to the first message the member receives that was sent after it: the deaf time, every group bound again
included (the member binds its groups before it consumes). Then it restores the node and waits until the queue
left behind is deleted. A partition or a vanished node is healed once the member receives again, or after
`--fault-seconds` if it does not: then the line says it stayed deaf through the fault and for how long after
the heal. Prints one line per round and the median per mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded import RabbitmqChannelLayer, RabbitmqLayerError
from tests.support.netns_cluster import NamespacedCluster, netns_cluster
from tests.support.private_node import PrivateNode, private_cluster
from tests.support.rabbitmq4 import build_root

PROBE_EVERY = 0.02
MODES = ("delete", "stop_app", "kill -9")
NETNS_MODES = ("partition", "vanish")


async def deaf_time(member: RabbitmqChannelLayer, prober: RabbitmqChannelLayer, channel: str,
                    fault: Callable[[], object], heal: Callable[[], object] | None,
                    fault_seconds: float) -> tuple[float, float | None]:  # fmt: skip
    """Seconds from `fault` until the member receives a probe sent after it; and, if that took longer than
    `fault_seconds` (then `heal` is called), the seconds from the heal to that probe."""
    sent_at: dict[int, float] = {}
    refused: list[int] = []
    failed: list[int] = []
    stop = asyncio.Event()

    async def send(n: int) -> None:
        try:
            await asyncio.wait_for(prober.send(channel, {"type": "probe", "n": n}), 30)
        except (RabbitmqLayerError, asyncio.TimeoutError):
            failed.append(n)
        except ChannelFull:  # a nack: RabbitMQ may refuse what was on its way to a queue out of reach
            refused.append(n)

    async def probe() -> None:  # one send every PROBE_EVERY, each without waiting for the last one's confirm
        sends: set[asyncio.Future[None]] = set()
        n = 0
        while not stop.is_set():
            n += 1
            sent_at[n] = time.monotonic()
            sends.add(asyncio.ensure_future(send(n)))
            sends = {task for task in sends if not task.done()}
            await asyncio.sleep(PROBE_EVERY)
        await asyncio.gather(*sends)

    probing = asyncio.ensure_future(probe())
    await asyncio.sleep(0.5)
    faulted = time.monotonic()
    healed: float | None = None
    await asyncio.to_thread(fault)
    if heal is not None:  # a cut takes effect when its last `ip` command returns: what was sent before got through
        faulted = time.monotonic()
    try:
        while True:
            timeout = 300.0 if healed is not None or heal is None else faulted + fault_seconds - time.monotonic()
            try:
                message = await asyncio.wait_for(member.receive(channel), max(timeout, 0.01))
            except asyncio.TimeoutError:
                if healed is not None or heal is None:
                    raise
                healed = time.monotonic()
                await asyncio.to_thread(heal)
                continue
            if sent_at.get(message.get("n", 0), 0.0) > faulted:
                now = time.monotonic()
                print(f"   {len(refused)} probe(s) refused (ChannelFull), {len(failed)} failed")
                return now - faulted, None if healed is None else now - healed
    finally:
        stop.set()
        await probing
        if heal is not None and healed is None:
            await asyncio.to_thread(heal)
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


def faults(mode: str, victim: PrivateNode, queue: str,
           cluster: NamespacedCluster | None) -> tuple[Callable[[], object], Callable[[], object] | None]:  # fmt: skip
    """The fault of `mode` on `victim`, and what undoes it while the member waits (None: undone afterwards)."""
    if mode == "delete":
        return functools.partial(victim.ctl, "delete_queue", queue), None
    if mode == "stop_app":
        return functools.partial(victim.ctl, "stop_app"), None
    if mode == "kill -9":
        return victim.kill9, None
    assert cluster is not None
    cut = cluster.partition if mode == "partition" else cluster.vanish
    return functools.partial(cut, victim), cluster.heal


async def restore(mode: str, victim: PrivateNode, cluster: NamespacedCluster | None) -> None:
    if mode == "stop_app":
        await asyncio.to_thread(victim.ctl, "start_app")
    elif mode == "kill -9":
        await asyncio.to_thread(victim.start)
    if cluster is not None:  # healed already: wait for a node paused by pause_minority to run again
        await asyncio.to_thread(cluster.wait_whole)


async def run(args: argparse.Namespace, nodes: list[PrivateNode], urls: list[str],
              cluster: NamespacedCluster | None) -> None:  # fmt: skip
    member = RabbitmqChannelLayer(host=urls, queue_type=args.queue_type)
    channel = await member.new_channel()
    for n in range(args.groups):
        await member.group_add(f"deaf-{n}", channel)
    results: dict[str, list[float]] = {}
    modes = args.modes or (MODES + NETNS_MODES if cluster else MODES)
    for round_ in range(args.rounds):
        for mode in modes:
            queue = member.stats().queue
            victim = await asyncio.to_thread(node_of, queue, nodes)
            fault, heal = faults(mode, victim, queue, cluster)
            far_side = [url for node, url in zip(nodes, urls, strict=True) if node is not victim]
            prober = RabbitmqChannelLayer(host=far_side[::-1])
            try:
                seconds, after_heal = await deaf_time(member, prober, channel, fault, heal, args.fault_seconds)
            finally:
                await prober.close()
            results.setdefault(mode, []).append(seconds)
            through = "" if after_heal is None else f", deaf through the fault, {after_heal:.2f} s after the heal"
            print(f"round {round_ + 1} {mode:9s} deaf {seconds:6.2f} s{through} "
                  f"(queue {queue} -> {member.stats().queue})")  # fmt: skip
            await restore(mode, victim, cluster)
            for _ in range(240):
                if not member.stats().bookkeeping.get("queues_left_behind"):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(2)
            listing = await asyncio.to_thread(nodes[-1].ctl, "list_queues", "-q", "name", "messages")
            print("   queues of the member now:", [line for line in listing.splitlines() if member.queue_name in line])
    for mode, times in results.items():
        print(f"{mode:9s} median {statistics.median(times):6.2f} s, max {max(times):6.2f} s over {len(times)} rounds")
    stats = member.stats()
    print(f"moves {stats.queue_moves}, losses {stats.queue_losses}, groups {stats.local_groups}")
    await member.close()


@contextlib.contextmanager
def cluster_of(args: argparse.Namespace) -> Iterator[tuple[list[PrivateNode], list[str], NamespacedCluster | None]]:
    root = build_root() if args.rabbitmq4 else None
    if args.netns:
        with netns_cluster(args.nodes, root=root) as cluster:
            yield list(cluster.nodes), cluster.urls, cluster
    else:
        with private_cluster(args.nodes, root=root) as (nodes, ports):
            yield nodes, [f"amqp://guest:guest@127.0.0.1:{port}/%2F" for port in ports], None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rabbitmq4", action="store_true")
    parser.add_argument("--netns", action="store_true", help="nodes in network namespaces: adds partition, vanish")
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=3, help="cluster size (Khepri needs a majority left: 3 or more)")
    parser.add_argument("--modes", nargs="*", choices=MODES + NETNS_MODES)
    parser.add_argument("--fault-seconds", type=float, default=60.0, help="heal a partition or vanish after this")
    parser.add_argument("--queue-type", default="classic", choices=("classic", "quorum"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("channels_rabbitmq_threaded.process_queue").setLevel(logging.INFO)
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    with cluster_of(args) as (nodes, urls, cluster):
        asyncio.run(run(args, nodes, urls, cluster))


if __name__ == "__main__":
    main()
