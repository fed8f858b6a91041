"""A join storm: many websockets joining their own group at once, as after a deploy, with and without the grace.

    python benchmarks/join_storm.py [--host URL] [--channels 5000] [--shared 100]

One process (one layer) opens `--channels` channels and, all at once, adds each to its own group (per-user
groups: one broker binding each), then to one of `--shared` groups (bindings only for the first member of each).
It then discards them all and joins again at once, twice: within `group_unbind_delay` (the bindings are still there:
no broker operation) and with `group_unbind_delay=0` (every leave unbinds, every join binds again). Prints joins/s.
Against 4.0: `python -m tests.rabbitmq4 python benchmarks/join_storm.py` (it takes AMQP_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import pika

from channels_rabbitmq_threaded import RabbitmqChannelLayer

EXCHANGE = "join-storm"


async def timed_joins(layer: RabbitmqChannelLayer, pairs: list[tuple[str, str]]) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(layer.group_add(group, channel) for group, channel in pairs))
    return len(pairs) / (time.perf_counter() - started)


async def leave(layer: RabbitmqChannelLayer, pairs: list[tuple[str, str]]) -> None:
    await asyncio.gather(*(layer.group_discard(group, channel) for group, channel in pairs))


async def storm(host: str, count: int, shared: int, delay: float) -> dict[str, float]:
    layer = RabbitmqChannelLayer(host=host, group_unbind_delay=delay, groups_exchange=EXCHANGE, connect_timeout=60)
    try:
        channels = [await layer.new_channel() for _ in range(count)]
        per_user = [(f"user-{n}", channel) for n, channel in enumerate(channels)]
        in_rooms = [(f"room-{n % shared}", channel) for n, channel in enumerate(channels)]
        figures = {"per-user joins/s": await timed_joins(layer, per_user)}
        figures["shared-group joins/s"] = await timed_joins(layer, in_rooms)
        await leave(layer, per_user)
        figures["per-user rejoins/s"] = await timed_joins(layer, per_user)
        return figures
    finally:
        await layer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--channels", type=int, default=5000)
    parser.add_argument("--shared", type=int, default=100)
    args = parser.parse_args()
    try:
        for delay, label in ((60.0, "group_unbind_delay=60 (rejoin within the grace)"), (0.0, "group_unbind_delay=0")):
            figures = asyncio.run(storm(args.host, args.channels, args.shared, delay))
            print(f"{args.channels} channels, {label}: " + ", ".join(f"{k} {v:,.0f}" for k, v in figures.items()))
    finally:
        connection = pika.BlockingConnection(pika.URLParameters(args.host))
        channel = connection.channel()
        for exchange in (EXCHANGE, f"{EXCHANGE}.control"):
            channel.exchange_delete(exchange)
        connection.close()


if __name__ == "__main__":
    main()
