"""`ledgers.PendingAcks`, alone: which acks one pass of the I/O loop sends, and that no tag is acknowledged twice."""

from __future__ import annotations

from pika.adapters.select_connection import IOLoop

from channels_rabbitmq_threaded._io.ledgers import PendingAcks


def pending_acks() -> tuple[PendingAcks, list[tuple[int, bool]]]:
    sent: list[tuple[int, bool]] = []
    return PendingAcks(IOLoop(), lambda tag, multiple: sent.append((tag, multiple))), sent


def test_a_settled_run_of_the_oldest_deliveries_is_one_multiple_ack() -> None:
    acks, _ = pending_acks()
    for tag in range(1, 11):
        acks.delivered(tag)
    for tag in (3, 1, 2, 4):
        acks.ack(tag)
    assert acks.take() == (4, [])
    assert len(acks) == 6
    assert acks.take() == (None, [])  # nothing new this pass


def test_a_held_delivery_stays_unacknowledged_and_those_behind_it_go_singly() -> None:
    acks, _ = pending_acks()
    for tag in range(1, 6):
        acks.delivered(tag)
    for tag in (1, 2, 4, 5):  # 3 is held back by local_capacity
        acks.ack(tag)
    assert acks.take() == (2, [4, 5])
    assert len(acks) == 1
    acks.ack(3)  # routed at last
    assert acks.take() == (3, [])
    assert len(acks) == 0


def test_a_requeued_delivery_is_settled_but_never_named_by_an_ack() -> None:
    acks, _ = pending_acks()
    for tag in range(1, 4):
        acks.delivered(tag)
    acks.ack(1)
    acks.requeued(2)  # nacked: RabbitMQ no longer counts it as unacknowledged
    assert acks.take() == (1, [])
    acks.ack(3)
    assert acks.take() == (3, [])
    assert len(acks) == 0


def test_the_pass_sends_what_take_decides_and_a_reset_forgets_the_ended_channel() -> None:
    acks, sent = pending_acks()
    for tag in range(1, 4):
        acks.delivered(tag)
    acks.ack(1)
    acks.ack(3)
    acks._send()  # what the zero-delay timer runs at the end of the pass
    assert sent == [(1, True), (3, False)]
    acks.delivered(4)
    acks.ack(4)
    acks.reset()  # the channel ended before the pass did: its tags mean nothing on the next one
    acks._send()
    assert sent == [(1, True), (3, False)]
