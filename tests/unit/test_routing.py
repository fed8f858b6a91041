"""The I/O-free routing core, alone: no broker, no loop, no thread."""

from __future__ import annotations

from channels_rabbitmq_threaded._routing.envelope import Recipient
from channels_rabbitmq_threaded._routing.inbox import (
    AGE_HEAP_SLACK,
    EXPIRY_HEAP_SLACK,
    READING_WINDOW,
    Drop,
    DropReason,
    GroupMembership,
    Inbox,
)


def to(channel: str) -> Recipient:
    return Recipient(is_group=False, name=channel)


def group(name: str) -> Recipient:
    return Recipient(is_group=True, name=name)


def test_buffered_message_is_taken_in_order_and_acked_on_arrival() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10, expiry=60)
    assert inbox.offer(1, to("a!1"), {"n": 1}, now=0).acks == [1]
    assert inbox.offer(2, to("a!1"), {"n": 2}, now=0).acks == [2]
    first = inbox.take("a!1", "w1", now=1).handoffs
    second = inbox.take("a!1", "w2", now=1).handoffs
    assert [(h.waiter, h.message) for h in first + second] == [("w1", {"n": 1}), ("w2", {"n": 2})]
    assert inbox.in_memory == 0
    assert inbox.channel_count() == 0  # empty, unwaited channels are forgotten


def test_waiting_receiver_gets_the_next_delivery_directly() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10, expiry=60)
    assert inbox.take("a!1", "w", now=0).handoffs == []
    assert inbox.waiting == 1
    effects = inbox.offer(7, to("a!1"), {"x": 1}, now=0)
    assert [(h.waiter, h.message) for h in effects.handoffs] == [("w", {"x": 1})]
    assert effects.acks == [7]
    assert inbox.waiting == 0 and inbox.in_memory == 0


def test_waiters_are_served_first_come_first_served() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10, expiry=60)
    inbox.take("a!1", "w1", now=0)
    inbox.take("a!1", "w2", now=0)
    assert inbox.offer(1, to("a!1"), {"n": 1}, now=0).handoffs[0].waiter == "w1"
    assert inbox.offer(2, to("a!1"), {"n": 2}, now=0).handoffs[0].waiter == "w2"


def test_group_delivery_fans_out_to_local_members_with_independent_copies() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10, expiry=60)
    assert inbox.membership.add("g", "a!1", 0) is True
    assert inbox.membership.add("g", "a!2", 0) is False
    inbox.take("a!1", "w1", now=0)
    effects = inbox.offer(1, group("g"), {"k": "v"}, now=0)
    assert effects.acks == [1]
    assert inbox.in_memory == 1  # one delivery, however many members still hold it
    handed = effects.handoffs[0].message
    kept = inbox.take("a!2", "w2", now=0).handoffs[0].message
    assert handed == kept == {"k": "v"}
    handed["k"] = "changed"
    assert kept["k"] == "v"
    assert inbox.in_memory == 0


def test_group_delivery_without_local_member_is_acked_and_reported() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10, expiry=60)
    effects = inbox.offer(3, group("nobody"), {}, now=0)
    assert effects.acks == [3]
    assert effects.drops == [Drop("nobody", "no local member")]


def test_membership_first_and_last() -> None:
    members = GroupMembership()
    assert members.add("g", "c1", 0) is True
    assert members.add("g", "c1", 1) is False  # idempotent
    assert members.add("g", "c2", 1) is False
    assert members.discard("g", "c1") is False
    assert members.discard("g", "c1") is False  # not a member: no-op
    assert members.discard("g", "c2") is True
    assert members.groups() == []
    assert members.discard("unknown", "c") is False


def test_at_capacity_with_nobody_waiting_deliveries_are_held_unacked() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=2, expiry=60)
    inbox.offer(1, to("a!1"), {"n": 1}, now=0)
    inbox.offer(2, to("a!1"), {"n": 2}, now=0)
    held = inbox.offer(3, to("a!1"), {"n": 3}, now=0)
    assert held.acks == [] and held.paused
    again = inbox.offer(4, to("b!1"), {"n": 4}, now=0)
    assert again.acks == [] and not again.paused  # already paused: one warning per pause
    assert inbox.held == 2
    # A receive takes one message: room for one held delivery, which is routed and acknowledged.
    effects = inbox.take("a!1", "w", now=0)
    assert [h.message for h in effects.handoffs] == [{"n": 1}]
    assert effects.acks == [3]
    assert inbox.held == 1


