"""The model proxy: OpenCode inside a sandbox calls it with the sandbox's token as its API key;
the proxy checks the token, swaps in the real provider key and streams the provider's answer
back unchanged, chunk by chunk. Provider keys never enter the sandbox. See docs/model-proxy.md.

  POST /model-proxy/<provider>/v1/chat/completions   OpenAI wire (token: Authorization: Bearer)
  POST /model-proxy/<provider>/v1/messages           Anthropic wire (token: x-api-key or Bearer)
  GET  /model-proxy/<provider>/v1/models
  /model-proxy/inspect-warm-up/v1/...                answered by the proxy itself (sandboxes/warm_up.py)

Nothing is written to the database per request, and neither the token nor a key is logged.
"""

import asyncio
import json
import logging
import re
import weakref
from urllib.parse import urlsplit

import httpx
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ide import upstream
from ide.headers import header
from ide.proxy import ClientGone, until_disconnect
from sandboxes import warm_up
from sandboxes.models import Sandbox
from sandboxes.providers import MODEL_PROXY_PATH, NO_PROVIDER_MESSAGE, Provider, configured_providers

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade",
}
# Never forwarded upstream: the sandbox's credentials (replaced by the real key) and what httpx sets itself.
DROP_REQUEST_HEADERS = HOP_BY_HOP | {
    "host", "content-length", "expect", "cookie", "authorization", "x-api-key", "api-key",
    "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded", "x-real-ip",
}
DROP_RESPONSE_HEADERS = HOP_BY_HOP | {"content-length", "content-type", "set-cookie", "server", "date", "alt-svc"}
ANTHROPIC_VERSION = "2023-06-01"  # sent when the client names none

# One pooled client per event loop (Daphne runs one for the process's lifetime): connections to
# the providers stay open between requests instead of a new TLS handshake for each.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = weakref.WeakKeyDictionary()


def upstream_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            follow_redirects=False,
        )
        _clients[loop] = client
    return client


async def aclose_upstream_client() -> None:
    """Close this event loop's pooled client (tests, shutdown)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


# --- errors in the caller's own wire format -------------------------------------------------

OPENAI_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
                      405: "invalid_request_error", 413: "invalid_request_error"}
OPENAI_ERROR_CODES = {401: "invalid_api_key", 404: "not_found", 413: "request_too_large", 502: "bad_gateway",
                      504: "gateway_timeout"}
ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                         405: "invalid_request_error", 413: "request_too_large"}


def error_body(wire: str, status: int, message: str) -> dict:
    if wire == "anthropic":
        return {"type": "error", "error": {"type": ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message}}
    return {"error": {"message": message, "type": OPENAI_ERROR_TYPES.get(status, "server_error"),
                      "param": None, "code": OPENAI_ERROR_CODES.get(status)}}


# --- the ASGI app -----------------------------------------------------------------------------

PREFIX = MODEL_PROXY_PATH + "/"
ROUTE = re.compile("^" + re.escape(PREFIX) + r"(?P<provider>[^/]+)/v1/(?P<endpoint>chat/completions|messages|models)$")


def presented_token(x_api_key: str, authorization: str) -> str:
    """The sandbox token: `x-api-key` (Anthropic SDKs) or `Authorization: Bearer` (OpenAI SDKs)."""
    token = x_api_key.strip()
    if not token:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
    return token


def upstream_headers(headers: list[tuple[str, str]], provider: Provider, token: str) -> dict[str, str]:
    """The client's headers (lower-case names) as they go to the provider: its credentials replaced."""
    connection_tokens = {t.strip() for name, value in headers if name == "connection" for t in value.lower().split(",")}
    forwarded = {}
    for name, value in headers:
        if name in DROP_REQUEST_HEADERS or name in connection_tokens or (token and token in value):
            continue
        forwarded[name] = f"{forwarded[name]}, {value}" if name in forwarded else value
    # Stream the body through as the provider sends it: compressed only if the client asked for it.
    forwarded.setdefault("accept-encoding", "identity")
    if provider.kind == "anthropic":
        forwarded["x-api-key"] = provider.api_key
        forwarded.setdefault("anthropic-version", ANTHROPIC_VERSION)
    elif provider.api_key:
        forwarded["authorization"] = f"Bearer {provider.api_key}"
    return forwarded


