"""How the layer's bytes leave for RabbitMQ: the places where it reaches into pika's connection and transport.

Theory of operation
-------------------
pika 1.4 hands every frame it marshals to its transport as a separate chunk (the layer's publishes and acks go as
one chunk each, `emit`), and its writer sends the chunks one `send` each when the socket turns writable. A pass of
the I/O thread that publishes 50 messages would make 50 system calls, and as many TCP segments for the broker to
read.
Three functions here, each confined to pika's output, its transport's buffer and its writer:

* `join_writes`: before pika's writer runs, the chunks waiting in the transport's buffer are joined into pieces of
  at most `JOIN_LIMIT` bytes (a chunk already that large stays as it is), so a pass's frames leave in one `send`.
  The buffer keeps its order and its byte count; everything else (partial sends, errors, TLS) stays pika's.
* `send_at_once`: a caller that holds the pika lock (`IOThread.publish_now`) frames a publish, or the I/O thread
  frames the acks of a pass (`Deliveries`), and, when nothing is buffered ahead and the connection is plain TCP,
  puts the bytes on the socket in one non-blocking send instead of waiting for the I/O thread to wake for
  writability. Whatever the socket does not take goes to pika's buffer.
* `emit`: the frames the layer marshalled (a publish's, `frames.publish_frames`; an ack, `frames.ack_frame`) go
  into pika's output as pika's own framing would put them (its byte count, which its heartbeat checker reads,
  included).

Rules
-----
* Runs in the I/O thread, or on a caller's thread that holds the pika lock; never blocks.
* Relies on three attributes of pika 1.4's transports (`_tx_buffers`, `_produce`, `_sock`) and two of its
  connections (`_adapter_emit_data`, `_output_marshaled_frames`); every test that sends through the broker runs
  through them, and `tests/broker/test_writes.py` counts the sends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pika.adapters.utils.io_services_utils import _AsyncPlaintextTransport  # type: ignore[attr-defined]

JOIN_LIMIT = 128 * 1024  # bytes: what one send may carry; joining more would only copy what the socket refuses


def joined(chunks: Iterable[bytes], limit: int = JOIN_LIMIT) -> Iterator[bytes]:
    """`chunks` in order, consecutive ones joined while the piece stays within `limit` bytes."""
    piece: list[bytes] = []
    size = 0
    for chunk in chunks:
        if piece and size + len(chunk) > limit:
            yield piece[0] if len(piece) == 1 else b"".join(piece)
            piece, size = [], 0
        piece.append(chunk)
        size += len(chunk)
    if piece:
        yield piece[0] if len(piece) == 1 else b"".join(piece)


def join_writes(connection: Any) -> None:
    """Make the transport of `connection` (open, so it has one) join its waiting chunks before each write."""
    transport = connection._transport
    buffers: deque[bytes] = transport._tx_buffers
    produce: Callable[[], None] = transport._produce

    def produce_joined() -> None:
        if len(buffers) > 1:
            pieces = list(joined(buffers))
            buffers.clear()
            buffers.extend(pieces)
        produce()

    transport._produce = produce_joined


def send_at_once(connection: Any, frame: Callable[[], None]) -> None:
    """Run `frame` (which frames methods on `connection`) and put its bytes on the socket at once if it can."""
    transport = getattr(connection, "_transport", None)
    if not isinstance(transport, _AsyncPlaintextTransport) or transport.get_write_buffer_size():
        frame()
        return
    chunks: list[bytes] = []
    connection._adapter_emit_data = chunks.append
    try:
        frame()
    finally:
        del connection._adapter_emit_data
    data = b"".join(chunks)
    try:
        sent = transport._sock.send(data) if data else 0
    except OSError:
        sent = 0  # pika's writer meets the same error on the I/O thread, and handles it there
    if sent < len(data):
        connection._adapter_emit_data(data[sent:])


def emit(connection: Any, frames: bytes) -> None:
    """Put `frames` (whole frames, marshalled) into the output of `connection`, as pika does with its own."""
    connection._output_marshaled_frames((frames,))