def test_a_waiting_receiver_releases_held_deliveries_and_sheds_the_biggest_backlog() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=2, expiry=60)
    inbox.offer(1, to("zombie!1"), {"n": 1}, now=0)
    inbox.offer(2, to("zombie!1"), {"n": 2}, now=0)
    inbox.offer(3, to("zombie!1"), {"n": 3}, now=0)  # held: nobody waits
    effects = inbox.take("live!1", "w", now=0)  # now someone waits: the process is alive and reading
    assert effects.acks == [3]
    assert effects.drops == [Drop("zombie!1", "capacity")]
    assert inbox.in_memory == 2
    effects = inbox.offer(4, to("live!1"), {"n": 4}, now=0)
    assert [(h.waiter, h.message) for h in effects.handoffs] == [("w", {"n": 4})]
    remaining = [inbox.take("zombie!1", f"z{i}", now=0).handoffs[0].message for i in range(2)]
    assert remaining == [{"n": 2}, {"n": 3}]


def test_at_capacity_a_backlog_being_read_is_held_not_shed_until_its_channel_turns_idle() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=2, expiry=60)
    for n in range(3):
        inbox.offer(n, to("busy!1"), {"n": n}, now=0)
    inbox.take("busy!1", "w0", now=1)  # its reader takes n=0, routes n=2, and is busy with it: being read
    inbox.take("other!1", "w", now=1)  # a receiver waits elsewhere
    effects = inbox.offer(3, to("busy!1"), {"n": 3}, now=2)
    assert effects.acks == [] and effects.drops == [] and inbox.held == 1  # back-pressure, nothing dropped
    assert inbox.next_expiry() == 1 + READING_WINDOW  # when busy!1 turns idle unless read again
    effects = inbox.take("busy!1", "w1", now=3)  # read again: room made, the held one routed
    assert [h.message for h in effects.handoffs] == [{"n": 1}] and effects.acks == [3] and effects.drops == []
    inbox.offer(4, to("busy!1"), {"n": 4}, now=3)  # held again
    effects = inbox.expire(now=3 + READING_WINDOW)  # nobody read it since: idle, so its oldest is shed
    assert effects.acks == [4] and effects.drops == [Drop("busy!1", DropReason.CAPACITY)]


def test_a_channel_being_read_takes_a_burst_beyond_its_capacity() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=100, expiry=60, channel_capacity=lambda c: 2)
    inbox.offer(0, to("a!1"), {"n": 0}, now=0)
    inbox.take("a!1", "w", now=0)  # its reader took one and is busy with it
    drops = [drop for n in range(1, 6) for drop in inbox.offer(n, to("a!1"), {"n": n}, now=1).drops]
    assert drops == [] and inbox.biggest_backlogs() == [("a!1", 5)]
    idle = inbox.offer(6, to("a!1"), {"n": 6}, now=READING_WINDOW + 1)  # not read for READING_WINDOW: idle
    assert idle.drops == [Drop("a!1", DropReason.DIRECT_OVER_CAPACITY)]


def test_expiry_drops_old_messages_and_leaves_groups() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10, expiry=5)
    inbox.membership.add("g", "a!1", 0)
    inbox.membership.add("h", "a!1", 0)
    inbox.membership.add("h", "b!1", 0)
    inbox.offer(1, to("a!1"), {"old": True}, now=0)
    assert inbox.next_expiry() == 5
    inbox.offer(2, to("a!1"), {"old": False}, now=3)
    effects = inbox.expire(now=6)
    assert effects.drops == [Drop("a!1", "expired")]
    assert effects.unbind == ["g"]  # "h" still has b!1
    assert "a!1" not in inbox.membership.members("h")
    assert inbox.next_expiry() == 8
    assert inbox.take("a!1", "w", now=6).handoffs[0].message == {"old": False}
    assert inbox.next_expiry() == 6 + 2 * READING_WINDOW  # when the record of that read is forgotten
    inbox.expire(now=6 + 2 * READING_WINDOW)
    assert inbox.next_expiry() is None and inbox.bookkeeping()["recent_reads"] == 0


