"""How RabbitMQ's bytes reach the layer: the place where it reads the consumer connection's input before pika does.

Theory of operation
-------------------
pika 1.4 parses every frame it reads into objects (a method, a properties object, a frame around each), looks up a
callback for it, and hands a delivery's three frames to its channel's assembler, which calls the consumer's
callback with the method, the properties and the body. It also copies what is left of its input after each frame.
`DeliveryReader` stands in for the connection's `_on_data_available`: it walks the input by offset and, where a
whole delivery for the process's own consumer lies there (`frames.read_delivery` says which), calls the layer's
handler with its fields at once. Every other frame (confirms, RPC answers, heartbeats, deliveries of other
consumers, other properties, a delivery not yet whole) goes to pika's own parser and dispatch, one frame at a time,
in the order it came, so pika sees what it always saw, less the deliveries taken here. A delivery the reader would
take whose frames are not all in yet (a read of the socket ends inside it) waits for the next read, while the
input is at most `WAIT_LIMIT` bytes; past that, pika takes its frames as they come, as it always did.

A delivery is taken only where pika would have called the same consumer: the channel is the consuming one, its
consumer tag is the process's own, pika still holds that consumer and has not cancelled it. The byte and frame
counts pika keeps (its heartbeat checker reads them) grow as they would.

Rules
-----
* Runs in the I/O thread, inside pika's transport's read, like the method it stands in for.
* Relies on pika 1.4's `Connection._on_data_available`, `_frame_buffer`, `_process_frame`, `_channels`,
  `bytes_received` and `frames_received`, and on its channels' `_consumers` and `_cancelled`; every test that
  receives through the broker runs through them, and `tests/broker/test_reads.py` counts what was taken here.
* If pika empties its input meanwhile (the connection closing while a frame is handled), the reader stops there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pika.frame import decode_frame

from .frames import Delivery, Unread, read_delivery

WAIT_LIMIT = 128 * 1024  # bytes: a delivery not yet whole waits for its rest here while the input is no larger

OnDelivery = Callable[[Any, int, str, "str | None", bytes], None]  # (channel, tag, consumer tag, message id, body)


class DeliveryReader:
    """Reads the consumer connection's input; see the module's theory of operation."""

    def __init__(self, connection: Any, on_delivery: OnDelivery) -> None:
        self._connection = connection
        self._on_delivery = on_delivery
        self._channel_number = 0  # the consuming channel's number; 0 while nothing is consumed (no delivery is read)
        self._consumer_tag = ""
        self.taken = 0  # deliveries read here, not by pika (a figure for the tests)
        connection._on_data_available = self.data_received

    def consuming(self, channel_number: int, consumer_tag: str) -> None:
        """The process's own consumer: deliveries to `consumer_tag` on `channel_number` are read here."""
        self._channel_number = channel_number
        self._consumer_tag = consumer_tag

    def data_received(self, data: bytes) -> None:
        """Bytes from the socket: whole deliveries to the handler, every other frame to pika, in order."""
        connection = self._connection
        buffer = connection._frame_buffer + data if connection._frame_buffer else data
        connection._frame_buffer = buffer
        at = 0
        while at < len(buffer):
            read = read_delivery(buffer, at, self._channel_number) if self._channel_number else Unread.OTHER
            if read is Unread.NOT_WHOLE and len(buffer) - at <= WAIT_LIMIT:
                break  # the rest of the delivery is on its way
            channel = self._consumer_channel(read.consumer_tag) if isinstance(read, Delivery) else None
            if isinstance(read, Delivery) and channel is not None:
                connection.bytes_received += read.end - at
                connection.frames_received += read.frames
                at = read.end
                self.taken += 1
                self._on_delivery(channel, read.delivery_tag, read.consumer_tag, read.message_id, read.body)
            else:
                consumed, frame = decode_frame(buffer[at : at + _frame_size(buffer, at)])
                if frame is None:
                    break  # not all here yet
                at += consumed
                connection.bytes_received += consumed
                connection._process_frame(frame)
            if connection._frame_buffer is not buffer:
                return  # pika emptied its input: the connection is closing
        connection._frame_buffer = buffer[at:]

    def _consumer_channel(self, consumer_tag: str) -> Any:
        """The pika channel whose consumer would get this delivery, if it is the process's own; else None."""
        if consumer_tag != self._consumer_tag:
            return None
        channel = self._connection._channels.get(self._channel_number)
        if channel is None or consumer_tag not in channel._consumers or consumer_tag in channel._cancelled:
            return None
        return channel


def _frame_size(buffer: bytes, at: int) -> int:
    """The bytes of the frame that starts at `at` as its head says (all that is left if the head is not there)."""
    if len(buffer) - at < 7:
        return len(buffer) - at
    return 8 + int.from_bytes(buffer[at + 3 : at + 7], "big")
