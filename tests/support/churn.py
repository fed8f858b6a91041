"""Churn: one process lets channels come and go, as an ASGI server's websockets do, and watches what it keeps.

    python -m tests.support.churn --seconds 600          (against the broker at AMQP_URL, the machine's by default)

The churner (one process, one layer) runs `--concurrency` consumers, each a loop of a websocket's life:
`new_channel()`, `group_add` to a per-user group (`--users` of them, so a user's group is joined again by a later
channel, as a user reconnects) and to a shared room, `receive()` for up to 0.2 s, a direct `send()` to its own
channel that nobody will read (a message that arrives after the socket closed: it must expire), `group_discard`
from both. A sender process feeds the room and the user groups with `group_send_sync` every 5 ms. The churner's
layer uses a small `expiry`, so everything a channel leaves behind can expire within the run.

Once a minute (and at the end) the churner records its RSS, `stats().bookkeeping` (the entries of every
structure the layer keeps by name, message or delivery) and the channels churned so far. With `--trace`, it also
measures with tracemalloc what the package's own code allocated and still holds, between the end of the warm-up
and the end of the run, each after a quiet spell that lets messages expire and delayed unbinds run (tracing
starts before the warm-up, so that what bounded structures hold at its end is traced, and what replaces it later
is not counted as growth): the figure the test judges, with the bookkeeping. With `--trace`, the dedup window and
the names cache, bounded caches, are made small so that the warm-up fills them (their bounds have tests of their
own); without it they keep their sizes, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import queue
import secrets
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from typing import Any

import pika

HOST = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
ROOM = "churn-room"
RECEIVE_FOR = 0.2  # seconds a consumer waits for a message, as a websocket that gets one now and then
SEND_EVERY = 0.005  # seconds between the sender's group messages
LATE_EVERY = 10  # one channel in this many is sent a message after its reader left
CACHES = 500  # the dedup window and the names cache, with --trace: small, so that the warm-up fills them
FRAMES = 3  # frames traced per allocation: enough to see the package behind a dataclass's generated __init__


@dataclass
class Sample:
    seconds: float  # since the churn began
    channels: int  # churned so far
    rss_mb: float
    bookkeeping: dict[str, int]


@dataclass
class ChurnResult:
    channels: int  # churned in all
    warm_channels: int  # churned by the end of the warm-up
    received: int  # messages receive() returned
    refused: int = 0  # late sends refused with ChannelFull (the churner's queue was full)
    samples: list[Sample] = field(default_factory=list)  # once a minute
    warm: Sample | None = None  # at the end of the warm-up
    end: Sample | None = None  # after the quiet spell
    retained_bytes: int | None = None  # tracemalloc: held by the package's code, end minus warm-up (--trace)
    top_retained: list[str] = field(default_factory=list)  # the largest lines of that growth

    @property
    def retained_per_channel(self) -> float:
        assert self.retained_bytes is not None
        return self.retained_bytes / max(1, self.channels - self.warm_channels)


def user_group(n: int) -> str:
    return f"churn-user-{n}"


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _make_layer(exchange: str, **options: Any) -> Any:
    from channels_rabbitmq_threaded import RabbitmqChannelLayer

    return RabbitmqChannelLayer(host=HOST, groups_exchange=exchange, **options)


def _send(exchange: str, users: int, stop: Any) -> None:
    """The sender process: the room and the user groups, round robin, one group message every `SEND_EVERY`."""
    layer = _make_layer(exchange)
    n = 0
    while not stop.is_set():
        layer.group_send_sync(ROOM if n % 2 else user_group(n // 2 % users), {"type": "churn.tick", "n": n})
        n += 1
        time.sleep(SEND_EVERY)
    asyncio.run(layer.close())


async def _churn(args: argparse.Namespace, exchange: str) -> ChurnResult:
    from channels.exceptions import ChannelFull

    from channels_rabbitmq_threaded._routing import dedup, names
    from channels_rabbitmq_threaded._routing.inbox import READING_WINDOW

    if args.trace:
        dedup.DeliveryWindow.__init__.__defaults__ = (CACHES,)
        names.RecentNames.__init__.__defaults__ = (CACHES,)
    layer = _make_layer(exchange, expiry=args.expiry, group_unbind_delay=args.unbind_delay)
    result = ChurnResult(channels=0, warm_channels=0, received=0)
    started = time.monotonic()

    def sample() -> Sample:
        elapsed = round(time.monotonic() - started, 1)
        return Sample(elapsed, result.channels, round(rss_mb(), 1), dict(layer.stats().bookkeeping))

    async def consumer(worker: int, deadline: float) -> None:
        n = worker
        while time.monotonic() < deadline:
            channel = await layer.new_channel("churn")
            user = user_group(n % args.users)
            await layer.group_add(user, channel)
            await layer.group_add(ROOM, channel)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(layer.receive(channel), RECEIVE_FOR)
                result.received += 1
            if n % LATE_EVERY == 0:  # a message that arrives after its reader left: it expires
                try:
                    await layer.send(channel, {"type": "churn.late"})
                except ChannelFull:
                    result.refused += 1
            await layer.group_discard(user, channel)
            await layer.group_discard(ROOM, channel)
            result.channels += 1
            n += args.concurrency

    async def run(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(consumer(worker, deadline) for worker in range(args.concurrency)))

    async def quiet() -> None:  # messages expire, delayed unbinds run, acks go out, recent reads are forgotten
        await asyncio.sleep(max(args.expiry, 2 * READING_WINDOW) + args.unbind_delay + 2)

    if args.trace:  # from the start: what the warm-up put in bounded structures is traced, and may be replaced
        tracemalloc.start(FRAMES)
    await run(args.warmup)
    await quiet()
    if args.trace:
        before = tracemalloc.take_snapshot()
    result.warm, result.warm_channels = sample(), result.channels
    minute = 60.0
    left = args.seconds
    while left > 0:
        await run(min(minute, left))
        left -= minute
        result.samples.append(sample())
    await quiet()
    result.end = sample()
    if args.trace:
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        ours = [tracemalloc.Filter(True, "*/channels_rabbitmq_threaded/*", all_frames=True)]
        growth = after.filter_traces(ours).compare_to(before.filter_traces(ours), "lineno")
        result.retained_bytes = sum(stat.size_diff for stat in growth)
        result.top_retained = [str(stat) for stat in growth[:5]]
    await layer.close()
    return result


def _churner(args: argparse.Namespace, exchange: str, results: Any) -> None:
    results.put(asdict(asyncio.run(_churn(args, exchange))))


def run_churn(
    seconds: float, warmup: float = 10, concurrency: int = 50, users: int = 1_000, expiry: float = 2,
    unbind_delay: float = 1, trace: bool = False,
) -> ChurnResult:  # fmt: skip
    """Run the churner and the sender in processes of their own; the churner's figures."""
    args = argparse.Namespace(
        seconds=seconds, warmup=warmup, concurrency=concurrency, users=users, expiry=expiry,
        unbind_delay=unbind_delay, trace=trace,
    )  # fmt: skip
    exchange = f"churn-{os.getpid()}-{secrets.token_hex(3)}"
    context = multiprocessing.get_context("spawn")
    stop, results = context.Event(), context.Queue()
    sender = context.Process(target=_send, args=(exchange, users, stop), daemon=True)
    churner = context.Process(target=_churner, args=(args, exchange, results), daemon=True)
    sender.start()
    churner.start()
    try:
        raw = _result_of(
            churner, results, deadline=time.monotonic() + seconds + warmup + 2 * (expiry + unbind_delay) + 120
        )
    finally:
        stop.set()
        for process in (churner, sender):
            process.join(30)
            if process.is_alive():
                process.kill()
        _remove_exchanges(exchange)
    samples = [Sample(**sample) for sample in raw.pop("samples")]
    warm, end = Sample(**raw.pop("warm")), Sample(**raw.pop("end"))
    return ChurnResult(**raw, samples=samples, warm=warm, end=end)


