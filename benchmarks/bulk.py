"""Bulk sends against one call per message: `group_send_many` of N groups vs N awaited `group_send`s, async and sync.

    python benchmarks/bulk.py [--host URL] [--groups 1000] [--runs 3]

A receiving layer joins each of the N per-user groups with a channel of its own; a sending layer then notifies
them all, first one awaited call at a time, then with one bulk call, from an event loop (`group_send` /
`group_send_many`) and from a plain thread (`group_send_sync` / `group_send_many_sync`). Prints messages/s and the
ratio. Every message is received and checked, so a fast but lossy path cannot win.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from channels_rabbitmq_threaded import RabbitmqChannelLayer

EXCHANGE = "bulk-bench"


async def drain(receiver: RabbitmqChannelLayer, channels: list[str]) -> None:
    await asyncio.gather(*(receiver.receive(channel) for channel in channels))


def timed(label: str, count: int, run: object) -> float:
    started = time.perf_counter()
    run()  # type: ignore[operator]
    rate = count / (time.perf_counter() - started)
    print(f"  {label:<40} {rate:>10,.0f} delivered/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    options = {"host": args.host, "groups_exchange": EXCHANGE, "local_capacity": 100_000, "remote_capacity": 100_000}
    receiver, sender = RabbitmqChannelLayer(**options), RabbitmqChannelLayer(**options)

    async def setup() -> list[str]:
        channels = [await receiver.new_channel() for _ in range(args.groups)]
        await asyncio.gather(*(receiver.group_add(f"user-{n}", c) for n, c in enumerate(channels)))
        await sender.group_send("warm-up", {"type": "warm-up"})
        return channels

    channels = asyncio.run(setup())
    items = [(f"user-{n}", {"type": "note", "n": n}) for n in range(args.groups)]

    sent: list[float] = []  # seconds until the sending call(s) returned, per measurement

    async def one_by_one() -> None:
        started = time.perf_counter()
        for group, message in items:
            await sender.group_send(group, message)
        sent.append(time.perf_counter() - started)
        await drain(receiver, channels)

    async def in_bulk() -> None:
        started = time.perf_counter()
        await sender.group_send_many(items)
        sent.append(time.perf_counter() - started)
        await drain(receiver, channels)

    def sync_one_by_one() -> None:
        started = time.perf_counter()
        for group, message in items:
            sender.group_send_sync(group, message)
        sent.append(time.perf_counter() - started)
        asyncio.run(drain(receiver, channels))

    def sync_in_bulk() -> None:
        started = time.perf_counter()
        sender.group_send_many_sync(items)
        sent.append(time.perf_counter() - started)
        asyncio.run(drain(receiver, channels))

    for run in range(args.runs):
        print(f"run {run + 1}, {args.groups} groups (delivered/s counts until every member received):")
        sent.clear()
        a = timed("await group_send, one at a time", args.groups, lambda: asyncio.run(one_by_one()))
        b = timed("await group_send_many", args.groups, lambda: asyncio.run(in_bulk()))
        c = timed("group_send_sync, one at a time", args.groups, sync_one_by_one)
        d = timed("group_send_many_sync", args.groups, sync_in_bulk)
        print(f"  bulk / one at a time, delivered: async {b / a:.1f}x, sync {d / c:.1f}x")
        async_gain, sync_gain = sent[0] / sent[1], sent[2] / sent[3]
        print(f"  bulk / one at a time, until the calls returned: async {async_gain:.1f}x, sync {sync_gain:.1f}x")
    asyncio.run(receiver.close())
    asyncio.run(sender.close())


if __name__ == "__main__":
    main()
