"""Nobody left waiting, by construction: every request kind through every link event, without a broker.

The two sides of the I/O thread run against an in-memory stand-in for a pika channel that records each RPC and its
callback (the broker never answers unless the test says so) and a stand-in I/O loop that only records timers. For
each request that waits on an RPC (a bind, a purge, a normal queue's declare, a confirm) and each way its link can
end (lost before the RPC, lost during it, stopping, stopped, the thread dying), the caller must be answered exactly
once, a late answer of the broker must not answer it again, and the side must work afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pika
import pytest

from channels_rabbitmq_threaded._bridge.requests import Flush, GroupAdd, Publish
from channels_rabbitmq_threaded._config import Settings
from channels_rabbitmq_threaded._io.consumer import ConsumerSide
from channels_rabbitmq_threaded._io.inflight import Ending, InFlight, Waiting, exception_for
from channels_rabbitmq_threaded._io.ledgers import DropLog, UnwaitedPublishes
from channels_rabbitmq_threaded._io.link import CONNECTING, READY, STOPPED
from channels_rabbitmq_threaded._io.publisher import PublisherSide
from channels_rabbitmq_threaded._routing.envelope import Recipient, encode
from channels_rabbitmq_threaded.errors import BrokerUnavailable, ConfirmLost, LayerClosed, RabbitmqLayerError


class Answers:
    """A reply that counts how often it is answered."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.errors: list[BaseException] = []

    def resolve(self, value: Any = None) -> None:
        self.results.append(value)

    def fail(self, exc: BaseException) -> None:
        self.errors.append(exc)

    @property
    def count(self) -> int:
        return len(self.results) + len(self.errors)


class FakeLoop:
    """The I/O loop's timers, recorded and never fired."""

    def call_later(self, delay: float, callback: Any) -> object:
        return object()

    def remove_timeout(self, handle: object) -> None:
        pass


@dataclass
class FakeChannel:
    """A pika channel that records every RPC and its callback; the broker answers only when the test says so."""

    is_open: bool = True
    rpcs: list[tuple[str, Any]] = field(default_factory=list)
    acks: list[int] = field(default_factory=list)

    def _record(self, name: str, callback: Any = None) -> None:
        self.rpcs.append((name, callback))

    def queue_bind(self, *args: Any, callback: Any = None, **kwargs: Any) -> None:
        self._record("queue_bind", callback)

    def queue_unbind(self, *args: Any, callback: Any = None, **kwargs: Any) -> None:
        self._record("queue_unbind", callback)

    def queue_purge(self, queue: str, callback: Any = None) -> None:
        self._record("queue_purge", callback)

    def queue_declare(self, *args: Any, callback: Any = None, **kwargs: Any) -> None:
        self._record("queue_declare", callback)

    channel_number: int = 1

    @property
    def connection(self) -> FakeConnection:
        return FakeConnection(self)

    def basic_ack(self, tag: int) -> None:
        self.acks.append(tag)

    def answer_last(self, name: str) -> None:
        """The broker's late answer to the last RPC called `name` (pika would drop it after a cut: we do not)."""
        callback = next(callback for rpc, callback in reversed(self.rpcs) if rpc == name)
        callback(None)


@dataclass
class FakeConnection:
    """The publisher's connection, as `writes.emit` sees it: a publish's frames arrive here, recorded as one RPC."""

    channel: FakeChannel
    params: Any = field(default_factory=lambda: SimpleNamespace(frame_max=131072))

    def _output_marshaled_frames(self, frames: Any) -> None:
        self.channel.rpcs.append(("basic_publish", None))


class FakeHub:
    def __init__(self) -> None:
        self.delivered: list[tuple[int, str]] = []

    def deliver(self, tag: int, recipient: Recipient, message: dict[str, Any]) -> None:
        self.delivered.append((tag, recipient.name))

    def flushed_by(self, origin: object) -> None: ...

    def deliveries_lost(self) -> None: ...

    def run_unparked(self, requests: list) -> None: ...

    def stopped(self) -> None: ...

    def local_groups(self) -> list[str]:
        return []

    def waiting_on(self, channel: str) -> int:
        return 0

    def waiting_channels(self) -> list[str]:
        return []