def test_take_never_hands_out_an_expired_message() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10, expiry=1)
    inbox.offer(1, to("a!1"), {}, now=0)
    effects = inbox.take("a!1", "w", now=2)
    assert effects.handoffs == [] and effects.drops == [Drop("a!1", "expired")]
    assert inbox.waiting == 1


def test_take_ready_hands_a_fresh_head_with_nothing_else_to_do() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10, expiry=60)
    assert inbox.take_ready("a!1", now=0) is None  # nothing there
    inbox.membership.add("g", "a!1", 0)
    inbox.membership.add("g", "b!1", 0)
    inbox.offer(1, group("g"), {"n": 1}, now=0)
    taken = inbox.take_ready("a!1", now=1)
    assert taken == {"n": 1}
    taken["mine"] = True  # each member's copy is its own
    assert inbox.take_ready("b!1", now=1) == {"n": 1}
    assert (inbox.in_memory, inbox.handed_over, inbox.channel_count()) == (0, 2, 0)


def test_take_ready_leaves_an_expired_head_and_held_deliveries_to_take() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=1, expiry=60)
    inbox.offer(1, to("a!1"), {"n": 1}, now=0)
    assert inbox.take_ready("a!1", now=60) is None  # expired: `take` drops it and logs it
    assert inbox.biggest_backlogs() == [("a!1", 1)]
    assert inbox.offer(2, to("a!1"), {"n": 2}, now=0).paused  # at capacity, nobody waiting: held
    assert inbox.take_ready("a!1", now=1) is None  # taking would make room for the held one: `take` routes it
    effects = inbox.take("a!1", "w", now=1)
    assert [h.message for h in effects.handoffs] == [{"n": 1}] and effects.acks == [2]


def test_wait_ready_registers_only_when_nothing_is_buffered_or_held() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=1, expiry=60)
    assert inbox.wait_ready("a!1", "w1")
    assert inbox.waiting == 1
    assert [h.waiter for h in inbox.offer(1, to("a!1"), {"n": 1}, now=0).handoffs] == ["w1"]
    inbox.offer(2, to("a!1"), {"n": 2}, now=0)
    assert not inbox.wait_ready("a!1", "w2")  # a message is there: take it
    inbox.offer(3, to("b!1"), {"n": 3}, now=0)  # held: capacity 1 is used by a!1's message
    assert inbox.held == 1
    assert not inbox.wait_ready("c!1", "w3")  # a new waiter lets held deliveries in: that is `take`'s work
    assert inbox.waiting == 0


def test_put_back_goes_to_the_head_or_the_next_waiter() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10, expiry=60)
    inbox.offer(1, to("a!1"), {"n": 2}, now=0)
    inbox.put_back("a!1", {"n": 1}, expires_at=50, now=1)
    assert [inbox.take("a!1", f"w{i}", now=1).handoffs[0].message for i in range(2)] == [{"n": 1}, {"n": 2}]
    inbox.take("a!1", "late", now=1)
    effects = inbox.put_back("a!1", {"n": 3}, expires_at=50, now=1)
    assert [(h.waiter, h.message) for h in effects.handoffs] == [("late", {"n": 3})]


def test_forget_removes_a_waiter_once() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10, expiry=60)
    inbox.take("a!1", "w", now=0)
    assert inbox.forget("a!1", "w") is True
    assert inbox.forget("a!1", "w") is False
    assert inbox.waiting == 0 and inbox.channel_count() == 0


def test_discard_held_and_close() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=1, expiry=60)
    inbox.offer(1, to("a!1"), {}, now=0)
    inbox.offer(2, to("a!1"), {}, now=0)
    assert inbox.discard_held() == 1
    inbox.take("b!1", "w", now=0)
    waiters, dropped = inbox.close()
    assert waiters == ["w"] and dropped == 1
    assert inbox.in_memory == 0 and inbox.waiting == 0


def test_memberships_expire_group_expiry_after_the_last_group_add() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10, expiry=60, group_expiry=100)
    inbox.membership.add("g", "a!1", 0)
    inbox.membership.add("g", "b!1", 10)
    inbox.membership.add("h", "a!1", 20)
    assert inbox.next_expiry() == 100
    inbox.membership.add("g", "a!1", 50)  # a later group_add refreshes the membership
    assert inbox.next_expiry() == 110
    effects = inbox.expire(now=111)
    assert effects.memberships_expired == 1 and effects.unbind == []  # b!1 left g; a!1 is still in g
    assert inbox.membership.members("g") == ["a!1"]
    effects = inbox.expire(now=151)
    assert effects.memberships_expired == 2 and sorted(effects.unbind) == ["g", "h"]
    assert inbox.next_expiry() is None


