"""Model providers the control plane holds keys for, and the OpenCode config that reaches them
through the model proxy (`model_proxy/proxy.py`, docs/model-proxy.md).

`settings.MODEL_PROVIDERS` (built from the environment at the end of settings.py) is a list of
dicts: name, kind, label, base_url, api_key, models. The kind is the wire format the provider speaks
(`wires.py`: "openai" or "anthropic").
Sandboxes never see a real key: their OpenCode gets the proxy's URL and the sandbox's token.
"""

import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from bridge.protocol import WARM_UP_MODEL, WARM_UP_PROVIDER
from model_providers.wires import WIRES, Wire

NO_PROVIDER_MESSAGE = (
    "No model provider is configured: set OPENAI_API_KEY, ANTHROPIC_API_KEY or OPENAI_COMPATIBLE_BASE_URL "
    "(with OPENAI_COMPATIBLE_MODELS) in the control plane's environment and restart it."
)

# Where the control plane serves the model proxy (routed in inspect_site/asgi.py).
MODEL_PROXY_PATH = "/model-proxy"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
# OpenCode (1.18) loads these provider ids its own way (other SDKs, other APIs), so an
# OpenAI-compatible endpoint must not borrow one; "openai" and "anthropic" are fine for their kind.
RESERVED_NAMES = {
    "opencode", "azure", "azure-cognitive-services", "amazon-bedrock", "github-copilot", "gitlab",
    "google-vertex", "google-vertex-anthropic", "xai", "sap-ai-core", "snowflake-cortex",
    WARM_UP_PROVIDER,  # the proxy answers it itself (model_providers/wires.py)
}
MODELS_ENV = {"openai": "OPENAI_MODELS", "anthropic": "ANTHROPIC_MODELS"}


class NoModelProvider(ImproperlyConfigured):
    """Raised where a model is needed but none is configured; str() is NO_PROVIDER_MESSAGE."""

    def __init__(self, message: str = NO_PROVIDER_MESSAGE):
        super().__init__(message)


@dataclass(frozen=True)
class Provider:
    name: str  # provider id: in the proxy URL, in OpenCode's config and in "provider/model" values
    kind: str  # "openai" (chat completions) | "anthropic" (messages)
    label: str
    base_url: str  # the upstream API root the proxy's /v1/<endpoint> maps onto, e.g. https://api.openai.com/v1
    api_key: str = ""  # may be empty (a local Ollama needs none)
    models: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never print the key
        return f"Provider({self.name!r}, {self.kind!r}, {self.base_url!r}, models={list(self.models)})"

    @property
    def wire(self) -> Wire:
        return WIRES[self.kind]

    def upstream_url(self, endpoint: str) -> str:
        return f"{self.base_url}/{endpoint}"


def _provider(entry: dict) -> Provider:
    name = str(entry.get("name", ""))
    kind = entry.get("kind", "")
    if kind not in WIRES:
        raise ImproperlyConfigured(f"Model provider {name!r}: kind must be one of {', '.join(WIRES)}, not {kind!r}.")
    if not NAME_RE.match(name):
        raise ImproperlyConfigured(
            f"Model provider name {name!r} is not valid: use lowercase letters, digits, '-' and '_' "
            "(OPENAI_COMPATIBLE_NAME)."
        )
    if name in RESERVED_NAMES or (name in WIRES and name != kind):
        raise ImproperlyConfigured(
            f"OPENAI_COMPATIBLE_NAME={name!r} is taken by a built-in OpenCode provider: pick another, e.g. 'local'."
        )
    base_url = str(entry.get("base_url") or "").rstrip("/")
    if not re.match(r"^https?://[^/]+", base_url):
        raise ImproperlyConfigured(f"Model provider {name!r}: base URL {base_url!r} must start with http:// or https://.")
    base_url = WIRES[kind].api_root(base_url)
    models = tuple(m.strip() for m in entry.get("models") or () if m and m.strip())
    if not models:
        env = MODELS_ENV.get(name, "OPENAI_COMPATIBLE_MODELS")
        raise ImproperlyConfigured(
            f"Model provider {name!r} has no models: list its model ids in {env}, comma-separated."
        )
    label = str(entry.get("label") or name)
    return Provider(name=name, kind=kind, label=label, base_url=base_url, api_key=str(entry.get("api_key") or ""),
                    models=models)


