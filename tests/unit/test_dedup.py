"""The message-id window alone (no broker)."""

from __future__ import annotations

from channels_rabbitmq_threaded._routing.dedup import MessageIds, RecentIds


def test_ids_are_unique_within_and_across_processes() -> None:
    first, second = MessageIds(), MessageIds()
    ids = [first.next() for _ in range(1000)] + [second.next() for _ in range(1000)]
    assert len(set(ids)) == 2000


def test_a_copy_within_the_window_is_refused_and_counted() -> None:
    window = RecentIds(size=3)
    assert [window.first_time(i) for i in ("a", "b", "a", "c", "b")] == [True, True, False, True, False]
    assert window.copies == 2


def test_the_window_forgets_the_oldest_beyond_its_size() -> None:
    window = RecentIds(size=2)
    for message_id in ("a", "b", "c"):
        assert window.first_time(message_id)
    assert window.first_time("a")  # out of the window: taken as new
    assert not window.first_time("c")
