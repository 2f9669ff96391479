"""Model provider configuration (model_providers/providers.py): what OpenCode in a sandbox is told, and
what an admin must fix when the environment is wrong. The proxy itself: tests/model_proxy/."""

import json
import os
import runpy
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from bridge.protocol import WARM_UP_PROVIDER
from model_providers.providers import (
    Provider,
    configured_providers,
    default_model,
    model_choices,
    opencode_config,
    opencode_provider_config,
)
from tests.support.providers import ANTHROPIC_KEY, OPENAI_KEY, provider_settings


def test_opencode_provider_config_points_every_provider_at_the_proxy(settings):
    settings.MODEL_PROVIDERS = provider_settings("http://upstream.example")
    config = opencode_provider_config("sandbox-token", "http://10.0.0.5:8000/model-proxy/")
    assert config == {
        "scripted": {
            "npm": "@ai-sdk/openai-compatible", "name": "Scripted",
            "options": {"baseURL": "http://10.0.0.5:8000/model-proxy/scripted/v1", "apiKey": "sandbox-token"},
            "models": {"scripted": {"tool_call": True}, "scripted-mini": {"tool_call": True}},
        },
        "anthropic": {
            "npm": "@ai-sdk/anthropic", "name": "Anthropic",
            "options": {"baseURL": "http://10.0.0.5:8000/model-proxy/anthropic/v1", "apiKey": "sandbox-token"},
            "models": {"claude-test": {"tool_call": True}},
        },
    }
    assert OPENAI_KEY not in json.dumps(config) and ANTHROPIC_KEY not in json.dumps(config)
    assert "upstream.example" not in json.dumps(config)

    settings.SANDBOX_CONTROL_PLANE_URL = "http://control:9000/"
    by_default = opencode_provider_config("t")
    assert by_default["anthropic"]["options"]["baseURL"] == "http://control:9000/model-proxy/anthropic/v1"


def test_opencode_config_default_model_and_choices(settings):
    settings.MODEL_PROVIDERS = provider_settings("http://upstream.example")
    settings.DEFAULT_MODEL = ""
    assert default_model() == "scripted/scripted"
    settings.DEFAULT_MODEL = "anthropic/claude-test"
    assert default_model() == "anthropic/claude-test"
    assert model_choices() == [
        ("anthropic/claude-test", "claude-test (Anthropic)"),
        ("scripted/scripted", "scripted (Scripted)"),
        ("scripted/scripted-mini", "scripted-mini (Scripted)"),
    ]
    config = opencode_config("t", "scripted/scripted-mini", "http://cp/model-proxy")
    assert config["model"] == config["small_model"] == "scripted/scripted-mini"
    assert config["enabled_providers"] == ["scripted", "anthropic", WARM_UP_PROVIDER]
    assert config["provider"][WARM_UP_PROVIDER]["npm"] == "@ai-sdk/openai-compatible"  # the model's SDK
    assert config["provider"]["scripted"]["options"]["apiKey"] == "t"
    assert opencode_config("t")["model"] == "anthropic/claude-test"
    with pytest.raises(ValueError):
        opencode_config("t", "scripted/gpt-unknown")
    settings.DEFAULT_MODEL = "openai/gpt-5"
    with pytest.raises(ImproperlyConfigured, match="DEFAULT_MODEL='openai/gpt-5' is not a configured model"):
        default_model()


@pytest.mark.parametrize(("entry", "message"), [
    ({"models": []}, "has no models: list its model ids in OPENAI_COMPATIBLE_MODELS"),
    ({"name": "My Ollama"}, "is not valid"),
    ({"name": "azure"}, "taken by a built-in OpenCode provider"),
    ({"name": "anthropic"}, "taken by a built-in OpenCode provider"),
    ({"base_url": "127.0.0.1:11434/v1"}, "must start with http:// or https://"),
    ({"kind": "gemini"}, "kind must be one of openai, anthropic"),
])
def test_invalid_provider_settings_say_what_to_fix(settings, entry, message):
    settings.MODEL_PROVIDERS = [{"name": "local", "kind": "openai", "base_url": "http://127.0.0.1:11434/v1",
                                 "models": ["qwen"], **entry}]
    with pytest.raises(ImproperlyConfigured, match=message):
        configured_providers()


def test_providers_come_from_the_environment(settings, monkeypatch):
    """The settings block at the end of settings.py, run again with a given environment."""
    settings_file = Path(django_settings.BASE_DIR) / "inspect_site" / "settings.py"

    def configure(**env) -> list[Provider]:
        for name in list(os.environ):
            if name.startswith(("OPENAI_", "ANTHROPIC_")) or name == "DEFAULT_MODEL":
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        fresh = runpy.run_path(str(settings_file))
        settings.MODEL_PROVIDERS = fresh["MODEL_PROVIDERS"]
        settings.DEFAULT_MODEL = fresh["DEFAULT_MODEL"]
        return configured_providers()

    providers = configure(
        OPENAI_API_KEY="sk-o", ANTHROPIC_API_KEY="sk-a", ANTHROPIC_MODELS="claude-opus-4-1",
        OPENAI_COMPATIBLE_BASE_URL="http://127.0.0.1:11434/v1", OPENAI_COMPATIBLE_NAME="ollama",
        OPENAI_COMPATIBLE_MODELS="qwen2.5-coder:7b, llama3.1", DEFAULT_MODEL="ollama/llama3.1",
    )
    assert [(p.name, p.kind, p.base_url, p.api_key, p.models) for p in providers] == [
        ("openai", "openai", "https://api.openai.com/v1", "sk-o", ("gpt-5", "gpt-5-mini")),
        ("anthropic", "anthropic", "https://api.anthropic.com/v1", "sk-a", ("claude-opus-4-1",)),
        ("ollama", "openai", "http://127.0.0.1:11434/v1", "", ("qwen2.5-coder:7b", "llama3.1")),
    ]
    assert default_model() == "ollama/llama3.1"
    assert "sk-o" not in repr(providers)

    providers = configure(OPENAI_API_KEY="sk-o", OPENAI_BASE_URL="https://gateway.example/openai/v1/")
    assert [(p.name, p.base_url) for p in providers] == [("openai", "https://gateway.example/openai/v1")]
    assert default_model() == "openai/gpt-5"

    assert configure() == []
    with pytest.raises(ImproperlyConfigured, match="OPENAI_COMPATIBLE_MODELS"):
        configure(OPENAI_COMPATIBLE_BASE_URL="http://127.0.0.1:11434/v1")


