"""The workspace URL scheme: /w/<session_id>/<service>/<rest>. Pure functions, no Django models."""

import re
from dataclasses import dataclass
from urllib.parse import quote

# The service name is a key of Sandbox.services ("ide", "desktop", "preview-3000").
_PATTERN = re.compile(r"^/w/(?P<session_id>[0-9]+)/(?P<service>[a-z0-9-]+)(?P<rest>/.*)?$", re.DOTALL)


@dataclass(frozen=True)
class ServicePath:
    session_id: int
    service: str
    rest: str  # what the sandbox's service sees: "" (no trailing slash given) or "/..."

    @property
    def prefix(self) -> str:
        """The path the platform mounts the service at, without its trailing slash."""
        return f"/w/{self.session_id}/{self.service}"


def service_path(session_id: int, service: str) -> str:
    """Where a browser reaches a session's service, e.g. "/w/12/ide/"."""
    return f"/w/{session_id}/{service}/"


def parse(path: str) -> ServicePath | None:
    """Split a request path (raw, still percent-encoded) into session, service and the rest."""
    match = _PATTERN.match(path)
    if match is None:
        return None
    return ServicePath(int(match["session_id"]), match["service"], match["rest"] or "")


def request_path(scope: dict) -> str:
    """The path as the browser sent it, still percent-encoded, so "%2F" reaches the service intact."""
    raw = scope.get("raw_path")
    if raw:
        return raw.decode("latin-1").split("?", 1)[0]
    return quote(scope["path"], safe="/:@!$&'()*+,;=-._~")
