"""Chaos: mixed traffic while a seeded random schedule of faults hits the connections, or the nodes, under it.

    python -m tests.support.chaos [--seconds 300] [--seed N] [--queue-lease S]   (AMQP_URL's broker, through proxies)
    python -m tests.support.chaos --node-faults [--rabbitmq4] [--queue-type quorum] [--seconds 300] [--seed N]

Two receiver processes each hold a layer with three channels, every channel in the group `chaos-all` and in its
process's group `chaos-<n>`. The driver process sends: four async senders (direct sends to random channels, and
group sends) and one sync sender thread (`send_sync` / `group_send_sync`, as a Celery task does). Each sender sends
one message at a time, numbered, so its messages to one channel must arrive in order.

Network faults (the default): each process connects through a `FaultProxy` of its own, and a schedule drawn from
`--seed` applies faults to random proxies, one at a time, each for 0.5-4 s with a pause of 0.5-2 s between:
latency, throttling, a stall in one or both directions (longer than the heartbeat, so the layer must notice a
silent peer), resets, refused connects and a blackhole with a reset.

Node faults (`--node-faults`): a three-node cluster in network namespaces (`netns_cluster.py`; 3.10 from this
machine, or 4.3 with `--rabbitmq4`); each process lists every node, starting from a different one. One node at a
time, in a seeded order that takes each kind in turn: its VM killed -9 and started again 2-6 s later; its app
stopped and started; or the node cut off from the others for 12-20 s (a partition) and healed. The cluster is
whole again before the next fault. With `--queue-type quorum` the receivers' queues are replicated.

Then every fault is cleared and a quiet period lets what was sent arrive. What is counted: attempted calls,
confirmed, raised (by exception type), hung (a call still running at the end), delivered, confirmed-but-lost
(confirmed, and some recipient never got it), duplicates, out of order, the longest call, and the longest time a
receiver heard nothing while the senders sent (its longest deaf time). The goals (docs/operations.md): for network
faults confirmed-but-lost, duplicates, out of order and hung all 0; no exception for faults shorter than
`connect_timeout`; the longest call at most `connect_timeout` + 1 s. For node faults with quorum queues:
confirmed-but-lost, duplicates and hung 0, where a group_send's copy that RabbitMQ refused (logged by the sender,
and counted: a quorum queue may refuse below its limit) is counted apart, not as lost (deployment.md, "Losing a
node").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit

from .fault_proxy import DOWN, UP, FaultProxy
from .netns_cluster import NamespacedCluster, netns_cluster

HOST = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
OPTIONS: dict[str, Any] = {"heartbeat": 2, "connect_timeout": 10, "groups_exchange": "chaos", "remote_capacity": 10_000}
PAUSE = 0.02  # between one sender's calls: about 250 calls/s in all, which the receivers keep up with
RECEIVERS, CHANNELS_EACH = 2, 3


def through(port: int) -> str:
    parts = urlsplit(HOST)
    return parts._replace(netloc=f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{port}").geturl()


# -- receivers (other processes) -------------------------------------------------------------------------------------


def receiver(index: int, hosts: list[str], options: dict[str, Any], names: Any, stop: Any, results: Any) -> None:
    from channels_rabbitmq_threaded import RabbitmqChannelLayer

    async def main() -> None:
        layer = RabbitmqChannelLayer(host=hosts, **OPTIONS, **options)
        channels = [await layer.new_channel() for _ in range(CHANNELS_EACH)]
        for channel in channels:
            for group in ("chaos-all", f"chaos-{index}"):
                await layer.group_add(group, channel)
        names.put((index, channels))
        got: list[tuple[str, str, int, float]] = []

        async def drain(channel: str) -> None:
            while True:
                message = await layer.receive(channel)
                got.append((channel, message["src"], message["n"], time.monotonic()))

        tasks = [asyncio.ensure_future(drain(channel)) for channel in channels]
        await asyncio.to_thread(stop.wait)
        for task in tasks:
            task.cancel()
        results.put((index, got))
        await layer.close()

    asyncio.run(main())


# -- senders (this process) ------------------------------------------------------------------------------------------


@dataclass
class Call:
    src: str
    n: int
    recipients: list[str]  # the channels that must get it
    started: float
    ended: float | None = None
    outcome: str = ""  # "confirmed", or the exception's type name
    group: str = ""  # a group_send's group


@dataclass
class Ledger:
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, src: str, n: int, recipients: list[str], group: str) -> Call:
        call = Call(src, n, recipients, time.monotonic(), group=group)
        with self.lock:
            self.calls.append(call)
        return call

    @staticmethod
    def end(call: Call, outcome: str) -> None:
        call.ended, call.outcome = time.monotonic(), outcome


def pick(rng: random.Random, channels: dict[int, list[str]], n: int) -> tuple[str | None, str, list[str]]:
    """(channel, group, recipients): a direct send 2 times in 3, else a group send."""
    everyone = [channel for names in channels.values() for channel in names]
    if rng.random() < 2 / 3:
        channel = rng.choice(everyone)
        return channel, "", [channel]
    index = rng.choice([*channels, -1])
    if index < 0:
        return None, "chaos-all", everyone
    return None, f"chaos-{index}", channels[index]


async def async_sender(layer: Any, src: str, channels: dict[int, list[str]], ledger: Ledger, until: float) -> None:
    rng = random.Random(src)
    n = 0
    while time.monotonic() < until:
        channel, group, recipients = pick(rng, channels, n)
        call = ledger.start(src, n, recipients, group)
        try:
            if channel:
                await layer.send(channel, {"type": "chaos", "src": src, "n": n})
            else:
                await layer.group_send(group, {"type": "chaos", "src": src, "n": n})
            ledger.end(call, "confirmed")
        except Exception as exc:
            ledger.end(call, type(exc).__name__)
        n += 1
        await asyncio.sleep(PAUSE)


def sync_sender(layer: Any, channels: dict[int, list[str]], ledger: Ledger, until: float) -> None:
    rng = random.Random("sync")
    n = 0
    while time.monotonic() < until:
        channel, group, recipients = pick(rng, channels, n)
        call = ledger.start("sync", n, recipients, group)
        try:
            if channel:
                layer.send_sync(channel, {"type": "chaos", "src": "sync", "n": n})
            else:
                layer.group_send_sync(group, {"type": "chaos", "src": "sync", "n": n})
            ledger.end(call, "confirmed")
        except Exception as exc:
            ledger.end(call, type(exc).__name__)
        n += 1
        time.sleep(PAUSE)


# -- the fault schedule ----------------------------------------------------------------------------------------------

FAULTS = ["latency", "throttle", "stall", "stall up", "stall down", "reset", "refuse", "blackhole"]


async def faults(proxies: list[FaultProxy], rng: random.Random, until: float, applied: Counter) -> None:
    while time.monotonic() < until:
        await asyncio.sleep(rng.uniform(0.5, 2))
        proxy, kind, seconds = rng.choice(proxies), rng.choice(FAULTS), rng.uniform(0.5, 4)
        applied[kind] += 1
        if kind == "latency":
            proxy.latency(rng.uniform(0.05, 0.3))
        elif kind == "throttle":
            proxy.throttle(rng.choice([50_000, 200_000]))
        elif kind.startswith("stall"):
            proxy.stall(*{"stall": (), "stall up": (UP,), "stall down": (DOWN,)}[kind])
        elif kind == "reset":
            proxy.reset()
        elif kind == "refuse":
            proxy.refuse(True)
            proxy.reset()
        else:
            proxy.blackhole(True)
            proxy.reset()
        await asyncio.sleep(seconds)
        proxy.clear()


NODE_FAULTS = ["kill -9", "stop_app", "partition"]


async def node_faults(cluster: NamespacedCluster, rng: random.Random, until: float, applied: Counter) -> None:
    """One node at a time, each kind in turn (in a seeded order), until `until`; the cluster whole between."""
    kinds = rng.sample(NODE_FAULTS, len(NODE_FAULTS))
    while time.monotonic() < until:
        await asyncio.sleep(rng.uniform(2, 4))
        node, kind = rng.choice(cluster.nodes), kinds[sum(applied.values()) % len(kinds)]
        applied[kind] += 1
        print(f"chaos: {kind} on {node.nodename} at {time.monotonic() - until:.1f} s (from the end of sending)")
        if kind == "kill -9":
            await asyncio.to_thread(node.kill9)
            await asyncio.sleep(rng.uniform(2, 6))
            await asyncio.to_thread(node.start)
        elif kind == "stop_app":
            await asyncio.to_thread(node.ctl, "stop_app")
            await asyncio.sleep(rng.uniform(1, 3))
            await asyncio.to_thread(node.ctl, "start_app")
        else:
            await asyncio.to_thread(cluster.partition, node)
            await asyncio.sleep(rng.uniform(12, 20))
            await asyncio.to_thread(cluster.heal)
        await asyncio.to_thread(cluster.wait_whole)


# -- the run ---------------------------------------------------------------------------------------------------------


@dataclass
class Totals:
    attempted: int = 0
    confirmed: int = 0
    raised: Counter = field(default_factory=Counter)
    hung: int = 0
    delivered: int = 0
    confirmed_but_lost: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    longest_call: float = 0.0
    longest_deaf: float = 0.0
    faults: Counter = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)  # the first few confirmed-but-lost calls
    group_copies_missed: int = 0  # (group_send, receiver process) pairs of a confirmed group_send that never arrived
    group_copies_refused: int = 0  # copies RabbitMQ refused (a queue at its limit), which group_send logs, not raises

    def report(self, seconds: float, seed: int) -> str:
        rows = [
            ("attempted", self.attempted),
            ("confirmed", self.confirmed),
            ("raised", dict(self.raised) or 0),
            ("hung", self.hung),
            ("delivered (per recipient)", self.delivered),
            ("confirmed but lost", self.confirmed_but_lost),
            ("duplicates", self.duplicates),
            ("out of order", self.out_of_order),
            ("longest call", f"{self.longest_call:.2f} s"),
            ("longest deaf", f"{self.longest_deaf:.2f} s"),
            ("group copies missed", self.group_copies_missed),
            ("group copies refused (logged)", self.group_copies_refused),
            ("faults applied", dict(self.faults)),
            ("lost (the first few)", self.lost or "-"),
        ]
        return f"chaos: {seconds:g} s, seed {seed}\n" + "\n".join(f"  {name:<26} {value}" for name, value in rows)


Arrival = tuple[str, str, int, float]  # (channel, sender, number, time.monotonic() at arrival)


def count(calls: list[Call], received: dict[int, list[Arrival]], sending: tuple[float, float], now: float,
          owner: dict[str, int], allow_refused: bool = False) -> Totals:  # fmt: skip
    """`received`: each receiver's arrivals in order; `sending`: when the senders started and stopped; `owner`: the
    receiver of each channel. With `allow_refused`, a group_send that missed a process is counted only in
    `group_copies_missed` (to be compared with the copies RabbitMQ refused), not as confirmed but lost."""
    everything = [arrival for arrivals in received.values() for arrival in arrivals]
    totals = Totals(attempted=len(calls))
    arrivals = Counter((channel, src, n) for channel, src, n, _at in everything)
    totals.delivered = len(arrivals)
    totals.duplicates = sum(times - 1 for times in arrivals.values())
    last_seen: dict[tuple[str, str], int] = {}
    for channel, src, n, _at in everything:  # each receiver's list is in arrival order per channel
        if n < last_seen.get((channel, src), -1):
            totals.out_of_order += 1
        last_seen[(channel, src)] = max(n, last_seen.get((channel, src), -1))
    for arrivals_of_one in received.values():
        times = [sending[0]] + [at for *_, at in arrivals_of_one if sending[0] < at < sending[1]] + [sending[1]]
        totals.longest_deaf = max([totals.longest_deaf, *(later - earlier for earlier, later in pairwise(times))])
    for call in calls:
        if call.ended is None:
            totals.hung += 1
            totals.longest_call = max(totals.longest_call, now - call.started)
            continue
        totals.longest_call = max(totals.longest_call, call.ended - call.started)
        if call.outcome == "confirmed":
            totals.confirmed += 1
            missed = [channel for channel in call.recipients if (channel, call.src, call.n) not in arrivals]
            if missed and call.group:
                totals.group_copies_missed += len({owner[channel] for channel in missed})
            if missed and not (call.group and allow_refused):
                totals.confirmed_but_lost += 1
                if len(totals.lost) < 5:
                    what = f"group_send to {call.group}" if call.group else "send"
                    totals.lost.append(
                        f"{call.src} #{call.n} ({what}, at {call.started - sending[0]:.1f} s): missed by {missed}"
                    )
        else:
            totals.raised[call.outcome] += 1
    return totals


@contextlib.contextmanager
def proxied() -> Iterator[tuple[list[list[str]], list[FaultProxy]]]:
    """One `FaultProxy` to the broker at AMQP_URL per process (the receivers', then the driver's), and their hosts."""
    port = urlsplit(HOST).port or 5672
    proxies = [FaultProxy(port) for _ in range(RECEIVERS + 1)]
    try:
        yield [[through(proxy.port)] for proxy in proxies], proxies
    finally:
        for proxy in proxies:
            proxy.close()


def run(seconds: float, seed: int, quiet: float = 15, lease: float = 60, cluster: NamespacedCluster | None = None,
        queue_type: str = "classic") -> Totals:  # fmt: skip
    """Network faults through proxies, or with `cluster`, node faults on it (each process starting from its own
    node)."""
    with contextlib.ExitStack() as stack:
        if cluster is None:
            hosts, proxies = stack.enter_context(proxied())
        else:
            urls = cluster.urls
            hosts, proxies = [urls[i % len(urls) :] + urls[: i % len(urls)] for i in range(RECEIVERS + 1)], []
        return _run(seconds, seed, quiet, hosts, proxies, cluster, {"queue_lease": lease, "queue_type": queue_type})


def _run(seconds: float, seed: int, quiet: float, hosts: list[list[str]], proxies: list[FaultProxy],
         cluster: NamespacedCluster | None, options: dict[str, Any]) -> Totals:  # fmt: skip
    from channels_rabbitmq_threaded import RabbitmqChannelLayer

    context = multiprocessing.get_context("spawn")
    names, results, stop = context.Queue(), context.Queue(), context.Event()
    workers = [
        context.Process(target=receiver, args=(index, hosts[index], options, names, stop, results))
        for index in range(RECEIVERS)
    ]
    for worker in workers:
        worker.start()
    channels = dict(names.get(timeout=60) for _ in workers)
    layer = RabbitmqChannelLayer(host=hosts[-1], **OPTIONS)
    ledger, applied = Ledger(), Counter()
    started = time.monotonic()
    until = started + seconds

    async def drive() -> None:
        thread = threading.Thread(target=sync_sender, args=(layer, channels, ledger, until), daemon=True)
        thread.start()
        rng = random.Random(seed)
        schedule = (
            faults(proxies, rng, until, applied) if cluster is None else node_faults(cluster, rng, until, applied)
        )
        tasks = [asyncio.ensure_future(schedule)]
        tasks += [asyncio.ensure_future(async_sender(layer, f"async-{k}", channels, ledger, until)) for k in range(4)]
        await asyncio.wait(tasks, timeout=seconds + 90)  # a call still running after that is counted as hung
        await asyncio.to_thread(thread.join, 60)

    try:
        asyncio.run(drive())
        for proxy in proxies:
            proxy.clear()
        if cluster is not None:
            cluster.heal()
        time.sleep(quiet)  # what was confirmed arrives
        stop.set()
        received = dict(results.get(timeout=60) for _ in workers)
        for worker in workers:
            worker.join(30)
    finally:
        refused = layer.stats().drops.get("group copy refused", 0)
        asyncio.run(layer.close())
    owner = {channel: index for index, names in channels.items() for channel in names}
    allow_refused = cluster is not None and options["queue_type"] == "quorum"
    totals = count(ledger.calls, received, (started, until), time.monotonic(), owner, allow_refused)
    totals.faults = applied
    totals.group_copies_refused = refused
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queue-lease", type=float, default=60, help="the receivers' (0: exclusive queues)")
    parser.add_argument("--node-faults", action="store_true", help="a three-node cluster whose nodes fail")
    parser.add_argument("--rabbitmq4", action="store_true", help="with --node-faults: RabbitMQ 4.3 nodes")
    parser.add_argument("--queue-type", default="classic", choices=("classic", "quorum"))
    args = parser.parse_args()
    if not args.node_faults:
        totals = run(args.seconds, args.seed, lease=args.queue_lease, queue_type=args.queue_type)
    else:
        from .rabbitmq4 import build_root

        with netns_cluster(3, root=build_root() if args.rabbitmq4 else None) as cluster:
            totals = run(args.seconds, args.seed, quiet=30, lease=args.queue_lease, cluster=cluster,
                         queue_type=args.queue_type)  # fmt: skip
    print(totals.report(args.seconds, args.seed))


if __name__ == "__main__":
    main()
