"""The wire formats (model_providers/wires.py): each says its errors, its key and its warm-up answers its own way."""

import json

import pytest

from model_providers.wires import ANTHROPIC, OPENAI, WIRES, wire_of_endpoint


def test_each_wire_carries_the_key_its_own_way():
    assert OPENAI.auth_headers("sk-1") == {"authorization": "Bearer sk-1"}
    assert OPENAI.auth_headers("") == {}  # a local Ollama needs none
    assert ANTHROPIC.auth_headers("sk-2") == {"x-api-key": "sk-2"}
    assert ANTHROPIC.default_headers() == {"anthropic-version": "2023-06-01"}


def test_anthropics_base_url_is_its_host_and_the_api_lives_under_v1():
    assert ANTHROPIC.api_root("https://api.anthropic.com") == "https://api.anthropic.com/v1"
    assert ANTHROPIC.api_root("https://gateway.example/v1") == "https://gateway.example/v1"
    assert OPENAI.api_root("http://127.0.0.1:11434/v1") == "http://127.0.0.1:11434/v1"


@pytest.mark.parametrize(("wire", "status", "expected"), [
    (OPENAI, 401, {"error": {"message": "m", "type": "invalid_request_error", "param": None,
                             "code": "invalid_api_key"}}),
    (OPENAI, 504, {"error": {"message": "m", "type": "server_error", "param": None, "code": "gateway_timeout"}}),
    (ANTHROPIC, 401, {"type": "error", "error": {"type": "authentication_error", "message": "m"}}),
    (ANTHROPIC, 502, {"type": "error", "error": {"type": "api_error", "message": "m"}}),
])
def test_errors_are_written_as_each_wires_sdks_read_them(wire, status, expected):
    assert wire.error_body(status, "m") == expected


def test_a_broken_stream_ends_with_an_error_event_in_the_wire_of_the_call():
    assert OPENAI.stream_error(502, "broke").startswith(b"\n\ndata: {")
    anthropic = ANTHROPIC.stream_error(502, "broke")
    assert anthropic.startswith(b"\n\nevent: error\ndata: ")
    assert json.loads(anthropic.split(b"data: ", 1)[1])["error"]["message"] == "broke"


@pytest.mark.parametrize("wire", list(WIRES.values()))
def test_the_warm_up_answer_is_one_word_whole_or_streamed(wire):
    content_type, whole = wire.warm_up_answer(stream=False)
    assert content_type == b"application/json" and b'"ok"' in whole
    content_type, streamed = wire.warm_up_answer(stream=True)
    assert content_type == b"text/event-stream" and b"ok" in streamed


def test_the_endpoint_tells_the_callers_wire():
    assert wire_of_endpoint("messages") is ANTHROPIC
    assert wire_of_endpoint("chat/completions") is OPENAI and wire_of_endpoint("models") is OPENAI
