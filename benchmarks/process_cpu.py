"""The CPU one side spends per 10,000 messages, with the other side in a process of its own.

    python benchmarks/process_cpu.py --side sender [--count 20000] [--runs 3]
    python benchmarks/process_cpu.py --side receiver [--count 20000] [--runs 3] [--layer module.Class]

The measured process sends `count` messages from 50 coroutines to a channel of the other process (``sender``), or
receives them from 50 coroutines of the other process (``receiver``); its CPU time (every thread, user and system)
is read around the transfer. Beside the bench's `cpu` scenario, which sums both sides, this one is quick to run
before and after a change of one side, and to profile (`py-spy record -- python benchmarks/process_cpu.py ...`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HOST = "amqp://guest:guest@127.0.0.1:5672/%2F"
LANES = 50
CAPACITIES = {"capacity": 200_000, "local_capacity": 200_000, "remote_capacity": 200_000}

OTHER_SIDE = """
import asyncio, sys
from channels_rabbitmq_threaded import RabbitmqChannelLayer

async def receive(count):
    layer = RabbitmqChannelLayer(host=sys.argv[1], **CAPACITIES)
    channel = await layer.new_channel()
    print(channel, flush=True)
    for _ in range(count // LANES * LANES + 1):  # the warm-up, then the messages
        await layer.receive(channel)
    await layer.close()

async def send(count):
    layer = RabbitmqChannelLayer(host=sys.argv[1], **CAPACITIES)
    channel = sys.stdin.readline().strip()
    async def lane():
        for n in range(count // LANES):
            await layer.send(channel, {"type": "bench.message", "text": "hello", "n": n})
    await asyncio.gather(*(lane() for _ in range(LANES)))
    await layer.close()

asyncio.run({"receive": receive, "send": send}[sys.argv[2]](int(sys.argv[3])))
"""


def layer_class(path: str) -> Any:
    """The class at `path`; the repository's root is on the path, so `benchmarks.<module>.<Class>` imports too."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


async def measure_sender(layer: Any, count: int) -> float:
    other = other_side("receive", count)
    channel = other.stdout.readline().strip()
    await layer.send(channel, {"type": "bench.warm"})
    started = time.process_time()

    async def lane() -> None:
        for n in range(count // LANES):
            await layer.send(channel, {"type": "bench.message", "text": "hello", "n": n})

    await asyncio.gather(*(lane() for _ in range(LANES)))
    await asyncio.to_thread(other.wait)  # until the receiver has them all: a sender that sends later pays here
    return time.process_time() - started


async def measure_receiver(layer: Any, count: int) -> float:
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "bench.warm"})
    await layer.receive(channel)
    other = other_side("send", count)
    started = time.process_time()
    other.stdin.write(channel + "\n")
    other.stdin.flush()
    for _ in range(count // LANES * LANES):
        await layer.receive(channel)
    spent = time.process_time() - started
    await asyncio.to_thread(other.wait)
    return spent


def other_side(role: str, count: int) -> Any:
    code = f"CAPACITIES = {CAPACITIES!r}\nLANES = {LANES}\n" + OTHER_SIDE
    return subprocess.Popen(
        [sys.executable, "-c", code, HOST, role, str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


async def run(side: str, path: str, count: int) -> float:
    layer = layer_class(path)(host=HOST, **CAPACITIES)
    try:
        measure = measure_sender if side == "sender" else measure_receiver
        return await measure(layer, count) * 10_000 / count
    finally:
        await layer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=("sender", "receiver"), required=True)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--layer", default="channels_rabbitmq_threaded.core.RabbitmqChannelLayer")
    args = parser.parse_args()
    for _ in range(args.runs):
        per = asyncio.run(run(args.side, args.layer, args.count))
        print(f"{args.side} CPU per 10,000 messages: {per:.3f} s")


if __name__ == "__main__":
    main()
