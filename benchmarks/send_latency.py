"""Where the time of one awaited send() goes: a timeline of each send through the I/O thread and back.

Run: `python benchmarks/send_latency.py [--host URL] [--count N]`. One coroutine awaits N sends to a channel of a
second layer (its own I/O thread; nobody receives, its capacities are raised), as the sequential scenario of the
bench does. Five points of the layer's own code are wrapped to note the time they run, on the clock of
`time.perf_counter` that every thread shares:

| from             | to                                  | what happens between                              |
|------------------|-------------------------------------|---------------------------------------------------|
| `send()` called  | the publish starts                  | validation, encoding, `submit`; the thread wake   |
|                  |                                     | unless the caller publishes at once               |
| start            | the publish framed and sent         | `frames.publish_frames`, into pika's output       |
| published        | the confirm is read                 | the socket write, the broker, the socket read     |
| confirm          | the answers of the pass are sent    | settling, `LoopWakes` at the end of the pass      |
| answers sent     | `send()` returns on the caller loop | `call_soon_threadsafe`, the loop wakes, resumes   |

The medians of each step are printed, and the total. The wrapping costs a few microseconds per step.

The last step is then split, each from the answers sent: until the I/O thread waits in epoll again (the rest of its
pass, which holds the interpreter), and until the caller's loop reads its self-pipe (its wake-up); and from that
read to `send()` returning (the future's callbacks, the task resumed one loop iteration later).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from channels_rabbitmq_threaded._bridge import handoffs
from channels_rabbitmq_threaded._config import DEFAULT_HOST
from channels_rabbitmq_threaded._io import io_thread, publisher

POINTS = ("start", "published", "confirm", "answers sent")
SPLIT = ("answers to I/O waits", "answers to loop wakes", "wake to return")
marks: dict[str, float] = {}


after_answers: dict[str, float] = {}


def first_after_answers(owner: Any, name: str, point: str) -> None:
    """Wrap `owner.name` so that it notes the time at `point` the first time it runs after the answers were sent."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "answers sent" in marks and point not in after_answers:
            after_answers[point] = time.perf_counter()
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def noted(owner: Any, name: str, point: str, after: bool = False) -> None:
    """Wrap `owner.name` so that it notes the time at `point` (before it runs, or after with `after`)."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any) -> Any:
        if not after:
            marks[point] = time.perf_counter()
        result = original(*args)
        if after:
            marks[point] = time.perf_counter()
        return result

    setattr(owner, name, wrapper)


async def main(host: str, count: int) -> None:
    noted(io_thread.IOThread, "publish_now", "start")  # the caller publishes at once...
    noted(io_thread.RequestFunnel, "_drain", "start")  # ...or the I/O thread drains its requests (the later mark)
    noted(publisher.PublisherSide, "publish", "published", after=True)
    noted(publisher.PublisherSide, "confirmed", "confirm")
    noted(handoffs.LoopWakes, "flush", "answers sent")
    first_after_answers(io_thread.LockedWait, "poll", "waits")
    sender = RabbitmqChannelLayer(host=host)
    receiver = RabbitmqChannelLayer(
        host=host, remote_capacity=count + 10, local_capacity=count + 10, capacity=count + 10
    )
    channel = await receiver.new_channel()
    await sender.send(channel, {"type": "warm up"})
    steps: dict[str, list[float]] = {name: [] for name in ("to start", *(f"to {p}" for p in POINTS[1:]), "to return")}
    totals = []
    split: dict[str, list[float]] = {name: [] for name in SPLIT}
    for n in range(count):
        marks.clear()
        after_answers.clear()
        started = time.perf_counter()
        await sender.send(channel, {"type": "bench.message", "n": n, "text": "x" * 100})
        ended = time.perf_counter()
        totals.append(ended - started)
        if all(point in marks for point in POINTS):
            times = [started, *(marks[point] for point in POINTS), ended]
            for name, (begin, end) in zip(steps, itertools.pairwise(times), strict=True):
                steps[name].append(end - begin)
        if "waits" in after_answers and "wakes" in after_answers and "answers sent" in marks:
            split["answers to I/O waits"].append(after_answers["waits"] - marks["answers sent"])
            split["answers to loop wakes"].append(after_answers["wakes"] - marks["answers sent"])
            split["wake to return"].append(ended - after_answers["wakes"])
    for name, values in steps.items():
        print(f"{name:<16} median {statistics.median(values) * 1e6:6.0f} us")
    for name, values in split.items():
        print(f"  {name:<28} median {statistics.median(values) * 1e6:6.0f} us")
    print(f"{'send()':<16} median {statistics.median(totals) * 1e6:6.0f} us ({count / sum(totals):,.0f} sends/s)")
    await sender.close()
    await receiver.close()


if __name__ == "__main__":
    # before the loop exists: the loop registers its bound method as the self-pipe's reader when it is made
    first_after_answers(asyncio.selector_events.BaseSelectorEventLoop, "_read_from_self", "wakes")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.count))
