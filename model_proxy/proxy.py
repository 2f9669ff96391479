"""The model proxy: OpenCode inside a sandbox calls it with the sandbox's token as its API key;
the proxy checks the token, swaps in the real provider key and streams the provider's answer
back unchanged, chunk by chunk. Provider keys never enter the sandbox. See docs/model-proxy.md.

  POST /model-proxy/<provider>/v1/chat/completions   OpenAI wire (token: Authorization: Bearer)
  POST /model-proxy/<provider>/v1/messages           Anthropic wire (token: x-api-key or Bearer)
  GET  /model-proxy/<provider>/v1/models
  /model-proxy/inspect-warm-up/v1/...                answered by the proxy itself (model_providers/wires.py)

Per call: the sandbox's session is looked up (its token budget, model_proxy/budget.py) and the tokens the
provider reports are added to it. Neither the token nor a key is logged.
"""

import json
import logging
import re

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from bridge.protocol import WARM_UP_PROVIDER
from model_providers.providers import MODEL_PROXY_PATH, NO_PROVIDER_MESSAGE, Provider, configured_providers
from model_providers.wires import OPENAI, Wire, wire_of_endpoint
from model_proxy import budget
from model_proxy.calls import Call, Refused, send_error, upstream_headers
from proxy_core.headers import header, presented_credential
from proxy_core.relay import ClientGone, relay_until_disconnect
from sandboxes.models import Sandbox

logger = logging.getLogger(__name__)

PREFIX = MODEL_PROXY_PATH + "/"
ROUTE = re.compile("^" + re.escape(PREFIX) + r"(?P<provider>[^/]+)/v1/(?P<endpoint>chat/completions|messages|models)$")


def find_provider(name: str, endpoint: str, wire: Wire) -> tuple[Provider, Wire]:
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
    if endpoint not in found.wire.endpoints:  # answered in the caller's wire, which the endpoint tells
        raise Refused(wire, 404, f"Provider {found.name!r} speaks the {found.wire.api}, not /v1/{endpoint}.")
    # The provider's own wire from here on: /v1/models of an Anthropic provider answers errors Anthropic's way.
    return found, found.wire


async def read_body(receive, declared: str, wire: Wire) -> bytes:
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


async def answer_warm_up(send, endpoint: str, wire: Wire, body: bytes) -> None:
    """The warm-up model's answer, from the proxy itself (no provider is called)."""
    if endpoint == "models":
        content_type, answer = wire.models_answer()
    else:
        content_type, answer = wire.warm_up_answer(stream=bool(json.loads(body).get("stream")))
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", content_type), (b"content-length", b"%d" % len(answer))]})
    await send({"type": "http.response.body", "body": answer})


class ModelProxy:
    """ASGI app for http scopes under /model-proxy/ (routed before Django in inspect_site/asgi.py: the
    whole middleware stack and a streaming response cost ~10 ms on every model call)."""

    async def __call__(self, scope, receive, send) -> None:
        route = ROUTE.match(scope["path"])
        if route is None:
            await send_error(send, Refused(OPENAI, 404, "No such model proxy endpoint: use "
                                           "/model-proxy/<provider>/v1/chat/completions, /messages or /models."))
            return
        provider_name, endpoint = route["provider"], route["endpoint"]
        wire = wire_of_endpoint(endpoint)
        headers = scope.get("headers", [])
        try:
            expected_method = "GET" if endpoint == "models" else "POST"
            if scope["method"] != expected_method:
                raise Refused(wire, 405, f"Use {expected_method} for /v1/{endpoint}.",
                              extra=((b"allow", expected_method.encode()),))
            token = presented_credential(headers)
            sandbox_id = await database_sync_to_async(Sandbox.live_id_for_model_token)(token)
            if sandbox_id is None:
                raise Refused(wire, 401, "Invalid sandbox token: call the model proxy with the sandbox's own model "
                                         "token as the API key (the sandbox may have ended).")
            declared = header(headers, b"content-length")
            if provider_name == WARM_UP_PROVIDER:
                body = await read_body(receive, declared, wire) if expected_method == "POST" else b""
                await answer_warm_up(send, endpoint, wire, body)
                return
            provider, wire = find_provider(provider_name, endpoint, wire)
            body = await read_body(receive, declared, wire) if expected_method == "POST" else b""
            spending = await budget.spending_of(sandbox_id)
            if spending is None:
                raise Refused(wire, 403, "This sandbox serves no session: it makes no model calls.")
            if body:
                refusal = budget.model_refusal(provider, json.loads(body).get("model"))
                if refusal:
                    raise Refused(wire, 403, refusal)
            refusal = budget.budget_refusal(spending)
            if refusal:
                raise Refused(wire, 429, refusal)
            if body and endpoint == "chat/completions":
                body = budget.with_usage_asked(body)
        except Refused as error:
            await send_error(send, error)
            return
        except ClientGone:
            return
        url = provider.upstream_url(endpoint)
        query = scope.get("query_string", b"").decode("latin-1")
        meter = budget.UsageMeter()
        call = Call(scope["method"], f"{url}?{query}" if query else url, upstream_headers(headers, provider, token),
                    body, provider, str(sandbox_id), meter)
        # When the client goes away (OpenCode aborts), the upstream request is closed, so the provider stops.
        try:
            await relay_until_disconnect(call.relay(send), receive)
        finally:
            await budget.spend(spending.session_id, meter.spent(len(body)))
