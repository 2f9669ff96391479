"""Workspace hosts: what a sandbox serves is never served on the platform's origin (docs/threat-model.md).

Each session's services live on a host of their own, `s-<session id>.<WORKSPACE_HOST>` (by default
`s-12.inspect.localhost`, which browsers resolve to loopback, beside the platform at `inspect.localhost`), on
the platform's own port. The platform's cookies are host-only: never sent there. A member's browser gets in
with a ticket: a signed, short-lived, single-use token the platform hands out (ide/views.py `open_service`),
exchanged on the session's host for a cookie scoped to that host (`COOKIE_NAME`), which names the user and
the session and is checked on every request.
"""

import re
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.core.cache import cache
from django.http.request import split_domain_port
from django.utils.crypto import constant_time_compare

from sessions.access import login_ended

TICKET_PATH = "/_workspace/enter"
COOKIE_NAME = "inspect_workspace"
TICKET_SECONDS = 60
COOKIE_SECONDS = 12 * 3600
_TICKET_SALT = "ide.workspace-ticket"
_COOKIE_SALT = "ide.workspace-cookie"
_LABEL = re.compile(r"^s-([1-9][0-9]{0,17})$")


def host_name(host: str) -> str:
    """The name of a Host header, lower-case, without its port."""
    return split_domain_port(host)[0]


def host_port(host: str) -> str:
    return split_domain_port(host)[1]


def is_workspace_host(host: str) -> bool:
    """Any name under WORKSPACE_HOST (not WORKSPACE_HOST itself, which may be the platform's): only workspace
    paths answer there, never the platform's pages."""
    return host_name(host).endswith("." + settings.WORKSPACE_HOST.lower())


def session_of_host(host: str) -> int | None:
    """The session whose host `host` is, e.g. 12 for "s-12.inspect.localhost:8000"."""
    name, suffix = host_name(host), "." + settings.WORKSPACE_HOST.lower()
    if not name.endswith(suffix):
        return None
    match = _LABEL.match(name[: -len(suffix)])
    return int(match[1]) if match else None


def session_origin(scheme: str, platform_host: str, session_id: int) -> str:
    """Where a page served at `scheme`://`platform_host` reaches session `session_id`'s services: the
    session's host on the platform's port."""
    port = host_port(platform_host)
    return f"{scheme}://s-{session_id}.{settings.WORKSPACE_HOST}" + (f":{port}" if port else "")


def platform_origins(scheme: str, workspace_host: str) -> list[str]:
    """The origins of the platform's pages that may frame a workspace host or open its sockets: each name of
    ALLOWED_HOSTS (not its patterns), on the scheme and port the workspace host was reached on."""
    port = host_port(workspace_host)
    names = [name for name in settings.ALLOWED_HOSTS if name and not name.startswith(".") and "*" not in name]
    return [f"{scheme}://{name}" + (f":{port}" if port else "") for name in names]


def socket_origin_allowed(origin: str, scheme: str, host: str) -> bool:
    """A socket to a workspace host comes from that host's own pages (VS Code, the preview) or from the
    platform's (the desktop's viewer): scheme, host and port compared exactly."""
    page_scheme = "https" if scheme in ("https", "wss") else "http"
    return bool(origin) and origin.lower() in {f"{page_scheme}://{host}".lower(),
                                               *(o.lower() for o in platform_origins(page_scheme, host))}


def frame_ancestors(scheme: str, host: str) -> str:
    """The Content-Security-Policy every answer on a workspace host carries: only the platform's pages (and
    the host's own, for VS Code's webviews) may frame it."""
    page_scheme = "https" if scheme in ("https", "wss") else "http"
    return "frame-ancestors 'self' " + " ".join(platform_origins(page_scheme, host))


