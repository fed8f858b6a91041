"""The way back from a thread to an event loop, two ways: `call_soon_threadsafe`, or a loop-side reader of an eventfd.

    python benchmarks/wake_back.py [--rounds 2000] [--runs 3]

A thread answers one future at a time for a coroutine that awaits it, as the I/O thread answers an awaited send;
the loop sleeps in its selector between answers. The two ways, alternated run by run:

* `call_soon_threadsafe`: the thread schedules `future.set_result` on the loop (the layer's way: `handoffs.to_loop`);
* `eventfd reader`: the thread appends the future to a deque and writes to an eventfd that the loop watches with
  `add_reader`; the reader settles every future in the deque (what a batching reader would do).

Reported: the median and p99 time from the thread's answer to the coroutine resuming.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import threading
import time


async def one_way(mode: str, rounds: int) -> list[float]:
    loop = asyncio.get_running_loop()
    ready: collections.deque[tuple[asyncio.Future[float], float]] = collections.deque()
    fd = os.eventfd(0, os.EFD_NONBLOCK)

    def on_readable() -> None:
        os.eventfd_read(fd)
        while ready:
            future, sent = ready.popleft()
            future.set_result(sent)

    loop.add_reader(fd, on_readable)
    asks: collections.deque[asyncio.Future[float]] = collections.deque()
    asked = threading.Semaphore(0)

    def answerer() -> None:
        for _ in range(rounds):
            asked.acquire()
            future = asks.popleft()
            time.sleep(0.0002)  # the loop is asleep in its selector by now, as while a confirm is on its way
            sent = time.perf_counter()
            if mode == "call_soon_threadsafe":
                loop.call_soon_threadsafe(future.set_result, sent)
            else:
                ready.append((future, sent))
                os.eventfd_write(fd, 1)

    thread = threading.Thread(target=answerer)
    thread.start()
    delays = []
    for _ in range(rounds):
        future = loop.create_future()
        asks.append(future)
        asked.release()
        sent = await future
        delays.append(time.perf_counter() - sent)
    thread.join()
    loop.remove_reader(fd)
    os.close(fd)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"call_soon_threadsafe": [], "eventfd reader": []}
    for _ in range(args.runs):
        for mode in results:
            delays = sorted(asyncio.run(one_way(mode, args.rounds)))
            results[mode].append((statistics.median(delays), delays[int(0.99 * len(delays))]))
    for mode, runs in results.items():
        p50 = ", ".join(f"{1e6 * median:.0f}" for median, _ in runs)
        p99 = ", ".join(f"{1e6 * tail:.0f}" for _, tail in runs)
        print(f"{mode:<22} p50 {p50} us   p99 {p99} us")


if __name__ == "__main__":
    main()
