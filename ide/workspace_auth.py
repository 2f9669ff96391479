"""Who is asking on a workspace host (ide/workspace_hosts.py): the ticket exchange, and the user of every
request and socket from the workspace cookie (or, for a socket the platform's page opens, a ticket)."""

from urllib.parse import parse_qs, quote, urlencode

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie

from ide import workspace_hosts
from ide.paths import parse, request_path
from proxy_core.headers import header

SAFE_IN_LOCATION = "/:@!$&'()*+,;=-._~?%"
redeem_ticket = database_sync_to_async(workspace_hosts.redeem_ticket)
cookie_user = database_sync_to_async(workspace_hosts.cookie_user)
active_user = database_sync_to_async(workspace_hosts.active_user)


def request_cookie(headers: list[tuple[bytes, bytes]], name: str) -> str:
    """As Django parses cookies (and ide/front.py for nginx): a malformed pair beside it does not hide it."""
    return parse_cookie(header(headers, b"cookie")).get(name, "")


async def answer(send, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = message.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store"), *headers]})
    await send({"type": "http.response.body", "body": body})


class TicketExchange:
    """GET TICKET_PATH?ticket=...&next=/w/<id>/<service>/ on session <id>'s host: sets the workspace cookie and
    sends the browser on. The ticket must be for this host's session, unused and fresh."""

    async def __call__(self, scope, receive, send) -> None:
        host = header(scope.get("headers", []), b"host")
        session_id = workspace_hosts.session_of_host(host)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        ticket = (query.get("ticket") or [""])[0]
        target = parse((query.get("next") or [""])[0])
        if session_id is None or scope["method"] not in ("GET", "HEAD"):
            await answer(send, 404, "No such page.")
            return
        redeemed = await redeem_ticket(ticket, session_id) if ticket else None
        if redeemed is None:
            await answer(send, 403, "This link has expired or was used already. Open the session's page again.")
            return
        user_id, login = redeemed
        user = await active_user(user_id)
        if user is None:
            await answer(send, 403, "This account cannot sign in.")
            return
        # Only somewhere under this session's own prefix, percent-encoded: never another site, nor a header break.
        location = quote(target.prefix + "/" + target.rest.lstrip("/"), safe=SAFE_IN_LOCATION) \
            if target and target.session_id == session_id else f"/w/{session_id}/ide/"
        cookie = workspace_hosts.set_cookie_header(workspace_hosts.cookie_value(user, session_id, login),
                                                   scope.get("scheme", "http"), host)
        policy = workspace_hosts.frame_ancestors(scope.get("scheme", "http"), host)
        await answer(send, 302, "Signed in to the workspace.",
                     [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode("latin-1")),
                      *walled_headers(policy)])


class WorkspaceAuth:
    """Middleware for the workspace proxies on a workspace host: scope["user"] from the workspace cookie (a
    socket may present a ticket instead, taken out of the query it forwards). A path of another session
    than the host's is refused, so one session's pages cannot reach another's services."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        headers = scope.get("headers", [])
        session_id = workspace_hosts.session_of_host(header(headers, b"host"))
        path = parse(request_path(scope))
        if session_id is None or (path is not None and path.session_id != session_id):
            return await refuse(scope, receive, send)
        if scope["type"] == "websocket" and not workspace_hosts.socket_origin_allowed(
                header(headers, b"origin"), scope.get("scheme", "ws"), header(headers, b"host")):
            return await refuse(scope, receive, send)
        user, login = AnonymousUser(), ""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if scope["type"] == "websocket" and "ticket" in query:
            redeemed = await redeem_ticket(query.pop("ticket")[0], session_id)
            if redeemed is not None:
                user, login = await active_user(redeemed[0]) or AnonymousUser(), redeemed[1]
            scope = {**scope, "query_string": urlencode(query, doseq=True).encode("latin-1")}
        else:
            value = request_cookie(headers, workspace_hosts.COOKIE_NAME)
            counts = scope["type"] == "websocket" or workspace_hosts.cookie_counts(
                header(headers, b"sec-fetch-site"), header(headers, b"sec-fetch-mode"), scope["method"])
            if value and counts:  # sockets: the Origin rule above
                user, login = await cookie_user(value, session_id), workspace_hosts.cookie_login(value)
        # "login": the platform sign-in the user came in under; a socket closes when it is signed out.
        return await self.app({**scope, "user": user, "login": login}, receive, walled(send, scope))


def walled(send, scope):
    """`send`, with every answer's headers made safe for the workspace host: only the platform frames it,
    and no service worker claims more than the path its script is under."""
    policy = workspace_hosts.frame_ancestors(scope.get("scheme", "http"), header(scope.get("headers", []), b"host"))

    async def send_walled(message):
        if message["type"] == "http.response.start":
            headers = [(name, value) for name, value in message.get("headers", [])
                       if name.lower() not in DROPPED_RESPONSE_HEADERS]
            if not {name.lower() for name, _ in headers} & {b"cache-control", b"expires"}:
                headers.append((b"cache-control", REVALIDATE))
            message = {**message, "headers": [*headers, *walled_headers(policy)]}
        await send(message)

    return send_walled


# Service-Worker-Allowed would let a preview's worker claim the whole host, VS Code's paths included; the
# host's Origin-Agent-Cluster is ours alone (a second value would undo it).
DROPPED_RESPONSE_HEADERS = frozenset({b"service-worker-allowed", b"origin-agent-cluster"})


# An answer that says nothing of caching (a dev server's page) is revalidated each time: browsers would
# otherwise keep it a while by its Last-Modified, and the preview's Reload, which can only navigate the
# cross-origin frame again, would show the page from before the agent's change.
REVALIDATE = b"no-cache"


def walled_headers(policy: str) -> list[tuple[bytes, bytes]]:
    """What every answer on a workspace host carries: only the platform may frame it, and it asks for an
    agent cluster of its own origin, so Chromium runs it in a process of its own even where the host is the
    platform's site (VS Code's seconds of script then never stop the session page)."""
    return [(b"content-security-policy", policy.encode("latin-1")), (b"origin-agent-cluster", b"?1")]


async def refuse(scope, receive, send) -> None:
    if scope["type"] == "websocket":
        if (await receive())["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 4404})
        return
    await answer(send, 404, "No such workspace path.")
