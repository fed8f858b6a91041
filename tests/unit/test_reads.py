"""The readers of `reads.py` and `frames.read_delivery` / `read_confirm` give what pika's own parser gives.

Each stream is frames marshalled by pika: deliveries of the process's own consumer (with and without a message id,
empty bodies, bodies split over many frames, non-ASCII names), deliveries the reader must leave to pika (another
consumer, another channel, other properties, a consumer tag that is not UTF-8), heartbeats and confirms; for the
confirm reader, acks and nacks on the publisher's channel and on another, among returned messages and other
frames. The same stream, cut at random places, goes once through pika's parser frame by frame and once through the
reader; what reaches the consumer or the confirm handler, what reaches pika's dispatch, and pika's byte and frame
counts must be the same.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from pika import frame, spec
from pika.channel import ContentFrameAssembler

from channels_rabbitmq_threaded._io.frames import Confirm, Delivery, Unread, read_confirm, read_delivery
from channels_rabbitmq_threaded._io.reads import WAIT_LIMIT, ConfirmReader, DeliveryReader, InputReader

CONSUMING = 1  # the consuming channel's number
OWN = "ctag1.own"  # the process's own consumer
ALPHABET = "abcxyz09.-_!é€"

Event = tuple[Any, ...]


class FakeChannel:
    """What the reader asks of a pika channel: its consumers, and those it cancelled."""

    def __init__(self, number: int) -> None:
        self.channel_number = number
        self._consumers: dict[str, Any] = {OWN: None, "ctag1.normal": None}
        self._cancelled: set[str] = set()


class FakeConnection:
    """What the reader asks of a pika connection. `_process_frame` stands in for pika's dispatch: content frames go
    through pika's own assembler (as its channels do), every other frame is recorded by name."""

    def __init__(self) -> None:
        self._frame_buffer = b""
        self.bytes_received = 0
        self.frames_received = 0
        self._channels = {CONSUMING: FakeChannel(CONSUMING), 2: FakeChannel(2)}
        self._assemblers: dict[int, ContentFrameAssembler] = {}
        self.events: list[Event] = []
        self.dispatched = 0  # frames that reached pika's dispatch

    def _process_frame(self, value: Any) -> None:
        self.frames_received += 1
        self.dispatched += 1
        if isinstance(value, frame.Heartbeat):
            self.events.append(("heartbeat",))
            return
        if isinstance(value, frame.Method) and isinstance(value.method, (spec.Basic.Ack, spec.Basic.Nack)):
            method = value.method
            self.on_confirm(
                method.delivery_tag, method.multiple, isinstance(method, spec.Basic.Ack), value.channel_number
            )
            return
        if isinstance(value, frame.Method) and not spec.has_content(value.method.INDEX):
            self.events.append(("method", value.channel_number, value.method.NAME))
            return
        assembler = self._assemblers.setdefault(value.channel_number, ContentFrameAssembler())
        assembled = assembler.process(value)
        if assembled:
            method, header, body = assembled
            if isinstance(method.method, spec.Basic.Return):
                self.events.append(("returned", value.channel_number, method.method.routing_key, body))
                return
            self.record(value.channel_number, method.method.delivery_tag, method.method.consumer_tag, header, body)

    def record(self, channel: int, tag: int, consumer_tag: Any, header: Any, body: bytes) -> None:
        self.events.append(("delivery", channel, tag, consumer_tag, header.properties.message_id, body))

    def on_confirm(self, tag: int, multiple: bool, acked: bool, channel: int = CONSUMING) -> None:
        """pika's confirm callback, and the confirm reader's (the publisher's channel is number CONSUMING here too)."""
        self.events.append(("confirm", channel, tag, multiple, acked))

    def on_delivery(self, channel: Any, tag: int, consumer_tag: str, message_id: str | None, body: bytes) -> None:
        """The reader's handler: recorded as pika's consumer would have seen it."""
        self.events.append(("delivery", channel.channel_number, tag, consumer_tag, message_id, body))


def pikas_parse(connection: FakeConnection, data: bytes) -> None:
    """The oracle: pika's parser, one frame at a time, over the input so far."""
    connection._frame_buffer += data
    while connection._frame_buffer:
        consumed, value = frame.decode_frame(connection._frame_buffer)
        if value is None:
            return
        connection._frame_buffer = connection._frame_buffer[consumed:]
        connection.bytes_received += consumed
        connection._process_frame(value)


