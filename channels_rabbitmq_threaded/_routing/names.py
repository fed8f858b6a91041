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

NAMES_REMEMBERED = 10_000


class RecentNames(OrderedDict[str, None]):
    """At most `size` names, oldest forgotten first; see the module's docstring. A dict underneath, so that `in`
    (a `receive()` asks it on every call) costs a dict look-up and nothing more."""

    def __init__(self, size: int = NAMES_REMEMBERED) -> None:
        super().__init__()
        self._size = size

    def add(self, name: str) -> None:
        """Remember `name` (a name already known keeps its place); forget the oldest beyond `size`."""
        self[name] = None
        while len(self) > self._size:
            with contextlib.suppress(KeyError):  # another thread forgot it first
                self.popitem(last=False)
