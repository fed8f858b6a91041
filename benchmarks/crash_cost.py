"""What a process that dies holding many bindings costs the other publishers (RabbitMQ issue 12926).

    python benchmarks/crash_cost.py [--host URL] [--publisher-host URL] [--bindings 3000 10000] [--runs 1]

For each count: a victim process declares an exclusive queue, binds it that many times to the groups exchange
(the bindings of a Daphne process with that many per-user groups), reports the bind rate, and is killed with
SIGKILL, so that the broker deletes the queue and its bindings itself. Meanwhile this process publishes to the same
exchange with publisher confirms, one message at a time (the group_send of every other process), and reports the
confirm latency before the kill and in the 10 s after it: median, p99 and the longest. Run it against 3.10 (the
machine's broker), 4.0 (`python -m tests.support.rabbitmq4 python benchmarks/crash_cost.py`, whose AMQP_URL it
takes) and a two-node cluster (`python benchmarks/cluster.py [--rabbitmq4] python benchmarks/crash_cost.py`: the
victim on node A, the publisher on node B, from AMQP_URL_B).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import statistics
import time

import pika

EXCHANGE = "crash-cost-groups"


def victim(url: str, count: int, ready: multiprocessing.Queue) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.exchange_declare(EXCHANGE, "direct")
    queue = channel.queue_declare("", exclusive=True).method.queue
    started = time.perf_counter()
    for n in range(count):
        channel.queue_bind(queue, EXCHANGE, routing_key=f"user-{n}")
    ready.put(count / (time.perf_counter() - started))
    while True:  # hold the bindings until killed
        connection.process_data_events(time_limit=1)


def confirm_latencies(channel: pika.adapters.blocking_connection.BlockingChannel, seconds: float) -> list[float]:
    """Publish one message at a time for `seconds`; the time each took to be answered (a nack counts: RabbitMQ 4.3
    nacks a message routed to the queue while it is being deleted, and answering is what is timed)."""
    latencies, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        with contextlib.suppress(pika.exceptions.NackError):
            channel.basic_publish(EXCHANGE, "user-0", b"x")  # confirm mode: returns once RabbitMQ answered it
        latencies.append(1000 * (time.perf_counter() - started))
    return latencies


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered):.2f} ms, p99 {p99:.2f} ms, longest {ordered[-1]:.1f} ms"


def measure(url: str, publisher_url: str, count: int) -> None:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this one's connections
    ready: multiprocessing.Queue = context.Queue()
    process = context.Process(target=victim, args=(url, count, ready))
    process.start()
    bind_rate = ready.get(timeout=600)
    connection = pika.BlockingConnection(pika.URLParameters(publisher_url))
    channel = connection.channel()
    channel.confirm_delivery()
    before = confirm_latencies(channel, 3)
    os.kill(process.pid, signal.SIGKILL)  # the broker deletes the exclusive queue and every binding with it
    process.join()
    after = confirm_latencies(channel, 10)
    connection.close()
    print(f"{count:>6} bindings: bound at {bind_rate:,.0f}/s; confirms before the kill: {summary(before)}")
    print(f"{'':>6}            in the 10 s after it: {summary(after)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--publisher-host", default=os.environ.get("AMQP_URL_B"), help="default: --host")
    parser.add_argument("--bindings", type=int, nargs="+", default=[3000, 10000])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    connection = pika.BlockingConnection(pika.URLParameters(args.host))
    print(f"RabbitMQ {connection._impl.server_properties['version']}")  # type: ignore[union-attr]
    connection.close()
    try:
        for count in args.bindings:
            for _ in range(args.runs):
                measure(args.host, args.publisher_host or args.host, count)
    finally:
        connection = pika.BlockingConnection(pika.URLParameters(args.host))
        connection.channel().exchange_delete(EXCHANGE)
        connection.close()


if __name__ == "__main__":
    main()
