"""Chaos: mixed traffic while a seeded random schedule of network faults hits every connection.

    python -m tests.chaos [--seconds 300] [--seed N] [--queue-lease S]   (the broker at AMQP_URL, through proxies)

Two receiver processes each hold a layer (through a `FaultProxy` of their own) with three channels, every channel
in the group `chaos-all` and in its process's group `chaos-<n>`. The driver process sends through a third proxy:
four async senders (direct sends to random channels, and group sends) and one sync sender thread (`send_sync` /
`group_send_sync`, as a Celery task does). Each sender sends one message at a time, numbered, so its messages to one
channel must arrive in order. Meanwhile a schedule drawn from `--seed` applies faults to random proxies, one at a
time, each for 0.5-4 s with a pause of 0.5-2 s between: latency, throttling, a stall in one or both directions
(longer than the heartbeat, so the layer must notice a silent peer), resets, refused connects and a blackhole with
a reset. Then every fault is cleared and a quiet period lets what was sent arrive.

What is counted: attempted calls, confirmed, raised (by exception type), hung (a call still running at the end),
delivered, confirmed-but-lost (confirmed, and some recipient never got it), duplicates, out of order, and the
longest call. The goals (docs/operations.md): confirmed-but-lost, duplicates, out of order and hung all 0; no
exception for faults shorter than `connect_timeout`; the longest call at most `connect_timeout` + 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .fault_proxy import DOWN, UP, FaultProxy

HOST = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
OPTIONS: dict[str, Any] = {"heartbeat": 2, "connect_timeout": 10, "groups_exchange": "chaos", "remote_capacity": 10_000}
PAUSE = 0.02  # between one sender's calls: about 250 calls/s in all, which the receivers keep up with
RECEIVERS, CHANNELS_EACH = 2, 3


def through(port: int) -> str:
    parts = urlsplit(HOST)
    return parts._replace(netloc=f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{port}").geturl()


# -- receivers (other processes) -------------------------------------------------------------------------------------


def receiver(index: int, port: int, lease: float, names: Any, stop: Any, results: Any) -> None:
    from channels_rabbitmq_threaded import RabbitmqChannelLayer

    async def main() -> None:
        layer = RabbitmqChannelLayer(host=through(port), queue_lease=lease, **OPTIONS)
        channels = [await layer.new_channel() for _ in range(CHANNELS_EACH)]
        for channel in channels:
            for group in ("chaos-all", f"chaos-{index}"):
                await layer.group_add(group, channel)
        names.put((index, channels))
        got: list[tuple[str, str, int]] = []

        async def drain(channel: str) -> None:
            while True:
                message = await layer.receive(channel)
                got.append((channel, message["src"], message["n"]))

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


@dataclass
class Ledger:
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, src: str, n: int, recipients: list[str]) -> Call:
        call = Call(src, n, recipients, time.monotonic())
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
        call = ledger.start(src, n, recipients)
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
        call = ledger.start("sync", n, recipients)
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
    faults: Counter = field(default_factory=Counter)

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
            ("faults applied", dict(self.faults)),
        ]
        return f"chaos: {seconds:g} s, seed {seed}\n" + "\n".join(f"  {name:<26} {value}" for name, value in rows)


def count(calls: list[Call], received: list[tuple[str, str, int]], now: float) -> Totals:
    totals = Totals(attempted=len(calls))
    arrivals = Counter((channel, src, n) for channel, src, n in received)
    totals.delivered = len(arrivals)
    totals.duplicates = sum(times - 1 for times in arrivals.values())
    last_seen: dict[tuple[str, str], int] = {}
    for channel, src, n in received:  # each receiver's list is in arrival order per channel
        if n < last_seen.get((channel, src), -1):
            totals.out_of_order += 1
        last_seen[(channel, src)] = max(n, last_seen.get((channel, src), -1))
    for call in calls:
        if call.ended is None:
            totals.hung += 1
            totals.longest_call = max(totals.longest_call, now - call.started)
            continue
        totals.longest_call = max(totals.longest_call, call.ended - call.started)
        if call.outcome == "confirmed":
            totals.confirmed += 1
            if any((channel, call.src, call.n) not in arrivals for channel in call.recipients):
                totals.confirmed_but_lost += 1
        else:
            totals.raised[call.outcome] += 1
    return totals


def run(seconds: float, seed: int, quiet: float = 15, lease: float = 60) -> Totals:
    from channels_rabbitmq_threaded import RabbitmqChannelLayer

    port = urlsplit(HOST).port or 5672
    proxies = [FaultProxy(port) for _ in range(RECEIVERS + 1)]
    context = multiprocessing.get_context("spawn")
    names, results, stop = context.Queue(), context.Queue(), context.Event()
    workers = [
        context.Process(target=receiver, args=(index, proxies[index].port, lease, names, stop, results))
        for index in range(RECEIVERS)
    ]
    for worker in workers:
        worker.start()
    channels = dict(names.get(timeout=60) for _ in workers)
    layer = RabbitmqChannelLayer(host=through(proxies[-1].port), **OPTIONS)
    ledger, applied = Ledger(), Counter()

    async def drive() -> None:
        until = time.monotonic() + seconds
        thread = threading.Thread(target=sync_sender, args=(layer, channels, ledger, until), daemon=True)
        thread.start()
        tasks = [asyncio.ensure_future(faults(proxies, random.Random(seed), until, applied))]
        tasks += [asyncio.ensure_future(async_sender(layer, f"async-{k}", channels, ledger, until)) for k in range(4)]
        await asyncio.wait(tasks, timeout=seconds + 60)  # a call still running after that is counted as hung
        await asyncio.to_thread(thread.join, 60)

    try:
        asyncio.run(drive())
        for proxy in proxies:
            proxy.clear()
        time.sleep(quiet)  # what was confirmed arrives
        stop.set()
        received = [item for _ in workers for item in results.get(timeout=60)[1]]
        for worker in workers:
            worker.join(30)
    finally:
        asyncio.run(layer.close())
        for proxy in proxies:
            proxy.close()
    totals = count(ledger.calls, received, time.monotonic())
    totals.faults = applied
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queue-lease", type=float, default=60, help="the receivers' (0: exclusive queues)")
    args = parser.parse_args()
    print(run(args.seconds, args.seed, lease=args.queue_lease).report(args.seconds, args.seed))


if __name__ == "__main__":
    main()
