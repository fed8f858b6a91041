"""A TCP proxy that injects network faults between a client and a server, for tests (all on 127.0.0.1).

Theory of operation. The proxy runs its own asyncio loop in a daemon thread (the "proxy thread"), so tests on any
loop, or on none, drive it through thread-safe methods. Each accepted connection gets an upstream connection to the
target and two pumps (client -> server, server -> client). A pump reads a chunk, waits out the current faults, writes
it, and awaits `drain()`: chunks keep their order, and a slow side slows the other (back-pressure), because a pump
holds at most one chunk.

| fault | what the client sees | set with |
|---|---|---|
| latency | every chunk, each way, arrives `seconds` late | `latency(seconds)` |
| throttle | at most `bytes_per_second` each way | `throttle(bytes_per_second)` |
| stall | open and silent (a frozen peer), both ways or one; data waits, none is lost | `stall()`, `resume()` |
| reset | every open connection ends with a TCP reset | `reset()` |
| refuse | a new connection is reset as soon as it is accepted | `refuse(True)` |
| blackhole | a new connection is accepted and never answered (no upstream) | `blackhole(True)` |

`clear()` ends every fault. Only the proxy thread touches the proxy's state: each control runs there
(`run_coroutine_threadsafe`) and returns once it has taken effect, so a connection made after it sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any

CHUNK = 65536
UP, DOWN = "client to server", "server to client"


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0  # connections accepted so far (proxy thread writes; tests read)
        self._latency = 0.0
        self._bytes_per_second = 0.0
        self._flowing = {UP: asyncio.Event(), DOWN: asyncio.Event()}  # each set unless that direction is stalled
        self._refuse = False
        self._blackhole = False
        self._transports: set[asyncio.BaseTransport] = set()  # every open connection, both sides: reset() ends them
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        self._started.wait(10)

    # -- the controls (any thread) ------------------------------------------------------------------------------

    def latency(self, seconds: float) -> None:
        self._call(self._set("_latency", seconds))

    def throttle(self, bytes_per_second: float) -> None:
        self._call(self._set("_bytes_per_second", bytes_per_second))

    def stall(self, *directions: str) -> None:
        """Hold the data of `directions` (UP: client to server, DOWN: server to client; default both)."""
        self._call(self._set_flowing(False, directions or (UP, DOWN)))

    def resume(self) -> None:
        self._call(self._set_flowing(True, (UP, DOWN)))

    def refuse(self, on: bool = True) -> None:
        self._call(self._set("_refuse", on))

    def blackhole(self, on: bool = True) -> None:
        self._call(self._set("_blackhole", on))

    def reset(self) -> None:
        """End every open connection with a TCP reset (SO_LINGER 0), as a middlebox that drops state does."""
        self._call(self._reset_all())

    def clear(self) -> None:
        self.latency(0)
        self.throttle(0)
        self.refuse(False)
        self.blackhole(False)
        self.resume()

    def close(self) -> None:
        self._call(self._shut_down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    # -- the proxy thread -----------------------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._started.set()
        self._loop.run_forever()

    async def _serve(self) -> None:
        for event in self._flowing.values():
            event.set()
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _set(self, name: str, value: object) -> None:
        setattr(self, name, value)

    async def _set_flowing(self, flowing: bool, directions: tuple[str, ...]) -> None:
        for direction in directions:
            if flowing:
                self._flowing[direction].set()
            else:
                self._flowing[direction].clear()

    async def _shut_down(self) -> None:
        self._server.close()
        await self._reset_all()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _reset_all(self) -> None:
        for transport in list(self._transports):
            _reset(transport)
        self._transports.clear()

    async def _on_client(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._refuse:
            _reset(client_writer.transport)
            return
        self._transports.add(client_writer.transport)
        if self._blackhole:
            await client_reader.read()  # hold it open, answer nothing, until the client or reset() ends it
            self._transports.discard(client_writer.transport)
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(client_writer.transport)
            return
        self._transports.add(server_writer.transport)
        await asyncio.gather(
            self._pump(client_reader, server_writer, self._flowing[UP]),
            self._pump(server_reader, client_writer, self._flowing[DOWN]),
            return_exceptions=True,
        )
        for writer in (client_writer, server_writer):
            self._transports.discard(writer.transport)
            writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event) -> None:
        try:
            while chunk := await reader.read(CHUNK):
                await flowing.wait()
                if self._latency:
                    await asyncio.sleep(self._latency)
                if self._bytes_per_second:
                    await asyncio.sleep(len(chunk) / self._bytes_per_second)
                await flowing.wait()  # a stall that began meanwhile holds this chunk too
                writer.write(chunk)
                await writer.drain()
        finally:
            if writer.can_write_eof():
                with contextlib.suppress(OSError):
                    writer.write_eof()


def _reset(transport: asyncio.BaseTransport) -> None:
    """Close with a TCP reset: SO_LINGER 0, then abort (no FIN, no flush)."""
    sock = transport.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    if isinstance(transport, asyncio.Transport):
        transport.abort()
