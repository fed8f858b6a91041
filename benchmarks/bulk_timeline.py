"""Where the time of one `group_send_many_sync` of 1,000 per-user groups goes: a timeline of the call.

Run: `python benchmarks/bulk_timeline.py [--host URL] [--groups N] [--rounds R]`. A receiving layer (in this
process, its own I/O thread) has a channel in each of N groups; a sending layer calls `group_send_many_sync` with
one message per group, R times. Three points of the layer's code are wrapped to note when they run (the clock of
`time.perf_counter`, shared by every thread):

* prepare: from the call to the hand-off of all N publishes (validation and encoding, on the caller's thread);
* publishing: from the first publish to the last (the layer frames each message, on the I/O thread);
* confirms: from the last publish to the last publisher confirm (RabbitMQ routes and enqueues, confirms in batches);
* answer: from the last confirm to the call's return.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from channels_rabbitmq_threaded._config import DEFAULT_HOST
from channels_rabbitmq_threaded._io import io_thread, publisher

marks: dict[str, float] = {}
published = [0]
confirms: list[float] = []


def instrument(groups: int) -> None:
    publish, confirmed, submit = (
        publisher.PublisherSide.publish,
        publisher.PublisherSide.confirmed,
        io_thread.IOThread.submit,
    )

    def noted_publish(self: Any, request: Any) -> None:
        marks.setdefault("first publish", time.perf_counter())
        publish(self, request)
        published[0] += 1
        if published[0] == groups:
            marks["last publish"] = time.perf_counter()

    def noted_confirm(self: Any, tag: int, multiple: bool, acked: bool) -> None:
        confirms.append(time.perf_counter())
        confirmed(self, tag, multiple, acked)

    def noted_submit(self: Any, *requests: Any) -> None:
        if len(requests) > 1:
            marks["handed over"] = time.perf_counter()
        submit(self, *requests)

    publisher.PublisherSide.publish = noted_publish  # type: ignore[method-assign]
    publisher.PublisherSide.confirmed = noted_confirm  # type: ignore[method-assign]
    io_thread.IOThread.submit = noted_submit  # type: ignore[method-assign]


def main(host: str, groups: int, rounds: int) -> None:
    instrument(groups)
    sender = RabbitmqChannelLayer(host=host)
    receiver = RabbitmqChannelLayer(host=host, remote_capacity=100_000, local_capacity=50_000, capacity=100_000)
    items = [(f"bulk-timeline-{n}", {"type": "bench.message", "n": n, "text": "x" * 100}) for n in range(groups)]

    async def join() -> None:
        channels = [await receiver.new_channel() for _ in range(groups)]
        await asyncio.gather(*(receiver.group_add(group, c) for (group, _), c in zip(items, channels, strict=True)))

    asyncio.run(join())
    sender.group_send_sync("bulk-timeline-warm", {"type": "warm up"})
    for _ in range(rounds):
        marks.clear()
        confirms.clear()
        published[0] = 0
        started = time.perf_counter()
        sender.group_send_many_sync(items)
        ended = time.perf_counter()
        steps = {
            "prepare": marks["handed over"] - started,
            "publishing": marks["last publish"] - marks["first publish"],
            "confirms": confirms[-1] - marks["last publish"],
            "answer": ended - confirms[-1],
        }
        shown = ", ".join(f"{name} {1000 * seconds:.1f}" for name, seconds in steps.items())
        print(f"{1000 * (ended - started):.1f} ms: {shown} ({len(confirms)} confirm frames)")
        time.sleep(0.5)  # let the receiver take the round's messages
    asyncio.run(sender.close())
    asyncio.run(receiver.close())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    main(args.host, args.groups, args.rounds)
