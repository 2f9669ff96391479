"""Browser sockets on the platform's host come from the platform's own pages: their Origin must be the
socket's own scheme, host and port exactly (channels' AllowedHostsOriginValidator matches a scheme-less
ALLOWED_HOSTS entry on the host alone, so any port of that host, such as a preview's, would pass)."""

from django.conf import settings

from proxy_core.headers import header


def same_origin(origin: str, scheme: str, host: str) -> bool:
    page_scheme = "https" if scheme in ("https", "wss") else "http"
    allowed = {f"{page_scheme}://{host}".lower(), *(o.lower().rstrip("/") for o in settings.CSRF_TRUSTED_ORIGINS)}
    return bool(origin) and bool(host) and origin.lower() in allowed


class SameOriginSockets:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        headers = scope.get("headers", [])
        if not same_origin(header(headers, b"origin"), scope.get("scheme", "ws"), header(headers, b"host")):
            if (await receive())["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 4403})
            return
        return await self.app(scope, receive, send)
