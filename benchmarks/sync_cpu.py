"""CPU per call of async_to_sync(group_send) against async_to_sync of a no-op, from plain threads.

Run: `python benchmarks/sync_cpu.py [--switch-interval SECONDS] [--no-wait]`. Prints calls/s and the process's CPU
time per call (all threads) for 4 threads and for 1 thread, three rounds each. A shorter GIL switch interval that
changes nothing shows the cost is CPU, not threads queueing for the GIL (docs/performance.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable

from asgiref.sync import async_to_sync

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from channels_rabbitmq_threaded._config import DEFAULT_HOST

MESSAGE = {"type": "bench.message", "text": "x" * 100}


async def nothing() -> None:
    pass


def measure(threads: int, calls: int, call: Callable[[], object]) -> tuple[float, float]:
    """(calls/s, µs of process CPU per call) for `threads` plain threads making `calls` calls each."""
    workers = [threading.Thread(target=lambda: [call() for _ in range(calls)]) for _ in range(threads)]
    started, cpu = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = threads * calls
    return total / (time.perf_counter() - started), 1e6 * (time.process_time() - cpu) / total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--switch-interval", type=float, default=sys.getswitchinterval())
    parser.add_argument("--no-wait", action="store_true", help="wait_for_confirms=False")
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval)
    layer = RabbitmqChannelLayer(host=args.host, wait_for_confirms=not args.no_wait)
    layer.group_send_sync("bench-sync-cpu-warm", {"type": "warm"})
    paths = {
        "no-op": lambda: async_to_sync(nothing)(),
        "group_send": lambda: async_to_sync(layer.group_send)("bench-sync-cpu", MESSAGE),
    }
    for threads in (4, 1):
        for name, call in paths.items():
            runs = [measure(threads, args.calls, call) for _ in range(3)]
            rate = statistics.median(run[0] for run in runs)
            cpu = statistics.median(run[1] for run in runs)
            print(f"{threads} thread(s) {name:<11} {rate:7.0f} calls/s {cpu:6.0f} µs CPU per call")


if __name__ == "__main__":
    main()
