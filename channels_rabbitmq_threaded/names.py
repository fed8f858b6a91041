"""Names a process remembers, bounded: past `NAMES_REMEMBERED` it forgets the oldest.

A process meets any number of channel and queue names in its life (a normal channel per job, a channel per
websocket), so nothing it keeps by name may grow with that number. `RecentNames` is a set in insertion order that
holds at most `size` names: adding one more forgets the oldest. It serves what may forget safely: caches whose miss
costs one more check or one more idempotent declare (the names `receive()` has checked, the normal queues
declared on the publisher channel), and flush()'s list of the normal queues this process used, whose oldest names
fall out first (`docs/configuration.md` says so of flush()).

Thread safety is the owner's to state. Under the GIL each call is safe from any thread: an `add` racing another
may forget one name more than it had to, which a cache can afford.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator

NAMES_REMEMBERED = 10_000


class RecentNames:
    """At most `size` names, oldest forgotten first; see the module's docstring."""

    __slots__ = ("_names", "_size")

    def __init__(self, size: int = NAMES_REMEMBERED) -> None:
        self._names: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def add(self, name: str) -> None:
        """Remember `name` (a name already known keeps its place); forget the oldest beyond `size`."""
        names = self._names
        names[name] = None
        while len(names) > self._size:
            with contextlib.suppress(KeyError):  # another thread forgot it first
                names.popitem(last=False)

    def clear(self) -> None:
        self._names.clear()