def delivery(
    channel: int,
    consumer_tag: str,
    tag: int,
    properties: spec.BasicProperties,
    body: bytes,
    frame_max: int,
    **fields: Any,
) -> bytes:
    """A delivery's frames as RabbitMQ sends them, marshalled by pika."""
    method = spec.Basic.Deliver(
        consumer_tag=consumer_tag, delivery_tag=tag, **({"exchange": "", "routing_key": "q"} | fields)
    )
    pieces = [frame.Method(channel, method).marshal(), frame.Header(channel, len(body), properties).marshal()]
    largest = frame_max - spec.FRAME_HEADER_SIZE - spec.FRAME_END_SIZE
    for n in range(math.ceil(len(body) / largest)):
        pieces.append(frame.Body(channel, body[n * largest : (n + 1) * largest]).marshal())
    return b"".join(pieces)


def a_name(rng: random.Random, longest: int = 30) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, longest)))


def a_delivery(rng: random.Random, tag: int, frame_max: int, kind: str) -> bytes:
    body = rng.randbytes(rng.choice((0, rng.randrange(1, 100), rng.randrange(100, 3 * frame_max))))
    message_id = rng.choice((None, a_name(rng)))
    properties = spec.BasicProperties(message_id=message_id)
    channel, consumer_tag = CONSUMING, OWN
    if kind == "other consumer":
        consumer_tag = "ctag1.normal"
    elif kind == "other channel":
        channel = 2
    elif kind == "other properties":
        properties = spec.BasicProperties(message_id=message_id, content_type="application/x", headers={"a": 1})
    fields = {"redelivered": rng.random() < 0.2, "exchange": a_name(rng), "routing_key": a_name(rng, 80)}
    return delivery(channel, consumer_tag, tag, properties, body, frame_max, **fields)


def a_stream(rng: random.Random, frame_max: int) -> tuple[bytes, int]:
    """Random frames, and how many of them are whole deliveries the layer reads."""
    pieces, own = [], 0
    for tag in range(1, rng.randrange(1, 40)):
        kind = rng.choice(("own", "own", "own", "other consumer", "other channel", "other properties", "beat", "ack"))
        if kind == "beat":
            pieces.append(frame.Heartbeat().marshal())
        elif kind == "ack":
            pieces.append(frame.Method(CONSUMING, spec.Basic.Ack(delivery_tag=tag, multiple=True)).marshal())
        else:
            pieces.append(a_delivery(rng, tag, frame_max, kind))
            own += kind == "own"
    return b"".join(pieces), own


def cut(rng: random.Random, data: bytes) -> list[bytes]:
    """`data` in random pieces, as socket reads might bring it."""
    points = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(0, 12)))) if len(data) > 1 else []
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def delivery_reader(connection: FakeConnection) -> DeliveryReader:
    reader = DeliveryReader(connection, connection.on_delivery)
    reader.consuming(CONSUMING, OWN)
    return reader


def confirm_reader(connection: FakeConnection) -> ConfirmReader:
    reader = ConfirmReader(connection, connection.on_confirm)
    reader.confirming(CONSUMING)
    return reader


def read_through(
    stream: list[bytes], make: Callable[[FakeConnection], InputReader] | None = delivery_reader
) -> tuple[FakeConnection, Any]:
    """`stream`'s pieces through a reader made by `make`, or through pika's parser alone (`make=None`)."""
    connection = FakeConnection()
    reader = make(connection) if make else None
    for piece in stream:
        if reader:
            connection._on_data_available(piece)  # type: ignore[attr-defined]
        else:
            pikas_parse(connection, piece)
    return connection, reader


def test_the_reader_gives_what_pikas_parser_gives_on_random_streams() -> None:
    rng = random.Random(24)
    for _ in range(400):
        data, _own = a_stream(rng, rng.choice((64, 300, 4096, 131072)))
        pikas, _ = read_through(cut(rng, data), make=None)
        ours, _reader = read_through(cut(rng, data))
        assert ours.events == pikas.events
        assert (ours.bytes_received, ours.frames_received) == (pikas.bytes_received, pikas.frames_received)
        assert ours.bytes_received == len(data)
        assert ours._frame_buffer == pikas._frame_buffer == b""


