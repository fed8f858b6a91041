"""Publish-path figures for one layer against a real broker: sequential sends, concurrent sends, round trips.

Run: `python benchmarks/publish.py [--host URL] [--count N] [--runs R]`. Each figure is the median of R runs.
A receiving layer (the same process, its own I/O thread) drains the channel so back-pressure never kicks in.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from channels_rabbitmq_threaded._config import DEFAULT_HOST


async def drain(layer: RabbitmqChannelLayer, channel: str, count: int) -> None:
    for _ in range(count):
        await layer.receive(channel)


async def sequential(sender, receiver, channel, count: int) -> float:
    draining = asyncio.ensure_future(drain(receiver, channel, count))
    started = time.perf_counter()
    for n in range(count):
        await sender.send(channel, {"type": "b", "n": n})
    elapsed = time.perf_counter() - started
    await draining
    return count / elapsed


async def concurrent(sender, receiver, channel, count: int, width: int = 50) -> float:
    draining = asyncio.ensure_future(drain(receiver, channel, count))

    async def one_lane(lane: int) -> None:
        for n in range(lane, count, width):
            await sender.send(channel, {"type": "b", "n": n})

    started = time.perf_counter()
    await asyncio.gather(*(one_lane(lane) for lane in range(width)))
    elapsed = time.perf_counter() - started
    await draining
    return count / elapsed


async def normal_first_send(sender, n: int) -> float:
    """ms for the first send to a normal channel nobody used yet: queue_declare, DeclareOk, then the publish."""
    started = time.perf_counter()
    await sender.send(f"bench.first.{n}", {"type": "b"})
    return 1000 * (time.perf_counter() - started)


async def normal_sequential(sender, count: int) -> float:
    """Sequential sends to a normal channel whose queue is declared already (no receiver; flushed afterwards)."""
    await sender.send("bench.jobs", {"type": "b"})
    started = time.perf_counter()
    for n in range(count):
        await sender.send("bench.jobs", {"type": "b", "n": n})
    elapsed = time.perf_counter() - started
    await sender.flush()
    return count / elapsed


async def round_trip(sender, receiver, channel, count: int) -> float:
    timings = []
    for n in range(count):
        started = time.perf_counter()
        await sender.send(channel, {"type": "b", "n": n})
        await receiver.receive(channel)
        timings.append(time.perf_counter() - started)
    return 1000 * statistics.median(timings)


async def main(host: str, count: int, runs: int) -> None:
    # Normal-channel queues get room for the whole run, and go away a minute after it (x-expires = group_expiry).
    sender, receiver = (
        RabbitmqChannelLayer(host=host, channel_capacity={"bench.*": 100_000}, group_expiry=60),
        RabbitmqChannelLayer(host=host, local_capacity=100_000, remote_capacity=100_000, capacity=100_000),
    )
    channel = await receiver.new_channel()
    await sender.new_channel()
    figures: dict[str, list[float]] = {
        "sequential send (msg/s)": [],
        "50 concurrent sends (msg/s)": [],
        "send+receive round trip p50 (ms)": [],
        "sequential send, normal channel (msg/s)": [],
        "first send to a new normal channel (ms)": [],
    }
    for _ in range(runs):
        figures["sequential send (msg/s)"].append(await sequential(sender, receiver, channel, count))
        figures["50 concurrent sends (msg/s)"].append(await concurrent(sender, receiver, channel, count))
        figures["send+receive round trip p50 (ms)"].append(await round_trip(sender, receiver, channel, count // 4))
        figures["sequential send, normal channel (msg/s)"].append(await normal_sequential(sender, count))
        runs_done = len(figures["first send to a new normal channel (ms)"])
        figures["first send to a new normal channel (ms)"].append(await normal_first_send(sender, runs_done))
    for name, values in figures.items():
        print(f"  {name:<42} {statistics.median(values):9.2f}   (runs: {', '.join(f'{v:.1f}' for v in values)})")
    await sender.close()
    await receiver.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.count, args.runs))
