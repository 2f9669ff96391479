"""The model proxy: OpenCode inside a sandbox calls it with the sandbox's token as its API key;
the proxy checks the token, swaps in the real provider key and streams the provider's answer
back unchanged, chunk by chunk. Provider keys never enter the sandbox. See docs/model-proxy.md.

  POST /model-proxy/<provider>/v1/chat/completions   OpenAI wire (token: Authorization: Bearer)
  POST /model-proxy/<provider>/v1/messages           Anthropic wire (token: x-api-key or Bearer)
  GET  /model-proxy/<provider>/v1/models

Nothing is written to the database per request, and neither the token nor a key is logged.
"""

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from sandboxes.models import Sandbox
from sandboxes.providers import NO_PROVIDER_MESSAGE, Provider, configured_providers

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


def error_response(wire: str, status: int, message: str) -> JsonResponse:
    response = JsonResponse(error_body(wire, status, message), status=status)
    if status == 401:
        response["WWW-Authenticate"] = "Bearer"
    return response


# --- the view ---------------------------------------------------------------------------------

def presented_token(request: HttpRequest) -> str:
    """The sandbox token: `x-api-key` (Anthropic SDKs) or `Authorization: Bearer` (OpenAI SDKs)."""
    token = request.headers.get("X-Api-Key", "").strip()
    if not token:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
    return token


def upstream_headers(request: HttpRequest, provider: Provider, token: str) -> dict[str, str]:
    connection_tokens = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    headers = {}
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in DROP_REQUEST_HEADERS or lower in connection_tokens or (token and token in value):
            continue
        headers[lower] = value
    # Stream the body through as the provider sends it: compressed only if the client asked for it.
    headers.setdefault("accept-encoding", "identity")
    if provider.kind == "anthropic":
        headers["x-api-key"] = provider.api_key
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    elif provider.api_key:
        headers["authorization"] = f"Bearer {provider.api_key}"
    return headers


def where(provider: Provider) -> str:
    """The provider's host for error messages, without any credentials in the URL."""
    parts = urlsplit(provider.base_url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


@csrf_exempt
@login_not_required  # sandboxes have no session: they present their token instead
async def proxy(request: HttpRequest, provider: str, endpoint: str) -> HttpResponse:
    wire = "anthropic" if endpoint == "messages" else "openai"
    expected_method = "GET" if endpoint == "models" else "POST"
    if request.method != expected_method:
        response = error_response(wire, 405, f"Use {expected_method} for /v1/{endpoint}.")
        response["Allow"] = expected_method
        return response

    token = presented_token(request)
    sandbox = await sync_to_async(Sandbox.from_token)(token)
    if sandbox is None:
        return error_response(wire, 401, "Invalid sandbox token: call the model proxy with the sandbox's own token "
                                         "as the API key (the sandbox may have ended).")

    try:
        providers = configured_providers()
    except ImproperlyConfigured as exc:  # says which setting to fix, holds no secret
        logger.error("model proxy: %s", exc)
        return error_response(wire, 500, f"The control plane's model providers are misconfigured: {exc}")
    if not providers:
        return error_response(wire, 404, NO_PROVIDER_MESSAGE)
    found = next((p for p in providers if p.name == provider), None)
    if found is None:
        names = ", ".join(p.name for p in providers)
        return error_response(wire, 404, f"Unknown model provider {provider!r}; configured: {names}.")
    if found.kind == "anthropic":
        wire = "anthropic"  # /v1/models of an Anthropic provider answers errors Anthropic's way
    if endpoint not in found.endpoints:
        api = "Anthropic API (/v1/messages)" if found.kind == "anthropic" else "OpenAI API (/v1/chat/completions)"
        return error_response(wire, 404, f"Provider {found.name!r} speaks the {api}, not /v1/{endpoint}.")

    body = b""
    if request.method == "POST":
        limit = settings.MODEL_PROXY_MAX_BODY_BYTES
        too_big = f"The request body is larger than the model proxy's limit of {limit // 1024**2} MB."
        try:
            declared = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return error_response(wire, 413, too_big)
        body = request.read(limit + 1)  # not request.body: DATA_UPLOAD_MAX_MEMORY_SIZE is for forms
        if len(body) > limit:
            return error_response(wire, 413, too_big)
        try:
            payload = json.loads(body)
        except ValueError:
            return error_response(wire, 400, "The request body is not valid JSON.")
        if not isinstance(payload, dict):
            return error_response(wire, 400, "The request body must be a JSON object.")

    return await forward(request, found, endpoint, body, wire, token=token, sandbox_id=str(sandbox.pk))


async def forward(request: HttpRequest, provider: Provider, endpoint: str, body: bytes, wire: str, *,
                  token: str, sandbox_id: str) -> HttpResponse:
    url = provider.upstream_url(endpoint)
    query = request.META.get("QUERY_STRING", "")
    client = upstream_client()
    timeout = httpx.Timeout(CONNECT_TIMEOUT_SECONDS, read=settings.MODEL_PROXY_READ_TIMEOUT_SECONDS)
    upstream_request = client.build_request(
        request.method, f"{url}?{query}" if query else url,
        headers=upstream_headers(request, provider, token), content=body or None, timeout=timeout,
    )
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.TimeoutException as exc:
        logger.warning("model proxy: %s (%s) timed out for sandbox %s: %s", provider.name, where(provider),
                       sandbox_id, type(exc).__name__)
        status = 502 if isinstance(exc, httpx.ConnectTimeout) else 504
        return error_response(wire, status, f"The {provider.label} API at {where(provider)} did not answer in time "
                                            f"({type(exc).__name__}).")
    except httpx.HTTPError as exc:
        logger.warning("model proxy: cannot reach %s (%s) for sandbox %s: %s", provider.name, where(provider),
                       sandbox_id, type(exc).__name__)
        return error_response(wire, 502, f"Could not reach the {provider.label} API at {where(provider)} "
                                         f"({type(exc).__name__}).")

    logger.debug("model proxy: sandbox %s %s %s/v1/%s -> %s", sandbox_id, request.method, provider.name, endpoint,
                upstream.status_code)
    content_type = upstream.headers.get("content-type", "application/octet-stream")
    stream = relay(upstream, provider, wire, sandbox_id, sse=content_type.startswith("text/event-stream"))
    # Start the generator now: from here on its `finally` closes the upstream response whatever
    # happens, even if the client leaves before Django reads the first chunk.
    await anext(stream)
    response = StreamingHttpResponse(stream, status=upstream.status_code, content_type=content_type)
    for name, value in upstream.headers.multi_items():
        if name.lower() not in DROP_RESPONSE_HEADERS:
            response.headers[name] = value
    response["X-Accel-Buffering"] = "no"  # a reverse proxy in front of Daphne must not hold chunks back
    return response


async def relay(upstream: httpx.Response, provider: Provider, wire: str, sandbox_id: str,
                sse: bool) -> AsyncIterator[bytes]:
    """The provider's bytes as they arrive. When the client goes away, Django cancels this and the
    upstream request is closed, so the provider stops generating. The first item is b"" (see forward)."""
    try:
        yield b""
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        # Headers are already sent: end the stream with an error event the SDKs understand
        # instead of a clean end that would look like a complete answer.
        logger.warning("model proxy: %s stream broke for sandbox %s: %s", provider.name, sandbox_id,
                       type(exc).__name__)
        if sse:
            message = f"The {provider.label} API stream broke off ({type(exc).__name__})."
            event = "event: error\n" if wire == "anthropic" else ""
            yield f"\n\n{event}data: {json.dumps(error_body(wire, 502, message))}\n\n".encode()
    finally:
        await upstream.aclose()
