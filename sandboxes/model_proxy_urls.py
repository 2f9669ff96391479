"""The model proxy's URLs (included under /model-proxy/ in inspect_site/urls.py)."""

from django.urls import path

from sandboxes import model_proxy

app_name = "model_proxy"

urlpatterns = [
    path("<str:provider>/v1/chat/completions", model_proxy.proxy, {"endpoint": "chat/completions"},
         name="chat-completions"),
    path("<str:provider>/v1/messages", model_proxy.proxy, {"endpoint": "messages"}, name="messages"),
    path("<str:provider>/v1/models", model_proxy.proxy, {"endpoint": "models"}, name="models"),
]