def _result_of(churner: Any, results: Any, deadline: float) -> dict[str, Any]:
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            return results.get(timeout=1)  # type: ignore[no-any-return]
        if not churner.is_alive():
            raise RuntimeError(f"the churner ended with exit code {churner.exitcode} and no result (see its output)")
    raise TimeoutError("the churner gave no result in time")


def _remove_exchanges(exchange: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(HOST))
    try:
        for name in (exchange, f"{exchange}.control"):
            connection.channel().exchange_delete(name)
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600, help="churn this long after the warm-up")
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=50, help="consumers at once")
    parser.add_argument("--users", type=int, default=1_000, help="per-user groups, each joined again and again")
    parser.add_argument("--expiry", type=float, default=2, help="the churner's expiry (seconds)")
    parser.add_argument("--unbind-delay", type=float, default=1, help="the churner's group_unbind_delay (seconds)")
    parser.add_argument("--trace", action="store_true", help="measure retained allocations with tracemalloc")
    parser.add_argument("--json", help="write the result here too")
    args = parser.parse_args()
    result = run_churn(args.seconds, args.warmup, args.concurrency, args.users, args.expiry, args.unbind_delay,
                       args.trace)  # fmt: skip
    for sample in [result.warm, *result.samples, result.end]:
        assert sample is not None
        buffers = sample.bookkeeping.get("channel_buffers")
        print(
            f"{sample.seconds:7.1f} s  {sample.channels:8,d} channels  RSS {sample.rss_mb:6.1f} MB  buffers {buffers}"
        )
    print("bookkeeping at the end:", json.dumps(result.end.bookkeeping if result.end else {}))
    if result.retained_bytes is not None:
        print(f"retained by the package's code: {result.retained_bytes:,d} bytes, "
              f"{result.retained_per_channel:.1f} per churned channel")  # fmt: skip
        print("\n".join(result.top_retained))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(asdict(result), out, indent=1)


if __name__ == "__main__":
    main()
