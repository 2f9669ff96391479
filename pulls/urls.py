from django.urls import path

from pulls import views

urlpatterns = [
    path("sessions/<int:session_id>/pull-request", views.pull_request, name="session-pull-request"),
    path("github/webhook", views.webhook, name="github-webhook"),
]