SETTINGS = Settings.from_options()


def sides() -> tuple[ConsumerSide, PublisherSide, FakeHub]:
    hub, loop = FakeHub(), FakeLoop()
    drops = DropLog(loop)
    consumer = ConsumerSide(SETTINGS, loop, "channels_test", hub, drops)
    publisher = PublisherSide(SETTINGS, loop, "channels_test", hub, drops, UnwaitedPublishes(drops, None))
    for side in (consumer, publisher):
        side.link.channel = FakeChannel()
        side.link.state = READY
    return consumer, publisher, hub


def issue(kind: Waiting, consumer: ConsumerSide, publisher: PublisherSide, reply: Answers) -> str:
    """Send the request that waits for `kind`; return the name of the RPC it waits on."""
    if kind is Waiting.BIND:
        consumer.bindings.add_member(GroupAdd(reply=reply, group="g", channel="specific.channels_test!1"), first=True)
        return "queue_bind"
    if kind is Waiting.PURGE:
        consumer.purge(Flush(reply=reply), [])
        return "queue_purge"
    declare = ("channels.jobs", {}) if kind is Waiting.DECLARE else None
    publisher.publish(Publish(reply=reply, routing_key="q", body=b"x", declare=declare))
    return "queue_declare" if kind is Waiting.DECLARE else "basic_publish"


def link_of(kind: Waiting, consumer: ConsumerSide, publisher: PublisherSide) -> Any:
    return consumer.link if kind in (Waiting.BIND, Waiting.PURGE) else publisher.link


EVENTS = ["lost during the RPC", "stopped", "thread death"]


@pytest.mark.parametrize("kind", list(Waiting))
@pytest.mark.parametrize("event", EVENTS)
def test_every_waiting_request_is_answered_once_whatever_ends_its_connection(kind: Waiting, event: str) -> None:
    consumer, publisher, _ = sides()
    reply = Answers()
    rpc = issue(kind, consumer, publisher, reply)
    link = link_of(kind, consumer, publisher)
    channel = link.channel
    assert reply.count == 0 and len(link.inflight) == 1
    if event == "lost during the RPC":
        link._lost("the connection was cut", "StreamLostError", "link_lost")
        if kind is not Waiting.PURGE:  # parked to be sent again; no new connection in time
            assert reply.count == 0 and len(link.parked) == 1
            link._on_park_timeout(link.parked.take_all()[0])
        expected: type[BaseException] = ConfirmLost if kind is Waiting.CONFIRM else BrokerUnavailable
    elif event == "stopped":
        link.connection = None
        link.stop()
        assert link.state is STOPPED
        expected = LayerClosed
    else:
        link.inflight.fail_all(RabbitmqLayerError("the I/O thread died"))
        expected = RabbitmqLayerError
    assert reply.count == 1 and isinstance(reply.errors[0], expected), reply.errors
    assert len(link.inflight) == 0
    if rpc != "basic_publish":
        channel.answer_last(rpc)  # a late answer from the broker answers nobody a second time
    else:
        publisher._confirms.settle(1, False, True)
    assert reply.count == 1


def test_a_request_parked_before_its_rpc_waits_across_a_loss_and_is_answered_when_the_link_stops() -> None:
    consumer, _, _ = sides()
    reply = Answers()
    consumer.link.state = CONNECTING  # an attempt under way, which fails
    consumer.link.parked.park(GroupAdd(reply=reply, group="g", channel="specific.channels_test!1"))
    consumer.link._lost("the connection attempt failed", "ConnectionRefusedError", "link_connect_failed")
    assert reply.count == 0  # still waiting for the next connection (at most connect_timeout)
    consumer.link.connection = None
    consumer.link.stop()  # close(): stopping
    assert reply.count == 1 and isinstance(reply.errors[0], LayerClosed)


