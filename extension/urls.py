from django.urls import path

from extension import api, views

urlpatterns = [
    path("extension/connect", views.connect, name="extension-connect"),
    path("extension/tokens", views.tokens, name="extension-tokens"),
    path("extension/tokens/<int:token_id>/revoke", views.revoke, name="extension-revoke"),
    path("extension/api/repos", api.repos, name="extension-api-repos"),
    path("extension/api/sessions", api.create_session, name="extension-api-sessions"),
    path("extension/api/sessions/<int:session_id>", api.session_status, name="extension-api-session"),
]
