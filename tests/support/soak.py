"""Soak: mixed traffic from several processes while every connection is cut at random intervals.

    python -m tests.support.soak --seconds 60 --processes 3      (starts and stops a private RabbitMQ node of its own)

Each worker process has one layer, one channel, and is a member of the group `soak-all` and of `soak-even` or
`soak-odd`. It sends, one at a time, direct messages to random workers' channels and group messages to random
groups, and records every send (outcome, start and end times) and every delivery. Meanwhile the driver runs
`rabbitmqctl close_all_connections` on the node at random intervals. At the end every *expected delivery* (a
message times each recipient it was addressed to) is classified:

  delivered        - it arrived (exactly once: a second arrival is a duplicate, which must never happen);
  refused          - send()/group_send() raised BrokerUnavailable: it was never sent;
  reported lost    - the layer said so: ConfirmLost or ChannelFull to the sender, or the recipient's consumer
                     connection was down around the send (the layer logs "lost the connection … (consumer link)",
                     and documents that messages in flight to a process whose connection drops are lost);
  unexplained lost - everything else. It must be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import multiprocessing
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from channels.exceptions import ChannelFull

GROUPS = ("soak-all", "soak-even", "soak-odd")
SLACK_BEFORE_DOWN = 0.5  # a message sent this long before its recipient's connection dropped may be lost with it
QUIET_END = 6.0  # no cut in the last seconds of a run: deliveries then show that traffic recovered
RECOVERY = 2.0  # "delivered after the last cut" counts deliveries this long after it


class ConsumerDowntime(logging.Handler):
    """Records when this process's consumer link was down, from the layer's own log lines (monotonic clock)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.down_since: float | None = None
        self.intervals: list[tuple[float, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text, now = record.getMessage(), time.monotonic()
        if "(consumer link)" in text and "retrying in" in text and self.down_since is None:
            self.down_since = now
        elif text.startswith("Connected the consumer link") and self.down_since is not None:
            self.intervals.append((self.down_since, now))
            self.down_since = None

    def all_intervals(self) -> list[tuple[float, float]]:
        return self.intervals + ([(self.down_since, math.inf)] if self.down_since is not None else [])


def worker(index: int, url: str, names, all_names, stop, result_path: str, seed: int) -> None:
    from channels_rabbitmq_threaded import BrokerUnavailable, ConfirmLost, RabbitmqChannelLayer

    downtime = ConsumerDowntime()
    logging.getLogger("channels_rabbitmq_threaded.link").addHandler(downtime)
    logging.getLogger("channels_rabbitmq_threaded.link").setLevel(logging.INFO)
    rng = random.Random(seed)

    async def main() -> dict:
        layer = RabbitmqChannelLayer(
            host=url, connect_timeout=2, local_capacity=100_000, remote_capacity=100_000, heartbeat=5
        )
        channel = await layer.new_channel()
        for group in ("soak-all", "soak-even" if index % 2 == 0 else "soak-odd"):
            await layer.group_add(group, channel)
        names.put((index, channel))
        channels: dict[str, str] = all_names.get()  # index (as str) -> channel, of every worker
        received: list[tuple[str, float]] = []
        sends: list[tuple[str, str, str, float, float, str]] = []

        async def receive_forever() -> None:
            while True:
                message = await layer.receive(channel)
                received.append((message["id"], time.monotonic()))

        receiving = asyncio.ensure_future(receive_forever())
        loop = asyncio.get_running_loop()
        n = 0
        while not stop.is_set():
            n += 1
            message_id = f"{index}-{n}"
            if rng.random() < 0.5:
                kind, target = "direct", rng.choice(sorted(channels))
            else:
                kind, target = "group", rng.choice(GROUPS)
            started = time.monotonic()
            try:
                if kind == "direct":
                    await layer.send(channels[target], {"type": "soak", "id": message_id})
                else:
                    await layer.group_send(target, {"type": "soak", "id": message_id})
                outcome = "confirmed"
            except ConfirmLost:
                outcome = "confirm lost"
            except ChannelFull:
                outcome = "channel full"
            except BrokerUnavailable:
                outcome = "refused"
            sends.append((message_id, kind, target, started, time.monotonic(), outcome))
            await asyncio.sleep(0.002)
        await loop.run_in_executor(None, time.sleep, 3)  # let what is in flight arrive
        receiving.cancel()
        await asyncio.gather(receiving, return_exceptions=True)
        await layer.close()
        return {"index": index, "sends": sends, "received": received, "down": downtime.all_intervals()}

    Path(result_path).write_text(json.dumps(asyncio.run(main())))


@dataclass
class Totals:
    sent: int = 0
    expected: int = 0
    delivered: int = 0
    refused: int = 0
    reported_lost: int = 0
    unexplained_lost: int = 0
    duplicates: int = 0
    delivered_after_last_cut: int = 0


def recipients(kind: str, target: str, workers: int) -> list[int]:
    if kind == "direct":
        return [int(target)]
    if target == "soak-all":
        return list(range(workers))
    parity = 0 if target == "soak-even" else 1
    return [index for index in range(workers) if index % 2 == parity]


def tally(results: list[dict], cuts: list[float]) -> Totals:
    totals = Totals()
    arrivals: dict[tuple[str, int], list[float]] = {}
    for result in results:
        for message_id, at in result["received"]:
            arrivals.setdefault((message_id, result["index"]), []).append(at)
    down = {result["index"]: result["down"] for result in results}
    last_cut = max(cuts, default=0.0)
    for result in results:
        for message_id, kind, target, started, ended, outcome in result["sends"]:
            totals.sent += 1
            for recipient in recipients(kind, target, len(results)):
                totals.expected += 1
                times = arrivals.get((message_id, recipient), [])
                if times:
                    totals.delivered += 1
                    totals.duplicates += len(times) - 1
                    totals.delivered_after_last_cut += times[0] > last_cut + RECOVERY
                elif outcome == "refused":
                    totals.refused += 1
                elif outcome in ("confirm lost", "channel full") or any(
                    start - SLACK_BEFORE_DOWN <= ended and started <= end for start, end in down[recipient]
                ):
                    totals.reported_lost += 1
                else:
                    totals.unexplained_lost += 1
    return totals


def run_soak(node, seconds: float, processes: int = 3, seed: int = 1) -> Totals:
    """Run the soak against a private node (`node.ctl`, `node.port`); returns the totals, printed as a table."""
    url = f"amqp://guest:guest@127.0.0.1:{node.port}/%2F"
    context = multiprocessing.get_context("spawn")
    names, stop = context.Queue(), context.Event()
    all_names = [context.Queue() for _ in range(processes)]
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as directory:
        paths = [str(Path(directory) / f"worker-{index}.json") for index in range(processes)]
        workers = [
            context.Process(
                target=worker, args=(index, url, names, all_names[index], stop, paths[index], seed * 100 + index)
            )
            for index in range(processes)
        ]
        for process in workers:
            process.start()
        channels = dict(names.get(timeout=60) for _ in range(processes))
        for queue in all_names:
            queue.put({str(index): channel for index, channel in channels.items()})
        cuts: list[float] = []
        deadline = time.monotonic() + seconds
        while (pause := min(rng.uniform(2, 6), deadline - time.monotonic())) > 0:
            time.sleep(pause)
            if time.monotonic() < deadline - QUIET_END:  # the last seconds show that traffic flows again
                node.ctl("close_all_connections", "soak: cut")
                cuts.append(time.monotonic())
        stop.set()
        for process in workers:
            process.join(60)
        results = [json.loads(Path(path).read_text()) for path in paths]
    totals = tally(results, cuts)
    print(f"\nsoak: {seconds:g} s, {processes} processes, {len(cuts)} connection cuts")
    for field, value in vars(totals).items():
        print(f"  {field.replace('_', ' '):<26} {value:>8}")
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    from ..conftest import start_amqp_node

    with tempfile.TemporaryDirectory() as directory:
        node = start_amqp_node(Path(directory))
        try:
            totals = run_soak(node, args.seconds, args.processes, args.seed)
        finally:
            node.stop()
    raise SystemExit(0 if totals.unexplained_lost == 0 and totals.duplicates == 0 else 1)


if __name__ == "__main__":
    main()
