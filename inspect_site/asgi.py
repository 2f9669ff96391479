import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inspect_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from ide.front import ROUTE_PATH as FRONT_ROUTE_PATH  # noqa: E402
from ide.front import FrontRoute  # noqa: E402
from ide.proxy import HttpProxy  # noqa: E402
from ide.sockets import SocketProxy  # noqa: E402
from ide.workspace_auth import TicketExchange, WorkspaceAuth, answer, refuse  # noqa: E402
from ide.workspace_hosts import TICKET_PATH, is_workspace_host  # noqa: E402
from inspect_site.origins import SameOriginSockets  # noqa: E402
from model_proxy.proxy import PREFIX as MODEL_PROXY_PREFIX  # noqa: E402
from model_proxy.proxy import ModelProxy  # noqa: E402
from proxy_core.headers import header  # noqa: E402
from pulls.handoff import PREFIX as HANDOFF_PREFIX  # noqa: E402
from pulls.handoff import BranchHandoff  # noqa: E402
from sessions.bridge_socket import BridgeConsumer  # noqa: E402
from sessions.consumers import SessionConsumer  # noqa: E402
from stats.consumers import StatsConsumer  # noqa: E402


def browser(app):
    """Browser sockets: from the platform's own origin only, the signed-in user from the session cookie."""
    return SameOriginSockets(AuthMiddlewareStack(app))


platform_sockets = URLRouter([
    # Bridges authenticate with their sandbox's token, not cookies, and send no Origin.
    path("ws/sandbox/<uuid:sandbox_id>/", BridgeConsumer.as_asgi()),
    path("ws/sessions/<int:session_id>/", browser(SessionConsumer.as_asgi())),
    path("ws/stats/", browser(StatsConsumer.as_asgi())),
])
# The workspace proxy: VS Code, the desktop and previews in the session's sandbox, on the session's own host
# (docs/workspace-proxy.md, docs/threat-model.md).
workspace_sockets = WorkspaceAuth(SocketProxy())
workspace_proxy = WorkspaceAuth(HttpProxy())
ticket_exchange = TicketExchange()
model_proxy = ModelProxy()
branch_handoff = BranchHandoff()
front_route = FrontRoute()  # finds the user itself, in the same database call as the rest


async def http(scope, receive, send):
    """The front proxy's routing question to its answer (ide/front.py). On a workspace host, the ticket
    exchange and workspace paths only. On the platform's host: model calls to the model proxy, sandboxes'
    branches to the hand-off, everything else but workspace paths to Django."""
    if scope["path"] == FRONT_ROUTE_PATH:  # asked by nginx only (its key), with the browser's Host
        return await front_route(scope, receive, send)
    if is_workspace_host(header(scope.get("headers", []), b"host")):
        if scope["path"] == TICKET_PATH:
            return await ticket_exchange(scope, receive, send)
        if scope["path"].startswith("/w/"):
            return await workspace_proxy(scope, receive, send)
        return await answer(send, 404, "Only a session's workspace is served on this host.")
    if scope["path"].startswith("/w/"):
        return await answer(send, 404, "A session's workspace is served on its own host, not here.")
    if scope["path"].startswith(MODEL_PROXY_PREFIX):
        return await model_proxy(scope, receive, send)
    if scope["path"].startswith(HANDOFF_PREFIX):
        return await branch_handoff(scope, receive, send)
    return await django_asgi_app(scope, receive, send)


async def websocket(scope, receive, send):
    if is_workspace_host(header(scope.get("headers", []), b"host")):
        return await workspace_sockets(scope, receive, send)
    if scope["path"].startswith("/w/"):  # a workspace path on the platform's host: refused, not a 500
        return await refuse(scope, receive, send)
    return await platform_sockets(scope, receive, send)


application = ProtocolTypeRouter({"http": http, "websocket": websocket})
