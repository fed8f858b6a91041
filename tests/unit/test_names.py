"""The bounded sets of names a process remembers (`names.RecentNames`): no broker."""

from __future__ import annotations

import threading

from channels_rabbitmq_threaded._routing.names import RecentNames


def test_recent_names_forget_the_oldest_beyond_their_size() -> None:
    names = RecentNames(size=3)
    for name in ("a", "b", "c", "a", "d"):  # "a" again keeps its place: it is still the oldest
        names.add(name)
    assert list(names) == ["b", "c", "d"]
    assert "a" not in names and "d" in names and len(names) == 3
    names.clear()
    assert len(names) == 0


def test_recent_names_stay_bounded_when_threads_add_at_once() -> None:
    names = RecentNames(size=100)

    def add(thread: int) -> None:
        for n in range(5_000):
            names.add(f"{thread}-{n}")

    threads = [threading.Thread(target=add, args=(thread,)) for thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 0 < len(names) <= 100
