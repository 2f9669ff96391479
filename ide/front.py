"""The front proxy's question: may nginx relay requests for this service straight to the sandbox?

nginx (docs/front-proxy.md) asks `/_front/route` before requests under /w/, with the request's URI, Host,
Origin and cookies, and keeps the answer for `ROUTE_CACHE_SECONDS` per service, browser cookie, host,
origin and socket-or-not (ide/nginx/inspect_front.lua). The answer is always 200; its headers say:
- `X-Route: direct`: a member's request, the service is ready at an http:// address: nginx relays it
  there itself (bytes out of Python), with the platform's cookies taken out (`X-Route-Cookie`) and the
  same header rules as `ide/headers.py`. It still hands two kinds of request to Daphne: a bare prefix
  (the redirect to the slash form) and, for VS Code, GET/HEAD under `X-Route-Static` (VS Code's files,
  answered from the control plane's copy, ide/vscode_static.py) and a GET of its page (`/`, rendered by
  the control plane, ide/workbench_page.py).
- `X-Route: daphne`: anything else (a non-member, a service not ready, a cross-site socket, a foreign
  Host, an https:// tunnel): Daphne's proxy (`ide/proxy.py`, `ide/sockets.py`) answers as without nginx.
So every refusal and every page of the proxy's own still comes from one place.
"""

from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie
from django.utils.crypto import constant_time_compare, salted_hmac

from ide import vscode_static, workspace_hosts
from ide.headers import filter_cookie_header
from ide.paths import parse
from ide.targets import Target, resolve
from proxy_core.headers import header

ROUTE_PATH = "/_front/route"


def front_key() -> str:
    """What nginx sends with every routing question, so only the front proxy gets answers (derived from
    SECRET_KEY: the config that holds it is written by the same deployment)."""
    return salted_hmac("ide.front", "route", secret=settings.SECRET_KEY, algorithm="sha256").hexdigest()


@dataclass(frozen=True)
class Route:
    direct: bool
    upstream: str = ""  # "127.0.0.1:41234": where nginx connects
    prefix: str = ""  # "/w/12/ide"
    cookie: str = ""  # the browser's Cookie header without the platform's cookies, with the service's secret
    static: str = ""  # for VS Code: the path under the prefix where the control plane serves its files
    policy: str = ""  # the Content-Security-Policy nginx adds to the service's answers (ide/workspace_auth.py)

    def headers(self) -> list[tuple[bytes, bytes]]:
        seconds = str(settings.FRONT_ROUTE_CACHE_SECONDS).encode()
        kept = [(b"cache-control", b"max-age=" + seconds)]
        if not self.direct:
            return kept + [(b"x-route", b"daphne")]
        return kept + [(b"x-route", b"direct"), (b"x-route-upstream", self.upstream.encode()),
                       (b"x-route-prefix", self.prefix.encode()), (b"x-route-cookie", self.cookie.encode("latin-1")),
                       (b"x-route-static", self.static.encode()), (b"x-route-policy", self.policy.encode())]


DAPHNE = Route(direct=False)


def goes_direct(target: Target) -> bool:
    """Whether nginx may relay to the service itself: the user may, the service is up, and its address
    needs nothing but a TCP connection (https:// tunnels need TLS and a resolver: Daphne relays those)."""
    return target.ok and target.base_url.startswith("http://")


def route(uri: str, headers: list[tuple[bytes, bytes]], websocket: bool, scheme: str = "http",
          method: str = "GET") -> Route:
    """Where requests for the service that `uri` names go, for the browser sending `headers`.
    Synchronous (it reads the database): the user, the session and its sandbox in one go. Only on the
    session's own workspace host, with its workspace cookie; anything else is Daphne's to refuse."""
    path = parse(uri.partition("?")[0])
    host = header(headers, b"host")
    session_id = workspace_hosts.session_of_host(host)
    if path is None or session_id is None or path.session_id != session_id:
        return DAPHNE
    if websocket:
        # Daphne relays every socket: it closes one within a second of its person losing the session
        # (sessions/access.py), which nginx, relaying by itself, could not.
        return DAPHNE
    cookie = header(headers, b"cookie")
    value = parse_cookie(cookie).get(workspace_hosts.COOKIE_NAME, "")
    if not workspace_hosts.cookie_counts(header(headers, b"sec-fetch-site"), header(headers, b"sec-fetch-mode"),
                                         method):
        return DAPHNE  # another session's page with the viewer's cookie: Daphne's proxy refuses it
    user = workspace_hosts.cookie_user(value, session_id) if value else AnonymousUser()
    target = resolve(user, path.session_id, path.service)
    if not goes_direct(target):
        return DAPHNE
    install = vscode_static.local_install() if path.service == "ide" else None
    return Route(direct=True, upstream=target.base_url.removeprefix("http://"), prefix=path.prefix,
                 cookie=filter_cookie_header(cookie, target.service_cookie), static=install.prefix if install else "",
                 policy=workspace_hosts.frame_ancestors(scheme, host))


route_async = database_sync_to_async(route)


class FrontRoute:
    """ASGI app for `/_front/route`, asked by nginx only (its key)."""

    async def __call__(self, scope, receive, send) -> None:
        headers = scope.get("headers", [])
        if not constant_time_compare(header(headers, b"x-front-key"), front_key()):
            await self.answer(send, 404, [])
            return
        websocket = header(headers, b"x-original-upgrade").lower() == "websocket"
        found = await route_async(header(headers, b"x-original-uri"), headers, websocket, scope.get("scheme", "http"),
                                  header(headers, b"x-original-method") or "GET")
        await self.answer(send, 200, found.headers())

    @staticmethod
    async def answer(send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": headers + [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