def where(provider: Provider) -> str:
    """The provider's host for error messages, without any credentials in the URL."""
    parts = urlsplit(provider.base_url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


class Refused(Exception):
    """An answer of the proxy's own (an error in the caller's wire format)."""

    def __init__(self, wire: str, status: int, message: str, extra: tuple[tuple[bytes, bytes], ...] = ()):
        super().__init__(message)
        self.wire, self.status, self.message, self.extra = wire, status, message, extra


async def send_error(send, error: Refused) -> None:
    body = json.dumps(error_body(error.wire, error.status, error.message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)), *error.extra]
    if error.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def find_provider(name: str, endpoint: str, wire: str) -> tuple[Provider, str]:
    """The configured provider and the wire its errors use, or Refused saying what is wrong."""
    try:
        providers = configured_providers()
    except ImproperlyConfigured as exc:  # says which setting to fix, holds no secret
        logger.error("model proxy: %s", exc)
        raise Refused(wire, 500, f"The control plane's model providers are misconfigured: {exc}") from None
    if not providers:
        raise Refused(wire, 404, NO_PROVIDER_MESSAGE)
    found = next((p for p in providers if p.name == name), None)
    if found is None:
        names = ", ".join(p.name for p in providers)
        raise Refused(wire, 404, f"Unknown model provider {name!r}; configured: {names}.")
    if found.kind == "anthropic":
        wire = "anthropic"  # /v1/models of an Anthropic provider answers errors Anthropic's way
    if endpoint not in found.endpoints:
        api = "Anthropic API (/v1/messages)" if found.kind == "anthropic" else "OpenAI API (/v1/chat/completions)"
        raise Refused(wire, 404, f"Provider {found.name!r} speaks the {api}, not /v1/{endpoint}.")
    return found, wire


async def read_body(receive, declared: str, wire: str) -> bytes:
    """The whole request body, a JSON object of at most MODEL_PROXY_MAX_BODY_BYTES, or Refused."""
    limit = settings.MODEL_PROXY_MAX_BODY_BYTES
    too_big = Refused(wire, 413, f"The request body is larger than the model proxy's limit of {limit // 1024**2} MB.")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    pieces, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        piece = message.get("body", b"")
        size += len(piece)
        if size > limit:
            raise too_big
        pieces.append(piece)
        if not message.get("more_body", False):
            break
    body = b"".join(pieces)
    try:
        payload = json.loads(body)
    except ValueError:
        raise Refused(wire, 400, "The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise Refused(wire, 400, "The request body must be a JSON object.")
    return body


class ModelProxy:
    """ASGI app for http scopes under /model-proxy/ (routed before Django in inspect_site/asgi.py: the
    whole middleware stack and a streaming response cost ~10 ms on every model call)."""

    async def __call__(self, scope, receive, send) -> None:
        route = ROUTE.match(scope["path"])
        if route is None:
            await send_error(send, Refused("openai", 404, "No such model proxy endpoint: use "
                                           "/model-proxy/<provider>/v1/chat/completions, /messages or /models."))
            return
        provider_name, endpoint = route["provider"], route["endpoint"]
        wire = "anthropic" if endpoint == "messages" else "openai"
        raw_headers = scope.get("headers", [])
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw_headers]
        try:
            expected_method = "GET" if endpoint == "models" else "POST"
            if scope["method"] != expected_method:
                raise Refused(wire, 405, f"Use {expected_method} for /v1/{endpoint}.",
                              extra=((b"allow", expected_method.encode()),))
            token = presented_token(header(raw_headers, b"x-api-key"), header(raw_headers, b"authorization"))
            sandbox_id = await database_sync_to_async(Sandbox.live_id_for_token)(token)
            if sandbox_id is None:
                raise Refused(wire, 401, "Invalid sandbox token: call the model proxy with the sandbox's own token "
                                         "as the API key (the sandbox may have ended).")
            declared = header(raw_headers, b"content-length")
            if provider_name == warm_up.WARM_UP_PROVIDER:
                body = await read_body(receive, declared, wire) if expected_method == "POST" else b""
                content_type, answer = warm_up.answer(endpoint, wire, body)
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-type", content_type), (b"content-length", b"%d" % len(answer))]})
                await send({"type": "http.response.body", "body": answer})
                return
            provider, wire = find_provider(provider_name, endpoint, wire)
            body = await read_body(receive, declared, wire) if expected_method == "POST" else b""
        except Refused as error:
            await send_error(send, error)
            return
        except ClientGone:
            return
        url = provider.upstream_url(endpoint)
        query = scope.get("query_string", b"").decode("latin-1")
        call = Call(scope["method"], f"{url}?{query}" if query else url, upstream_headers(headers, provider, token),
                    body, provider, wire, str(sandbox_id))
        relay = asyncio.ensure_future(call.relay(send))
        watch = asyncio.ensure_future(until_disconnect(receive))
        # When the client goes away (OpenCode aborts), the upstream request is closed, so the provider stops.
        try:
            await asyncio.wait({relay, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            relay.cancel()
            watch.cancel()
        if relay.done() and not relay.cancelled() and relay.exception() is not None:
            raise relay.exception()


class Call:
    """One forwarded request: the provider's answer streamed back as it arrives. http:// providers (a
    local Ollama, the tests' model) go through ide.upstream, a new connection each (a loopback connect is
    cheap, and it saves ~2 ms a call over httpx); https:// ones through the pooled httpx client, so the
    TLS connection is kept."""

    def __init__(self, method: str, url: str, headers: dict[str, str], body: bytes, provider: Provider, wire: str,
                 sandbox_id: str):
        self.method, self.url, self.headers, self.body = method, url, headers, body
        self.provider, self.wire, self.sandbox_id = provider, wire, sandbox_id

    async def relay(self, send) -> None:
        try:
            answer = await (self.plain() if self.url.startswith("http://") else self.pooled())
        except (httpx.HTTPError, upstream.UpstreamError) as exc:
            await send_error(send, self.unreachable(exc))
            return
        status, raw_headers, chunks, close = answer
        try:
            logger.debug("model proxy: sandbox %s %s %s -> %s", self.sandbox_id, self.method, self.provider.name,
                         status)
            content_type = next((v for n, v in raw_headers if n.lower() == b"content-type"),
                                b"application/octet-stream")
            # x-accel-buffering: a reverse proxy in front of Daphne must not hold chunks back.
            headers = [(b"content-type", content_type), (b"x-accel-buffering", b"no")]
            headers += [(name, value) for name, value in raw_headers
                        if name.lower().decode("latin-1") not in DROP_RESPONSE_HEADERS
                        and name.lower() != b"x-accel-buffering"]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            try:
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (httpx.HTTPError, upstream.UpstreamError, upstream.BrokenBody, OSError) as exc:
                await send({"type": "http.response.body", "body": self.broke_off(exc, content_type),
                            "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await close()

    async def plain(self):
        response = await upstream.request(
            self.method, self.url, [(name.encode("latin-1"), value.encode("latin-1"))
                                    for name, value in self.headers.items()],
            self.body, connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=settings.MODEL_PROXY_READ_TIMEOUT_SECONDS)

        async def close() -> None:
            response.close()

        return response.status, response.headers, response.body(), close

    async def pooled(self):
        client = upstream_client()
        timeout = httpx.Timeout(CONNECT_TIMEOUT_SECONDS, read=settings.MODEL_PROXY_READ_TIMEOUT_SECONDS)
        request = client.build_request(self.method, self.url, headers=self.headers, content=self.body or None,
                                       timeout=timeout)
        response = await client.send(request, stream=True)
        return response.status_code, response.headers.raw, response.aiter_raw(), response.aclose

    def unreachable(self, exc: Exception) -> Refused:
        provider, name = self.provider, type(exc).__name__
        if isinstance(exc, httpx.TimeoutException | upstream.ConnectTimeout | upstream.ReadTimeout):
            logger.warning("model proxy: %s (%s) timed out for sandbox %s: %s", provider.name, where(provider),
                           self.sandbox_id, name)
            status = 502 if isinstance(exc, httpx.ConnectTimeout | upstream.ConnectTimeout) else 504
            return Refused(self.wire, status, f"The {provider.label} API at {where(provider)} did not answer in time "
                                              f"({name}).")
        logger.warning("model proxy: cannot reach %s (%s) for sandbox %s: %s", provider.name, where(provider),
                       self.sandbox_id, name)
        return Refused(self.wire, 502, f"Could not reach the {provider.label} API at {where(provider)} ({name}).")

    def broke_off(self, exc: Exception, content_type: bytes) -> bytes:
        """Headers are already sent: end the stream with an error event the SDKs understand instead of a
        clean end that would look like a complete answer (nothing to add to a body that is not a stream)."""
        logger.warning("model proxy: %s stream broke for sandbox %s: %s", self.provider.name, self.sandbox_id,
                       type(exc).__name__)
        if not content_type.startswith(b"text/event-stream"):
            return b""
        message = f"The {self.provider.label} API stream broke off ({type(exc).__name__})."
        event = "event: error\n" if self.wire == "anthropic" else ""
        return f"\n\n{event}data: {json.dumps(error_body(self.wire, 502, message))}\n\n".encode()