def test_a_discarded_membership_does_not_expire_later() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10, expiry=60, group_expiry=100)
    inbox.membership.add("g", "a!1", 0)
    inbox.membership.discard("g", "a!1")
    assert inbox.next_expiry() is None
    assert inbox.expire(now=500).memberships_expired == 0


def test_a_full_channel_drops_the_newcomer_and_keeps_what_it_holds() -> None:
    inbox: Inbox[str, int] = Inbox(
        local_capacity=100, expiry=60, channel_capacity=lambda c: 2 if c.startswith("tiny") else 50
    )
    drops = [drop for n in range(4) for drop in inbox.offer(n, to("tiny!1"), {"n": n}, now=0).drops]
    assert drops == [Drop("tiny!1", DropReason.DIRECT_OVER_CAPACITY)] * 2
    inbox.offer(9, to("big!1"), {"n": 9}, now=0)
    assert inbox.biggest_backlogs() == [("tiny!1", 2), ("big!1", 1)]
    assert [inbox.take("tiny!1", f"w{i}", now=0).handoffs[0].message for i in range(2)] == [{"n": 0}, {"n": 1}]
    assert inbox.in_memory == 1


def test_a_group_message_to_a_full_channel_drops_that_copy_only() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=100, expiry=60, channel_capacity=lambda c: 1)
    inbox.membership.add("g", "a!1", 0)
    inbox.membership.add("g", "b!1", 0)
    inbox.offer(1, to("a!1"), {"n": 1}, now=0)
    effects = inbox.offer(2, group("g"), {"n": 2}, now=0)
    assert effects.drops == [Drop("a!1", DropReason.CHANNEL_CAPACITY)] and effects.acks == [2]
    assert inbox.in_memory == 2
    assert inbox.take("a!1", "w", now=0).handoffs[0].message == {"n": 1}  # the direct send stayed
    assert inbox.take("b!1", "w", now=0).handoffs[0].message == {"n": 2}


def test_a_channel_with_a_waiting_receiver_takes_a_message_whatever_its_capacity() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=100, expiry=60, channel_capacity=lambda c: 1)
    inbox.offer(1, to("a!1"), {"n": 1}, now=0)
    assert inbox.take("a!1", "w1", now=0).handoffs[0].message == {"n": 1}
    inbox.take("a!1", "w2", now=0)
    assert inbox.offer(2, to("a!1"), {"n": 2}, now=0).handoffs[0].waiter == "w2"


def test_flush_drops_messages_and_memberships_but_keeps_waiters() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=1, expiry=60, group_expiry=100)
    inbox.membership.add("g", "a!1", 0)
    inbox.offer(1, to("a!1"), {"n": 1}, now=0)
    inbox.offer(2, to("a!1"), {"n": 2}, now=0)  # held: capacity 1, nobody waiting
    inbox.take("b!1", "w", now=0)  # releases the held one into a!1 (someone waits now) and keeps waiting
    held, groups, dropped = inbox.flush()
    assert held == [] and groups == ["g"] and dropped == 1
    assert inbox.in_memory == 0 and inbox.waiting == 1 and inbox.next_expiry() is None
    assert inbox.offer(3, to("b!1"), {"n": 3}, now=1).handoffs[0].waiter == "w"


def test_membership_ages_follow_refreshes_and_discards() -> None:
    membership = GroupMembership()
    membership.add("room", "a", 1.0)
    membership.add("room", "b", 2.0)
    membership.add("hall", "a", 3.0)
    assert membership.oldest() == 1.0
    membership.add("room", "a", 4.0)  # refreshed: "b" is now the oldest of "room"
    assert membership.oldest() == 2.0
    membership.discard("room", "b")
    assert membership.oldest() == 3.0
    assert membership.expire(3.5) == (1, ["hall"])  # "a" left "hall", which is now empty; it stays in "room"
    assert "a" in membership.members("room") and "a" not in membership.members("hall")
    assert membership.groups() == ["room"]
    assert membership.expire(5.0) == (1, ["room"])
    assert membership.oldest() is None


