from django.conf import settings

from sandboxes.backends.base import SandboxBackend

_instances: dict[str, SandboxBackend] = {}


def get_backend(name: str | None = None) -> SandboxBackend:
    name = name or settings.SANDBOX_BACKEND
    if name not in _instances:
        if name == "local":
            from sandboxes.backends.local import LocalBackend

            _instances[name] = LocalBackend(settings.SANDBOX_ROOT)
        else:
            raise ValueError(f"unknown sandbox backend {name!r} (known: local)")
    return _instances[name]
