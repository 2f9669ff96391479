from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("sandboxes/", include("sandboxes.urls")),
    path("model-proxy/", include("sandboxes.model_proxy_urls")),
    path("", include("sessions.urls")),
]
