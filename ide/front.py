"""The front proxy's question: may nginx relay this /w/ request straight to the sandbox's service?

nginx (docs/front-proxy.md) asks `/_front/route` before every request under /w/ (its `auth_request`),
with the request's method, URI, Host, Origin and cookies. The answer is always 200; its headers say where
the request goes:
- `X-Route: direct`: the request is a member's, the service is ready at an http:// address, and nothing
  but relaying is left to do. nginx relays it there itself (bytes out of Python), with the headers below
  and the same rules as `ide/headers.py` (the response side in `ide/front/headers.lua`).
- `X-Route: daphne`: anything else (a non-member, a service not ready, VS Code's static files, a redirect
  to the slash form, a cross-site socket, an https:// tunnel). nginx hands the request to Daphne, whose
  proxy (`ide/proxy.py`, `ide/sockets.py`) answers it as it does without nginx.
So every refusal and every page of the proxy's own still comes from one place.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from channels.security.websocket import AllowedHostsOriginValidator
from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

from ide import vscode_static
from ide.headers import filter_cookie_header, header
from ide.paths import ServicePath, parse
from ide.targets import Target, host_allowed, resolve

ROUTE_PATH = "/_front/route"


def front_key() -> str:
    """What nginx sends with every routing question, so only the front proxy gets answers (derived from
    SECRET_KEY: the config that holds it is written by the same deployment)."""
    return salted_hmac("ide.front", "route", secret=settings.SECRET_KEY, algorithm="sha256").hexdigest()


@dataclass(frozen=True)
class Route:
    direct: bool
    upstream: str = ""  # "127.0.0.1:41234": where nginx connects
    uri: str = ""  # the path and query the service gets, as the browser encoded them
    prefix: str = ""  # "/w/12/ide"
    cookie: str = ""  # the browser's Cookie header without the platform's cookies

    def headers(self) -> list[tuple[bytes, bytes]]:
        if not self.direct:
            return [(b"x-route", b"daphne")]
        return [(b"x-route", b"direct"), (b"x-route-upstream", self.upstream.encode()),
                (b"x-route-base", f"http://{self.upstream}".encode()), (b"x-route-uri", self.uri.encode("latin-1")),
                (b"x-route-prefix", self.prefix.encode()), (b"x-route-cookie", self.cookie.encode("latin-1"))]


DAPHNE = Route(direct=False)


def goes_direct(path: ServicePath | None, target: Target | None, *, websocket: bool, static: bool) -> bool:
    """Whether relaying is all that is left for this request: everything the proxy would answer itself
    (refusals, waits, its own pages and files, redirects to the slash form) stays with Daphne."""
    if path is None or target is None or not target.ok or static:
        return False
    if not path.rest and not websocket:
        return False  # the redirect to the slash form
    # https:// services (Modal tunnels) need TLS and a resolver: Daphne's proxy relays those.
    return target.base_url.startswith("http://")


def origin_allowed(origin: str) -> bool:
    """The same-origin rule `browser()` applies to sockets (channels' AllowedHostsOriginValidator)."""
    return AllowedHostsOriginValidator(None).valid_origin(urlsplit(origin) if origin else None)


def route(user, method: str, uri: str, headers: list[tuple[bytes, bytes]], websocket: bool) -> Route:
    """Where the request `method uri` of `user` goes. Synchronous: it reads the database."""
    raw_path, _, query = uri.partition("?")
    path = parse(raw_path)
    if path is None or not host_allowed(header(headers, b"host")):
        return DAPHNE
    if websocket and not origin_allowed(header(headers, b"origin")):
        return DAPHNE
    target = resolve(user, path.session_id, path.service)
    static = (target.allowed and method in ("GET", "HEAD") and not websocket
              and vscode_static.lookup(path) is not None)
    if not goes_direct(path, target, websocket=websocket, static=static):
        return DAPHNE
    return Route(direct=True, upstream=target.base_url.removeprefix("http://"),
                 uri=(path.rest or "/") + ("?" + query if query else ""), prefix=path.prefix,
                 cookie=filter_cookie_header(header(headers, b"cookie")))


route_async = database_sync_to_async(route)


class FrontRoute:
    """ASGI app for `/_front/route` (inside AuthMiddlewareStack, so scope["user"] is the cookie's user)."""

    async def __call__(self, scope, receive, send) -> None:
        headers = scope.get("headers", [])
        if not constant_time_compare(header(headers, b"x-front-key"), front_key()):
            await self.answer(send, 404, [])
            return
        method = header(headers, b"x-original-method").upper()
        websocket = header(headers, b"x-original-upgrade").lower() == "websocket"
        found = await route_async(scope.get("user"), method, header(headers, b"x-original-uri"), headers,
                                  websocket)
        await self.answer(send, 200, found.headers())

    @staticmethod
    async def answer(send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": headers + [(b"content-length", b"0"), (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": b""})
