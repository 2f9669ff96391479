"""The model proxy (model_proxy/) and provider configuration (model_providers/providers.py).

The tests run the real ASGI application in this process (httpx.ASGITransport) against the
scripted model server; test_proxy_daphne.py runs it under a real Daphne process."""

import json
import logging
import socket
import threading
from contextlib import contextmanager

import pytest
from django.conf import settings as django_settings

from model_providers.providers import (
    NO_PROVIDER_MESSAGE,
    NoModelProvider,
    configured_providers,
    default_model,
    model_choices,
    opencode_config,
    opencode_provider_config,
    require_providers,
)
from sandboxes.lifecycle import State
from sandboxes.models import Sandbox
from tests.model_proxy.support import (
    assert_clean_upstream,
    call,
    chat_body,
    db,
    header,
    make_sandbox,
    messages_body,
    sse_data,
)
from tests.support.providers import ANTHROPIC_KEY, OPENAI_KEY, provider_settings

# --- proxying ---------------------------------------------------------------------------------

@db
def test_openai_stream_is_relayed_with_the_real_key(providers):
    _, token = make_sandbox()
    body = chat_body("justtext please")
    response = call("POST", "/model-proxy/scripted/v1/chat/completions", json=body,
                    headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    events = sse_data(response.text)
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e.get("choices"))
    assert text == "Just some text, no tools here."
    sent = providers.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert header(sent, "Authorization") == f"Bearer {OPENAI_KEY}"
    assert sent["body"] == {**body, "stream_options": {"include_usage": True}}  # the proxy asks for the usage
    assert_clean_upstream(sent, token)
    assert OPENAI_KEY not in response.text and OPENAI_KEY not in str(response.headers)


@db
def test_openai_tool_call_and_non_streaming_answers_pass_through(providers):
    _, token = make_sandbox()
    auth = {"Authorization": f"Bearer {token}"}
    streamed = call("POST", "/model-proxy/scripted/v1/chat/completions", json=chat_body("file:notes.md"), headers=auth)
    calls = [e["choices"][0]["delta"].get("tool_calls") for e in sse_data(streamed.text)[:-1] if e.get("choices")]
    arguments = "".join(c[0]["function"].get("arguments", "") for c in calls if c)
    assert json.loads(arguments)["filePath"] == "notes.md"

    plain = call("POST", "/model-proxy/scripted/v1/chat/completions", json=chat_body("justtext", stream=False),
                 headers=auth)
    assert plain.status_code == 200
    assert plain.headers["content-type"] == "application/json"
    assert plain.json()["choices"][0]["message"]["content"] == "Just some text, no tools here."


@db
def test_anthropic_stream_is_relayed_with_the_real_key(providers):
    _, token = make_sandbox()
    response = call("POST", "/model-proxy/anthropic/v1/messages", json=messages_body("justtext"), headers={
        "x-api-key": token, "anthropic-version": "2023-06-01", "anthropic-beta": "fine-grained-tool-streaming",
    })

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert "event: message_start" in response.text and "event: message_stop" in response.text
    text = "".join(e["delta"]["text"] for e in sse_data(response.text) if e["type"] == "content_block_delta")
    assert text == "Just some text, no tools here."
    sent = providers.requests[-1]
    assert sent["path"] == "/v1/messages"
    assert header(sent, "x-api-key") == ANTHROPIC_KEY
    assert header(sent, "anthropic-version") == "2023-06-01"
    assert header(sent, "anthropic-beta") == "fine-grained-tool-streaming"
    assert header(sent, "Authorization") is None
    assert_clean_upstream(sent, token)
    assert ANTHROPIC_KEY not in response.text


