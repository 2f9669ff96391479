from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("sandboxes/", include("sandboxes.urls")),
    path("", include("sessions.urls")),
    path("", include("ide.urls")),
    path("", include("pulls.urls")),
    path("", include("stats.urls")),
]
