"""The ASGI application of `runserver_site` under Daphne's runserver: Django's own, for HTTP."""

from django.core.asgi import get_asgi_application

application = get_asgi_application()
