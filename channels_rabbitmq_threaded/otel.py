"""OpenTelemetry metrics of the channel layers (the `otel` extra: `opentelemetry-api`).

Theory of operation: `instrument()` makes three instruments on a meter of the given (or the global) meter
provider, named by OpenTelemetry's messaging semantic conventions, with `messaging.system=rabbitmq`:

| instrument | kind | recorded |
|---|---|---|
| `messaging.client.operation.duration` (s) | histogram | at the end of each `send`/`group_send` call (1) |
| `messaging.client.sent.messages` | observable counter | at each collection: confirmed calls, by operation |
| `messaging.client.consumed.messages` | observable counter | at each collection: deliveries received |

(1) A `stats.OBSERVERS` hook, told of every call `CallStats` records (on the caller's thread; each item of a bulk
call too, with the batch's duration, on the I/O thread), with `messaging.operation.name` and, when the call raised
or was refused, `error.type`.

The observable counters read every layer Channels has built in the process (`core.channels_layers`, as the
Prometheus collector does), with the alias as `channels.layer.alias`. No channel or group name is ever an
attribute. Only this module imports OpenTelemetry, and only when it is imported; `uninstrument()` removes the
duration hook.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from .core import channels_layers
from .stats import CALLS, OBSERVERS, CallObserver

SYSTEM = {"messaging.system": "rabbitmq"}
_hooks: list[CallObserver] = []


def instrument(meter_provider: Any = None) -> None:
    """Report the layers' metrics through `meter_provider` (default: OpenTelemetry's global one). Once per process."""
    meter = metrics.get_meter("channels_rabbitmq_threaded", meter_provider=meter_provider)
    duration = meter.create_histogram(
        "messaging.client.operation.duration", unit="s", description="Duration of send and group_send calls"
    )

    def observe(call: str, outcome: str, seconds: float) -> None:
        attributes = {**SYSTEM, "messaging.operation.name": call}
        if outcome != "confirmed":
            attributes["error.type"] = "ChannelFull" if outcome == "refused" else "failed"
        duration.record(seconds, attributes)

    meter.create_observable_counter(
        "messaging.client.sent.messages", [_sent], unit="{message}", description="Messages sent and confirmed"
    )
    meter.create_observable_counter(
        "messaging.client.consumed.messages", [_consumed], unit="{message}", description="Messages received"
    )
    _hooks.append(observe)
    OBSERVERS.append(observe)


def uninstrument() -> None:
    """Stop recording call durations (the observable counters live as long as their meter provider)."""
    for hook in _hooks:
        OBSERVERS.remove(hook)
    _hooks.clear()


def _sent(_options: CallbackOptions) -> Iterable[Observation]:
    for alias, layer in channels_layers().items():
        calls = layer.stats().calls
        for call in CALLS:
            attributes = {**SYSTEM, "messaging.operation.name": call, "channels.layer.alias": alias}
            yield Observation(calls[f"{call}_confirmed"], attributes)


def _consumed(_options: CallbackOptions) -> Iterable[Observation]:
    for alias, layer in channels_layers().items():
        attributes = {**SYSTEM, "messaging.operation.name": "receive", "channels.layer.alias": alias}
        yield Observation(layer.stats().deliveries_received, attributes)