def test_whole_deliveries_of_the_own_consumer_never_reach_pikas_dispatch() -> None:
    rng = random.Random(7)
    for _ in range(100):
        frame_max = rng.choice((64, 4096))
        data = b"".join(a_delivery(rng, tag, frame_max, "own") for tag in range(1, 30))
        connection, reader = read_through([data])
        assert reader is not None and reader.taken == 29
        assert connection.dispatched == 0
        assert [event[2] for event in connection.events] == list(range(1, 30))


def test_a_delivery_cut_by_a_read_waits_for_its_rest() -> None:
    data = delivery(CONSUMING, OWN, 1, spec.BasicProperties(message_id="m"), b"x" * 5000, 4096)
    for at in range(1, len(data)):
        connection, reader = read_through([data[:at], data[at:]])
        assert reader is not None
        assert (reader.taken, connection.dispatched) == (1, 0), f"cut at byte {at}"
        assert connection.events == [("delivery", CONSUMING, 1, OWN, "m", b"x" * 5000)]


def test_a_delivery_larger_than_the_wait_goes_to_pika_frame_by_frame() -> None:
    body = bytes(WAIT_LIMIT + 10_000)
    data = delivery(CONSUMING, OWN, 1, spec.BasicProperties(message_id="m"), body, 131072)
    connection, reader = read_through([data[i : i + 4096] for i in range(0, len(data), 4096)])
    assert reader is not None and reader.taken == 0
    assert connection.events == [("delivery", CONSUMING, 1, OWN, "m", body)]


@pytest.mark.parametrize("state", ["cancelled", "gone", "another tag"])
def test_deliveries_pika_would_not_give_the_consumer_are_left_to_pika(state: str) -> None:
    data = delivery(CONSUMING, OWN, 1, spec.BasicProperties(), b"hello", 4096)
    connection = FakeConnection()
    reader = DeliveryReader(connection, connection.on_delivery)
    reader.consuming(CONSUMING, OWN if state != "another tag" else "ctag1.later")
    if state == "cancelled":
        connection._channels[CONSUMING]._cancelled.add(OWN)
    elif state == "gone":
        del connection._channels[CONSUMING]._consumers[OWN]
    connection._on_data_available(data)  # type: ignore[attr-defined]
    assert reader.taken == 0
    assert connection.dispatched == 3  # pika has it, and does what it does with such a delivery


def test_the_reader_stops_where_pika_empties_its_input() -> None:
    class Closing(FakeConnection):
        def _process_frame(self, value: Any) -> None:
            super()._process_frame(value)
            if isinstance(value, frame.Heartbeat):
                self._frame_buffer = b""  # as pika does when the connection closes under a frame's handling

    connection = Closing()
    reader = DeliveryReader(connection, connection.on_delivery)
    reader.consuming(CONSUMING, OWN)
    own = delivery(CONSUMING, OWN, 1, spec.BasicProperties(), b"a", 4096)
    connection._on_data_available(own + frame.Heartbeat().marshal() + own)  # type: ignore[attr-defined]
    assert [event[0] for event in connection.events] == ["delivery", "heartbeat"]
    assert connection._frame_buffer == b""


def test_read_delivery_reads_pikas_fields_or_says_why_not() -> None:
    rng = random.Random(11)
    for _ in range(2_000):
        frame_max = rng.choice((64, 300, 4096))
        kind = rng.choice(("own", "own", "other consumer", "other channel", "other properties"))
        data = a_delivery(rng, rng.randrange(1, 2**64), frame_max, kind)
        pikas, _ = read_through([data], make=None)
        (_, _channel, tag, consumer_tag, message_id, body) = pikas.events[0]
        read = read_delivery(b"junk" + data, 4, CONSUMING)
        if kind in ("own", "other consumer"):
            assert read == Delivery(len(data) + 4, 2 + math.ceil(len(body) / (frame_max - 8)), consumer_tag, tag,
                                    message_id, body)  # fmt: skip
        else:
            assert read is Unread.OTHER
        prefix = data[: rng.randrange(0, len(data))]
        assert read_delivery(prefix, 0, CONSUMING) in (Unread.OTHER, Unread.NOT_WHOLE)


