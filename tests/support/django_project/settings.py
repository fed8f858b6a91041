"""A minimal Django project for `runworker` tests. The test passes its broker and names through the environment."""

import os

SECRET_KEY = "tests-only"
INSTALLED_APPS = ["channels"]
ASGI_APPLICATION = "tests.support.django_project.asgi.application"
USE_TZ = True
_names = os.environ.get("TEST_GROUPS_EXCHANGE", "groups")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_rabbitmq_threaded.core.RabbitmqChannelLayer",
        "CONFIG": {
            "host": os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
            "groups_exchange": _names,
            "normal_channel_prefix": f"{_names}.",
        },
    }
}