def cookie_counts(sec_fetch_site: str, sec_fetch_mode: str, method: str) -> bool:
    """Whether the workspace cookie signs a request in: one from the host's own pages (same-origin), the
    browser's own (none), a client that is no browser (no header), or a GET navigation from elsewhere (the
    platform's frames, a link). Not a request another session's page makes with the viewer's cookie, which
    the browser sends since every session's host is the same site."""
    if sec_fetch_site.lower() in ("", "same-origin", "none"):
        return True
    return sec_fetch_mode.lower() == "navigate" and method in ("GET", "HEAD")


# --- tickets and the workspace cookie ------------------------------------------------------------

def issue_ticket(user, session_id: int, login: str = "") -> str:
    """A ticket for `user` into session `session_id`'s host, good once within TICKET_SECONDS. `login`: the
    platform sign-in it was asked under (sessions.access.login_of), which signing out ends."""
    return signing.dumps({"u": user.pk, "s": session_id, "l": login, "n": secrets.token_urlsafe(12)},
                         salt=_TICKET_SALT)


def redeem_ticket(ticket: str, session_id: int) -> tuple[int, str] | None:
    """The user id and sign-in a valid ticket for this session names; None if it is forged, expired, for
    another session, used before, or its sign-in ended. Synchronous: it marks the ticket used in the
    shared cache."""
    try:
        data = signing.loads(ticket, salt=_TICKET_SALT, max_age=TICKET_SECONDS)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("s") != session_id or not isinstance(data.get("u"), int):
        return None
    login = data.get("l") if isinstance(data.get("l"), str) else ""
    if login_ended(login) or not cache.add(f"ide:ticket:{data.get('n')}", 1, TICKET_SECONDS + 5):
        return None  # signed out since, or used before
    return data["u"], login


def cookie_value(user, session_id: int, login: str = "") -> str:
    """The workspace cookie's value: the user, the session, the platform sign-in it came from (signing out
    ends it) and the user's session hash, so a changed password ends it as it ends the platform's own."""
    return signing.dumps({"u": user.pk, "s": session_id, "l": login, "h": user.get_session_auth_hash()},
                         salt=_COOKIE_SALT)


def cookie_login(value: str) -> str:
    """The sign-in a workspace cookie (already checked by cookie_user) came from."""
    try:
        data = signing.loads(value, salt=_COOKIE_SALT, max_age=COOKIE_SECONDS)
    except signing.BadSignature:
        return ""
    login = data.get("l") if isinstance(data, dict) else ""
    return login if isinstance(login, str) else ""


def active_user(user_id: object):
    """The active user with this id, or None. Synchronous."""
    return get_user_model().objects.filter(pk=user_id, is_active=True).first() if isinstance(user_id, int) else None


def cookie_user(value: str, session_id: int):
    """The active user a workspace cookie names for this session, else AnonymousUser. Synchronous."""
    try:
        data = signing.loads(value, salt=_COOKIE_SALT, max_age=COOKIE_SECONDS)
    except signing.BadSignature:
        return AnonymousUser()
    if not isinstance(data, dict) or data.get("s") != session_id or login_ended(str(data.get("l") or "")):
        return AnonymousUser()
    user = active_user(data.get("u"))
    if user is None or not constant_time_compare(user.get_session_auth_hash(), str(data.get("h"))):
        return AnonymousUser()
    return user


def set_cookie_header(value: str, scheme: str, host: str) -> str:
    """The cookie for the session's host only (no Domain). SameSite=None (hence Secure, which browsers allow
    on https and on *.localhost) and Partitioned keep it working in the platform's frames even where
    WORKSPACE_HOST is not the platform's site."""
    base = f"{COOKIE_NAME}={value}; Path=/; Max-Age={COOKIE_SECONDS}; HttpOnly"
    if scheme in ("https", "wss") or host_name(host).endswith(".localhost"):
        return base + "; Secure; SameSite=None; Partitioned"
    return base + "; SameSite=Lax"  # plain http elsewhere: works only where the hosts are same-site
