"""Thread -> event loop hand-off, measured: janus queues vs per-waiter futures (the layer's `handoffs.Waiter`).

Run: `python benchmarks/handoff.py [--rounds N]` (needs `pip install janus`). No broker involved.

Round trip ("ping-pong", what a parked receive() sees): the loop asks a worker thread for one item through a
`queue.SimpleQueue` (the same for every variant) and awaits it; the worker hands the item back with
  * janus:   `sync_q.put(item)`; the loop awaits `async_q.get()` (one janus queue bound to this loop);
  * future:  `loop.call_soon_threadsafe(set_result)` on an asyncio future the loop made for this request;
  * waiter:  `handoffs.Waiter.offer(item)`, the layer's own hand-off (future + claim lock + put-back support).
Bulk (a backlog drained by a getter that is behind): the worker pushes N items with janus `sync_q.put` vs one
`call_soon_threadsafe` per item into an `asyncio.Queue`.
Each figure is the median of 5 runs.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import statistics
import threading
import time
from collections.abc import Callable

import janus

from channels_rabbitmq_threaded._bridge.handoffs import Waiter


def worker(requests: queue.SimpleQueue, hand: Callable[[object], None]) -> None:
    while (request := requests.get()) is not None:
        hand(request)


async def ping_pong_janus(rounds: int) -> float:
    q: janus.Queue[int] = janus.Queue()
    requests: queue.SimpleQueue = queue.SimpleQueue()
    thread = threading.Thread(target=worker, args=(requests, lambda n: q.sync_q.put(n)))
    thread.start()
    started = time.perf_counter()
    for n in range(rounds):
        requests.put(n)
        assert await q.async_q.get() == n
    elapsed = time.perf_counter() - started
    requests.put(None)
    thread.join()
    await q.aclose()
    return elapsed / rounds


async def ping_pong_future(rounds: int) -> float:
    loop = asyncio.get_running_loop()
    requests: queue.SimpleQueue = queue.SimpleQueue()

    def hand(future: asyncio.Future) -> None:
        loop.call_soon_threadsafe(future.set_result, 1)

    thread = threading.Thread(target=worker, args=(requests, hand))
    thread.start()
    started = time.perf_counter()
    for _ in range(rounds):
        future = loop.create_future()
        requests.put(future)
        await future
    elapsed = time.perf_counter() - started
    requests.put(None)
    thread.join()
    return elapsed / rounds


async def ping_pong_waiter(rounds: int) -> float:
    loop = asyncio.get_running_loop()
    requests: queue.SimpleQueue = queue.SimpleQueue()
    thread = threading.Thread(target=worker, args=(requests, lambda waiter: waiter.offer({"n": 1}, 0.0)))
    thread.start()
    started = time.perf_counter()
    for _ in range(rounds):
        waiter = Waiter(loop, "c!1", lambda *_: None, lambda _waiter: None)
        requests.put(waiter)
        await waiter.wait()
    elapsed = time.perf_counter() - started
    requests.put(None)
    thread.join()
    return elapsed / rounds


async def bulk_janus(count: int) -> float:
    q: janus.Queue[int] = janus.Queue()
    thread = threading.Thread(target=lambda: [q.sync_q.put(n) for n in range(count)])
    started = time.perf_counter()
    thread.start()
    for _ in range(count):
        await q.async_q.get()
    elapsed = time.perf_counter() - started
    thread.join()
    await q.aclose()
    return count / elapsed


async def bulk_call_soon(count: int) -> float:
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[int] = asyncio.Queue()
    thread = threading.Thread(target=lambda: [loop.call_soon_threadsafe(q.put_nowait, n) for n in range(count)])
    started = time.perf_counter()
    thread.start()
    for _ in range(count):
        await q.get()
    elapsed = time.perf_counter() - started
    thread.join()
    return count / elapsed


def median_of(runs: int, coroutine_function, argument: int) -> float:
    return statistics.median(asyncio.run(coroutine_function(argument)) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5000)
    args = parser.parse_args()
    print(f"round trip, median of 5 runs x {args.rounds} (lower is better)")
    for name, function in (("janus", ping_pong_janus), ("future", ping_pong_future), ("waiter", ping_pong_waiter)):
        print(f"  {name:<8} {1e6 * median_of(5, function, args.rounds):7.1f} us")
    print(f"bulk thread -> loop, median of 5 runs x {10 * args.rounds} items (higher is better)")
    for name, function in (("janus", bulk_janus), ("call_soon", bulk_call_soon)):
        print(f"  {name:<9} {median_of(5, function, 10 * args.rounds):9.0f} items/s")


if __name__ == "__main__":
    main()
