"""The warm-up model: answered by the model proxy itself, never by a provider.

OpenCode loads most of its model-calling code on a process's first call (~1 s of CPU), which a
pooled sandbox's first prompt would otherwise wait for. So the bridge warms a waiting OpenCode up
with one throwaway prompt to this model: a provider entry in the sandbox's opencode.json with the
same SDK as the default model's provider, pointed at /model-proxy/<WARM_UP_PROVIDER>/v1, whose
calls the proxy answers at once with a one-word reply in that wire format. No tokens are spent.
"""

import json
import time

from bridge.protocol import WARM_UP_MODEL, WARM_UP_PROVIDER

__all__ = ["WARM_UP_MODEL", "WARM_UP_PROVIDER", "answer"]
REPLY = "ok"


def sse(events: list[tuple[str | None, object]]) -> bytes:
    lines = []
    for event, data in events:
        if event:
            lines.append(f"event: {event}")
        lines.append(f"data: {data if isinstance(data, str) else json.dumps(data)}\n")
    return ("\n".join(lines) + "\n").encode()


def openai_answer(stream: bool) -> tuple[bytes, bytes]:
    base = {"id": "chatcmpl-warm-up", "created": int(time.time()), "model": WARM_UP_MODEL}
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    if not stream:
        message = {**base, "object": "chat.completion", "usage": usage, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}]}
        return b"application/json", json.dumps(message).encode()
    chunk = {**base, "object": "chat.completion.chunk"}
    return b"text/event-stream", sse([
        (None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": REPLY},
                                      "finish_reason": None}]}),
        (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}),
        (None, "[DONE]"),
    ])


def anthropic_answer(stream: bool) -> tuple[bytes, bytes]:
    usage = {"input_tokens": 0, "output_tokens": 0}
    message = {"id": "msg_warm_up", "type": "message", "role": "assistant", "model": WARM_UP_MODEL,
               "stop_sequence": None, "usage": usage}
    if not stream:
        whole = {**message, "content": [{"type": "text", "text": REPLY}], "stop_reason": "end_turn"}
        return b"application/json", json.dumps(whole).encode()
    return b"text/event-stream", sse([
        ("message_start", {"type": "message_start", "message": {**message, "content": [], "stop_reason": None}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": REPLY}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 1}}),
        ("message_stop", {"type": "message_stop"}),
    ])


def models_answer(wire: str) -> tuple[bytes, bytes]:
    if wire == "anthropic":
        listing = {"data": [{"type": "model", "id": WARM_UP_MODEL, "display_name": WARM_UP_MODEL,
                             "created_at": "2026-01-01T00:00:00Z"}],
                   "has_more": False, "first_id": WARM_UP_MODEL, "last_id": WARM_UP_MODEL}
    else:
        listing = {"object": "list", "data": [{"id": WARM_UP_MODEL, "object": "model", "created": 0,
                                               "owned_by": "inspect"}]}
    return b"application/json", json.dumps(listing).encode()


def answer(endpoint: str, wire: str, body: bytes) -> tuple[bytes, bytes]:
    """(content type, body) for a call to the warm-up provider; `body` is the request's JSON object."""
    if endpoint == "models":
        return models_answer(wire)
    stream = bool(json.loads(body).get("stream"))
    return anthropic_answer(stream) if endpoint == "messages" else openai_answer(stream)
