"""A one-module Django site for `manage.py runserver`: Django's own (WSGI) or Daphne's (ASGI, RUNSERVER=daphne).

Settings, URLs and the view live here. The view makes the process's queue (`new_channel`, as a consumer's
connect does) and answers with the layer's queue name, so the test can find the queue; the layer's log lines go to
standard error.
"""

from __future__ import annotations

import os

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.http import HttpRequest, HttpResponse
from django.urls import path

SECRET_KEY = "tests-only"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1"]
DAPHNE = os.environ.get("RUNSERVER") == "daphne"
INSTALLED_APPS = [*(["daphne"] if DAPHNE else []), "channels", "channels_rabbitmq_threaded"]
ROOT_URLCONF = __name__
ASGI_APPLICATION = "tests.support.worker_apps.runserver_asgi.application"
USE_TZ = True
DATABASES: dict[str, dict[str, str]] = {}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_rabbitmq_threaded.core.RabbitmqChannelLayer",
        "CONFIG": {"host": os.environ.get("AMQP_URL", ""), "groups_exchange": os.environ.get("GROUPS_EXCHANGE", "")},
    }
}


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"channels_rabbitmq_threaded": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}


def queue(request: HttpRequest) -> HttpResponse:
    layer = get_channel_layer()
    async_to_sync(layer.new_channel)()
    return HttpResponse(layer.queue_name)


urlpatterns = [path("", queue)]
