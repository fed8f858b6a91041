"""The WSGI side (gunicorn): the page, and the plain views that post to rooms and start jobs."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
application = get_wsgi_application()
