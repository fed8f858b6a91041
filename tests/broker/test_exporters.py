"""The exporters read `stats()` after real traffic, a drop and a reconnect: a `prometheus_client` registry scraped
as Prometheus would, and OpenTelemetry's instruments (the health check: `test_health.py`)."""

from __future__ import annotations

import asyncio

from channels.layers import channel_layers
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from channels_rabbitmq_threaded.prometheus import LayerCollector, channels_layers

from ..conftest import broker_ctl


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the registry's exposition, parsed back: {(name, labels): value}."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_prometheus_exposes_calls_durations_drops_links_and_a_reconnect(make_layer, registered) -> None:
    layer = make_layer()
    registered["crt-test"] = channel_layers.backends["crt-test"] = layer
    registry = CollectorRegistry()
    registry.register(LayerCollector())  # Channels' own layers, by alias
    channel = await layer.new_channel()
    await layer.group_add("metered", channel)
    for n in range(3):
        await layer.send(channel, {"type": "direct", "n": n})
    await layer.group_send("metered", {"type": "group"})
    await layer.send("specific.channels_000000000000!gone", {"type": "nobody"})  # returned: an unroutable drop
    for _ in range(4):
        await layer.receive(channel)
    listing = await asyncio.to_thread(broker_ctl, "-q", "list_connections", "pid", "client_properties")
    pid = next(line.split()[0] for line in listing.splitlines() if f"{layer.queue_name} consumer" in line)
    await asyncio.to_thread(broker_ctl, "close_connection", pid, "test: a reconnect")
    for _ in range(100):
        if layer.stats().consumer.losses == 1 and layer.stats().consumer.state == "READY":
            break
        await asyncio.sleep(0.1)
    for _ in range(50):
        if layer.stats().drops.get("unroutable"):
            break
        await asyncio.sleep(0.05)

    samples = scrape(registry)
    alias = {"alias": "crt-test"}
    assert value(samples, "channels_rabbitmq_calls_total", call="send", outcome="confirmed", **alias) == 4
    assert value(samples, "channels_rabbitmq_calls_total", call="group_send", outcome="confirmed", **alias) == 1
    assert value(samples, "channels_rabbitmq_call_duration_seconds_count", call="send", **alias) == 4
    assert value(samples, "channels_rabbitmq_call_duration_seconds_bucket", call="send", le="+Inf", **alias) == 4
    assert value(samples, "channels_rabbitmq_dropped_messages_total", reason="unroutable", **alias) == 1
    assert value(samples, "channels_rabbitmq_delivered_to_receivers_total", **alias) == 4
    assert value(samples, "channels_rabbitmq_link_losses_total", link="consumer", **alias) == 1
    assert value(samples, "channels_rabbitmq_link_connects_total", link="consumer", **alias) == 2
    assert value(samples, "channels_rabbitmq_local_groups", **alias) == 1
    assert value(samples, "channels_rabbitmq_bookkeeping_entries", structure="memberships", **alias) == 1
    assert value(samples, "channels_rabbitmq_bookkeeping_entries", structure="checked_names", **alias) >= 1
    up = [
        v
        for (name, labels), v in samples.items()
        if name == "channels_rabbitmq_link_up" and ("alias", "crt-test") in labels and ("link", "consumer") in labels
    ]
    assert up == [1]
    label_values = {v for (_name, labels) in samples for _key, v in labels}
    assert not any(channel in v or "metered" in v for v in label_values)  # never a channel or a group name


def test_the_default_collector_watches_only_this_backend(make_layer, registered) -> None:
    ours = make_layer()
    registered["crt-ours"] = channel_layers.backends["crt-ours"] = ours
    registered["crt-other"] = channel_layers.backends["crt-other"] = object()  # type: ignore[assignment]
    assert channels_layers()["crt-ours"] is ours and "crt-other" not in channels_layers()


async def test_opentelemetry_reports_by_the_messaging_conventions(make_layer, registered) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from channels_rabbitmq_threaded import otel

    layer = make_layer(remote_capacity=1, local_capacity=1)
    registered["crt-otel"] = channel_layers.backends["crt-otel"] = layer
    reader = InMemoryMetricReader()
    otel.instrument(meter_provider=MeterProvider(metric_readers=[reader]))
    try:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "one"})
        await layer.group_send("otel-nobody", {"type": "two"})
        assert await layer.receive(channel) == {"type": "one"}
        data = reader.get_metrics_data()
    finally:
        otel.uninstrument()
    points = {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    durations = {p.attributes["messaging.operation.name"]: p for p in points["messaging.client.operation.duration"]}
    assert durations["send"].count == 1 and durations["group_send"].count == 1
    assert all(p.attributes["messaging.system"] == "rabbitmq" for p in durations.values())
    sent = {
        p.attributes["messaging.operation.name"]: p.value
        for p in points["messaging.client.sent.messages"]
        if p.attributes["channels.layer.alias"] == "crt-otel"
    }
    assert sent == {"send": 1, "group_send": 1}
    consumed = [
        p.value
        for p in points["messaging.client.consumed.messages"]
        if p.attributes["channels.layer.alias"] == "crt-otel"
    ]
    assert consumed == [1]
    every_value = {str(v) for series in points.values() for p in series for v in p.attributes.values()}
    assert channel not in every_value  # never a channel or a group name
