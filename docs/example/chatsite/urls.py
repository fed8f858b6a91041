from django.urls import path

from chat import views

urlpatterns = [
    path("", views.lobby),
    path("rooms/<slug:room>/", views.room),
    path("rooms/<slug:room>/messages", views.post_message),
    path("rooms/<slug:room>/jobs", views.start_job),
]
