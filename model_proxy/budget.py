"""What a session may spend on models: the models the platform offers, and a budget of tokens per session,
counted from the usage the providers report in their answers."""

import json
import re
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import F

from model_providers.providers import Provider
from sessions.models import Session

USAGE = re.compile(rb'"(prompt_tokens|completion_tokens|input_tokens|output_tokens)"\s*:\s*(\d{1,12})')
TAIL = 64  # bytes kept between chunks, so a number split across two chunks is still read


class UsageMeter:
    """Reads the token counts out of an answer as it streams by (OpenAI's usage object, Anthropic's
    message_start and message_delta). Each count is the largest seen, as Anthropic's output count grows."""

    def __init__(self) -> None:
        self.counts: dict[bytes, int] = {}
        self.tail = b""
        self.bytes = 0

    def feed(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        text = self.tail + chunk
        for name, number in USAGE.findall(text):
            self.counts[name] = max(self.counts.get(name, 0), int(number))
        self.tail = text[-TAIL:]

    @property
    def tokens(self) -> int:
        return sum(self.counts.values())

    def spent(self, request_bytes: int) -> int:
        """The tokens the provider reported; when it reported none (a client that did not ask for usage, a
        provider that sends none), an estimate of ~4 bytes a token over the request and the answer."""
        if self.tokens or not self.bytes:
            return self.tokens
        return (request_bytes + self.bytes) // 4


def with_usage_asked(body: bytes) -> bytes:
    """An OpenAI-wire streaming request that asks for the usage at the end of the stream (OpenAI sends it only
    when asked): the proxy asks whatever the client did."""
    payload = json.loads(body)
    if not payload.get("stream"):
        return body
    options = payload.get("stream_options")
    payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return json.dumps(payload).encode()


@dataclass(frozen=True)
class Spending:
    session_id: int
    used: int


def model_refusal(provider: Provider, model: object) -> str:
    """Why a call for `model` is refused, or "": only the models the platform offers for the provider (those
    the new-session form lists) may be called, so an agent cannot run up a bill on another."""
    if not provider.models:
        return ""  # a provider configured without a list offers whatever it serves (a local Ollama)
    if model in provider.models:
        return ""
    return (f"The model {str(model)[:100]!r} is not one this platform offers for {provider.label}: use "
            f"{', '.join(provider.models)}.")


@database_sync_to_async
def spending_of(sandbox_id) -> Spending | None:
    """The session the sandbox works for, and the tokens it has used; None when it serves none."""
    found = Session.objects.filter(sandbox_id=sandbox_id).values_list("pk", "model_tokens_used").first()
    return Spending(*found) if found else None


def budget_refusal(spending: Spending) -> str:
    budget = settings.MODEL_TOKEN_BUDGET_PER_SESSION
    if budget and spending.used >= budget:
        return (f"This session has used its model budget ({spending.used:,} of {budget:,} tokens). Start a new "
                "session, or ask an admin to raise MODEL_TOKEN_BUDGET_PER_SESSION.")
    return ""


@database_sync_to_async
def spend(session_id: int, tokens: int) -> None:
    if tokens > 0:
        Session.objects.filter(pk=session_id).update(model_tokens_used=F("model_tokens_used") + tokens)
