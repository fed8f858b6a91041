"""The Django app (optional): `INSTALLED_APPS += ["channels_rabbitmq_threaded"]` registers the system checks of
`checks.py`. The layer works without it."""

from __future__ import annotations

from django.apps import AppConfig


class ChannelsRabbitmqThreadedConfig(AppConfig):
    name = "channels_rabbitmq_threaded"
    verbose_name = "Channels RabbitMQ layer"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the checks
