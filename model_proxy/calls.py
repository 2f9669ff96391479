"""One call forwarded to a provider, its answer streamed back as it arrives, and the proxy's own answers
(errors in the caller's wire format)."""

import json
import logging
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from model_providers.providers import Provider
from model_providers.wires import Wire
from proxy_core import upstream
from proxy_core.clients import loop_client
from proxy_core.headers import FORWARDING, HOP_BY_HOP, Headers, connection_tokens

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0
# Never forwarded upstream: the sandbox's credentials (replaced by the real key) and what the client sets itself.
DROP_REQUEST_HEADERS = HOP_BY_HOP | FORWARDING | {
    b"host", b"content-length", b"expect", b"cookie", b"authorization", b"x-api-key", b"api-key"}
DROP_RESPONSE_HEADERS = HOP_BY_HOP | {
    b"content-length", b"content-type", b"set-cookie", b"server", b"date", b"alt-svc", b"x-accel-buffering"}


class Refused(Exception):
    """An answer of the proxy's own (an error in the caller's wire format)."""

    def __init__(self, wire: Wire, status: int, message: str, extra: tuple[tuple[bytes, bytes], ...] = ()):
        super().__init__(message)
        self.wire, self.status, self.message, self.extra = wire, status, message, extra


async def send_error(send, error: Refused) -> None:
    body = json.dumps(error.wire.error_body(error.status, error.message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)), *error.extra]
    if error.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def upstream_headers(headers: Headers, provider: Provider, token: str) -> Headers:
    """The client's headers (lower-case names) as they go to the provider: its credentials replaced, a header
    sent twice joined into one."""
    drop = DROP_REQUEST_HEADERS | connection_tokens(headers)
    secret = token.encode("latin-1")
    forwarded: dict[bytes, bytes] = {}
    for name, value in headers:
        name = name.lower()
        if name in drop or (secret and secret in value):
            continue
        forwarded[name] = forwarded[name] + b", " + value if name in forwarded else value
    # Stream the body through as the provider sends it: compressed only if the client asked for it.
    forwarded.setdefault(b"accept-encoding", b"identity")
    for key, text in provider.wire.default_headers().items():
        forwarded.setdefault(key.encode(), text.encode("latin-1"))
    for key, text in provider.wire.auth_headers(provider.api_key).items():
        forwarded[key.encode()] = text.encode("latin-1")
    return list(forwarded.items())


def where(provider: Provider) -> str:
    """The provider's host for error messages, without any credentials in the URL."""
    parts = urlsplit(provider.base_url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def provider_client() -> httpx.AsyncClient:
    """This event loop's pooled client for https:// providers: the TLS connection is kept between calls."""
    return loop_client("model-providers", lambda: httpx.AsyncClient(
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100), follow_redirects=False))


class Call:
    """One forwarded request: the provider's answer streamed back as it arrives. http:// providers (a local
    Ollama, the tests' model) go through proxy_core.upstream, a new connection each (a loopback connect is
    cheap, and it saves ~2 ms a call over httpx); https:// ones through the pooled httpx client."""

    def __init__(self, method: str, url: str, headers: Headers, body: bytes, provider: Provider, sandbox_id: str,
                 meter=None):
        self.method, self.url, self.headers, self.body = method, url, headers, body
        self.provider, self.wire, self.sandbox_id = provider, provider.wire, sandbox_id
        self.meter = meter  # reads the tokens the answer reports (model_proxy/budget.py UsageMeter)

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
            headers += [(name, value) for name, value in raw_headers if name.lower() not in DROP_RESPONSE_HEADERS]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            try:
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    if self.meter is not None:
                        self.meter.feed(chunk)
            except (httpx.HTTPError, upstream.UpstreamError, upstream.BrokenBody, OSError) as exc:
                await send({"type": "http.response.body", "body": self.broke_off(exc, content_type),
                            "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await close()

    async def plain(self):
        response = await upstream.request(self.method, self.url, self.headers, self.body,
                                          connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                          read_timeout=settings.MODEL_PROXY_READ_TIMEOUT_SECONDS)

        async def close() -> None:
            response.close()

        return response.status, response.headers, response.body(), close

    async def pooled(self):
        client = provider_client()
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
        return self.wire.stream_error(502, f"The {self.provider.label} API stream broke off ({type(exc).__name__}).")
