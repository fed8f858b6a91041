"""`python -m channels_rabbitmq_threaded check | bench`: a self-check, and the benchmark (the `bench` package).

Theory of operation of `check`: uses only the public layer API, as an application would, and prints each step with its
timing. On a broker it cannot reach it says what it tried and how to start RabbitMQ, and exits with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync

from .bench import cli as bench_cli
from .config import DEFAULT_HOST, redact_url
from .core import RabbitmqChannelLayer
from .errors import BrokerUnavailable

HOW_TO_START = """\
Is RabbitMQ running there? To start one on this machine:
  Debian/Ubuntu:  apt-get install rabbitmq-server && rabbitmq-server -detached
  Docker:         docker run -d -p 5672:5672 rabbitmq:3
then run this check again (with --host URL for another broker)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m channels_rabbitmq_threaded")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="connect, round-trip a message and a group message, report timings")
    check.add_argument("--host", default=DEFAULT_HOST, help=f"AMQP URL (default {DEFAULT_HOST})")
    check.add_argument("--count", type=int, default=200, help="round trips to time (default 200)")
    bench = commands.add_parser("bench", help="measure layers side by side (see docs/performance.md)")
    bench_cli.add_arguments(bench, DEFAULT_HOST)
    args = parser.parse_args(argv)
    if args.command == "bench":
        return bench_cli.run(args)
    return run_check(args.host, args.count)


def run_check(host: str, count: int) -> int:
    logging.basicConfig(level=logging.WARNING, format="  log: %(levelname)s %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # our own WARNING says the same in one line
    print(f"channels_rabbitmq_threaded check against {redact_url(host)}")
    try:
        layer = RabbitmqChannelLayer(host=host, connect_timeout=5)
    except (TypeError, ValueError) as exc:
        print(f"  bad configuration: {exc}")
        return 2
    try:
        asyncio.run(asyncio.wait_for(_check_async(layer, count), 60))
        _check_sync(layer, count)
    except BrokerUnavailable as exc:
        print(f"  FAILED: {exc}\n{HOW_TO_START}")
        return 1
    except asyncio.TimeoutError:
        print(f"  FAILED: no answer from the broker within 60 s\n{HOW_TO_START}")
        return 1
    finally:
        asyncio.run(layer.close())
    print("OK")
    return 0


async def _timed(label: str, step: Callable[[], Awaitable[Any]]) -> Any:
    started = time.perf_counter()
    result = await step()
    print(f"  {label:<48} {1000 * (time.perf_counter() - started):8.2f} ms")
    return result


async def _check_async(layer: RabbitmqChannelLayer, count: int) -> None:
    channel = await _timed("connect, declare queue (new_channel)", layer.new_channel)
    await _timed("send + receive", lambda: _round_trip(layer, channel))
    await _timed("group_add (binding confirmed)", lambda: layer.group_add("check", channel))
    await _timed("group_send + receive", lambda: _group_round_trip(layer, channel))
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        await _round_trip(layer, channel)
        timings.append(1000 * (time.perf_counter() - started))
    timings.sort()
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    print(f"  {count} send + receive round trips: p50 {statistics.median(timings):.2f} ms, p99 {p99:.2f} ms")
    await layer.group_discard("check", channel)
    backlog = layer.settings.local_capacity  # what fits in memory without back-pressure
    await asyncio.gather(*(layer.send(channel, {"type": "check.backlog"}) for _ in range(backlog)))
    await asyncio.sleep(0.2)  # let the deliveries reach the process's buffer
    started = time.perf_counter()
    for _ in range(backlog):
        await layer.receive(channel)
    elapsed = time.perf_counter() - started
    print(f"  receive() of {backlog} buffered messages: {backlog / elapsed:8.0f} messages/s")


async def _round_trip(layer: RabbitmqChannelLayer, channel: str) -> None:
    await layer.send(channel, {"type": "check.ping"})
    if await layer.receive(channel) != {"type": "check.ping"}:
        raise AssertionError("received a different message")


async def _group_round_trip(layer: RabbitmqChannelLayer, channel: str) -> None:
    await layer.group_send("check", {"type": "check.group"})
    if await layer.receive(channel) != {"type": "check.group"}:
        raise AssertionError("received a different message")


def _check_sync(layer: RabbitmqChannelLayer, count: int) -> None:
    """The Celery / WSGI path: async_to_sync(group_send) from a plain thread, a new event loop per call."""
    errors: list[BaseException] = []

    def plain_thread() -> None:
        try:
            started = time.perf_counter()
            for n in range(count):
                async_to_sync(layer.group_send)("check-sync", {"type": "check.sync", "n": n})
            elapsed = time.perf_counter() - started
            print(f"  {count} async_to_sync(group_send) from a plain thread: {count / elapsed:8.0f} calls/s")
            started = time.perf_counter()
            for n in range(count):
                layer.group_send_sync("check-sync", {"type": "check.sync", "n": n})
            elapsed = time.perf_counter() - started
            print(f"  {count} group_send_sync() from a plain thread:         {count / elapsed:8.0f} calls/s")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=plain_thread)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


if __name__ == "__main__":
    sys.exit(main())