def test_read_delivery_leaves_what_is_not_a_delivery_it_reads_to_pika() -> None:
    good = delivery(CONSUMING, OWN, 1, spec.BasicProperties(message_id="m"), b"body", 4096)
    assert isinstance(read_delivery(good, 0, CONSUMING), Delivery)
    wrong_end = good[:-1] + b"\x00"
    assert read_delivery(wrong_end, 0, CONSUMING) is Unread.OTHER
    not_utf8 = delivery(CONSUMING, "x", 1, spec.BasicProperties(), b"", 4096).replace(b"\x01x", b"\x01\xff")
    assert read_delivery(not_utf8, 0, CONSUMING) is Unread.OTHER
    assert read_delivery(frame.Heartbeat().marshal(), 0, CONSUMING) is Unread.OTHER
    method = len(frame.Method(CONSUMING, spec.Basic.Deliver(OWN, 1, False, "", "q")).marshal())
    assert read_delivery(good[: method + 3], 0, CONSUMING) is Unread.NOT_WHOLE  # the method whole, not the header
    assert read_delivery(good[: method - 1], 0, CONSUMING) is Unread.OTHER  # pika waits for the method frame too


def a_confirm_stream(rng: random.Random) -> tuple[bytes, int]:
    """Random frames a publisher connection receives, and how many are confirms of the publisher's channel."""
    pieces, confirms = [], 0
    for _ in range(rng.randrange(1, 60)):
        kind = rng.choice(("ack", "ack", "ack", "nack", "other channel", "returned", "beat", "other method"))
        channel = 2 if kind == "other channel" else CONSUMING
        if kind in ("ack", "other channel"):
            method: Any = spec.Basic.Ack(delivery_tag=rng.randrange(1, 2**64), multiple=rng.random() < 0.5)
            pieces.append(frame.Method(channel, method).marshal())
        elif kind == "nack":
            method = spec.Basic.Nack(rng.randrange(1, 2**64), rng.random() < 0.5, rng.random() < 0.5)
            pieces.append(frame.Method(channel, method).marshal())
        elif kind == "returned":
            method = spec.Basic.Return(312, "NO_ROUTE", "direct", a_name(rng))
            body = rng.randbytes(rng.randrange(0, 300))
            pieces += [
                frame.Method(channel, method).marshal(),
                frame.Header(channel, len(body), spec.BasicProperties(message_id="m")).marshal(),
                frame.Body(channel, body).marshal() if body else b"",
            ]
        elif kind == "beat":
            pieces.append(frame.Heartbeat().marshal())
        else:
            pieces.append(frame.Method(channel, spec.Exchange.DeclareOk()).marshal())
        confirms += kind in ("ack", "nack")
    return b"".join(pieces), confirms


def test_the_confirm_reader_gives_what_pikas_parser_gives_on_random_streams() -> None:
    rng = random.Random(120)
    for _ in range(400):
        data, confirms = a_confirm_stream(rng)
        pikas, _ = read_through(cut(rng, data), make=None)
        ours, _reader = read_through(cut(rng, data), confirm_reader)
        assert ours.events == pikas.events
        assert (ours.bytes_received, ours.frames_received) == (pikas.bytes_received, pikas.frames_received)
        assert ours._frame_buffer == b""
        whole, whole_reader = read_through([data], confirm_reader)
        assert whole_reader.taken == confirms and whole.events == pikas.events


def test_confirms_of_a_channel_pika_no_longer_holds_are_left_to_pika() -> None:
    connection = FakeConnection()
    reader = ConfirmReader(connection, connection.on_confirm)
    reader.confirming(CONSUMING)
    del connection._channels[CONSUMING]  # closed: pika drops what comes for it
    connection._on_data_available(frame.Method(CONSUMING, spec.Basic.Ack(7, False)).marshal())  # type: ignore[attr-defined]
    assert reader.taken == 0 and connection.dispatched == 1


def test_read_confirm_reads_whole_acks_and_nacks_of_its_channel_only() -> None:
    ack = frame.Method(CONSUMING, spec.Basic.Ack(2**64 - 1, True)).marshal()
    nack = frame.Method(CONSUMING, spec.Basic.Nack(5, False, True)).marshal()
    assert read_confirm(b"x" + ack, 1, CONSUMING) == Confirm(len(ack) + 1, 2**64 - 1, True, True)
    assert read_confirm(nack, 0, CONSUMING) == Confirm(len(nack), 5, False, False)
    assert read_confirm(ack, 0, 2) is None  # another channel
    assert read_confirm(ack[:-1], 0, CONSUMING) is None  # not all here: pika waits for it as well
    assert read_confirm(ack[:-1] + b"\x00", 0, CONSUMING) is None  # a wrong end marker: pika raises
    assert read_confirm(frame.Method(CONSUMING, spec.Basic.Reject(5, True)).marshal(), 0, CONSUMING) is None
