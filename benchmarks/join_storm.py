"""A join storm: many websockets joining their own group at once, as after a deploy, with and without the grace.

    python benchmarks/join_storm.py [--host URL] [--channels 5000] [--shared 100] [--processes 1]

`--processes` processes (layers), each with its share of `--channels` channels, add each channel, all at once, to
its own group (per-user groups: one broker binding each), then to one of `--shared` groups (a binding only for
the first member of each in each process). They then discard the per-user memberships and join again at once,
twice: within `group_unbind_delay` (the bindings are still there: no broker operation) and with
`group_unbind_delay=0` (every leave unbinds, every join binds again). The processes start each phase together (a
barrier) and the rate is all their joins over the time from the first start to the last finish. Against 4.0:
`python -m tests.support.rabbitmq4 python benchmarks/join_storm.py` (it takes AMQP_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from multiprocessing.synchronize import Barrier

import pika

from channels_rabbitmq_threaded import RabbitmqChannelLayer

EXCHANGE = "join-storm"
PHASES = ("per-user joins/s", "shared-group joins/s", "per-user rejoins/s")
Timing = tuple[str, float, float, int]  # phase, wall-clock start and end, joins


async def timed_joins(
    layer: RabbitmqChannelLayer, phase: str, pairs: list[tuple[str, str]], barrier: Barrier
) -> Timing:
    barrier.wait()  # every process starts the phase together; nothing else runs on this loop meanwhile
    started = time.time()
    await asyncio.gather(*(layer.group_add(group, channel) for group, channel in pairs))
    return phase, started, time.time(), len(pairs)


async def leave(layer: RabbitmqChannelLayer, pairs: list[tuple[str, str]]) -> None:
    await asyncio.gather(*(layer.group_discard(group, channel) for group, channel in pairs))


async def storm(host: str, part: int, count: int, shared: int, delay: float, barrier: Barrier) -> list[Timing]:
    layer = RabbitmqChannelLayer(host=host, group_unbind_delay=delay, groups_exchange=EXCHANGE, connect_timeout=60)
    try:
        channels = [await layer.new_channel() for _ in range(count)]
        per_user = [(f"user-{part}-{n}", channel) for n, channel in enumerate(channels)]
        in_rooms = [(f"room-{n % shared}", channel) for n, channel in enumerate(channels)]
        timings = [await timed_joins(layer, PHASES[0], per_user, barrier)]
        timings.append(await timed_joins(layer, PHASES[1], in_rooms, barrier))
        await leave(layer, per_user)
        timings.append(await timed_joins(layer, PHASES[2], per_user, barrier))
        return timings
    finally:
        await layer.close()


def run_part(
    host: str, part: int, count: int, shared: int, delay: float, barrier: Barrier, out: multiprocessing.Queue
) -> None:
    out.put(asyncio.run(storm(host, part, count, shared, delay, barrier)))


def rates(timings: list[list[Timing]]) -> dict[str, float]:
    figures = {}
    for phase in PHASES:
        rows = [row for part in timings for row in part if row[0] == phase]
        figures[phase] = sum(row[3] for row in rows) / (max(row[2] for row in rows) - min(row[1] for row in rows))
    return figures


def measure(host: str, channels: int, shared: int, processes: int, delay: float) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")  # fresh interpreters, each with its own layer and I/O thread
    barrier, out = context.Barrier(processes), context.Queue()
    share = channels // processes
    workers = [
        context.Process(target=run_part, args=(host, part, share, shared, delay, barrier, out))
        for part in range(processes)
    ]
    for worker in workers:
        worker.start()
    timings = [out.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    return rates(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--channels", type=int, default=5000)
    parser.add_argument("--shared", type=int, default=100)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    try:
        for delay, label in ((60.0, "group_unbind_delay=60 (rejoin within the grace)"), (0.0, "group_unbind_delay=0")):
            figures = measure(args.host, args.channels, args.shared, args.processes, delay)
            print(
                f"{args.channels} channels in {args.processes} processes, {label}: "
                + ", ".join(f"{k} {v:,.0f}" for k, v in figures.items())
            )
    finally:
        connection = pika.BlockingConnection(pika.URLParameters(args.host))
        channel = connection.channel()
        for exchange in (EXCHANGE, f"{EXCHANGE}.control"):
            channel.exchange_delete(exchange)
        connection.close()


if __name__ == "__main__":
    main()