# -- nothing grows as channels come and go ----------------------------------------------------------------------------


def _churn(inbox: Inbox[str, int], channels: int, now: float) -> float:
    """Channels that come, join a group of their own and a shared one, wait, are handed a message, and leave: every
    way a message reaches a receiver (handed while waiting, taken from the buffer, put back and taken again,
    expired unread, shed at capacity)."""
    for n in range(channels):
        channel, own = f"p.q!{n}", f"user-{n}"
        inbox.membership.add(own, channel, now)
        inbox.membership.add("room", channel, now)
        tag = n
        way = n % 5
        if way == 0:  # waiting when its group message arrives
            inbox.take(channel, f"w{n}", now)
            inbox.offer(tag, group(own), {"n": n}, now)
        elif way == 1:  # the message first, then the receive (the waiter's own thread: take_ready)
            inbox.offer(tag, to(channel), {"n": n}, now)
            assert inbox.take_ready(channel, now) == {"n": n}
        elif way == 2:  # handed to a receive that could not take it, put back, handed to the next
            inbox.wait_ready(channel, f"w{n}")
            handoff = inbox.offer(tag, to(channel), {"n": n}, now).handoffs[0]
            inbox.take(channel, f"v{n}", now)
            inbox.put_back(channel, handoff.message, handoff.expires_at, now)
        elif way == 3:  # a receive that gave up, then a message nobody reads: it expires
            inbox.take(channel, f"w{n}", now)
            assert inbox.forget(channel, f"w{n}")
            inbox.offer(tag, to(channel), {"n": n}, now)
        else:  # a shared group message, handed to the one member waiting
            inbox.take(channel, f"w{n}", now)
            inbox.offer(tag, group("room"), {"n": n}, now)
        inbox.membership.discard(own, channel)
        inbox.membership.discard("room", channel)
        now += 0.01  # so that at most 100 unread messages are in memory at once, below capacity
    return now


def test_an_inbox_holds_nothing_for_channels_that_came_and_went() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=200, expiry=5)
    now = _churn(inbox, 3_000, now=0)
    inbox.expire(now + 6)  # what nobody read has expired
    assert inbox.channel_count() == 0
    assert inbox.in_memory == inbox.waiting == inbox.held == 0
    assert inbox.membership.groups() == []
    assert set(inbox.bookkeeping().values()) == {0}


def test_a_waiting_receiver_handed_a_message_leaves_no_buffer_behind() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10, expiry=60)
    inbox.take("a!1", "w", now=0)
    inbox.offer(1, to("a!1"), {}, now=0)
    assert inbox.channel_count() == 0
    inbox.take("a!2", "w1", now=0)
    inbox.take("a!2", "w2", now=0)
    inbox.offer(2, to("a!2"), {}, now=0)
    assert inbox.channel_count() == 1  # one receiver still waits there
    inbox.offer(3, to("a!2"), {}, now=0)
    assert inbox.channel_count() == 0


def test_the_expiry_heap_keeps_no_taken_message_until_its_expiry() -> None:
    inbox: Inbox[str, int] = Inbox(local_capacity=10_000, expiry=3_600)
    inbox.offer(0, to("a!old"), {"n": "old"}, now=0)  # one unread message keeps the heap's head in the future
    for n in range(1, 5_000):
        inbox.offer(n, to(f"a!{n}"), {"n": n}, now=0)
        inbox.take_ready(f"a!{n}", now=0)
    assert inbox.in_memory == 1
    assert inbox.bookkeeping()["expiry_entries"] <= 2 * inbox.in_memory + EXPIRY_HEAP_SLACK


def test_the_membership_age_heap_stays_small_while_an_old_member_stays() -> None:
    members = GroupMembership()
    members.add("room", "resident", 0)  # the oldest membership, and it never leaves
    for n in range(5_000):
        members.add(f"user-{n}", f"c{n}", n + 1)
        members.add("room", f"c{n}", n + 1)
        members.discard(f"user-{n}", f"c{n}")
        members.discard("room", f"c{n}")
    assert members.oldest() == 0
    assert members.age_heap_size() <= 2 * members.group_count + AGE_HEAP_SLACK
