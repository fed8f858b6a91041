from django.http import HttpRequest, HttpResponse
from django.urls import path
from health_check.views import HealthCheckView
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from channels_rabbitmq_threaded.prometheus import LayerCollector
from chat import views

REGISTRY.register(LayerCollector())  # this module is imported once per process: the layer's metrics, by alias


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus scrapes this process's layer here (each gunicorn worker is a process of its own)."""
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


urlpatterns = [
    path("", views.lobby),
    path("rooms/<slug:room>/", views.room),
    path("rooms/<slug:room>/messages", views.post_message),
    path("rooms/<slug:room>/jobs", views.start_job),
    path("metrics", metrics),
    path("health/", HealthCheckView.as_view(checks=["channels_rabbitmq_threaded.health.ChannelLayer"])),
]
