"""The Django app, optional: the layer works without it.

Theory of operation: with `"channels_rabbitmq_threaded"` in `INSTALLED_APPS`, Django finds this module's one
`AppConfig` and calls its `ready()` once the apps are loaded; importing `checks` there registers the system checks,
which Django then runs at `manage.py check` and at server start. Nothing connects to RabbitMQ.
"""

from __future__ import annotations

from django.apps import AppConfig


class ChannelsRabbitmqThreadedConfig(AppConfig):
    name = "channels_rabbitmq_threaded"
    verbose_name = "Channels RabbitMQ layer"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the checks
