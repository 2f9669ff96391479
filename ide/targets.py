"""Which sandbox address a member's request for a session's service goes to, or why it cannot go.

Synchronous and database-bound: the proxies call `resolve` through `database_sync_to_async`.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from channels.db import database_sync_to_async

from bridge.protocol import SERVICE_SECRET_COOKIES
from ide.names import service_label
from sandboxes.backends import get_backend
from sandboxes.lifecycle import State
from sessions.models import Session

log = logging.getLogger(__name__)

FORBIDDEN = "You are not a member of this session."


@dataclass(frozen=True)
class Target:
    status: int  # 200: reachable at base_url; otherwise the HTTP status to answer with
    message: str = ""
    base_url: str = ""  # e.g. "http://127.0.0.1:41234", no trailing slash
    starting: bool = False  # not up yet, but on its way (the sandbox or the service is starting)
    report: dict | None = None  # the service's latest report, when the sandbox has one
    service_cookie: str = ""  # "name=secret": what VS Code and the desktop ask of every request (ide/headers.py)

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def allowed(self) -> bool:
        """The user may use this session's workspace (a member or staff), whether or not the service is up."""
        return self.status != 403


def resolve(user, session_id: int, service: str) -> Target:
    """Where `user` reaches `service` of session `session_id`.

    An unknown session answers like a session the user is not in (403), so ids reveal nothing.
    The port always comes from the session's own sandbox record, never from the URL, so one
    session's path cannot reach another sandbox's ports.
    """
    session = Session.objects.select_related("sandbox").filter(pk=session_id).first()
    if session is None or not session.can_prompt(user):  # watchers see the timeline, not the workspace
        return Target(403, FORBIDDEN)
    label = service_label(service, "subject")
    sandbox = session.sandbox
    if sandbox is None or sandbox.state not in State.LIVE:
        return Target(503, f"{label} is not running: this session has no running sandbox. Send a prompt to start one.")
    info = (sandbox.services or {}).get(service)
    if not isinstance(info, dict):
        if sandbox.state in State.STARTING:
            return Target(503, f"{label} is starting with the sandbox…", starting=True)
        return Target(503, f"{label} is not running in this session's sandbox.")
    state, reason = info.get("state", ""), info.get("reason") or ""
    if state == "starting":
        return Target(503, f"{label} is starting…", starting=True, report=info)
    if state == "failed":
        return Target(502, f"{label} failed: {reason or 'no reason given'}")
    if state != "ready":
        return Target(503, f"{label} is {state or 'in an unknown state'}" + (f": {reason}" if reason else "."))
    port = info.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        return Target(502, f"{label} is ready but reported no valid port.")
    try:
        base_url = get_backend(sandbox.backend).endpoints(sandbox.backend_ref, [port])[port]
    except Exception:
        log.exception("no endpoint for port %s of sandbox %s", port, sandbox.pk)
        return Target(502, f"{label} cannot be reached: the sandbox gave no address for it.")
    cookie = SERVICE_SECRET_COOKIES.get(service)
    return Target(200, base_url=base_url.rstrip("/"), report=info,
                  service_cookie=f"{cookie}={sandbox.service_secret()}" if cookie else "")


resolve_async = database_sync_to_async(resolve)

POLL_SECONDS = 0.1


async def resolve_when_up(user, session_id: int, service: str, seconds: float, first: Target | None = None,
                          enough: Callable[[Target], bool] = lambda target: False) -> Target:
    """`resolve`, waiting up to `seconds` while the service is on its way up (checked every 0.1 s) and
    `enough(target)` is false: a request held until VS Code is ready rather than refused while it starts."""
    deadline = time.monotonic() + seconds
    target = first or await resolve_async(user, session_id, service)
    while target.starting and not enough(target) and time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
        target = await resolve_async(user, session_id, service)
    return target
