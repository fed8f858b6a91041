"""What notices a node cut off from the others, alone: `reach.ReachProbe` (when a probe is sent, how it is judged,
what a cut makes both links do), `link.HostRotation` (the publisher kept off the consumer's node) and
`publisher.ConfirmWatch` (a confirm awaited too long). No broker: the links are stand-ins with the attributes read,
and timers are ticked by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from channels_rabbitmq_threaded._bridge.requests import Publish
from channels_rabbitmq_threaded._config import Settings
from channels_rabbitmq_threaded._io import publisher as publisher_module
from channels_rabbitmq_threaded._io.inflight import InFlight
from channels_rabbitmq_threaded._io.ledgers import PendingConfirms
from channels_rabbitmq_threaded._io.link import HostRotation
from channels_rabbitmq_threaded._io.publisher import ConfirmWatch
from channels_rabbitmq_threaded._io.reach import ReachProbe
from channels_rabbitmq_threaded._routing.envelope import REACH_GROUP, decode


@dataclass
class StandInLink:
    url: str
    ready: bool = True
    connects: int = 1
    hosts: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(shared=False))
    reconnects: list[bool] = field(default_factory=list)  # the `abort` of each reconnect asked for

    def reconnect(self, reason: str, abort: bool = False) -> None:
        assert reason
        self.reconnects.append(abort)


class HandTimer:
    def call_later(self, _delay: float, callback: Any) -> object:
        return callback

    def remove_timeout(self, _timer: object) -> None:
        pass


@dataclass
class Process:
    """What the probe sees of its process: both links, what it published, and what was delivered."""

    consumer: StandInLink = field(default_factory=lambda: StandInLink("amqp://a"))
    publisher: StandInLink = field(default_factory=lambda: StandInLink("amqp://b"))
    published: list[Publish] = field(default_factory=list)
    delivered: int = 0
    holding: bool = False
    probe: ReachProbe = field(init=False)

    def __post_init__(self) -> None:
        settings = Settings.from_options()
        self.probe = ReachProbe(settings, HandTimer(), "channels_abc", self.consumer, self.publisher,  # type: ignore[arg-type]
                                self.published.append, lambda: self.delivered, lambda: self.holding)  # fmt: skip

    def tick(self) -> None:
        self.probe._tick()


def test_a_probe_goes_to_the_process_own_address_and_one_not_answered_reconnects_both_links() -> None:
    process = Process()
    process.tick()
    (probe,) = process.published
    assert (probe.exchange, probe.routing_key, probe.reply) == (Settings.from_options().direct_exchange,
                                                                "channels_abc", None)  # fmt: skip
    recipient, _message = decode(probe.body, None)
    assert recipient.is_group and recipient.name == REACH_GROUP
    process.tick()  # nothing delivered since
    assert process.probe.failures == 1
    assert process.consumer.reconnects == [True] and process.publisher.reconnects == [True]  # without a handshake


def test_any_delivery_since_the_probe_went_out_answers_it() -> None:
    process = Process()
    process.tick()
    process.delivered += 1  # the probe, or any other message queued before it
    process.tick()
    assert process.probe.failures == 0 and not process.consumer.reconnects
    assert len(process.published) == 2  # and the next one went out


def test_no_probe_is_judged_while_deliveries_are_held_back_or_a_link_changed() -> None:
    process = Process()
    process.tick()
    process.holding = True  # local_capacity reached, nobody receiving: RabbitMQ rightly delivers nothing
    process.tick()
    assert len(process.published) == 1  # and none is sent while it lasts
    process.holding = False
    process.tick()
    process.publisher.connects += 1  # the publisher link reconnected meanwhile: its probe may have been lost
    process.tick()
    process.consumer.ready = False
    process.tick()
    assert process.probe.failures == 0 and not process.consumer.reconnects and not process.publisher.reconnects


def test_links_on_one_node_prove_nothing_so_the_publisher_moves_instead_of_probing() -> None:
    process = Process()
    process.publisher.hosts.shared = True
    process.tick()
    assert not process.published and process.publisher.reconnects == [False]  # its close handshake is kept
    process.tick()  # back on the consumer's node (the other hosts are down): no move again for a while
    assert process.publisher.reconnects == [False] and not process.consumer.reconnects


def test_a_link_kept_apart_skips_the_host_of_the_other_and_one_host_is_shared_by_both() -> None:
    consumer, publisher = HostRotation(3), HostRotation(3)
    publisher.keep_apart_from(consumer)
    assert publisher.next() % 3 == 0  # a process that only sends (no consumer yet) uses the first host
    assert consumer.next() % 3 == 0 and publisher.shared  # it consumes now: the reach probe moves the publisher
    assert publisher.next() % 3 == 1 and not publisher.shared
    assert consumer.next() % 3 == 1  # its node went: it moved onto the publisher's
    assert publisher.shared
    assert publisher.next() % 3 == 2 and not publisher.shared
    consumer.next()  # to host 2: the publisher's again
    assert publisher.shared and publisher.next() % 3 == 0
    consumer.next()
    assert consumer.next() % 3 == 1  # and the publisher is on 0
    assert publisher.next(keep_apart=False) % 3 == 1  # its last attempt failed: the consumer's host will do
    alone, other = HostRotation(1), HostRotation(1)
    alone.keep_apart_from(other)
    assert [alone.next() % 1 for _ in range(3)] == [0, 0, 0] and not alone.shared


class Clock:
    now = 100.0

    def monotonic(self) -> float:
        return self.now


def test_a_confirm_awaited_for_connect_timeout_moves_publishing_and_nothing_else_does(monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(publisher_module, "time", clock)
    link = StandInLink("amqp://b")
    confirms = PendingConfirms(InFlight(), on_nack=lambda _publish: None)
    watch = ConfirmWatch(HandTimer(), link, confirms, timeout=10)  # type: ignore[arg-type]

    def look(after: float) -> None:
        clock.now += after
        watch._look()

    confirms.add(Publish(None))  # tag 1
    look(0)
    confirms.add(Publish(None))  # tag 2
    confirms.settle(1, multiple=False, acked=True)
    look(9)  # tag 2 is the oldest now, seen just now
    look(9.9)
    link.connects += 1  # a new connection: its tag 2 is another publish
    look(0.2)
    link.ready = False  # blocked: the alarm's own deadline answers
    look(20)
    assert not link.reconnects and watch.stalls == 0
    link.ready = True
    look(0)
    look(10)
    assert link.reconnects == [True] and watch.stalls == 1  # dropped without the close handshake
