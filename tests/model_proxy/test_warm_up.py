"""The warm-up model (model_providers/wires.py): the model proxy answers it itself, in the caller's wire
format, only for a live sandbox's token, and never calls a provider."""

import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from bridge.protocol import WARM_UP_MODEL, WARM_UP_PROVIDER
from model_providers.providers import configured_providers, opencode_config
from sandboxes.lifecycle import State
from tests.model_proxy.support import call, chat_body, db, make_sandbox, messages_body, sse_data

BASE = f"/model-proxy/{WARM_UP_PROVIDER}/v1"


@db
def test_an_openai_warm_up_call_is_answered_by_the_proxy_alone(providers):
    _sandbox, token = make_sandbox()
    before = len(providers.requests)
    streamed = call("POST", f"{BASE}/chat/completions", json=chat_body("Reply with one word."),
                    headers={"Authorization": f"Bearer {token}"})
    assert streamed.status_code == 200 and streamed.headers["content-type"] == "text/event-stream"
    chunks = sse_data(streamed.text)
    assert chunks[-1] == "[DONE]" and chunks[0]["choices"][0]["delta"]["content"] == "ok"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    whole = call("POST", f"{BASE}/chat/completions", json=chat_body("hi", stream=False),
                 headers={"Authorization": f"Bearer {token}"}).json()
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": "ok"}
    models = call("GET", f"{BASE}/models", headers={"Authorization": f"Bearer {token}"}).json()
    assert [m["id"] for m in models["data"]] == [WARM_UP_MODEL]
    assert len(providers.requests) == before  # no provider was called


@db
def test_an_anthropic_warm_up_call_is_answered_in_anthropics_events(providers):
    _sandbox, token = make_sandbox()
    answer = call("POST", f"{BASE}/messages", json=messages_body("Reply with one word."), headers={"x-api-key": token})
    assert answer.status_code == 200
    events = [line.removeprefix("event: ") for line in answer.text.splitlines() if line.startswith("event: ")]
    assert events == ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                      "message_delta", "message_stop"]
    assert sse_data(answer.text)[2]["delta"] == {"type": "text_delta", "text": "ok"}
    assert not providers.requests


@db
@pytest.mark.parametrize("token", ["", "not-a-token", "terminated"])
def test_a_warm_up_call_needs_a_live_sandboxs_token(providers, token):
    if token == "terminated":
        _sandbox, token = make_sandbox(State.TERMINATED)
    answer = call("POST", f"{BASE}/chat/completions", json=chat_body("hi"),
                  headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401


@db
def test_a_bad_warm_up_body_is_refused(providers):
    _sandbox, token = make_sandbox()
    answer = call("POST", f"{BASE}/chat/completions", content=b"{not json",
                  headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]["message"]


def test_the_sandbox_config_has_the_warm_up_model_with_its_models_sdk(providers, settings):
    config = opencode_config("tok", proxy_base_url="http://cp/model-proxy")
    warm = config["provider"][WARM_UP_PROVIDER]
    default = config["provider"][config["model"].split("/")[0]]
    assert warm["npm"] == default["npm"]
    assert warm["options"] == {"baseURL": f"http://cp/model-proxy/{WARM_UP_PROVIDER}/v1", "apiKey": "tok"}
    assert WARM_UP_PROVIDER in config["enabled_providers"]
    assert config["model"] != f"{WARM_UP_PROVIDER}/{WARM_UP_MODEL}" and config["small_model"] == config["model"]
    settings.DEFAULT_MODEL = "anthropic/claude-test"
    anthropic = opencode_config("tok", proxy_base_url="http://cp/model-proxy")
    assert anthropic["provider"][WARM_UP_PROVIDER]["npm"] == "@ai-sdk/anthropic"
    assert "tok" in json.dumps(anthropic) and "sk-" not in json.dumps(anthropic)


def test_a_provider_cannot_take_the_warm_up_models_name(settings):
    settings.MODEL_PROVIDERS = [{"name": WARM_UP_PROVIDER, "kind": "openai", "base_url": "http://127.0.0.1:9/v1",
                                 "models": ["m"]}]
    with pytest.raises(ImproperlyConfigured, match="taken"):
        configured_providers()