def configured_providers() -> list[Provider]:
    """The providers in settings.MODEL_PROVIDERS, in order; [] when none is configured.
    Raises ImproperlyConfigured (with what to fix) for an invalid entry."""
    providers = [_provider(entry) for entry in getattr(settings, "MODEL_PROVIDERS", None) or ()]
    names = [p.name for p in providers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ImproperlyConfigured(f"Two model providers are named {duplicates[0]!r}: set OPENAI_COMPATIBLE_NAME.")
    return providers


def require_providers() -> list[Provider]:
    """configured_providers(), or NoModelProvider (whose message says what to set) when empty."""
    providers = configured_providers()
    if not providers:
        raise NoModelProvider()
    return providers


def get_provider(name: str) -> Provider | None:
    return next((p for p in configured_providers() if p.name == name), None)


def split_model(value: str) -> tuple[str, str]:
    """"provider/model" -> (provider, model). Model ids may contain "/" (e.g. "meta-llama/llama-3")."""
    provider, sep, model = (value or "").partition("/")
    if not sep or not provider or not model:
        raise ValueError(f"{value!r} is not a model: write it as provider/model, e.g. openai/gpt-5.")
    return provider, model


def is_configured_model(value: str) -> bool:
    try:
        provider_name, model = split_model(value)
    except ValueError:
        return False
    provider = get_provider(provider_name)
    return provider is not None and model in provider.models


def model_choices() -> list[tuple[str, str]]:
    """[("provider/model", "model (Label)"), ...] for a form's select, the default model first."""
    providers = configured_providers()
    choices = [(f"{p.name}/{m}", f"{m} ({p.label})") for p in providers for m in p.models]
    if choices:
        default = default_model()
        choices.sort(key=lambda choice: choice[0] != default)
    return choices


def default_model() -> str:
    """settings.DEFAULT_MODEL, or the first model of the first provider. NoModelProvider when none."""
    providers = require_providers()
    value = getattr(settings, "DEFAULT_MODEL", "") or ""
    if not value:
        return f"{providers[0].name}/{providers[0].models[0]}"
    if not is_configured_model(value):
        known = ", ".join(f"{p.name}/{m}" for p in providers for m in p.models)
        raise ImproperlyConfigured(f"DEFAULT_MODEL={value!r} is not a configured model; choose one of: {known}.")
    return value


def default_proxy_base_url() -> str:
    """The proxy's root as a sandbox reaches it, e.g. http://127.0.0.1:8000/model-proxy."""
    return settings.SANDBOX_CONTROL_PLANE_URL.rstrip("/") + MODEL_PROXY_PATH


def proxy_url(provider: Provider, proxy_base_url: str | None = None) -> str:
    """What the provider's SDK gets as baseURL: <proxy root>/<provider>/v1 (it appends e.g. /messages)."""
    return f"{(proxy_base_url or default_proxy_base_url()).rstrip('/')}/{provider.name}/v1"


def opencode_provider_config(token: str, proxy_base_url: str | None = None) -> dict:
    """The `provider` section of a sandbox's opencode.json: every configured provider, pointed at
    the proxy, with the sandbox's token as its API key. Never contains a real key.
    Raises NoModelProvider when no provider is configured."""
    return {
        p.name: {
            "npm": p.wire.npm,
            "name": p.label,
            "options": {"baseURL": proxy_url(p, proxy_base_url), "apiKey": token},
            "models": {m: {"tool_call": True} for m in p.models},
        }
        for p in require_providers()
    }


def opencode_config(token: str, model: str | None = None, proxy_base_url: str | None = None) -> dict:
    """A whole opencode.json for a sandbox: the providers above, only those enabled, `model`
    (default: default_model()) as both the model and the small (title) model."""
    require_providers()
    model = model or default_model()
    if not is_configured_model(model):
        raise ValueError(f"{model!r} is not a configured model.")
    model_provider = get_provider(split_model(model)[0])
    assert model_provider is not None  # is_configured_model() found it
    providers = opencode_provider_config(token, proxy_base_url)
    # Same SDK as the model's provider, so warming OpenCode up loads what its prompts will use.
    providers[WARM_UP_PROVIDER] = {
        "npm": model_provider.wire.npm,
        "name": "Warm-up (answered by the control plane)",
        "options": {"baseURL": f"{(proxy_base_url or default_proxy_base_url()).rstrip('/')}/{WARM_UP_PROVIDER}/v1",
                    "apiKey": token},
        "models": {WARM_UP_MODEL: {"tool_call": True}},
    }
    return {
        "$schema": "https://opencode.ai/config.json",
        "provider": providers,
        "enabled_providers": list(providers),
        "model": model,
        "small_model": model,
        "share": "disabled",
        "autoupdate": False,
    }
