"""argparse helpers shared by the command line's `check` and `bench`, so that `check` need not load the benchmark.

Nothing here touches the layer, pika or asyncio.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

PROG = "python -m channels_rabbitmq_threaded"


def help_text(text: str) -> str:
    """`text` for an argparse help string, which is %-formatted: a URL's `%2F` would be read as a format code."""
    return text.replace("%", "%%")


def positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse `type` that takes a number of `kind` greater than zero, and says so when it is not."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n' if kind is int else ''} {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse
