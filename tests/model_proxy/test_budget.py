"""What a session may spend through the model proxy: the models the platform offers, and its token budget,
counted from the usage the provider reports."""

import pytest

from model_proxy.budget import UsageMeter
from sessions.models import Session
from tests.model_proxy.support import call, chat_body, db, make_sandbox, messages_body

pytestmark = [pytest.mark.sandbox, db]


def chat(token: str, body: dict):
    return call("POST", "/model-proxy/scripted/v1/chat/completions", json=body,
                headers={"Authorization": f"Bearer {token}"})


def test_a_model_the_platform_does_not_offer_is_refused_before_the_provider_is_called(providers):
    _sandbox, token = make_sandbox()
    response = chat(token, {**chat_body("justtext hi"), "model": "gpt-expensive-9"})
    assert response.status_code == 403
    assert "not one this platform offers" in response.json()["error"]["message"]
    assert providers.requests == []


def test_a_sandbox_that_serves_no_session_makes_no_model_calls(providers):
    _sandbox, token = make_sandbox(session=False)
    response = chat(token, chat_body("justtext hi"))
    assert response.status_code == 403 and "serves no session" in response.json()["error"]["message"]
    assert providers.requests == []


def test_a_session_spends_what_the_provider_reports_until_its_budget_is_gone(providers, settings):
    settings.MODEL_TOKEN_BUDGET_PER_SESSION = 300
    sandbox, token = make_sandbox()
    session = Session.objects.get(sandbox=sandbox)
    assert chat(token, chat_body("justtext one")).status_code == 200  # the scripted stream reports 100 + 10
    session.refresh_from_db()
    assert session.model_tokens_used == 110
    messages = call("POST", "/model-proxy/anthropic/v1/messages", json=messages_body("justtext two"),
                    headers={"x-api-key": token})
    assert messages.status_code == 200  # message_start's 100 in, message_delta's 10 out
    session.refresh_from_db()
    assert session.model_tokens_used == 220
    assert chat(token, chat_body("justtext three")).status_code == 200  # 220 < 300: still allowed
    called = len(providers.requests)
    refused = chat(token, chat_body("justtext four"))
    assert refused.status_code == 429
    assert "used its model budget (330 of 300 tokens)" in refused.json()["error"]["message"]
    assert len(providers.requests) == called  # never reached the provider
    # Another session has a budget of its own.
    _other, other_token = make_sandbox()
    assert chat(other_token, chat_body("justtext hi")).status_code == 200


def test_the_meter_reads_counts_split_across_chunks_and_keeps_the_largest():
    meter = UsageMeter()
    chunks = (b'data: {"type":"message_start","message":{"usage":{"input_tokens":12', b'34,"output_tokens":1}}}\n',
              b'data: {"usage":{"output_tokens":5', b'6},"cache_read_input_tokens":999}\n')
    for chunk in chunks:
        meter.feed(chunk)
    assert meter.tokens == 1234 + 56  # the cache count is not a token spent


def test_a_client_that_does_not_ask_for_usage_is_counted_all_the_same(providers, settings):
    """The proxy asks OpenAI-wire streams for their usage itself; an answer with none is estimated."""
    sandbox, token = make_sandbox()
    body = {**chat_body("justtext one"), "stream_options": {"include_usage": False}}
    assert chat(token, body).status_code == 200
    assert providers.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    assert Session.objects.get(sandbox=sandbox).model_tokens_used == 110
    meter = UsageMeter()
    meter.feed(b"x" * 400)  # an answer that reports no usage
    assert meter.spent(request_bytes=400) == 200
