"""Prometheus metrics of the channel layers (the `prometheus` extra).

Theory of operation: `LayerCollector` is a `prometheus_client` custom collector. At each scrape it calls `stats()`
on every layer it watches (by default, the layers Channels has built in this process, by their `CHANNEL_LAYERS`
alias) and turns the snapshot into metric families; nothing is counted twice and nothing runs between scrapes.
Labels are low-cardinality only: the alias, the call (`send`, `group_send`), the outcome, the drop reason, the
link (`consumer`, `publisher`) and its node's redacted URL; never a channel or a group name. Only this module
imports `prometheus_client`, and only when it is imported.

    from prometheus_client import REGISTRY
    from channels_rabbitmq_threaded.prometheus import LayerCollector
    REGISTRY.register(LayerCollector())
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .core import RabbitmqChannelLayer, channels_layers
from .stats import BUCKETS, CALLS, OUTCOMES, LayerStats

PREFIX = "channels_rabbitmq"
GAUGES = {  # LayerStats field -> help
    "buffered": "Messages held in this process's memory for local channels",
    "held": "Deliveries received but not routed (local_capacity reached, nobody receiving)",
    "waiting_receivers": "receive() calls waiting for a message",
    "local_channels": "Local channels holding messages or waiting receivers",
    "local_groups": "Groups with a local member (each is a binding at the broker)",
    "publishes_in_flight": "Publishes handed to the I/O thread and not yet confirmed",
}
COUNTERS = {  # LayerStats field -> help
    "deliveries_received": "Deliveries received from RabbitMQ",
    "delivered_to_receivers": "Messages handed to receive() calls",
    "put_backs": "Messages a receive() could not take (cancelled), put back",
    "copies_dropped": "Redelivered or re-published copies of messages received already, dropped",
    "queue_losses": "Times this process's queue was found deleted, or on a node that is down",
    "queue_moves": "Times this process moved to a new queue because its queue's node was down",
    "lost_with_queues": "Messages that sat in lost queues (their last count) or were delivered and unacknowledged",
    "reach_lost": "Times this process found itself cut off from the nodes that route to it, and reconnected",
    "confirms_stalled": "Times the publisher link moved to another node because a confirm was awaited too long",
}


class LayerCollector(Collector):
    """Exposes `stats()` of each watched layer. `layers` returns {alias: layer}; default: Channels' own."""

    def __init__(self, layers: Callable[[], Mapping[str, RabbitmqChannelLayer]] = channels_layers) -> None:
        self._layers = layers

    def collect(self) -> Iterator[Metric]:
        snapshots = {alias: layer.stats() for alias, layer in self._layers().items()}
        yield from _calls(snapshots)
        yield from _durations(snapshots)
        for field, text in COUNTERS.items():
            family = CounterMetricFamily(f"{PREFIX}_{field}", text, labels=["alias"])
            for alias, stats in snapshots.items():
                family.add_metric([alias], getattr(stats, field))
            yield family
        for field, text in GAUGES.items():
            gauge = GaugeMetricFamily(f"{PREFIX}_{field}", text, labels=["alias"])
            for alias, stats in snapshots.items():
                gauge.add_metric([alias], getattr(stats, field))
            yield gauge
        yield from _drops_and_links(snapshots)
        yield from _bookkeeping(snapshots)


def _calls(snapshots: dict[str, LayerStats]) -> Iterator[Metric]:
    family = CounterMetricFamily(
        f"{PREFIX}_calls",
        "send and group_send calls by outcome (refused: a full queue)",
        labels=["alias", "call", "outcome"],
    )
    for alias, stats in snapshots.items():
        for call in CALLS:
            for outcome in OUTCOMES:
                family.add_metric([alias, call, outcome], stats.calls[f"{call}_{outcome}"])
    yield family


def _durations(snapshots: dict[str, LayerStats]) -> Iterator[Metric]:
    family = HistogramMetricFamily(
        f"{PREFIX}_call_duration_seconds", "How long send and group_send calls took", labels=["alias", "call"]
    )
    for alias, stats in snapshots.items():
        for call in CALLS:
            durations = stats.durations[call]
            buckets = [(str(bound), count) for bound, count in zip(BUCKETS, durations.counts, strict=False)]
            buckets.append(("+Inf", durations.count))
            family.add_metric([alias, call], buckets, durations.sum)
    yield family


def _bookkeeping(snapshots: dict[str, LayerStats]) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        f"{PREFIX}_bookkeeping_entries",
        "Entries of each structure the layer keeps by name, message or delivery (each is bounded)",
        labels=["alias", "structure"],
    )
    for alias, stats in snapshots.items():
        for structure, entries in stats.bookkeeping.items():
            family.add_metric([alias, structure], entries)
    yield family


def _drops_and_links(snapshots: dict[str, LayerStats]) -> Iterator[Metric]:
    drops = CounterMetricFamily(f"{PREFIX}_dropped_messages", "Messages dropped, by reason", labels=["alias", "reason"])
    connects = CounterMetricFamily(f"{PREFIX}_link_connects", "Connections made ready", labels=["alias", "link"])
    losses = CounterMetricFamily(f"{PREFIX}_link_losses", "Connections lost (then re-made)", labels=["alias", "link"])
    up = GaugeMetricFamily(
        f"{PREFIX}_link_up", "1 while the link is connected and ready", labels=["alias", "link", "url"]
    )
    blocked = GaugeMetricFamily(f"{PREFIX}_link_blocked", "1 while RabbitMQ blocks the link", labels=["alias", "link"])
    paused = GaugeMetricFamily(f"{PREFIX}_consumption_paused", "1 while consumption is paused", labels=["alias"])
    for alias, stats in snapshots.items():
        for reason, count in stats.drops.items():
            drops.add_metric([alias, reason], count)
        for name, link in (("consumer", stats.consumer), ("publisher", stats.publisher)):
            connects.add_metric([alias, name], link.connects)
            losses.add_metric([alias, name], link.losses)
            up.add_metric([alias, name, link.url], 1 if link.state == "READY" else 0)
            blocked.add_metric([alias, name], 1 if link.blocked else 0)
        paused.add_metric([alias], 1 if stats.consumption_paused else 0)
    yield from (drops, connects, losses, up, blocked, paused)
