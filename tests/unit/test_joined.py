"""`writes.joined`: the chunks waiting in pika's buffer, joined into pieces for one send each.

Checked on random chunk lists: the bytes and their order are kept, no piece is over the limit unless it is one chunk
that already was, and no two neighbouring pieces could have been one.
"""

from __future__ import annotations

import itertools
import random

from channels_rabbitmq_threaded._io.writes import joined

LIMIT = 64


def test_joined_keeps_bytes_and_order_within_the_limit_in_as_few_pieces_as_greedy_joining_makes() -> None:
    rng = random.Random(24)
    for _ in range(2_000):
        chunks = [rng.randbytes(rng.choice([1, 5, 20, 63, 64, 65, 200])) for _ in range(rng.randrange(0, 30))]
        pieces = list(joined(chunks, LIMIT))
        assert b"".join(pieces) == b"".join(chunks)
        assert all(len(piece) <= LIMIT or piece in chunks for piece in pieces)
        assert all(len(first) + len(second) > LIMIT for first, second in itertools.pairwise(pieces))


def test_joined_leaves_a_lone_chunk_as_it_is() -> None:
    chunk = b"x" * 10
    assert [piece is chunk for piece in joined([chunk], LIMIT)] == [True]
    assert list(joined([], LIMIT)) == []
