"""Header, cookie and redirect rules between the browser and a sandbox's service.

Pure functions over ASGI-style header lists ([(b"name", b"value")], names lower-case on the way in); the
header sets both proxies share are in proxy_core/headers.py.
"""

from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from ide.workspace_hosts import COOKIE_NAME
from proxy_core.headers import FORWARDING, HOP_BY_HOP, connection_tokens, header

# Sent by the websockets client itself during its handshake.
WEBSOCKET_HANDSHAKE = frozenset({b"host", b"origin", b"sec-websocket-key", b"sec-websocket-version",
                                 b"sec-websocket-protocol", b"sec-websocket-extensions", b"user-agent"})


def platform_cookies() -> frozenset[str]:
    """The platform's own cookies (the workspace host's too): they sign the user in, so a sandbox must never
    see or set them."""
    return frozenset({settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME, "messages", COOKIE_NAME})


def filter_cookie_header(value: str, service_cookie: str = "") -> str:
    """The Cookie header without the platform's cookies, with `service_cookie` ("name=secret", the sandbox's
    service secret, bridge.protocol SERVICE_SECRET_COOKIES) in place of any the browser sent by that name."""
    own = service_cookie.partition("=")[0]
    hidden = platform_cookies() | ({own} if own else set())
    kept = [part.strip() for part in value.split(";") if part.strip().split("=", 1)[0].strip() not in hidden]
    return "; ".join([p for p in kept if p] + ([service_cookie] if service_cookie else []))


def upstream_request_headers(
    headers: list[tuple[bytes, bytes]], *, prefix: str, scheme: str, client: str, websocket: bool = False,
    service_cookie: str = "",
) -> list[tuple[bytes, bytes]]:
    """The browser's request headers as the sandbox's service gets them.

    Host becomes the service's own (the HTTP client sets it), which any backend's address needs
    (a tunnel routes on it); the browser's host goes in X-Forwarded-Host, which code-server 4.x
    checks Origin against (src/node/http.ts getHost: Forwarded, then X-Forwarded-Host, then Host).
    Origin is passed unchanged for the same check. `service_cookie`: see filter_cookie_header.
    """
    # Expect: Daphne has already answered any 100-continue and read the body.
    drop = HOP_BY_HOP | FORWARDING | connection_tokens(headers) | {b"host", b"expect"}
    if websocket:
        drop |= WEBSOCKET_HANDSHAKE
    out = []
    cookies = []
    for name, value in headers:
        name = name.lower()
        if name in drop:
            continue
        if name == b"cookie":
            cookies.append(value.decode("latin-1"))
            continue
        out.append((name, value))
    kept = filter_cookie_header("; ".join(cookies), service_cookie)
    if kept:
        out.append((b"cookie", kept.encode("latin-1")))
    host = header(headers, b"host")
    if host:
        out.append((b"x-forwarded-host", host.encode("latin-1")))
    out.append((b"x-forwarded-proto", b"https" if scheme in ("https", "wss") else b"http"))
    out.append((b"x-forwarded-prefix", prefix.encode()))
    if client:
        out.append((b"x-forwarded-for", client.encode()))
    return out


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def rewrite_location(location: str, *, prefix: str, upstream: str, browser_host: str) -> str:
    """A redirect from the service, pointed back under the prefix.

    Absolute URLs to the service's own address or to the platform's host, and root-relative
    paths, would otherwise leave the workspace path; relative ones and other sites stay as they are.
    """
    try:
        parts = urlsplit(location)
        if parts.netloc and not _points_back(location, parts.scheme, parts.netloc, upstream, browser_host):
            return location
    except ValueError:  # an unparsable port or IPv6 literal: not an address of ours
        return location
    if not parts.netloc and not parts.path.startswith("/"):
        return location
    path = parts.path or "/"
    if not _under(path, prefix):
        path = prefix + path
    return urlunsplit(("", "", path, parts.query, parts.fragment))


def _points_back(location: str, scheme: str, netloc: str, upstream: str, browser_host: str) -> bool:
    """An absolute redirect to the service's own address or to the platform's host."""
    absolute = location if scheme else f"{urlsplit(upstream).scheme}:{location}"
    return _origin(absolute)[1:] == _origin(upstream)[1:] or netloc.lower() == browser_host.lower()


def rewrite_set_cookie(value: str, *, prefix: str) -> str | None:
    """An upstream cookie scoped to the prefix, or None to drop it.

    Path moves under the prefix so services don't overwrite each other's cookies or the platform's;
    Domain goes, since the service's host is not the browser's. A cookie named like one of the
    platform's is dropped: it could shadow the platform's session.
    """
    pair, *attributes = value.split(";")
    if pair.split("=", 1)[0].strip() in platform_cookies():
        return None
    kept = [pair.strip()]
    for attribute in attributes:
        name, _, current = attribute.strip().partition("=")
        lowered = name.strip().lower()
        if lowered == "domain":
            continue
        if lowered == "path":
            current = current.strip()
            if not current.startswith("/"):
                current = "/"
            if not _under(current, prefix):
                current = prefix + current
            kept.append(f"Path={current}")
            continue
        kept.append(attribute.strip())
    return "; ".join(kept)


def browser_response_headers(
    headers: list[tuple[bytes, bytes]], *, prefix: str, upstream: str, browser_host: str
) -> list[tuple[bytes, bytes]]:
    """The service's response headers as the browser gets them."""
    # Clear-Site-Data from a sandbox could wipe the platform's own cookies and storage: same origin.
    drop = HOP_BY_HOP | connection_tokens(headers) | {b"clear-site-data"}
    out = []
    for name, value in headers:
        name = name.lower()
        if name in drop:
            continue
        if name == b"set-cookie":
            cookie = rewrite_set_cookie(value.decode("latin-1"), prefix=prefix)
            if cookie is not None:
                out.append((name, cookie.encode("latin-1")))
            continue
        if name == b"location":
            location = rewrite_location(value.decode("latin-1"), prefix=prefix, upstream=upstream,
                                        browser_host=browser_host)
            out.append((name, location.encode("latin-1")))
            continue
        out.append((name, value))
    return out
