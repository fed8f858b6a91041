"""The measurements. Each scenario is a function of (layer, counts, names) that returns named figures.

Theory of operation: a scenario runs in a cell process (`cell`); the sending side builds its layer the way the
code it imitates would (no running loop for the Celery/WSGI scenarios; inside `asyncio.run` for the async ones)
and every receiver is a `members.Members` process. Rates are taken from the sender's start: ``calls/s`` or
``sends/s`` is the sender's view (its calls returned), ``delivered/s`` ends at the last delivery any member saw.
A scenario that does not apply to a layer raises `NotApplicable` (its cell says why); anything else that goes
wrong raises, and the cell reports it. No scenario asserts a speed: figures are reported, goals are judged in
`report` against a baseline measured in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import secrets
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import msgpack
from asgiref.sync import async_to_sync

from .layers import LayerSpec
from .members import BenchError, MemberJob, Members, cpu_seconds

ROUNDS = 5  # the sync scenario alternates the ceiling and the layer this many times
THREADS = 4  # plain threads in the synchronous scenarios (a Celery worker's or a WSGI server's threads)
LANES = 50  # concurrent coroutines in the concurrent scenario
FANOUT_PROCESSES = 4
FANOUT_MEMBERS = 100
MEMORY_GROUP_SIZE = 10  # the memory scenario puts its channels in groups of this size (chat rooms)
WARM_UP_ROUND_TRIPS = 20
BIGROOM_PROCESSES = 4
BIGROOM_WARM_UP = 5  # messages sent before the measured ones
BIGROOM_WAIT = 10.0  # seconds one message may take to reach every member before it counts as not delivered
STORM_SHARED_GROUPS = 100
BULK_ROUNDS = 3  # each way of sending in the bulk scenario; the median counts
STORM_IN_FLIGHT = 100  # calls at once in the join storm: channels_redis's default pool holds 100 connections
PAYLOAD = "x" * 100  # each message carries about 150 bytes, a short chat line with its metadata


class NotApplicable(Exception):
    """The scenario cannot run against this layer (for example: no synchronous API, or one process only)."""


@dataclass(frozen=True)
class Counts:
    """How much each scenario does; each field is a command-line option (``--sync-calls`` and so on)."""

    sync_calls: int = 500  # per thread
    direct_calls: int = 1500  # per thread
    sequential: int = 2000
    concurrent: int = 5000
    fanout: int = 200  # group_sends, each to FANOUT_MEMBERS channels
    round_trips: int = 1000
    channels: int = 10_000
    raw: int = 5000
    bulk: int = 1000  # groups notified, one message each
    cpu: int = 10_000  # messages whose CPU cost is measured
    bigroom: int = 100  # group_sends to the big room (after BIGROOM_WARM_UP)
    bigroom_members: int = 5000  # channels in the big room, spread over BIGROOM_PROCESSES
    storm: int = 5000  # channels joining (and leaving) at once
    idle_seconds: float = 10.0

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class Context:
    amqp_url: str
    token: str  # unique per run, so that groups and queues of one run never meet another's

    def name(self, what: str) -> str:
        return f"bench-{self.token}-{what}"


def new_context(amqp_url: str) -> Context:
    return Context(amqp_url, secrets.token_hex(4))


def message(n: int) -> dict[str, Any]:
    return {"type": "bench.message", "n": n, "text": PAYLOAD}


# -- 1 and 2: code with no event loop ---------------------------------------------------------------------------------


async def _nothing() -> None:
    pass


def sync_group_send(spec: LayerSpec, counts: Counts, context: Context) -> dict[str, Any]:
    """4 plain threads call async_to_sync(layer.group_send); beside it, async_to_sync of a no-op (the ceiling).

    The two alternate in ROUNDS, so that whatever else the machine does weighs on both alike.
    """
    require_cross_process(spec)
    per_round = max(1, counts.sync_calls // ROUNDS)
    group = context.name("sync")
    with Members(spec, [MemberJob("count", group=group, expect=THREADS * per_round * ROUNDS)]) as members:
        layer = spec.build()  # no running loop in this thread: as a Celery worker or a WSGI view builds it
        async_to_sync(layer.group_send)(context.name("warm"), {"type": "bench.warm"})  # connect
        started = time.monotonic()
        ceiling_seconds = layer_seconds = 0.0
        for _ in range(ROUNDS):
            ceiling_seconds += seconds_in_threads(per_round, lambda _n: async_to_sync(_nothing)())
            layer_seconds += seconds_in_threads(per_round, lambda n: async_to_sync(layer.group_send)(group, message(n)))
        reports = members.results()
    close_quietly(layer)
    calls = THREADS * per_round * ROUNDS
    figures = {"calls/s": calls / layer_seconds, "ceiling calls/s": calls / ceiling_seconds}
    figures["of ceiling"] = figures["calls/s"] / figures["ceiling calls/s"]
    return figures | delivery(reports, started + ceiling_seconds, calls)  # the no-op rounds deliver nothing


def direct_sync_send(spec: LayerSpec, counts: Counts, context: Context) -> dict[str, Any]:
    """The same load through the layer's own synchronous entry point (`group_send_sync`), no event loop at all."""
    calls = counts.direct_calls
    layer = spec.build()
    if not callable(getattr(type(layer), "group_send_sync", None)):  # the class's: some layers proxy attributes
        raise NotApplicable("no synchronous group_send (only async_to_sync)")
    require_cross_process(spec)
    group_send_sync = layer.group_send_sync
    group = context.name("direct")
    with Members(spec, [MemberJob("count", group=group, expect=THREADS * calls)]) as members:
        group_send_sync(context.name("warm"), {"type": "bench.warm"})
        started = time.monotonic()
        seconds = seconds_in_threads(calls, lambda n: group_send_sync(group, message(n)))
        reports = members.results()
    close_quietly(layer)
    return {"calls/s": THREADS * calls / seconds} | delivery(reports, started, THREADS * calls)


