"""The HTTP side of the workspace proxy: a raw ASGI app, so bodies stream both ways.

Mounted at /w/ on workspace hosts by inspect_site/asgi.py inside ide/workspace_auth.py's WorkspaceAuth, which
sets scope["user"] and refuses any other host or another session's path.
See docs/workspace-proxy.md for the rules and why.
"""

import asyncio
import html
import logging

import httpx
from channels.db import database_sync_to_async

from ide import vscode_static, workbench_page
from ide.headers import browser_response_headers, upstream_request_headers
from ide.names import service_label
from ide.paths import ServicePath, parse, request_path
from ide.targets import Target, resolve_async, resolve_when_up
from proxy_core import upstream
from proxy_core.clients import loop_client
from proxy_core.headers import header
from proxy_core.relay import ClientGone, relay_until_disconnect, request_body

log = logging.getLogger(__name__)

# Connecting must be quick (a sandbox service is local or behind a tunnel); reading never times out,
# since VS Code and dev servers hold long polls and event streams open.
# VS Code's page can be up before its server (ide/workbench_page.py): its requests wait this long for it.
IDE_WAIT_SECONDS = 20.0
TIMEOUT = httpx.Timeout(connect=5.0, read=None, write=None, pool=None)
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=200, keepalive_expiry=30)


def service_client() -> httpx.AsyncClient:
    """This event loop's pooled client for https:// services (tunnels): connections to them are reused."""
    return loop_client("workspace", make_service_client)


def make_service_client() -> httpx.AsyncClient:
    # trust_env off: an HTTP(S)_PROXY meant for the platform's outbound calls must not catch these.
    client = httpx.AsyncClient(timeout=TIMEOUT, limits=LIMITS, follow_redirects=False, trust_env=False)
    # httpx's defaults would ask for encodings the browser may not have offered; send only the browser's.
    for name in ("accept", "accept-encoding", "user-agent"):
        del client.headers[name]
    return client


def page(status: int, message: str, retry: bool = False) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """A small HTML answer of the proxy's own. `retry` reloads it shortly (a service that is starting)."""
    refresh = '<meta http-equiv="refresh" content="3">' if retry else ""
    body = (
        f'<!doctype html><meta charset="utf-8">{refresh}<title>{html.escape(message)}</title>'
        f'<body style="font-family: system-ui, sans-serif; padding: 2rem"><p>{html.escape(message)}</p>'
    ).encode()
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    if retry:
        headers.append((b"retry-after", b"3"))
    return headers, body


async def respond(send, status: int, message: str, retry: bool = False, extra=()) -> None:
    headers, body = page(status, message, retry)
    await send({"type": "http.response.start", "status": status, "headers": headers + list(extra)})
    await send({"type": "http.response.body", "body": body})


def vscode_page(scope, path: ServicePath, target: Target) -> workbench_page.Answer | None:
    """VS Code's page as the control plane renders it, when this request is for it and the sandbox reported
    what it runs (ide/workbench_page.py); None: the request goes its usual way."""
    if path.service != "ide" or scope["method"] != "GET" or path.rest != "/":
        return None
    return workbench_page.answer((target.report or {}).get("vscode"), scope.get("query_string", b""))


async def send_found(scope, send, found: vscode_static.Found) -> None:
    """One of VS Code's files, or why there is none."""
    if found.file is None:
        await respond(send, found.status, "Bad request." if found.status == 400 else "Not found.")
    else:
        await vscode_static.serve(scope, send, found.file)


async def send_answer(send, answer: workbench_page.Answer) -> None:
    await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
    await send({"type": "http.response.body", "body": answer.body})


@database_sync_to_async
def signed_in(user) -> bool:
    return bool(user is not None and user.is_authenticated)


