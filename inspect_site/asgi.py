import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inspect_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from ide.front import ROUTE_PATH as FRONT_ROUTE_PATH  # noqa: E402
from ide.front import FrontRoute  # noqa: E402
from ide.proxy import HttpProxy  # noqa: E402
from ide.sockets import SocketProxy  # noqa: E402
from model_proxy.proxy import PREFIX as MODEL_PROXY_PREFIX  # noqa: E402
from model_proxy.proxy import ModelProxy  # noqa: E402
from sessions.bridge_socket import BridgeConsumer  # noqa: E402
from sessions.consumers import SessionConsumer  # noqa: E402


def browser(app):
    """Browser sockets: same-origin only, the signed-in user from the session cookie."""
    return AllowedHostsOriginValidator(AuthMiddlewareStack(app))


websocket_urlpatterns = [
    # Bridges authenticate with their sandbox's token, not cookies, and send no Origin.
    path("ws/sandbox/<uuid:sandbox_id>/", BridgeConsumer.as_asgi()),
    path("ws/sessions/<int:session_id>/", browser(SessionConsumer.as_asgi())),
    # The workspace proxy: VS Code, the desktop and previews in the session's sandbox (docs/workspace-proxy.md).
    re_path(r"^w/[0-9]+/[a-z0-9-]+(/|$)", browser(SocketProxy())),
]

workspace_proxy = AuthMiddlewareStack(HttpProxy())
model_proxy = ModelProxy()
front_route = FrontRoute()  # finds the user itself, in the same database call as the rest


async def http(scope, receive, send):
    """Workspace paths and model calls go to the streaming proxies, the front proxy's routing question
    to its answer (ide/front.py), everything else to Django."""
    if scope["path"].startswith("/w/"):
        return await workspace_proxy(scope, receive, send)
    if scope["path"] == FRONT_ROUTE_PATH:
        return await front_route(scope, receive, send)
    if scope["path"].startswith(MODEL_PROXY_PREFIX):
        return await model_proxy(scope, receive, send)
    return await django_asgi_app(scope, receive, send)


application = ProtocolTypeRouter({"http": http, "websocket": URLRouter(websocket_urlpatterns)})