def seconds_in_threads(calls: int, call: Callable[[int], Any]) -> float:
    """How long THREADS plain threads take to make `calls` calls each, started together."""
    start = threading.Barrier(THREADS + 1)
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            for n in range(calls):
                call(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if errors:
        raise errors[0]
    return elapsed


# -- 3 to 6: the ASGI server's side --------------------------------------------------------------------------------


def async_sequential(spec: LayerSpec, counts: Counts, context: Context) -> dict[str, Any]:
    """One coroutine awaits send() N times to a channel in another process."""
    total = counts.sequential

    async def send_all(layer: Any, target: str) -> None:
        for n in range(total):
            await layer.send(target, message(n))

    return _sends_to_one_member(spec, context, total, send_all)


def async_concurrent(spec: LayerSpec, counts: Counts, context: Context) -> dict[str, Any]:
    """50 coroutines of one process send to a channel in another process, N in all."""
    total = counts.concurrent
    return _sends_to_one_member(spec, context, total, lambda layer, target: send_in_lanes(layer, target, total))


async def send_in_lanes(layer: Any, target: str, total: int) -> None:
    """`total` messages to `target` from LANES coroutines at once."""

    async def lane(first: int) -> None:
        for n in range(first, total, LANES):
            await layer.send(target, message(n))

    await asyncio.gather(*(lane(first) for first in range(LANES)))


def _sends_to_one_member(
    spec: LayerSpec, context: Context, total: int, send_all: Callable[[Any, str], Any]
) -> dict[str, Any]:
    require_cross_process(spec)
    with Members(spec, [MemberJob("count", expect=total)]) as members:
        target = members.channels[0][0]

        async def run() -> tuple[float, float]:
            layer = spec.build()  # on this loop: some layers insist on being built on the loop that uses them
            await layer.group_send(context.name("warm"), {"type": "bench.warm"})  # connect
            started = time.monotonic()
            await send_all(layer, target)
            elapsed = time.monotonic() - started
            await aclose_quietly(layer)
            return started, elapsed

        started, elapsed = asyncio.run(run())
        reports = members.results()
    return {"sends/s": total / elapsed} | delivery(reports, started, total)


def fan_out(spec: LayerSpec, counts: Counts, context: Context) -> dict[str, Any]:
    """group_send to a group of 100 channels spread over 4 processes, awaited one after another."""
    require_cross_process(spec)
    group = context.name("fanout")
    per_process = FANOUT_MEMBERS // FANOUT_PROCESSES
    job = MemberJob("count", channels=per_process, group=group, expect=counts.fanout)
    with Members(spec, [job] * FANOUT_PROCESSES) as members:

        async def run() -> float:
            layer = spec.build()
            await layer.group_send(context.name("warm"), {"type": "bench.warm"})
            started = time.monotonic()
            for n in range(counts.fanout):
                await layer.group_send(group, message(n))
            await aclose_quietly(layer)
            return started

        started = asyncio.run(run())
        reports = members.results()
    figures = delivery(reports, started, counts.fanout * FANOUT_MEMBERS)
    figures["deliveries/s"] = figures.pop("delivered/s")
    return figures


def round_trip(spec: LayerSpec, counts: Counts, context: Context) -> dict[str, Any]:
    """Ping-pong with a process that answers each message: send, then receive the answer. p50 and p99 in ms."""
    require_cross_process(spec)
    with Members(spec, [MemberJob("echo", timeout=600)]) as members:
        target = members.channels[0][0]

        async def run() -> list[float]:
            layer = spec.build()
            reply = await layer.new_channel()
            timings = []
            for n in range(WARM_UP_ROUND_TRIPS + counts.round_trips):
                started = time.perf_counter()
                await layer.send(target, {"type": "bench.ping", "reply": reply, "n": n, "text": PAYLOAD})
                await layer.receive(reply)
                timings.append(1000 * (time.perf_counter() - started))
            await layer.send(target, {"type": "bench.stop", "stop": True})
            await aclose_quietly(layer)
            return timings[WARM_UP_ROUND_TRIPS:]

        timings = asyncio.run(run())
        members.results()
    return percentiles(timings)


# -- 10: bulk sends ---------------------------------------------------------------------------------------------------


def bulk(spec: LayerSpec, counts: Counts, context: Context) -> dict[str, Any]:
    """N per-user groups notified one awaited group_send at a time, then with one group_send_many; the same from a
    plain thread (group_send_sync, group_send_many_sync). Each way runs BULK_ROUNDS times, alternating, and counts
    its median. A receiving process has a channel in each group and counts every message; the rates are until the
    sending call(s) returned."""
    total = counts.bulk
    sender = spec.build()
    if not callable(getattr(type(sender), "group_send_many", None)):
        raise NotApplicable("no group_send_many")
    require_cross_process(spec)
    prefix = context.name("bulk")
    items = [(f"{prefix}-{n}", message(n)) for n in range(total)]

    async def one_by_one() -> None:
        for group, body in items:
            await sender.group_send(group, body)

    ways: dict[str, Callable[[], Any]] = {
        "one by one": lambda: asyncio.run(one_by_one()),
        "bulk": lambda: asyncio.run(sender.group_send_many(items)),
        "sync one by one": lambda: [sender.group_send_sync(group, body) for group, body in items],
        "sync bulk": lambda: sender.group_send_many_sync(items),
    }
    seconds: dict[str, list[float]] = {label: [] for label in ways}
    job = MemberJob("count", channels=total, group=prefix, group_each=True, expect=len(ways) * BULK_ROUNDS)
    with Members(spec, [job]) as members:
        asyncio.run(sender.group_send(context.name("warm"), {"type": "bench.warm"}))
        for _ in range(BULK_ROUNDS):
            for label, send in ways.items():
                started = time.perf_counter()
                send()
                seconds[label].append(time.perf_counter() - started)
        reports = members.results()
    close_quietly(sender)
    median = {label: statistics.median(times) for label, times in seconds.items()}
    figures = {f"{label} calls/s": total / elapsed for label, elapsed in median.items()}
    figures["bulk gain"] = median["one by one"] / median["bulk"]
    figures["sync bulk gain"] = median["sync one by one"] / median["sync bulk"]
    delivered = sum(report["received"] for report in reports)
    return figures | {"delivered": delivered, "expected": len(ways) * BULK_ROUNDS * total}


# -- 11 to 13: what a message costs, big rooms, join storms -------------------------------------------------------


def cpu(spec: LayerSpec, counts: Counts, context: Context) -> dict[str, Any]:
    """CPU seconds (user + system, every thread) of the sending and the receiving process per 10,000 delivered
    messages, under the concurrent scenario's load (50 coroutines send N messages to a channel in another process).
    The sender is measured until the receiver has everything (a layer that sends in the background pays later)."""
    require_cross_process(spec)
    total = counts.cpu
    with Members(spec, [MemberJob("count", expect=total)]) as members:
        target = members.channels[0][0]

        async def run() -> tuple[float, list[dict[str, Any]]]:
            layer = spec.build()
            await layer.group_send(context.name("warm"), {"type": "bench.warm"})
            before = cpu_seconds()
            await send_in_lanes(layer, target, total)
            reports = await asyncio.get_running_loop().run_in_executor(None, members.results)
            spent = cpu_seconds() - before
            await aclose_quietly(layer)
            return spent, reports

        sender, reports = asyncio.run(run())
    delivered = sum(report["received"] for report in reports)
    receiver = sum(report["cpu"] for report in reports)
    per = 10_000 / max(1, delivered)
    return {
        "CPU s per 10,000": (sender + receiver) * per,
        "sender CPU s per 10,000": sender * per,
        "receiver CPU s per 10,000": receiver * per,
        "delivered": delivered,
        "expected": total,
    }


def bigroom(spec: LayerSpec, counts: Counts, context: Context) -> dict[str, Any]:
    """group_send to one group of 5,000 members (``--bigroom-members``) over 4 processes, one message at a time:
    each is timed from its group_send's start to the moment its last member has it (the members report), then the
    next is sent. A message some member never gets within BIGROOM_WAIT seconds is not delivered, and has no time."""
    require_cross_process(spec)
    group = context.name("bigroom")
    total = BIGROOM_WARM_UP + counts.bigroom
    job = MemberJob(
        "room", channels=counts.bigroom_members // BIGROOM_PROCESSES, group=group, expect=total, timeout=600
    )
    with Members(spec, [job] * BIGROOM_PROCESSES) as members:

        async def run() -> list[float | None]:
            layer = spec.build()
            await layer.group_send(context.name("warm"), {"type": "bench.warm"})
            loop = asyncio.get_running_loop()
            lasts: list[float | None] = []
            for n in range(total):
                started = time.monotonic()
                await layer.group_send(group, message(n))
                last = await loop.run_in_executor(None, members.all_got, n, BIGROOM_WAIT)
                lasts.append(None if last is None else 1000 * (last - started))
            await aclose_quietly(layer)
            return lasts[BIGROOM_WARM_UP:]

        lasts = asyncio.run(run())
        members.stop()
        members.results()
    timings = [ms for ms in lasts if ms is not None]
    if not timings:
        raise BenchError(f"no message reached all {counts.bigroom_members} members within {BIGROOM_WAIT:g}s")
    return percentiles(timings) | {"delivered": len(timings), "expected": counts.bigroom}


def storm(spec: LayerSpec, counts: Counts, context: Context) -> dict[str, Any]:
    """N new channels each join their own group (per-user groups, as a site right after a deploy), then leave; then
    N channels join 100 shared groups, then leave. STORM_IN_FLIGHT calls at a time (all N at once exhausts
    channels_redis's connection pool, and 5,000 connections of its own time out), each rate from the first call to
    the last answer."""
    total = counts.storm

    async def run() -> dict[str, Any]:
        layer = spec.build()
        await layer.group_send(context.name("warm"), {"type": "bench.warm"})
        figures: dict[str, Any] = {}
        for label, groups in (
            ("", [context.name(f"storm-user-{i}") for i in range(total)]),
            ("shared ", [context.name(f"storm-room-{i % STORM_SHARED_GROUPS}") for i in range(total)]),
        ):
            pairs = [(group, await layer.new_channel()) for group in groups]
            for verb, call in (("joins/s", layer.group_add), ("leaves/s", layer.group_discard)):
                started = time.perf_counter()
                await in_flight(STORM_IN_FLIGHT, (call(group, channel) for group, channel in pairs))
                figures[label + verb] = total / (time.perf_counter() - started)
        await aclose_quietly(layer)
        return figures

    return asyncio.run(run())


async def in_flight(width: int, calls: Iterator[Awaitable[Any]]) -> None:
    """Await `calls`, `width` at a time (each lane takes the next call when its last one is answered)."""

    async def lane() -> None:
        for call in calls:
            await call

    await asyncio.gather(*(lane() for _ in range(width)))


# -- 7 and the idle check: one process -----------------------------------------------------------------------------


def memory(spec: LayerSpec, counts: Counts, context: Context) -> dict[str, Any]:
    """Resident memory this process gains for N channels, each in one group (groups of 10, as chat rooms)."""
    total = counts.channels

    async def run() -> int:
        layer = spec.build()
        warm = await layer.new_channel()
        await layer.group_add(context.name("memory-warm"), warm)
        gc.collect()
        before = resident_bytes()
        for first in range(0, total, 100):
            channels = [await layer.new_channel() for _ in range(first, min(total, first + 100))]
            await asyncio.gather(
                *(
                    layer.group_add(context.name(f"memory-{(first + i) // MEMORY_GROUP_SIZE}"), channel)
                    for i, channel in enumerate(channels)
                )
            )
        gc.collect()
        grown = resident_bytes() - before
        await aclose_quietly(layer)
        return grown

    grown = asyncio.run(run())
    return {"MB per 10,000 channels": grown / 1e6 * 10_000 / total, "channels": total}


def idle(spec: LayerSpec, counts: Counts, context: Context) -> dict[str, Any]:
    """CPU time and wake-ups of a process whose layer is connected, in a group, with a receive() waiting."""

    async def run() -> tuple[float, int]:
        layer = spec.build()
        channel = await layer.new_channel()
        await layer.group_add(context.name("idle"), channel)
        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(1.0)  # let start-up work finish
        before = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(counts.idle_seconds)
        after = resource.getrusage(resource.RUSAGE_SELF)
        waiting.cancel()
        with contextlib.suppress(BaseException):
            await waiting
        await aclose_quietly(layer)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return cpu, after.ru_nvcsw - before.ru_nvcsw

    cpu, wakeups = asyncio.run(run())
    per_10s = 10.0 / counts.idle_seconds
    return {"CPU ms per 10 s": 1000 * cpu * per_10s, "wake-ups per 10 s": wakeups * per_10s}


# -- 8: the transport's own limit ----------------------------------------------------------------------------------


def raw_pika(_spec: LayerSpec | None, counts: Counts, context: Context) -> dict[str, Any]:
    """pika alone, no layer: publish N bodies with confirms, 50 in flight, to a consumer in another process."""
    total = counts.raw
    with Members(None, [MemberJob("raw", expect=total)], context.amqp_url) as members:
        publisher = RawPublisher(context.amqp_url, members.channels[0][0], total)
        started, elapsed = publisher.run()
        reports = members.results()
    return {"sends/s": total / elapsed} | delivery(reports, started, total)


class RawPublisher:
    """A pika SelectConnection that publishes `total` messages with confirms, at most LANES unconfirmed."""

    def __init__(self, amqp_url: str, queue: str, total: int) -> None:
        import pika

        self._pika = pika
        self._parameters = pika.URLParameters(amqp_url)
        self._queue = queue
        self._total = total
        self._sent = 0
        self._confirmed = 0
        self._channel: Any = None
        self._connection: Any = None
        self._started = 0.0
        self._elapsed = 0.0
        self._error: str | None = None

    def run(self) -> tuple[float, float]:
        self._connection = self._pika.SelectConnection(
            self._parameters,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=lambda _connection, error: self._stop(f"cannot connect: {error}"),
            on_close_callback=lambda _connection, reason: self._connection.ioloop.stop(),
        )
        self._connection.ioloop.start()
        if self._error:
            raise BenchError(self._error)
        return self._started, self._elapsed

    def _on_connection_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Any) -> None:
        self._channel = channel
        channel.confirm_delivery(self._on_confirm, callback=self._on_confirm_mode)

    def _on_confirm_mode(self, _frame: Any) -> None:
        self._started = time.monotonic()
        self._fill()

    def _fill(self) -> None:
        while self._sent < self._total and self._sent - self._confirmed < LANES:
            self._channel.basic_publish("", self._queue, msgpack.packb(message(self._sent)))
            self._sent += 1

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if isinstance(method, self._pika.spec.Basic.Nack):
            self._stop("the broker refused a publish")
            return
        self._confirmed = method.delivery_tag if method.multiple else self._confirmed + 1
        if self._confirmed >= self._total:
            self._elapsed = time.monotonic() - self._started
            self._stop(None)
        else:
            self._fill()

    def _stop(self, error: str | None) -> None:
        self._error = error
        if self._connection.is_open:
            self._connection.close()
        else:
            self._connection.ioloop.stop()