class HttpProxy:
    """ASGI app for http scopes whose path starts with /w/."""

    async def __call__(self, scope, receive, send) -> None:
        raw = request_path(scope)
        if raw.startswith(vscode_static.SHARED_ROOT + "/"):
            await self.shared_vscode_file(scope, send, raw)
            return
        path = parse(raw)
        if path is None:
            await respond(send, 404, "No such workspace path.")
            return
        if not path.rest:
            # Relative URLs in the service's pages only resolve under the prefix with its slash.
            query = scope.get("query_string", b"")
            location = path.prefix + "/" + ("?" + query.decode("latin-1") if query else "")
            await respond(send, 302, "Moved.", extra=[(b"location", location.encode("latin-1"))])
            return
        target = await resolve_async(scope.get("user"), path.session_id, path.service)
        if target.allowed and scope["method"] in ("GET", "HEAD"):
            # VS Code's own files, from the control plane's copy when it is the same version (also
            # while the sandbox's code-server is starting): see ide/vscode_static.py.
            found = vscode_static.lookup(path)
            if found is not None:
                await send_found(scope, send, found)
                return
        if path.service == "ide" and target.starting:
            target = await self.while_vscode_starts(scope, send, path, target)
            if target is None:
                return
        if not target.ok:
            await respond(send, target.status, target.message, retry=target.status == 503)
            return
        # The control plane's page once VS Code is up too: its files come from the shared path.
        answer = vscode_page(scope, path, target)
        if answer is not None:
            await send_answer(send, answer)
            return
        await self.forward(scope, receive, send, path, target)

    @staticmethod
    async def shared_vscode_file(scope, send, raw: str) -> None:
        """VS Code's files at the path every session's workbench page loads them from (ide/vscode_static.py):
        for any signed-in user, GET and HEAD only."""
        if scope["method"] not in ("GET", "HEAD"):
            await respond(send, 405, "Only GET and HEAD.", extra=[(b"allow", b"GET, HEAD")])
            return
        if not await signed_in(scope.get("user")):
            await respond(send, 403, "Sign in first.")
            return
        await send_found(scope, send, vscode_static.lookup_shared(raw))

    @staticmethod
    async def while_vscode_starts(scope, send, path: ServicePath, target: Target) -> Target | None:
        """VS Code's page from the control plane as soon as the sandbox reported what it runs (None: answered);
        any other request waits for VS Code to be up, then goes to it (see ide/workbench_page.py)."""
        target = await resolve_when_up(scope.get("user"), path.session_id, path.service, IDE_WAIT_SECONDS,
                                       first=target, enough=lambda t: vscode_page(scope, path, t) is not None)
        answer = vscode_page(scope, path, target) if target.starting else None
        if answer is None:
            return target
        await send_answer(send, answer)
        return None

    async def forward(self, scope, receive, send, path: ServicePath, target: Target) -> None:
        first = await receive()
        if first["type"] == "http.disconnect":
            return
        body_read = asyncio.Event()
        if first.get("more_body"):
            content = request_body(first.get("body", b""), receive, body_read)
        else:
            # Bodiless requests go as plain bytes, so the service sees no chunked encoding on a GET.
            content = first.get("body", b"")
            body_read.set()
        query = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client")
        browser_headers = scope.get("headers", [])
        url = target.base_url + path.rest + ("?" + query if query else "")
        headers = upstream_request_headers(browser_headers, prefix=path.prefix, scheme=scope.get("scheme", "http"),
                                           client=client[0] if client else "", service_cookie=target.service_cookie)
        host = header(browser_headers, b"host")
        if url.startswith("http://"):
            relay = self.relay_plain(scope["method"], url, headers, content, send, path, target, host)
        else:
            request = service_client().build_request(scope["method"], url, content=content, headers=headers)
            relay = self.relay(request, send, path, target, host)
        # A browser that goes away mid-response (a closed tab, an aborted long poll) ends the upstream request.
        await relay_until_disconnect(relay, receive, body_read)

    async def relay_plain(self, method: str, url: str, headers, content, send, path: ServicePath, target: Target,
                          host: str) -> None:
        """http:// services (local sandboxes): proxy_core.upstream, large reads, one ASGI message per read."""
        try:
            response = await upstream.request(method, url, headers, content)
        except ClientGone:
            return
        except upstream.UpstreamError as error:
            await self.unreachable(send, path, target, error.__cause__ or error)
            return
        try:
            await self.stream(send, path, target, host, response.status, response.headers, response.body(),
                              broken=(OSError, upstream.BrokenBody))
        finally:
            response.close()

    async def relay(self, request: httpx.Request, send, path: ServicePath, target: Target, host: str) -> None:
        """https:// services (tunnels): httpx, raw chunks as they arrive, no decoding."""
        try:
            response = await service_client().send(request, stream=True)
        except ClientGone:
            return
        except httpx.TransportError as error:
            await self.unreachable(send, path, target, error)
            return
        try:
            await self.stream(send, path, target, host, response.status_code, response.headers.raw,
                              response.aiter_raw(), broken=(httpx.TransportError,))
        finally:
            await response.aclose()

    @staticmethod
    async def unreachable(send, path: ServicePath, target: Target, error: BaseException) -> None:
        log.info("workspace proxy: %s unreachable at %s: %r", path.prefix, target.base_url, error)
        service = service_label(path.service, "subject")
        await respond(send, 502, f"{service} did not answer: the sandbox refused or dropped the connection "
                                 f"({type(error).__name__}).")

    @staticmethod
    async def stream(send, path: ServicePath, target: Target, host: str, status: int, raw_headers, chunks,
                     broken: tuple[type[BaseException], ...]) -> None:
        """The service's response to the browser, chunk by chunk as it comes."""
        started = False
        try:
            headers = browser_response_headers(raw_headers, prefix=path.prefix, upstream=target.base_url,
                                               browser_host=host)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            started = True
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except broken as error:
            # Past the status line: nothing better to do than end the body short.
            log.info("workspace proxy: %s broke off mid-response: %r", path.prefix, error)
            if started:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:
            # Raising would reach Daphne, which cannot answer a started response with an error page.
            log.exception("workspace proxy: %s failed", path.prefix)
            if not started:
                service = service_label(path.service, "subject")
                await respond(send, 502, f"{service}: the proxy failed to relay the response.")
