from django.urls import path

from notifications import views

urlpatterns = [
    path("notifications/", views.device_settings, name="notification-settings"),
    path("notifications/subscribe", views.subscribe, name="push-subscribe"),
    path("notifications/unsubscribe", views.unsubscribe, name="push-unsubscribe"),
]