# -- shared pieces -------------------------------------------------------------------------------------------------


def delivery(reports: list[dict[str, Any]], started: float, expected: int) -> dict[str, Any]:
    """End-to-end figures from the members' reports: how many arrived, and how fast from the sender's start."""
    received = sum(report["received"] for report in reports)
    last = max((report["last"] for report in reports if report["received"]), default=started)
    figures: dict[str, Any] = {"delivered": received, "expected": expected}
    figures["delivered/s"] = received / (last - started) if last > started else 0.0
    return figures


def percentiles(timings_ms: list[float]) -> dict[str, float]:
    """The median and the 99th percentile of some timings in milliseconds (the figures "p50 ms" and "p99 ms")."""
    ordered = sorted(timings_ms)
    return {"p50 ms": statistics.median(ordered), "p99 ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]}


def require_cross_process(spec: LayerSpec) -> None:
    if not spec.cross_process:
        raise NotApplicable("this layer reaches only receivers in its own process")


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:  # Linux: size, resident, ... in pages
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def aclose_quietly(layer: Any) -> None:
    close = getattr(layer, "close", None) or getattr(layer, "close_pools", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(close(), 5)


def close_quietly(layer: Any) -> None:
    with contextlib.suppress(Exception):
        asyncio.run(aclose_quietly(layer))


@dataclass(frozen=True)
class Scenario:
    number: str
    name: str
    title: str
    run: Callable[..., dict[str, Any]]
    headline: str  # the figure the comparison table shows and divides
    higher_is_better: bool = True
    baseline: bool = False  # measures the machine, not a layer: run once per run


SCENARIOS = [
    Scenario("1", "sync", "sync group_send (async_to_sync, 4 threads)", sync_group_send, "calls/s"),
    Scenario("2", "direct", "direct sync group_send (4 threads)", direct_sync_send, "calls/s"),
    Scenario("3", "sequential", "async send, sequential", async_sequential, "delivered/s"),
    Scenario("4", "concurrent", f"async send, {LANES} concurrent", async_concurrent, "delivered/s"),
    Scenario("5", "fanout", f"fan-out to {FANOUT_MEMBERS} over {FANOUT_PROCESSES} processes", fan_out, "deliveries/s"),
    Scenario("6", "roundtrip", "round trip", round_trip, "p50 ms", higher_is_better=False),
    Scenario("7", "memory", "memory, grouped channels", memory, "MB per 10,000 channels", higher_is_better=False),
    Scenario("8", "raw", "raw pika (confirms, 50 in flight)", raw_pika, "delivered/s", baseline=True),
    Scenario("9", "idle", "idle process", idle, "CPU ms per 10 s", higher_is_better=False),
    Scenario("10", "bulk", "group_send_many vs one awaited group_send per group", bulk, "bulk gain"),
    Scenario("11", "cpu", "CPU of sender and receiver per 10,000 delivered", cpu, "CPU s per 10,000",
             higher_is_better=False),
    Scenario("12", "bigroom", f"big room over {BIGROOM_PROCESSES} processes: to the last member",
             bigroom, "p50 ms", higher_is_better=False),
    Scenario("13", "storm", f"join storm, {STORM_IN_FLIGHT} in flight: own groups, then {STORM_SHARED_GROUPS} shared",
             storm, "joins/s"),
]  # fmt: skip
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
