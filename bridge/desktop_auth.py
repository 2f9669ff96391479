"""websockify's check that a desktop connection carries the sandbox's service secret.

websockify loads this class itself (`--auth-plugin bridge.desktop_auth.ServiceSecret`, with the bridge's
folder on PYTHONPATH) and calls `authenticate` with each handshake's headers. The secret comes from the
environment the bridge gives websockify, never from its command line, which any process can read.
"""

import hmac
import os

from websockify.auth_plugins import AuthenticationError  # type: ignore[import-not-found]

from bridge.protocol import SERVICE_SECRET_COOKIES, SERVICE_SECRET_ENV

COOKIE = SERVICE_SECRET_COOKIES["desktop"]


def presented_secret(cookie_header: str) -> str:
    """The desktop's cookie in a Cookie header, or "". Split by hand: a preview's odd cookie beside it must
    not make the whole header unreadable, as it can for http.cookies."""
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip() == COOKIE:
            return value.strip()
    return ""


class ServiceSecret:
    def __init__(self, source: str | None = None):
        self.secret = os.environ.get(SERVICE_SECRET_ENV, "")

    def authenticate(self, headers, target_host, target_port) -> None:
        presented = presented_secret(headers.get("Cookie") or "")
        if not self.secret or not hmac.compare_digest(presented.encode(), self.secret.encode()):
            raise AuthenticationError(response_code=403, response_msg="Forbidden")
