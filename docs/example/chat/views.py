"""Plain Django views, served by the WSGI server (gunicorn): no event loop anywhere in this file."""

import secrets

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_POST

from .rooms import group_of
from .tasks import long_job


def lobby(request: HttpRequest) -> HttpResponse:
    return redirect("/rooms/lobby/")


@ensure_csrf_cookie
def room(request: HttpRequest, room: str) -> HttpResponse:
    return render(request, "chat/room.html", {"room": room, "asgi_url": settings.ASGI_URL})


@require_POST
def post_message(request: HttpRequest, room: str) -> JsonResponse:
    """Post a message to everyone in `room`, the way existing code does it: async_to_sync(group_send)."""
    text = request.POST.get("text", "")[:500]
    async_to_sync(get_channel_layer().group_send)(
        group_of(room), {"type": "chat.message", "text": text, "source": "wsgi"}
    )
    return JsonResponse({"sent": True})


@require_POST
def start_job(request: HttpRequest, room: str) -> JsonResponse:
    """Start a long job on a Celery worker; it reports its progress to the room."""
    try:
        steps = min(50, max(1, int(request.POST.get("steps", "5"))))
        pause = min(2.0, max(0.0, float(request.POST.get("pause", "0.5"))))
    except ValueError:
        return JsonResponse({"error": "steps must be an int and pause a number of seconds"}, status=400)
    job = secrets.token_hex(4)
    long_job.delay(room, job, steps, pause)
    return JsonResponse({"job": job, "steps": steps}, status=202)
