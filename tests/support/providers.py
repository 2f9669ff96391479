"""Provider settings for tests: two providers behind one scripted upstream, with keys to look for."""

OPENAI_KEY = "sk-real-openai-key-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-real-anthropic-key-0123456789"


def provider_settings(url: str) -> list[dict]:
    return [
        {"name": "scripted", "kind": "openai", "label": "Scripted", "base_url": f"{url}/v1", "api_key": OPENAI_KEY,
         "models": ["scripted", "scripted-mini"]},
        {"name": "anthropic", "kind": "anthropic", "label": "Anthropic", "base_url": url, "api_key": ANTHROPIC_KEY,
         "models": ["claude-test"]},
    ]
