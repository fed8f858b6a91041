"""Counted traffic for fault tests and the soak: every message ends up explained, or counted as unexplained.

A `PingPong` sends numbered messages one at a time, directly and through a group, and waits for each to arrive.
Each number ends in exactly one class:
  delivered  - the member received it;
  refused    - send()/group_send() raised BrokerUnavailable: it was not sent;
  uncertain  - ConfirmLost: sent, unconfirmed, not received (the layer said it may be lost);
  returned   - confirmed, not received, and RabbitMQ returned it (no queue / no binding yet), which the layer logs;
  unexplained - confirmed, never received, never returned: the layer did not say it was lost.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from dataclasses import dataclass, field

from channels_rabbitmq_threaded import BrokerUnavailable, ConfirmLost, RabbitmqChannelLayer


class ReturnCounter(logging.Handler):
    """Counts the layer's log lines for messages RabbitMQ returned (published, routed nowhere)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "RabbitMQ has no queue" in text or "reached no process" in text:
            self.count += 1


@dataclass
class PingPong:
    sender: RabbitmqChannelLayer
    member: RabbitmqChannelLayer
    channel: str
    group: str
    wait: float = 2.0
    received: Counter = field(default_factory=Counter)
    confirmed: set[int] = field(default_factory=set)
    refused: set[int] = field(default_factory=set)
    uncertain: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._numbers = itertools.count()
        self._arrived = asyncio.Event()
        self._receiving: asyncio.Task | None = None
        self.returns = ReturnCounter()
        logging.getLogger("channels_rabbitmq_threaded").addHandler(self.returns)
        logging.getLogger("channels_rabbitmq_threaded").setLevel(logging.DEBUG)

    def start(self) -> None:
        self._receiving = asyncio.ensure_future(self._receive_forever())

    async def stop(self) -> None:
        logging.getLogger("channels_rabbitmq_threaded").removeHandler(self.returns)
        if self._receiving is not None:
            self._receiving.cancel()
            await asyncio.gather(self._receiving, return_exceptions=True)

    @property
    def receiving(self) -> bool:
        return self._receiving is not None and not self._receiving.done()

    async def _receive_forever(self) -> None:
        while True:  # one receive() at a time, as a consumer does; it keeps waiting across outages
            message = await self.member.receive(self.channel)
            self.received[message["n"]] += 1
            self._arrived.set()

    async def one(self, via_group: bool) -> bool:
        """Send one message and wait for it; True when it arrived."""
        n = next(self._numbers)
        try:
            if via_group:
                await self.sender.group_send(self.group, {"type": "t", "n": n})
            else:
                await self.sender.send(self.channel, {"type": "t", "n": n})
        except ConfirmLost:
            self.uncertain.add(n)
        except BrokerUnavailable:
            self.refused.add(n)
            await asyncio.sleep(0.1)
            return False
        else:
            self.confirmed.add(n)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while n not in self.received and loop.time() < deadline:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                break
        return n in self.received

    def tally(self) -> dict[str, int]:
        delivered = set(self.received)
        lost_confirmed = self.confirmed - delivered
        return {
            "sent": len(self.confirmed) + len(self.uncertain) + len(self.refused),
            "delivered": len(delivered),
            "refused": len(self.refused),
            "uncertain": len(self.uncertain - delivered),
            "returned": min(self.returns.count, len(lost_confirmed)),
            "unexplained": max(0, len(lost_confirmed) - self.returns.count),
            "duplicates": sum(count - 1 for count in self.received.values()),
            "delivered but refused": len(delivered & self.refused),
        }
