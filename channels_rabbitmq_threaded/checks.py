"""Django system checks for the `CHANNEL_LAYERS` entries that use this layer.

Theory of operation: adding `"channels_rabbitmq_threaded"` to `INSTALLED_APPS` (optional) makes Django load
`apps.ChannelsRabbitmqThreadedConfig`, whose `ready()` registers the two checks below. They run at `manage.py
check`, `runserver`, `migrate` and the like, so a bad option is reported at start-up, with its id and a hint,
instead of raising at the first use of the layer. `check_layers` holds the rules and takes the setting as an
argument, so tests (and other tools) can run it on any configuration. Nothing here connects to RabbitMQ.

| id (`channels_rabbitmq_threaded.` …) | level | runs | finds |
|---|---|---|---|
| `…E001` | error | always | an option the layer refuses (the same validation as construction) |
| `…W001` | warning | `--deploy` | the `guest` user on a host other than localhost |
| `…W002` | warning | `--deploy` | plain `amqp://` to a host other than localhost |
| `…W003` | warning | `--deploy` | heartbeats off (`heartbeat=0`, or `?heartbeat=0` in the URL) |
| `…W004` | warning | `--deploy` | `wait_for_confirms=False` |
| `…W005` | warning | `--deploy` | `max_message_size` above RabbitMQ 4's default (16 MiB) |
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from ._config import RABBITMQ_MAX_MESSAGE_SIZE, Settings, redact_url

BACKENDS = frozenset(
    {"channels_rabbitmq_threaded.core.RabbitmqChannelLayer", "channels_rabbitmq_threaded.RabbitmqChannelLayer"}
)
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", ""})
ID = "channels_rabbitmq_threaded"


def check_layers(channel_layers: Any, deploy: bool) -> list[CheckMessage]:
    """The messages for every entry of `channel_layers` (the `CHANNEL_LAYERS` setting) that uses this layer."""
    messages: list[CheckMessage] = []
    if not isinstance(channel_layers, dict):
        return messages
    for alias, entry in channel_layers.items():
        if not isinstance(entry, dict) or entry.get("BACKEND") not in BACKENDS:
            continue
        where = f"CHANNEL_LAYERS[{alias!r}]"
        try:
            layer_settings = Settings.from_options(**entry.get("CONFIG", {}))
        except (TypeError, ValueError) as exc:
            messages.append(
                Error(
                    f"{where} has an option the layer refuses: {exc}",
                    hint="See docs/configuration.md for each option, its type and its range.",
                    obj=where,
                    id=f"{ID}.E001",
                )
            )
            continue
        if deploy:
            messages += _deploy_warnings(where, layer_settings)
    return messages


def _deploy_warnings(where: str, layer: Settings) -> list[CheckMessage]:
    warnings: list[CheckMessage] = []

    def warn(number: int, text: str, hint: str) -> None:
        warnings.append(Warning(f"{where}: {text}", hint=hint, obj=where, id=f"{ID}.W{number:03d}"))

    for url in layer.hosts:
        parts = urlsplit(url)
        remote = (parts.hostname or "") not in LOCAL_HOSTS
        if remote and (parts.username or "guest") == "guest":
            warn(
                1,
                f"{redact_url(url)} logs in as guest",
                "Give the site a user and a vhost of its own "
                "(docs/deployment.md); RabbitMQ refuses guest from other hosts by default.",
            )
        if remote and parts.scheme == "amqp":
            warn(
                2,
                f"{redact_url(url)} is plain AMQP to another host",
                "Use amqps:// (docs/deployment.md, TLS): messages and the password cross the network in the clear.",
            )
        in_url = parse_qs(parts.query).get("heartbeat", [None])[0]
        if layer.heartbeat == 0 or (layer.heartbeat is None and in_url == "0"):
            warn(
                3,
                f"heartbeats are off for {redact_url(url)}",
                "Set heartbeat to 5-30 s: without it a frozen "
                "broker or a silent network is noticed only by TCP, after minutes.",
            )
    if not layer.wait_for_confirms:
        warn(
            4,
            "wait_for_confirms is False",
            "send() then returns before RabbitMQ has the message: a full queue "
            "or a cut is logged, never raised. Keep the default unless the loss is acceptable.",
        )
    if layer.max_message_size > RABBITMQ_MAX_MESSAGE_SIZE:
        warn(
            5,
            f"max_message_size is {layer.max_message_size} bytes, above RabbitMQ 4's default of "
            f"{RABBITMQ_MAX_MESSAGE_SIZE}",
            "Raise max_message_size in rabbitmq.conf on every node to the same "
            "number, or the broker closes the channel over a bigger message.",
        )
    return warnings


@register(Tags.compatibility)
def check_channel_layers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return check_layers(getattr(settings, "CHANNEL_LAYERS", {}), deploy=False)


@register(Tags.security, deploy=True)
def check_channel_layers_for_deployment(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        message
        for message in check_layers(getattr(settings, "CHANNEL_LAYERS", {}), deploy=True)
        if message.id != f"{ID}.E001"  # reported by the check above already
    ]
