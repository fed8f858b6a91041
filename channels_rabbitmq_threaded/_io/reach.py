"""The reach probe: proof, every few seconds, that what the cluster routes to this process still reaches it.

Theory of operation
-------------------
A process hears the cluster only through the node its consumer link is connected to, and that node can stay up
and answer heartbeats while it is cut off from the nodes that route to its queue: on RabbitMQ 4.x (Khepri, no
partition handling) the minority side of a partition keeps serving its clients for as long as the partition
lasts, and on 3.x a `pause_minority` node keeps serving until `net_ticktime` has passed. Meanwhile group messages
and sends published on the other side never arrive, and nothing local says so.

So when several hosts are given, the publisher link keeps to another node than the consumer link
(`HostRotation.keep_apart_from`), and every `REACH_INTERVAL` seconds, while both links are ready, `ReachProbe` publishes
one small message through the publisher link to this process's own address on the direct exchange
(`envelope.REACH_GROUP`; the consumer acknowledges and drops it). At the next tick the probe is judged: if nothing
at all was delivered to the process since it went out (neither the probe nor any other message: a busy queue
delivers other messages first, and those prove the same), the process is cut off from one side, and which one
cannot be known from here: both links reconnect, each to its next host, without waiting for the AMQP close
handshake. A cut-off consumer then finds its queue on a node it cannot reach and moves (`process_queue.py`); a
cut-off publisher simply publishes through a reachable node.

A probe is not judged while the process holds deliveries back (`local_capacity` reached and nobody receiving:
RabbitMQ then rightly delivers nothing), nor when a link reconnected or was blocked meanwhile; a probe refused (a
queue at `remote_capacity`) or never confirmed is judged by deliveries like any other, so a full queue whose
consumer keeps receiving is never taken for a cut. A probe between two links on one node proves nothing, so when
they share one (the publisher starts first, on the first host, and the consumer follows it there when the process
first needs it; or the consumer's own reconnects bring it there), the publisher link reconnects to another host
instead of probing (its unconfirmed publishes are sent again), at most once per `MOVE_APART_EVERY`: when the other
hosts are down, it comes back to the consumer's (`HostRotation` keeps apart only after a successful connection),
and stays there a while. Everything here runs on the I/O thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from .._bridge.requests import Publish
from .._config import Settings
from .._routing.envelope import REACH_GROUP, Recipient, encode
from .link import Link, Repeating

logger = logging.getLogger("channels_rabbitmq_threaded.reach")  # a public name: operations.md

REACH_INTERVAL = 5.0  # seconds between probes; a cut is noticed within two of them
MOVE_APART_EVERY = 60.0  # seconds: how often at most the publisher leaves the consumer's node


class ReachProbe:
    """Sends a probe every `REACH_INTERVAL` seconds and reconnects both links when one was not answered."""

    def __init__(self, settings: Settings, ioloop: Any, address: str, consumer: Link, publisher: Link,
                 publish: Callable[[Publish], None], delivered: Callable[[], int],
                 holding: Callable[[], bool]) -> None:  # fmt: skip
        self._settings = settings
        self._address = address
        self._consumer = consumer
        self._publisher = publisher
        self._publish = publish  # PublisherSide.publish (I/O thread)
        self._delivered = delivered  # () -> deliveries to the process since it started
        self._holding = holding  # () -> whether the process holds deliveries back (consumption paused)
        self._timer = Repeating(ioloop, REACH_INTERVAL, self._tick)
        self._delivered_at_probe: int | None = None  # None: no probe out
        self._connects_at_probe = (0, 0)  # a link that reconnected since the probe went out: not judged
        self._moved_apart_at = -MOVE_APART_EVERY  # the publisher's latest move off the consumer's node
        self.failures = 0  # probes that found the process cut off (a figure for stats())
        self.sent = 0

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        if self._delivered_at_probe is not None:
            self._judge()
        if not (self._consumer.ready and self._publisher.ready) or self._holding():
            return
        if not self._publisher.hosts.shared:
            self._send()
        elif time.monotonic() - self._moved_apart_at >= MOVE_APART_EVERY:
            self._moved_apart_at = time.monotonic()
            self._publisher.reconnect(f"the consumer link came to this node ({self._publisher.url}); moving away")

    def _judge(self) -> None:
        heard = self._delivered() != self._delivered_at_probe
        self._delivered_at_probe = None
        links_same = self._consumer.ready and self._publisher.ready and self._connects() == self._connects_at_probe
        if heard or not links_same or self._holding():
            return  # heard; or a link is down, blocked or has reconnected since, or nothing is meant to arrive
        self.failures += 1
        reason = (
            f"nothing sent to this process through RabbitMQ came back within {REACH_INTERVAL:g}s (published at "
            f"{self._publisher.url}, consumed at {self._consumer.url}): the nodes may be cut off from each other"
        )
        logger.warning(
            "%s; reconnecting both links to their next hosts",
            reason,
            extra={"event": "reach_lost", "publisher_url": self._publisher.url, "consumer_url": self._consumer.url},
        )
        self._consumer.reconnect(reason, abort=True)
        self._publisher.reconnect(reason, abort=True)

    def _connects(self) -> tuple[int, int]:
        return self._consumer.connects, self._publisher.connects

    def _send(self) -> None:
        body = encode({"n": self.sent}, Recipient(is_group=True, name=REACH_GROUP), self._settings.fernet)
        self._delivered_at_probe = self._delivered()
        self._connects_at_probe = self._connects()
        self.sent += 1
        self._publish(Publish(None, exchange=self._settings.direct_exchange, routing_key=self._address, body=body))
