"""The WebSocket side of the workspace proxy: a raw ASGI app relaying frames both ways.

Routed in inspect_site/asgi.py behind `browser()` (same-origin check, cookie auth). Close codes:
before accept, a refused member check is a rejected handshake (HTTP 403); after accept,
4503 = the service is not ready, 4502 = it could not be reached or failed, 4009 = a frame
was larger than Daphne sends, 4403 = the person is no longer in the session (removed, signed out,
deactivated: sessions/access.py).
"""

import asyncio
import logging

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from ide.headers import upstream_request_headers
from ide.paths import parse, request_path
from ide.targets import resolve_async, resolve_when_up
from proxy_core.headers import header
from sessions import access

log = logging.getLogger(__name__)

FORBIDDEN = 4403
NOT_READY = 4503
UNREACHABLE = 4502
TOO_BIG = 4009  # 1009 (message too big), in the range Daphne can send
# Daphne rejects a handshake that is not accepted within 5 s (--websocket_connect_timeout).
OPEN_TIMEOUT = 4.0
# VS Code's page may be up before its server (ide/workbench_page.py): its socket waits for it this long,
# within Daphne's 5 s; VS Code tries its first connection five times.
IDE_WAIT_SECONDS = 3.0
# Pings keep idle tunnels and NATs open; with no timeout a busy service (a VS Code extension host
# blocking its loop) never gets its socket killed by us. Daphne pings the browser on its own.
PING_INTERVAL = 30.0


def sendable_close_code(code: int | None) -> int:
    """Daphne (autobahn) only sends 1000 and 3000-4999; other codes keep their meaning as 4000 + the last digits."""
    if code is None or code == 1005:
        return 1000
    if code == 1000 or 3000 <= code <= 4999:
        return code
    return 4000 + code % 1000


def upstream_close_code(code: int | None) -> int:
    """What a browser's close becomes towards the service (1005/1006 cannot be sent)."""
    if code is None or code in (1005, 1006, 1015) or not (1000 <= code <= 4999):
        return 1000
    return code


class SocketProxy:
    """ASGI app for websocket scopes at /w/<session_id>/<service>/..."""

    async def __call__(self, scope, receive, send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        path = parse(request_path(scope))
        headers = scope.get("headers", [])
        if path is None:
            await send({"type": "websocket.close"})
            return
        target = await resolve_async(scope.get("user"), path.session_id, path.service)
        if target.status == 403:
            await send({"type": "websocket.close", "code": 4403})
            return
        if path.service == "ide" and target.starting:
            target = await resolve_when_up(scope.get("user"), path.session_id, path.service, IDE_WAIT_SECONDS,
                                           first=target)
        if not target.ok:
            await self.accept_and_close(send, NOT_READY if target.status == 503 else UNREACHABLE)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        url = "ws" + target.base_url.removeprefix("http") + (path.rest or "/") + ("?" + query if query else "")
        client = scope.get("client")
        forwarded = upstream_request_headers(headers, prefix=path.prefix, scheme=scope.get("scheme", "ws"),
                                             client=client[0] if client else "", websocket=True,
                                             service_cookie=target.service_cookie)
        try:
            upstream = await connect(
                url,
                origin=header(headers, b"origin") or None,
                subprotocols=[Subprotocol(p) for p in scope.get("subprotocols", [])] or None,
                additional_headers=[(name.decode("latin-1"), value.decode("latin-1")) for name, value in forwarded],
                user_agent_header=header(headers, b"user-agent") or None,
                compression=None,  # frames from noVNC and VS Code are already compact; spare the CPU
                max_size=None,
                max_queue=64,
                open_timeout=OPEN_TIMEOUT,
                ping_interval=PING_INTERVAL,
                ping_timeout=None,
                close_timeout=5,
                proxy=None,
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as error:
            log.info("workspace socket: %s unreachable at %s: %r", path.prefix, url, error)
            await self.accept_and_close(send, UNREACHABLE)
            return
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        # Relayed while the person may still be in the session: losing it closes the socket (sessions/access.py).
        user = scope["user"]
        out = asyncio.ensure_future(access.until_out(path.session_id, user.pk, scope.get("login", ""),
                                                     user.get_session_auth_hash(), acting=True))
        relay = asyncio.ensure_future(self.relay(upstream, receive, send))
        try:
            done, _ = await asyncio.wait([out, relay], return_when=asyncio.FIRST_COMPLETED)
            if out in done and relay not in done:
                relay.cancel()
                await asyncio.gather(relay, return_exceptions=True)
                await send({"type": "websocket.close", "code": FORBIDDEN})
        finally:
            out.cancel()
            await asyncio.gather(out, return_exceptions=True)

    async def accept_and_close(self, send, code: int) -> None:
        # Accepted first so the browser sees the code (a refused handshake carries none).
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": code})

    async def relay(self, upstream: ClientConnection, receive, send) -> None:
        # The upstream side decides the end: a browser's close is passed on to the service, whose close
        # (or drop) then ends the loop below and is passed back.
        to_upstream = asyncio.ensure_future(self.browser_to_upstream(upstream, receive))
        try:
            await self.upstream_to_browser(upstream, send)
        finally:
            to_upstream.cancel()
            await upstream.close()

    async def browser_to_upstream(self, upstream: ClientConnection, receive) -> None:
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    await upstream.close(upstream_close_code(message.get("code")))
                    return
                if message["type"] != "websocket.receive":
                    continue
                if message.get("bytes") is not None:
                    await upstream.send(message["bytes"])
                elif message.get("text") is not None:
                    await upstream.send(message["text"])
        except websockets.ConnectionClosed:
            return  # the service's side reports it
        except Exception:
            log.exception("workspace socket: relaying to the service failed")
            await upstream.close(1011)

    async def upstream_to_browser(self, upstream: ClientConnection, send) -> None:
        try:
            async for frame in upstream:
                if isinstance(frame, bytes):
                    await send({"type": "websocket.send", "bytes": frame})
                else:
                    await send({"type": "websocket.send", "text": frame})
        except websockets.ConnectionClosed:
            pass
        except Exception as error:
            # Daphne refuses messages over --websocket-max-message-size (1 MiB by default) by raising here.
            log.warning("workspace socket: a frame could not be passed to the browser: %r", error)
            await upstream.close(1009)
            await send({"type": "websocket.close", "code": TOO_BIG})
            return
        # 1006: the service went away without a close frame.
        code = UNREACHABLE if upstream.close_code in (None, 1006) else sendable_close_code(upstream.close_code)
        await send({"type": "websocket.close", "code": code})
