"""How many thread crossings an awaited publish needs, and what removing one would save: a spike, not the layer.

    python benchmarks/crossings.py [--host URL] [--count 2000] [--rounds 3]

One pika `SelectConnection` in an I/O thread of its own, confirm mode, publishing to an exclusive queue that drops
its head past 1,000 messages, and one asyncio loop in the main thread that awaits one publish at a time, in three
ways, alternated round by round on the same connection:

* `two crossings`, as the layer does today: the caller appends the publish to a deque and wakes the I/O thread
  (`add_callback_threadsafe`); the I/O thread publishes; its confirm callback wakes the caller's loop
  (`call_soon_threadsafe`).
* `caller writes`: the caller takes the lock that the I/O thread holds whenever it runs pika code (it lets go only
  while it waits in epoll), registers its future under the next delivery tag, has pika marshal the publish, and
  sends the bytes on the socket itself when pika's write buffer is empty (otherwise it leaves them to pika, behind
  what is buffered). The I/O thread only reads the confirm and wakes the caller's loop: one crossing.
* `caller reads`: as `caller writes`, and the caller's loop also watches the socket while it waits
  (`add_reader`); whichever thread wakes first and gets the lock reads the confirm, so when the caller's loop wins,
  no crossing is left. The I/O thread still watches the same socket and wakes for the same bytes.

Reported per mode: awaited publishes per second, the latency p50 and p99, the I/O thread's returns from epoll per
publish (its wake-ups), and the process's CPU per publish. Both modes keep the order of publishes and settle every
future once; what the spike leaves out (cuts, alarms, nacks, returns) is what the layer would have to add.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import threading
import time
from typing import Any

import pika
from pika.adapters.select_connection import SelectConnection

from channels_rabbitmq_threaded._io.io_thread import LockedWait

QUEUE_ARGUMENTS = {"x-max-length": 1000, "x-overflow": "drop-head"}


class CountingEpoll(LockedWait):
    """The layer's stand-in for pika's epoll object (it lets go of the pika lock while it waits), counting returns."""

    def __init__(self, epoll: Any, lock: threading.Lock) -> None:
        super().__init__(epoll, lock)
        self.returns = 0

    def poll(self, timeout: float = -1) -> Any:
        try:
            return super().poll(timeout)
        finally:
            self.returns += 1


class Spike:
    def __init__(self, host: str) -> None:
        self.lock = threading.Lock()  # held by whoever runs pika code: the I/O thread, or a caller that publishes
        self.ready = threading.Event()
        self.requests: collections.deque[asyncio.Future[None]] = collections.deque()
        self.pending: dict[int, asyncio.Future[None]] = {}  # delivery tag -> the caller's future
        self.next_tag = 1
        self.epoll: CountingEpoll | None = None
        self.queue = ""
        self.connection = SelectConnection(pika.URLParameters(host), on_open_callback=self._on_open)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    # -- the I/O thread ----------------------------------------------------------------------------------------------

    def _run(self) -> None:
        self.lock.acquire()
        self.connection.ioloop.add_callback_threadsafe(self._count_polls)
        self.connection.ioloop.start()

    def _count_polls(self) -> None:
        poller = self.connection.ioloop._poller  # type: ignore[attr-defined]
        self.epoll = poller._poll = CountingEpoll(poller._poll, self.lock)

    def _on_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._declare())

    def _declare(self) -> None:
        self.channel.queue_declare("", exclusive=True, arguments=QUEUE_ARGUMENTS, callback=self._on_declared)

    def _on_declared(self, frame: Any) -> None:
        self.queue = frame.method.queue
        self.ready.set()

    def _on_confirm(self, frame: Any) -> None:
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        tags = [t for t in self.pending if t <= tag] if multiple else [tag]
        for t in tags:
            future = self.pending.pop(t)
            loop = future.get_loop()
            if loop._thread_id == threading.get_ident():  # type: ignore[attr-defined]  # read on the caller's loop
                _settle(future)
            else:
                loop.call_soon_threadsafe(_settle, future)

    def _drain(self) -> None:
        while self.requests:
            self.pending[self.next_tag] = self.requests.popleft()
            self.next_tag += 1
            self.channel.basic_publish("", self.queue, b"x" * 100)

    # -- the callers ---------------------------------------------------------------------------------------------------

    async def publish_through_the_thread(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self.requests.append(future)
        self.connection.ioloop.add_callback_threadsafe(self._drain)
        await future

    async def publish_and_read_on_the_caller(self) -> None:
        """`caller writes`, and the caller's loop watches the socket too while it waits: whichever thread wakes first
        and gets the lock reads the confirm (the I/O thread's epoll and the loop's selector both see it readable)."""
        loop = asyncio.get_running_loop()
        transport = self.connection._transport  # type: ignore[attr-defined]
        fd = transport._sock.fileno()
        loop.add_reader(fd, self._read_on_the_caller, loop, fd, transport)
        try:
            await self.publish_from_the_caller()
        finally:
            loop.remove_reader(fd)

    def _read_on_the_caller(self, loop: asyncio.AbstractEventLoop, fd: int, transport: Any) -> None:
        if not self.lock.acquire(blocking=False):
            loop.remove_reader(fd)  # the I/O thread is at it: it wakes the caller as before
            return
        try:
            transport._on_socket_readable()
        finally:
            self.lock.release()

    async def publish_from_the_caller(self) -> None:
        future = asyncio.get_running_loop().create_future()
        with self.lock:
            self.pending[self.next_tag] = future
            self.next_tag += 1
            transport = self.connection._transport  # type: ignore[attr-defined]
            if transport.get_write_buffer_size():
                self.channel.basic_publish("", self.queue, b"x" * 100)  # behind what pika has buffered
            else:
                chunks: list[bytes] = []
                self.connection._adapter_emit_data = chunks.append  # type: ignore[method-assign]
                try:
                    self.channel.basic_publish("", self.queue, b"x" * 100)
                finally:
                    del self.connection._adapter_emit_data
                data = b"".join(chunks)
                sent = transport._sock.send(data)
                if sent < len(data):
                    transport.write(data[sent:])  # the rest when the socket can take it
        await future

    def close(self) -> None:
        self.connection.ioloop.add_callback_threadsafe(self.connection.close)
        self.connection.ioloop.add_callback_threadsafe(self.connection.ioloop.stop)
        self.thread.join(10)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def measure(spike: Spike, mode: str, count: int) -> dict[str, float]:
    publish = {
        "two crossings": spike.publish_through_the_thread,
        "caller writes": spike.publish_from_the_caller,
        "caller reads": spike.publish_and_read_on_the_caller,
    }[mode]
    for _ in range(100):  # warm up
        await publish()
    assert spike.epoll is not None
    polls, cpu, started = spike.epoll.returns, time.process_time(), time.perf_counter()
    latencies = []
    for _ in range(count):
        sent = time.perf_counter()
        await publish()
        latencies.append(time.perf_counter() - sent)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "per_second": count / elapsed,
        "p50_us": 1e6 * statistics.median(latencies),
        "p99_us": 1e6 * latencies[int(0.99 * len(latencies))],
        "wakes": (spike.epoll.returns - polls) / count,
        "cpu_us": 1e6 * (time.process_time() - cpu) / count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    spike = Spike(args.host)
    results: dict[str, list[dict[str, float]]] = {"two crossings": [], "caller writes": [], "caller reads": []}
    try:
        for _ in range(args.rounds):
            for mode in results:
                results[mode].append(asyncio.run(measure(spike, mode, args.count)))
    finally:
        spike.close()
    print(f"{'mode':<16} {'sends/s':>9} {'p50 us':>8} {'p99 us':>8} {'epoll returns/send':>19} {'CPU us/send':>12}")
    for mode, rounds in results.items():
        figure = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        print(
            f"{mode:<16} {figure['per_second']:>9,.0f} {figure['p50_us']:>8.0f} {figure['p99_us']:>8.0f}"
            f" {figure['wakes']:>19.2f} {figure['cpu_us']:>12.0f}"
        )


if __name__ == "__main__":
    main()
