"""Reads a repo's `.devcontainer/devcontainer.json` into the parts honoured locally.

`image` (and other container-only keys) are ignored: the local backend runs on the
host's tools. The lifecycle commands may be a string (shell), an array (one command,
no shell) or an object of named commands (run one after another here).
"""

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import json5

DEVCONTAINER_PATHS = (".devcontainer/devcontainer.json", ".devcontainer.json")


class DevcontainerError(ValueError):
    """The file exists but cannot be used; the message says why."""


@dataclass
class DevcontainerPlan:
    on_create: list[str] = field(default_factory=list)
    post_create: list[str] = field(default_factory=list)
    post_start: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    forward_ports: list[int] = field(default_factory=list)


def find(workspace: Path) -> Path | None:
    for rel in DEVCONTAINER_PATHS:
        candidate = workspace / rel
        if candidate.is_file():
            return candidate
    return None


def _commands(key: str, value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        if not value or not all(isinstance(part, str) for part in value):
            raise DevcontainerError(f"{key}: an array must hold strings (a command and its arguments)")
        return [shlex.join(value)]
    if isinstance(value, dict):
        out: list[str] = []
        for name, sub in value.items():
            if not isinstance(sub, (str, list)):
                raise DevcontainerError(f"{key}.{name}: expected a string or an array of strings")
            out.extend(_commands(f"{key}.{name}", sub))
        return out
    raise DevcontainerError(f"{key}: expected a string, an array or an object, got {type(value).__name__}")


def _port(value) -> int:
    if isinstance(value, bool):
        raise DevcontainerError(f"forwardPorts: {value!r} is not a port")
    if isinstance(value, str) and ":" in value:
        value = value.rsplit(":", 1)[1]
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise DevcontainerError(f"forwardPorts: {value!r} is not a port") from None
    if not 1 <= port <= 65535:
        raise DevcontainerError(f"forwardPorts: {port} is out of range 1-65535")
    return port


def parse(text: str) -> DevcontainerPlan:
    """Parse devcontainer.json text (JSON with comments and trailing commas)."""
    try:
        data = json5.loads(text)
    except ValueError as e:
        raise DevcontainerError(f"devcontainer.json is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise DevcontainerError("devcontainer.json must hold an object at the top level")

    env = data.get("containerEnv") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise DevcontainerError("containerEnv must be an object of string values")
    ports = data.get("forwardPorts") or []
    if not isinstance(ports, list):
        raise DevcontainerError("forwardPorts must be an array")

    return DevcontainerPlan(
        on_create=_commands("onCreateCommand", data.get("onCreateCommand")),
        post_create=_commands("postCreateCommand", data.get("postCreateCommand")),
        post_start=_commands("postStartCommand", data.get("postStartCommand")),
        env=dict(env),
        forward_ports=[_port(p) for p in ports],
    )


def load(workspace: Path) -> DevcontainerPlan | None:
    path = find(workspace)
    if path is None:
        return None
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DevcontainerError(f"{path.name} is not UTF-8 text") from None
    return parse(text)
