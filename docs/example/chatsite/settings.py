"""Settings of the example site: chat rooms over WebSocket (ASGI), posts from plain views (WSGI), a Celery job.

Everything that differs between machines comes from the environment, so that `run.py` and the end-to-end tests
can point the whole site at another broker: AMQP_URL (the channel layer *and* Celery's broker), EXAMPLE_ASGI_URL
(where browsers open their WebSocket), EXAMPLE_GROUPS_EXCHANGE.
"""

import os

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
ASGI_URL = os.environ.get("EXAMPLE_ASGI_URL", "ws://127.0.0.1:8001")

SECRET_KEY = os.environ.get("EXAMPLE_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels", "channels_rabbitmq_threaded", "health_check", "chat"]  # the second: system checks
MIDDLEWARE = ["django.middleware.csrf.CsrfViewMiddleware"]
ROOT_URLCONF = "chatsite.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES: dict = {}  # no models: the site keeps nothing
USE_TZ = True
WSGI_APPLICATION = "chatsite.wsgi.application"
ASGI_APPLICATION = "chatsite.asgi.application"

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_rabbitmq_threaded.core.RabbitmqChannelLayer",
        "CONFIG": {
            "host": AMQP_URL,
            "groups_exchange": os.environ.get("EXAMPLE_GROUPS_EXCHANGE", "example-groups"),
            "heartbeat": 10,  # notice a dead broker within 15 s
        },
    }
}

CELERY_BROKER_URL = AMQP_URL
CELERY_TASK_IGNORE_RESULT = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "chat": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "channels_rabbitmq_threaded": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