@db
def test_anthropic_accepts_a_bearer_token_and_defaults_the_version(providers):
    _, token = make_sandbox()
    response = call("POST", "/model-proxy/anthropic/v1/messages", json=messages_body("justtext"),
                    headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    sent = providers.requests[-1]
    assert header(sent, "x-api-key") == ANTHROPIC_KEY
    assert header(sent, "anthropic-version") == "2023-06-01"
    assert_clean_upstream(sent, token)


@db
def test_models_list_is_forwarded(providers):
    _, token = make_sandbox()
    response = call("GET", "/model-proxy/scripted/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["data"][0]["id"] == "scripted"


@db
def test_provider_errors_pass_through_unchanged(providers):
    _, token = make_sandbox()
    auth = {"Authorization": f"Bearer {token}"}
    failed = call("POST", "/model-proxy/scripted/v1/chat/completions", json=chat_body("error500"), headers=auth)
    assert failed.status_code == 500
    assert failed.json() == {"error": {"message": "scripted error 500", "type": "server_error"}}
    refused = call("POST", "/model-proxy/anthropic/v1/messages", json=messages_body("error401"),
                   headers={"x-api-key": token})
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"


@db
def test_a_body_beyond_djangos_form_limit_is_forwarded(providers):
    _, token = make_sandbox()
    big = "x" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024)
    body = {**chat_body("justtext"), "messages": [{"role": "system", "content": big},
                                                 {"role": "user", "content": "justtext"}]}
    response = call("POST", "/model-proxy/scripted/v1/chat/completions", json=body,
                    headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert providers.requests[-1]["body"]["messages"][0]["content"] == big


# --- refusals ---------------------------------------------------------------------------------

@db
@pytest.mark.parametrize("case", ["missing", "wrong", "terminated", "basic"])
def test_a_request_without_a_live_sandbox_token_is_refused(providers, case):
    _, live_token = make_sandbox()
    _, dead_token = make_sandbox(State.TERMINATED)
    headers = {
        "missing": {},
        "wrong": {"Authorization": "Bearer not-a-sandbox-token"},
        "terminated": {"Authorization": f"Bearer {dead_token}"},
        "basic": {"Authorization": f"Basic {live_token}"},
    }[case]
    openai = call("POST", "/model-proxy/scripted/v1/chat/completions", json=chat_body("justtext"), headers=headers)
    assert openai.status_code == 401
    assert openai.json()["error"]["code"] == "invalid_api_key"
    assert "sandbox token" in openai.json()["error"]["message"]

    anthropic_headers = {"x-api-key": dead_token} if case == "terminated" else headers
    anthropic = call("POST", "/model-proxy/anthropic/v1/messages", json=messages_body("justtext"),
                     headers=anthropic_headers)
    assert anthropic.status_code == 401
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "authentication_error"
    assert providers.requests == []


@db
def test_a_sandbox_that_ended_loses_access(providers):
    sandbox, token = make_sandbox()
    auth = {"Authorization": f"Bearer {token}"}
    assert call("POST", "/model-proxy/scripted/v1/chat/completions", json=chat_body("justtext"),
                headers=auth).status_code == 200
    Sandbox.objects.filter(pk=sandbox.pk).update(state=State.TERMINATED)
    assert call("POST", "/model-proxy/scripted/v1/chat/completions", json=chat_body("justtext"),
                headers=auth).status_code == 401
    assert len(providers.requests) == 1


@db
def test_unknown_provider_or_endpoint_is_404(providers):
    _, token = make_sandbox()
    auth = {"Authorization": f"Bearer {token}"}
    unknown = call("POST", "/model-proxy/nope/v1/chat/completions", json=chat_body("justtext"), headers=auth)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "Unknown model provider 'nope'; configured: scripted, anthropic."
    unknown_anthropic = call("POST", "/model-proxy/nope/v1/messages", json=messages_body("hi"), headers=auth)
    assert unknown_anthropic.status_code == 404
    assert unknown_anthropic.json()["error"]["type"] == "not_found_error"
    # An endpoint the provider does not speak: refused in the caller's wire, which the endpoint tells.
    wrong_wire = call("POST", "/model-proxy/scripted/v1/messages", json=messages_body("hi"), headers=auth)
    assert wrong_wire.status_code == 404 and wrong_wire.json()["error"]["type"] == "not_found_error"
    assert "speaks the OpenAI API" in wrong_wire.json()["error"]["message"]
    other_way = call("POST", "/model-proxy/anthropic/v1/chat/completions", json=chat_body("hi"), headers=auth)
    assert other_way.status_code == 404 and other_way.json()["error"]["code"] == "not_found"
    assert "speaks the Anthropic API" in other_way.json()["error"]["message"]
    assert call("POST", "/model-proxy/scripted/v1/embeddings", json={}, headers=auth).status_code == 404
    assert providers.requests == []


@db
def test_bad_bodies_and_methods_are_refused(providers, settings):
    _, token = make_sandbox()
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = "/model-proxy/scripted/v1/chat/completions"
    malformed = call("POST", url, content=b'{"model": "scripted", "messages": [', headers=auth)
    assert malformed.status_code == 400
    assert malformed.json()["error"]["message"] == "The request body is not valid JSON."
    assert call("POST", url, content=b"[1, 2]", headers=auth).status_code == 400
    anthropic = call("POST", "/model-proxy/anthropic/v1/messages", content=b"nope", headers={"x-api-key": token})
    assert anthropic.status_code == 400
    assert anthropic.json()["error"]["type"] == "invalid_request_error"

    settings.MODEL_PROXY_MAX_BODY_BYTES = 1000
    too_big = call("POST", url, json={**chat_body("justtext"), "pad": "x" * 2000}, headers=auth)
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "request_too_large"

    get = call("GET", url, headers=auth)
    assert get.status_code == 405 and get.headers["allow"] == "POST"
    assert providers.requests == []


@db
def test_an_unreachable_provider_is_a_clear_502(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    settings.MODEL_PROVIDERS = provider_settings(f"http://127.0.0.1:{port}")
    _, token = make_sandbox()
    response = call("POST", "/model-proxy/scripted/v1/chat/completions", json=chat_body("justtext"),
                    headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 502
    assert response.json()["error"]["message"] == (
        f"Could not reach the Scripted API at http://127.0.0.1:{port} (ConnectError)."
    )
    assert OPENAI_KEY not in response.text
    anthropic = call("POST", "/model-proxy/anthropic/v1/messages", json=messages_body("hi"),
                     headers={"x-api-key": token})
    assert anthropic.status_code == 502
    assert anthropic.json()["error"]["type"] == "api_error"


# A stream's head and its first event, as a provider sends them (chunked).
ONE_EVENT = b'data: {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}\n\n'
STREAM_START = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                + f"{len(ONE_EVENT):x}\r\n".encode() + ONE_EVENT + b"\r\n")


@contextmanager
def raw_provider(answer):
    """A provider on a plain socket: `answer(conn)` handles each connection (on a thread) once its
    request was read. Yields its URL; every connection still open is closed at the end."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            conn.recv(65536)
            answer(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for conn in held:
            conn.close()


@pytest.fixture
def broken_upstream():
    """A provider that starts a stream, sends one event and hangs up mid-body."""
    def answer(conn) -> None:
        conn.sendall(STREAM_START)
        conn.close()

    with raw_provider(answer) as url:
        yield url


@db
def test_a_stream_that_breaks_off_ends_with_an_error_event(settings, broken_upstream):
    settings.MODEL_PROVIDERS = provider_settings(broken_upstream)
    _, token = make_sandbox()
    openai = call("POST", "/model-proxy/scripted/v1/chat/completions", json=chat_body("hi"),
                  headers={"Authorization": f"Bearer {token}"})
    assert openai.status_code == 200
    first, error = sse_data(openai.text)
    assert first["choices"][0]["delta"]["content"] == "Hel"
    # The transport's error class depends on timing (RemoteProtocolError or ReadError); the message says what broke.
    assert error["error"]["message"].startswith("The Scripted API stream broke off (")

    anthropic = call("POST", "/model-proxy/anthropic/v1/messages", json=messages_body("hi"),
                     headers={"x-api-key": token})
    assert "event: error\ndata: " in anthropic.text
    assert sse_data(anthropic.text)[-1]["error"]["type"] == "api_error"


@pytest.fixture
def silent_upstream():
    """A provider that reads requests; `answer_head` says whether it then sends a stream's head and one
    event. Either way it then says nothing more."""
    answer_head = threading.Event()

    def answer(conn) -> None:
        if answer_head.is_set():
            conn.sendall(STREAM_START)

    with raw_provider(answer) as url:
        yield url, answer_head


@db
def test_a_provider_that_goes_silent_is_a_timeout_not_a_hang(settings, silent_upstream):
    url, answer_head = silent_upstream
    settings.MODEL_PROVIDERS = provider_settings(url)
    settings.MODEL_PROXY_READ_TIMEOUT_SECONDS = 0.5
    _, token = make_sandbox()
    auth = {"Authorization": f"Bearer {token}"}
    silent = call("POST", "/model-proxy/scripted/v1/chat/completions", json=chat_body("hi"), headers=auth)
    assert silent.status_code == 504
    assert silent.json()["error"]["message"] == (
        f"The Scripted API at {url} did not answer in time (ReadTimeout)."
    )
    answer_head.set()
    stalled = call("POST", "/model-proxy/scripted/v1/chat/completions", json=chat_body("hi"), headers=auth)
    assert stalled.status_code == 200
    first, error = sse_data(stalled.text)
    assert first["choices"][0]["delta"]["content"] == "Hel"
    assert error["error"]["message"] == "The Scripted API stream broke off (ReadTimeout)."


@db
def test_misconfigured_providers_answer_with_what_to_fix(settings):
    settings.MODEL_PROVIDERS = [{"name": "local", "kind": "openai", "base_url": "http://127.0.0.1:11434/v1",
                                 "api_key": "sk-secret-local", "models": []}]
    _, token = make_sandbox()
    response = call("POST", "/model-proxy/local/v1/chat/completions", json=chat_body("hi"),
                    headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500
    assert "OPENAI_COMPATIBLE_MODELS" in response.json()["error"]["message"]
    assert "sk-secret-local" not in response.text


@db
def test_neither_token_nor_key_is_logged(providers, caplog):
    caplog.set_level(logging.DEBUG)
    _, token = make_sandbox()
    call("POST", "/model-proxy/scripted/v1/chat/completions", json=chat_body("justtext"),
         headers={"Authorization": f"Bearer {token}"})
    call("POST", "/model-proxy/anthropic/v1/messages", json=messages_body("justtext"), headers={"x-api-key": token})
    call("POST", "/model-proxy/scripted/v1/chat/completions", json=chat_body("justtext"),
         headers={"Authorization": f"Bearer {token}x"})
    assert len(providers.requests) == 2
    assert caplog.records  # something was logged, just not secrets
    for secret in (token, OPENAI_KEY, ANTHROPIC_KEY):
        assert secret not in caplog.text


@db
def test_no_provider_configured(settings):
    settings.MODEL_PROVIDERS = []
    _, token = make_sandbox()
    assert configured_providers() == []
    assert model_choices() == []
    with pytest.raises(NoModelProvider) as raised:
        require_providers()
    assert str(raised.value) == NO_PROVIDER_MESSAGE
    for build in (lambda: opencode_provider_config(token), lambda: opencode_config(token), default_model):
        with pytest.raises(NoModelProvider, match="OPENAI_API_KEY, ANTHROPIC_API_KEY or OPENAI_COMPATIBLE_BASE_URL"):
            build()
    response = call("POST", "/model-proxy/openai/v1/chat/completions", json=chat_body("hi"),
                    headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == NO_PROVIDER_MESSAGE
