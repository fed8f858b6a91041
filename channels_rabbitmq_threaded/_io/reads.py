"""How RabbitMQ's bytes reach the layer: the places where it reads a connection's input before pika does.

Theory of operation
-------------------
pika 1.4 parses every frame it reads into objects (a method, a properties object, a frame around each), looks up a
callback for it, and hands a delivery's three frames to its channel's assembler, which calls the consumer's
callback with the method, the properties and the body. It also copies what is left of its input after each frame.
An `InputReader` stands in for a connection's `_on_data_available`: it walks the input by offset and, where what
lies there is its to read, calls the layer's handler with the fields at once. On the consumer connection,
`DeliveryReader` reads whole deliveries of the process's own consumer (`frames.read_delivery` says which); on the
publisher connection, `ConfirmReader` reads the broker's confirms of the publisher's channel (`frames.read_confirm`),
which pika would have parsed into a method and a frame object and passed, through its callback look-up, to the same
handler. Every other frame (RPC answers, heartbeats, returned messages, deliveries of other consumers, other
properties, a delivery not yet whole) goes to pika's own parser and dispatch, one frame at a time, in the order it
came, so pika sees what it always saw, less what was taken here. A delivery the reader would take whose frames are
not all in yet (a read of the socket ends inside it) waits for the next read, while the input is at most
`WAIT_LIMIT` bytes; past that, pika takes its frames as they come, as it always did.

A delivery is taken only where pika would have called the same consumer: the channel is the consuming one, its
consumer tag is the process's own, pika still holds that consumer and has not cancelled it. A confirm is taken
only on the publisher's channel once it is in confirm mode, while pika still holds that channel (it drops the
frames of a channel it closed). The byte and frame counts pika keeps (its heartbeat checker reads them) grow as
they would.

Rules
-----
* Runs in the I/O thread, inside pika's transport's read, like the method it stands in for.
* Relies on pika 1.4's `Connection._on_data_available`, `_frame_buffer`, `_process_frame`, `_channels`,
  `bytes_received` and `frames_received`, and on its channels' `_consumers` and `_cancelled`; every test that
  sends or receives through the broker runs through them, and `tests/broker/test_reads.py` counts what was taken
  here.
* If pika empties its input meanwhile (the connection closing while a frame is handled), the reader stops there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pika.frame import decode_frame

from .frames import Unread, frame_size, read_confirm, read_delivery

WAIT_LIMIT = 128 * 1024  # bytes: a delivery not yet whole waits for its rest here while the input is no larger
WAIT = -1  # `_take`'s answer when what starts at the offset is to be read here once the rest has come

OnDelivery = Callable[[Any, int, str, "str | None", bytes], None]  # (channel, tag, consumer tag, message id, body)
OnConfirm = Callable[[int, bool, bool], None]  # (delivery tag, multiple, acked)


class InputReader:
    """Reads a connection's input in place of pika's `_on_data_available`: what `_take` takes is handled there, every
    other frame goes to pika's parser and dispatch, one at a time, in order; see the module's theory of operation."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._channel_number = 0  # the channel read here; 0 while there is none (every frame goes to pika)
        self.taken = 0  # what was read here, not by pika (a figure for the tests)
        connection._on_data_available = self.data_received

    def data_received(self, data: bytes) -> None:
        """Bytes from the socket."""
        connection = self._connection
        buffer = connection._frame_buffer + data if connection._frame_buffer else data
        connection._frame_buffer = buffer
        at = 0
        while at < len(buffer):
            end = self._take(buffer, at) if self._channel_number else at
            if end == WAIT:
                break  # the rest is on its way
            if end > at:
                at = end
            else:
                consumed, frame = decode_frame(buffer[at : at + frame_size(buffer, at)])
                if frame is None:
                    break  # not all here yet
                at += consumed
                connection.bytes_received += consumed
                connection._process_frame(frame)
            if connection._frame_buffer is not buffer:
                return  # pika emptied its input: the connection is closing
        connection._frame_buffer = buffer[at:]

    def _take(self, buffer: bytes, at: int) -> int:
        """Read and handle what starts at `at`, if it is this reader's to read: the offset past it (pika's counts
        kept); `at` when it is pika's; `WAIT` when it is to be read here once the rest has come."""
        raise NotImplementedError

    def _counted(self, size: int, frames: int) -> None:
        """Count what was read here as pika counts what it reads (its heartbeat checker reads the bytes)."""
        self._connection.bytes_received += size
        self._connection.frames_received += frames
        self.taken += 1


class DeliveryReader(InputReader):
    """The consumer connection's input: whole deliveries of the process's own consumer go to `on_delivery`."""

    def __init__(self, connection: Any, on_delivery: OnDelivery) -> None:
        super().__init__(connection)
        self._on_delivery = on_delivery
        self._consumer_tag = ""

    def consuming(self, channel_number: int, consumer_tag: str) -> None:
        """The process's own consumer: deliveries to `consumer_tag` on `channel_number` are read here."""
        self._channel_number = channel_number
        self._consumer_tag = consumer_tag

    def _take(self, buffer: bytes, at: int) -> int:
        read = read_delivery(buffer, at, self._channel_number)
        if read is Unread.NOT_WHOLE:
            return WAIT if len(buffer) - at <= WAIT_LIMIT else at
        if read is Unread.OTHER or read.consumer_tag != self._consumer_tag:
            return at
        channel = self._connection._channels.get(self._channel_number)
        if channel is None or read.consumer_tag not in channel._consumers or read.consumer_tag in channel._cancelled:
            return at  # pika would not give it to the consumer: it does what it does with such a delivery
        self._counted(read.end - at, read.frames)
        self._on_delivery(channel, read.delivery_tag, read.consumer_tag, read.message_id, read.body)
        return read.end


class ConfirmReader(InputReader):
    """The publisher connection's input: the broker's confirms (`basic.ack`, `basic.nack`) go to `on_confirm`."""

    def __init__(self, connection: Any, on_confirm: OnConfirm) -> None:
        super().__init__(connection)
        self._on_confirm = on_confirm

    def confirming(self, channel_number: int) -> None:
        """The publisher's channel is in confirm mode: its confirms are read here."""
        self._channel_number = channel_number

    def _take(self, buffer: bytes, at: int) -> int:
        read = read_confirm(buffer, at, self._channel_number)
        if read is None or self._channel_number not in self._connection._channels:
            return at  # not a confirm, or its channel is gone (pika drops it then)
        self._counted(read.end - at, 1)
        self._on_confirm(read.delivery_tag, read.multiple, read.acked)
        return read.end
