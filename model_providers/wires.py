"""The wire formats model providers speak, one class each: what OpenCode loads for it, the endpoints the model
proxy forwards, how the real key is sent, and how errors and the warm-up model's answers are written in it.

  OpenAIWire     OpenAI's chat completions API, spoken by api.openai.com and any OpenAI-compatible endpoint
                 (Ollama, vLLM, OpenRouter...); OpenCode uses `@ai-sdk/openai-compatible` for it.
  AnthropicWire  the Messages API; OpenCode uses `@ai-sdk/anthropic`.

The warm-up model (bridge.protocol.WARM_UP_MODEL) is answered by the model proxy itself with `warm_up_answer`:
OpenCode loads most of its model-calling code on a process's first call (~1 s of CPU), which a pooled
sandbox's first prompt would otherwise wait for, so the bridge warms a waiting OpenCode up with one throwaway
prompt to it. No provider is called and no tokens are spent.
"""

import json
import time
from abc import ABC, abstractmethod

from bridge.protocol import WARM_UP_MODEL

WARM_UP_REPLY = "ok"
Answer = tuple[bytes, bytes]  # (content type, body)


def sse(events: list[tuple[str | None, object]]) -> bytes:
    """Server-sent events: (event name or None, data) each."""
    lines = []
    for event, data in events:
        if event:
            lines.append(f"event: {event}")
        lines.append(f"data: {data if isinstance(data, str) else json.dumps(data)}\n")
    return ("\n".join(lines) + "\n").encode()


class Wire(ABC):
    """What one wire format is; each subclass is one format and says all of it."""
    name: str
    npm: str  # the AI SDK package OpenCode loads for a provider of this wire
    endpoints: tuple[str, ...]  # under the provider's /v1, what the proxy forwards
    api: str  # how messages name it
    error_types: dict[int, str]
    default_error_type: str

    @abstractmethod
    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers that carry the real key to the provider (set over the client's own)."""

    def default_headers(self) -> dict[str, str]:
        """Headers sent when the client sent none of that name."""
        return {}

    def api_root(self, base_url: str) -> str:
        """The configured base URL as the root the proxy's /v1/<endpoint> maps onto."""
        return base_url

    @abstractmethod
    def error_body(self, status: int, message: str) -> dict:
        """An error of the proxy's own, as this wire's SDKs read it."""

    @abstractmethod
    def stream_error(self, status: int, message: str) -> bytes:
        """An error event that ends a stream whose headers were already sent, as the SDKs understand it."""

    @abstractmethod
    def warm_up_answer(self, stream: bool) -> Answer:
        """The warm-up model's one-word answer, whole or streamed."""

    @abstractmethod
    def models_answer(self) -> Answer:
        """The warm-up provider's model list."""


class OpenAIWire(Wire):
    name = "openai"
    npm = "@ai-sdk/openai-compatible"
    endpoints = ("chat/completions", "models")
    api = "OpenAI API (/v1/chat/completions)"
    error_types = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
                   405: "invalid_request_error", 413: "invalid_request_error"}
    default_error_type = "server_error"
    error_codes = {401: "invalid_api_key", 404: "not_found", 413: "request_too_large", 502: "bad_gateway",
                   504: "gateway_timeout"}

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}  # a local Ollama needs none

    def error_body(self, status: int, message: str) -> dict:
        return {"error": {"message": message, "type": self.error_types.get(status, self.default_error_type),
                          "param": None, "code": self.error_codes.get(status)}}

    def stream_error(self, status: int, message: str) -> bytes:
        return f"\n\ndata: {json.dumps(self.error_body(status, message))}\n\n".encode()

    def warm_up_answer(self, stream: bool) -> Answer:
        base = {"id": "chatcmpl-warm-up", "created": int(time.time()), "model": WARM_UP_MODEL}
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        if not stream:
            message = {**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": WARM_UP_REPLY}, "finish_reason": "stop"}]}
            return b"application/json", json.dumps(message).encode()
        chunk = {**base, "object": "chat.completion.chunk"}
        return b"text/event-stream", sse([
            (None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": WARM_UP_REPLY},
                                          "finish_reason": None}]}),
            (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}),
            (None, "[DONE]"),
        ])

    def models_answer(self) -> Answer:
        listing = {"object": "list", "data": [{"id": WARM_UP_MODEL, "object": "model", "created": 0,
                                               "owned_by": "inspect"}]}
        return b"application/json", json.dumps(listing).encode()


class AnthropicWire(Wire):
    name = "anthropic"
    npm = "@ai-sdk/anthropic"
    endpoints = ("messages", "models")
    api = "Anthropic API (/v1/messages)"
    error_types = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                   405: "invalid_request_error", 413: "request_too_large"}
    default_error_type = "api_error"
    version = "2023-06-01"  # the anthropic-version header, sent when the client names none

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def default_headers(self) -> dict[str, str]:
        return {"anthropic-version": self.version}

    def api_root(self, base_url: str) -> str:
        # ANTHROPIC_BASE_URL is the host (as in Anthropic's SDKs); the API lives under /v1.
        return base_url if base_url.endswith("/v1") else base_url + "/v1"

    def error_body(self, status: int, message: str) -> dict:
        return {"type": "error", "error": {"type": self.error_types.get(status, self.default_error_type),
                                           "message": message}}

    def stream_error(self, status: int, message: str) -> bytes:
        return f"\n\nevent: error\ndata: {json.dumps(self.error_body(status, message))}\n\n".encode()

    def warm_up_answer(self, stream: bool) -> Answer:
        usage = {"input_tokens": 0, "output_tokens": 0}
        message = {"id": "msg_warm_up", "type": "message", "role": "assistant", "model": WARM_UP_MODEL,
                   "stop_sequence": None, "usage": usage}
        if not stream:
            whole = {**message, "content": [{"type": "text", "text": WARM_UP_REPLY}], "stop_reason": "end_turn"}
            return b"application/json", json.dumps(whole).encode()
        return b"text/event-stream", sse([
            ("message_start", {"type": "message_start", "message": {**message, "content": [], "stop_reason": None}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": WARM_UP_REPLY}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": 1}}),
            ("message_stop", {"type": "message_stop"}),
        ])

    def models_answer(self) -> Answer:
        listing = {"data": [{"type": "model", "id": WARM_UP_MODEL, "display_name": WARM_UP_MODEL,
                             "created_at": "2026-01-01T00:00:00Z"}],
                   "has_more": False, "first_id": WARM_UP_MODEL, "last_id": WARM_UP_MODEL}
        return b"application/json", json.dumps(listing).encode()


OPENAI = OpenAIWire()
ANTHROPIC = AnthropicWire()
WIRES: dict[str, Wire] = {wire.name: wire for wire in (OPENAI, ANTHROPIC)}


def wire_of_endpoint(endpoint: str) -> Wire:
    """The wire a caller speaks, as its endpoint tells (/v1/models, which both have, counts as OpenAI's)."""
    return ANTHROPIC if endpoint in ANTHROPIC.endpoints and endpoint not in OPENAI.endpoints else OPENAI
