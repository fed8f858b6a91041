"""A receiving process cut off from RabbitMQ for a while under steady traffic: what comes back, what is dropped.

    python benchmarks/blip.py [--rate 100] [--channels 8] [--work-ms 0] [--cut S] [--option NAME=VALUE ...]

A receiver layer connects through a `FaultProxy` (tests/support/fault_proxy.py) and reads `--channels` channels, one
consumer task each (as a Channels consumer does, spending `--work-ms` on each message); a sender layer, connected
directly, sends `--rate` messages a second, in turn a direct send to a random channel and a group_send to a random
channel's own group, each awaited. After 5 s the proxy resets the receiver's connections and refuses new ones for
`--cut` seconds (default: the receiver's `connect_timeout`), then lets it back; the traffic goes on for 10 s more,
then stops, and the receiver gets 20 s to catch up. Both layers take the `--option`s (for example `--option
remote_capacity=1000`); without any they run on the defaults. Prints what was sent, confirmed, refused
(ChannelFull, group copies refused), received, and dropped by the receiver by reason.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.exceptions import ChannelFull

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from tests.support.fault_proxy import FaultProxy

HOST = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def option(text: str) -> tuple[str, Any]:
    name, _, value = text.partition("=")
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return name, kind(value)
    return name, value


async def run(
    rate: float, channel_count: int, work: float, cut: float | None, options: dict[str, Any]
) -> dict[str, Any]:
    proxy = FaultProxy(int(HOST.rsplit(":", 1)[1].split("/")[0]))
    receiver = RabbitmqChannelLayer(host=HOST.replace(":5672", f":{proxy.port}"), **options)
    sender = RabbitmqChannelLayer(host=HOST, **options)
    cut = receiver.settings.connect_timeout if cut is None else cut
    channels = [await receiver.new_channel() for _ in range(channel_count)]
    for index, channel in enumerate(channels):
        await receiver.group_add(f"blip-{index}", channel)
    received: set[int] = set()
    counts = {"sent": 0, "confirmed": 0, "ChannelFull": 0, "other errors": 0}

    async def consume(channel: str) -> None:
        while True:
            received.add((await receiver.receive(channel))["n"])
            if work:
                await asyncio.sleep(work)

    async def send_for(seconds: float) -> None:
        started = time.monotonic()
        for step in range(int(seconds * rate)):
            await asyncio.sleep(max(0.0, started + step / rate - time.monotonic()))
            n, index = counts["sent"], random.randrange(channel_count)
            counts["sent"] += 1
            try:
                if n % 2:
                    await sender.group_send(f"blip-{index}", {"type": "n", "n": n})
                else:
                    await sender.send(channels[index], {"type": "n", "n": n})
                counts["confirmed"] += 1
            except ChannelFull:
                counts["ChannelFull"] += 1
            except Exception:
                counts["other errors"] += 1

    consumers = [asyncio.ensure_future(consume(channel)) for channel in channels]
    try:
        await send_for(5)
        proxy.refuse(True)
        proxy.reset()
        await send_for(cut)
        proxy.clear()
        await send_for(10)
        for _ in range(100):  # the receiver catches up (20 s at most)
            if len(received) >= counts["confirmed"]:
                break
            await asyncio.sleep(0.2)
    finally:
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        group_copies_refused = sender.stats().drops.get("group copy refused", 0)
        drops = receiver.stats().drops
        await sender.close()
        await receiver.close()
        proxy.close()
    return {
        **counts,
        "group copies refused": group_copies_refused,
        "received": len(received),
        "confirmed but not received": counts["confirmed"] - group_copies_refused - len(received),
        "receiver drops": drops,
        "cut": cut,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--work-ms", type=float, default=0)
    parser.add_argument("--cut", type=float, default=None)
    parser.add_argument("--option", type=option, action="append", default=[])
    args = parser.parse_args()
    options = dict(args.option)
    figures = asyncio.run(run(args.rate, args.channels, args.work_ms / 1000, args.cut, options))
    work = f", {args.work_ms:g} ms of work per message" if args.work_ms else ""
    print(f"options {options or 'defaults'}, {args.rate:g} messages/s to {args.channels} channels{work}:")
    for name, value in figures.items():
        print(f"  {name}: {value}")


if __name__ == "__main__":
    main()