def test_after_a_cut_during_flush_the_consumer_delivers_again() -> None:
    """The defect of issue 11: a flush() cut before its PurgeOk left the purge count at 1 for ever."""
    consumer, _, hub = sides()
    reply = Answers()
    consumer.purge(Flush(reply=reply), [])
    consumer.link._lost("the connection was cut", "StreamLostError", "link_lost")
    assert isinstance(reply.errors[0], BrokerUnavailable) and "flush() did not finish" in str(reply.errors[0])
    consumer.link.channel = FakeChannel()  # the next connection
    body = encode({"type": "after"}, Recipient(is_group=False, name="specific.channels_test!1"))
    method = type("Deliver", (), {"delivery_tag": 7, "consumer_tag": ""})()
    consumer.deliveries.on_delivery(consumer.link.channel, method, pika.BasicProperties(), body)
    assert hub.delivered == [(7, "specific.channels_test!1")]


def test_the_publisher_publishes_again_after_a_cut_during_a_declare() -> None:
    _, publisher, _ = sides()
    first = Answers()
    publisher.publish(Publish(reply=first, routing_key="q", body=b"x", declare=("channels.jobs", {})))
    publisher.link._lost("the connection was cut", "StreamLostError", "link_lost")
    assert first.count == 0 and len(publisher.link.parked) == 1  # waits for the next connection
    publisher.link.channel = channel = FakeChannel()
    for request in publisher.link.parked.take_all():  # what the link does once the new connection is ready
        publisher.publish(request)  # type: ignore[arg-type]
    channel.answer_last("queue_declare")  # declared again on the new channel, then published
    assert [rpc for rpc, _ in channel.rpcs] == ["queue_declare", "basic_publish"]
    publisher._confirms.settle(1, False, True)
    assert first.results == [True]


def test_a_publish_cut_before_its_confirm_is_published_again_with_the_same_message_id() -> None:
    _, publisher, _ = sides()
    reply = Answers()
    publish = Publish(reply=reply, routing_key="q", body=b"x")
    publisher.publish(publish)
    message_id = publish.message_id
    publisher.link._lost("the connection was cut", "StreamLostError", "link_lost")
    assert reply.count == 0 and publisher.link.parked.take_all() == [publish]
    publisher.link.channel = FakeChannel()
    publisher.publish(publish)
    assert message_id and publish.message_id == message_id  # the receiver's window drops the copy
    publisher._confirms.settle(1, False, True)
    assert reply.results == [True]


@pytest.mark.parametrize("kind", list(Waiting))
@pytest.mark.parametrize("ending", list(Ending))
def test_the_table_of_what_callers_are_told(kind: Waiting, ending: Ending) -> None:
    exc = exception_for(kind, ending, "lost the connection")
    if ending is Ending.CLOSED:
        assert isinstance(exc, LayerClosed) and "closed before" in str(exc)
    elif kind is not Waiting.PURGE:
        assert exc is None  # sent again on the next connection
    else:
        assert isinstance(exc, BrokerUnavailable) and str(exc).startswith("lost the connection; ")


def test_resets_run_at_every_end_and_settle_answers_once() -> None:
    inflight, resets = InFlight(), []
    inflight.on_end(lambda: resets.append("reset"))
    first, second = Answers(), Answers()
    request, other = Flush(reply=first), Flush(reply=second)
    inflight.add(Waiting.PURGE, request)
    inflight.add(Waiting.PURGE, other)
    assert inflight.settle(request) and not inflight.settle(request)
    inflight.end(Ending.LOST, "cut", resend=print)
    inflight.end(Ending.LOST, "cut again", resend=print)
    assert resets == ["reset", "reset"] and first.count == 0 and second.count == 1
