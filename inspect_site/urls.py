from django.contrib import admin
from django.urls import include, path

from inspect_site import pwa

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("sandboxes/", include("sandboxes.urls")),
    path("", include("sessions.urls")),
    path("", include("ide.urls")),
    path("", include("pulls.urls")),
    path("", include("notifications.urls")),
    path("manifest.webmanifest", pwa.manifest, name="pwa-manifest"),
    path("sw.js", pwa.service_worker, name="pwa-service-worker"),
    path("offline", pwa.offline, name="pwa-offline"),
    path("", include("dictation.urls")),
    path("", include("stats.urls")),
    path("", include("extension.urls")),
]
