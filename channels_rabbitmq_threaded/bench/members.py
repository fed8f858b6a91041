"""Receiver processes: each member builds its own layer, as a separate Django process would, and reports back.

Theory of operation: `Members` starts one process per `MemberJob` (multiprocessing's *spawn*, so no state is
inherited from the sender), and talks to each over a `Pipe`: the member sends ``("ready", channel_names)`` once
its channels exist (and are in their group), then ``("done", figures)`` when it has received what it expects or
its deadline passed, or ``("error", text)`` at any point. A member never decides anything about timing: it
records the monotonic time of its first and last delivery (the same clock in every process on Linux), and the
scenario computes rates from the sender's start.

Four kinds of member: ``count`` (receive `expect` messages on each of its channels), ``room`` (the same, and
report ``("got", n, time)`` as soon as every one of its channels has message number ``n``, for the big-room
scenario; it also stops when the sender says ``stop``, since a layer that drops messages would leave it waiting),
``echo`` (answer every message on the channel named in its ``reply`` key, for round trips) and ``raw`` (pika
alone: an exclusive queue consumed with the layer's default prefetch and manual acks). ``count`` and ``room``
members report the CPU time (user and system, all threads) their process spent between ``ready`` and ``done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import resource
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .layers import LayerSpec

READY_TIMEOUT = 60.0  # seconds a member may take to start, connect and join its group


class BenchError(Exception):
    """A scenario could not run; the text goes into its cell."""


@dataclass(frozen=True)
class MemberJob:
    kind: str  # "count", "room", "echo" or "raw"
    channels: int = 1
    group: str | None = None
    group_each: bool = False  # each channel joins a group of its own, `<group>-<n>` (per-user groups)
    expect: int = 0  # messages per channel ("count", "raw")
    timeout: float = 60.0  # seconds after "ready" that a member waits for its messages


class Members:
    """Receiver processes for one scenario; a context manager that always ends them."""

    def __init__(self, spec: LayerSpec | None, jobs: list[MemberJob], amqp_url: str = "") -> None:
        self._spec = spec
        self._jobs = jobs
        self._amqp_url = amqp_url
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._pipes: list[Connection] = []
        self.channels: list[list[str]] = []

    def __enter__(self) -> Members:
        context = multiprocessing.get_context("spawn")
        for job in self._jobs:
            ours, theirs = context.Pipe()
            process = context.Process(target=member_main, args=(self._spec, job, self._amqp_url, theirs), daemon=True)
            process.start()
            self._processes.append(process)
            self._pipes.append(ours)
        try:
            self.channels = [self._expect(pipe, "ready", READY_TIMEOUT) for pipe in self._pipes]
        except BaseException:
            self._end()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self._end()

    def results(self) -> list[dict[str, Any]]:
        """Each member's ``done`` figures: blocks until every member reports (its own deadline bounds this)."""
        return [self._expect(pipe, "done", job.timeout + 30) for pipe, job in zip(self._pipes, self._jobs, strict=True)]

    def all_got(self, n: int, timeout: float) -> float | None:
        """When the last ``room`` member reported having message `n` on every channel; None if one did not within
        `timeout` seconds (the layer lost a copy, or is that slow). Reports of earlier messages are skipped."""
        deadline = time.monotonic() + timeout
        last = 0.0
        for pipe in self._pipes:
            while (report := _next_report(pipe, deadline, "got")) is not None:
                kind, *value = report
                if kind == "got" and value[0] >= n:
                    last = max(last, value[1])
                    break
            else:
                return None
        return last

    def stop(self) -> None:
        """Tell ``room`` members to report now, with whatever they received."""
        for pipe in self._pipes:
            with contextlib.suppress(OSError):  # a member that had everything has reported and gone already
                pipe.send("stop")

    def _expect(self, pipe: Connection, kind: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while (report := _next_report(pipe, deadline, kind)) is not None:
            got, *value = report
            if got != "got":  # a room member's late progress report: not what is awaited
                return value[0]
        raise BenchError(f"a receiver process sent no {kind!r} within {timeout:g}s")

    def _end(self) -> None:
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()


def _next_report(pipe: Connection, deadline: float, awaited: str) -> tuple[Any, ...] | None:
    """A member's next report, or None if none came by `deadline`; BenchError if it ended or reported an error."""
    if not pipe.poll(max(0.0, deadline - time.monotonic())):
        return None
    try:
        report: tuple[Any, ...] = pipe.recv()
    except EOFError:
        raise BenchError(f"a receiver process ended before {awaited!r}") from None
    if report[0] == "error":
        raise BenchError(f"receiver: {report[1]}")
    return report


def member_main(spec: LayerSpec | None, job: MemberJob, amqp_url: str, pipe: Connection) -> None:
    """The member process's entry point (must be importable: multiprocessing spawns it by name)."""
    try:
        if job.kind == "raw":
            _raw_member(job, amqp_url, pipe)
        else:
            assert spec is not None
            asyncio.run(_layer_member(spec, job, pipe))
    except BaseException as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"))


async def _layer_member(spec: LayerSpec, job: MemberJob, pipe: Connection) -> None:
    layer = spec.build()
    channels = [await layer.new_channel() for _ in range(job.channels)]
    if job.group is not None:
        for n, channel in enumerate(channels):
            await layer.group_add(f"{job.group}-{n}" if job.group_each else job.group, channel)
    # Some layers connect only on their first send or group_add (channels_rabbitmq 4.0.1, its issue #38): a
    # receiver that never sent would never get its queue. A real consumer has usually sent or joined something.
    await layer.group_send(f"{job.group or 'bench'}-warm", {"type": "bench.warm"})
    pipe.send(("ready", channels))
    if job.kind == "echo":
        await _echo(layer, channels[0])
        pipe.send(("done", {}))
        return
    clock = DeliveryClock()
    cpu_before = cpu_seconds()
    copies: dict[int, int] = {}  # room: message number -> how many of this member's channels have it

    async def drain(channel: str) -> None:
        for _ in range(job.expect):
            message = await layer.receive(channel)
            clock.tick()
            if job.kind == "room":
                n = message.get("n", -1)
                copies[n] = copies.get(n, 0) + 1
                if copies[n] == len(channels):
                    pipe.send(("got", n, time.monotonic()))

    drained: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(drain(channel) for channel in channels)))
    watched = [drained, asyncio.ensure_future(_until_stopped(pipe))] if job.kind == "room" else [drained]
    _done, pending = await asyncio.wait(watched, timeout=job.timeout, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    pipe.send(("done", clock.figures() | {"cpu": cpu_seconds() - cpu_before}))


async def _until_stopped(pipe: Connection) -> None:
    """Returns when the sender writes to the pipe (its ``stop``)."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(pipe.fileno(), readable.set)
    try:
        await readable.wait()
    finally:
        loop.remove_reader(pipe.fileno())


def cpu_seconds() -> float:
    """CPU time of this process so far, user and system, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _echo(layer: Any, channel: str) -> None:
    while True:
        message = await layer.receive(channel)
        if message.get("stop"):
            return
        await layer.send(message["reply"], {"type": "bench.pong", "n": message["n"]})


def _raw_member(job: MemberJob, amqp_url: str, pipe: Connection) -> None:
    import pika  # only the raw member needs it

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_qos(prefetch_count=10)  # the layer's default prefetch_count
    clock = DeliveryClock()

    def on_message(ch: Any, method: Any, _props: Any, _body: bytes) -> None:
        ch.basic_ack(method.delivery_tag)
        clock.tick()

    channel.basic_consume(queue, on_message)
    pipe.send(("ready", [queue]))
    deadline = time.monotonic() + job.timeout
    while clock.count < job.expect and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.1)  # type: ignore[arg-type]  # pika takes seconds as a float
    connection.close()
    pipe.send(("done", clock.figures()))


class DeliveryClock:
    """Counts deliveries and notes when the first and the last arrived."""

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now

    def figures(self) -> dict[str, Any]:
        return {"received": self.count, "first": self.first, "last": self.last}
