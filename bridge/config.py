"""The bridge's settings (from environment variables) and what it prepares for OpenCode."""

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .protocol import OPENCODE_BIN, OPENCODE_PLUGIN_PACKAGE, SANDBOX_HOME, SANDBOX_WORKSPACE, SERVICE_SECRET_ENV

# Writes (edit, write, patch tools and bash) ask the bridge, which answers once the workspace is
# synced; reads never ask. Nobody can answer the question tool, so it is denied.
PERMISSIONS = {"edit": "ask", "bash": "ask", "question": "deny"}
SESSION_RULES = [{"permission": name, "pattern": "*", "action": action} for name, action in PERMISSIONS.items()]


class ConfigError(Exception):
    pass


def json_object(env: dict[str, str], name: str) -> dict:
    """A variable holding a JSON object ({} when unset)."""
    try:
        value = json.loads(env.get(name) or "{}")
    except ValueError as e:
        raise ConfigError(f"{name} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object")
    return value


@dataclass
class BridgeConfig:
    control_plane_url: str
    sandbox_id: str
    token: str
    opencode_config: dict
    workspace: Path
    home: Path
    tools_dir: Path
    opencode_bin: Path
    synced: bool
    heartbeat_seconds: float = 10.0
    reconnect_max_seconds: float = 30.0
    env: dict[str, str] = field(default_factory=dict)
    # The workspace services to run: {"ide": bool, "desktop": bool, "dev": {"commands": [...], "ports": [...]}}
    services: dict = field(default_factory=dict)
    # What VS Code and the desktop ask of every request (bridge.protocol SERVICE_SECRET_COOKIES). Without one
    # from the platform, a random one: the services then answer nobody rather than everybody.
    service_secret: str = field(default_factory=lambda: secrets.token_hex(32))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "BridgeConfig":
        env = dict(os.environ if env is None else env)
        missing = [n for n in ("INSPECT_CONTROL_PLANE_URL", "INSPECT_SANDBOX_ID", "INSPECT_SANDBOX_TOKEN")
                   if not env.get(n)]
        if missing:
            raise ConfigError(f"missing environment variables: {', '.join(missing)}")
        opencode_config = json_object(env, "INSPECT_OPENCODE_CONFIG")
        services = json_object(env, "INSPECT_SERVICES")
        tools = Path(env.get("INSPECT_TOOLS_DIR") or "/opt/inspect")
        return cls(
            control_plane_url=env["INSPECT_CONTROL_PLANE_URL"],
            sandbox_id=env["INSPECT_SANDBOX_ID"],
            token=env["INSPECT_SANDBOX_TOKEN"],
            opencode_config=opencode_config,
            workspace=Path(env.get("INSPECT_WORKSPACE") or SANDBOX_WORKSPACE),
            home=Path(env.get("HOME") or SANDBOX_HOME),
            tools_dir=tools,
            opencode_bin=Path(env.get("INSPECT_OPENCODE_BIN") or tools / OPENCODE_BIN),
            synced=env.get("INSPECT_SYNCED") == "1",
            heartbeat_seconds=float(env.get("INSPECT_HEARTBEAT_SECONDS") or 10),
            reconnect_max_seconds=float(env.get("INSPECT_RECONNECT_MAX_SECONDS") or 30),
            env=env,
            services=services,
            service_secret=env.get(SERVICE_SECRET_ENV) or secrets.token_hex(32),
        )

    @property
    def websocket_url(self) -> str:
        parts = urlsplit(self.control_plane_url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        path = parts.path.rstrip("/") + f"/ws/sandbox/{self.sandbox_id}/"
        return urlunsplit((scheme, parts.netloc, path, "", ""))

    def xdg(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local/share"),
            "XDG_STATE_HOME": str(self.home / ".local/state"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
        }

    @property
    def opencode_data(self) -> Path:
        return self.home / ".local/share/opencode"

    def merged_opencode_config(self) -> dict:
        """The given config with the platform's permission rules on top."""
        config = json.loads(json.dumps(self.opencode_config))
        permission = config.get("permission")
        config["permission"] = {**(permission if isinstance(permission, dict) else {}), **PERMISSIONS}
        config.setdefault("share", "disabled")
        config.setdefault("autoupdate", False)
        # OpenCode's own undo snapshots copy the worktree into a git store in the sandbox at each step:
        # CPU before every model call, and bytes in every platform snapshot. The platform's snapshots
        # and the bridge's diffs stand in for them.
        config.setdefault("snapshot", False)
        return config

    def service_env(self) -> dict[str, str]:
        """The repo's environment for its dev servers, VS Code's terminals and the desktop: the bridge's
        own variables (the token among them) are not for them; OpenCode's and the XDG ones are set here."""
        env = {k: v for k, v in self.env.items() if not k.startswith(("INSPECT_", "XDG_", "OPENCODE_"))}
        env.update(self.xdg())
        return env

    def opencode_env(self, password: str) -> dict[str, str]:
        env = self.service_env()
        env.update({
            "OPENCODE_CONFIG_CONTENT": json.dumps(self.merged_opencode_config()),
            "OPENCODE_PERMISSION": json.dumps(PERMISSIONS),
            "OPENCODE_SERVER_PASSWORD": password,
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "OPENCODE_DISABLE_MODELS_FETCH": self.env.get("OPENCODE_DISABLE_MODELS_FETCH", "1"),
        })
        return env


def link_plugin_package(config_dir: Path, tools_dir: Path) -> bool:
    """Give an OpenCode config folder the plugin package from the tools folder, so that OpenCode's
    start-up install (which needs the npm registry, and stalls ~72 s without it) finds nothing to do.

    OpenCode skips the install when node_modules exists and package-lock.json lists every dependency
    of package.json. node_modules is a symlink into the (read-only) tools folder: nothing is copied
    into the sandbox's overlay. Returns whether it changed anything."""
    source = tools_dir / "opencode-config"
    if not (source / "node_modules" / OPENCODE_PLUGIN_PACKAGE).is_dir():
        return False
    config_dir.mkdir(parents=True, exist_ok=True)
    modules = config_dir / "node_modules"
    if modules.is_symlink() and os.readlink(modules) == str(source / "node_modules"):
        return False
    if modules.exists() and not modules.is_symlink():
        return False  # installed by OpenCode itself (online): leave it
    wanted = {OPENCODE_PLUGIN_PACKAGE}
    package = config_dir / "package.json"
    if package.exists():
        try:
            deps = set(json.loads(package.read_text()).get("dependencies") or {})
        except (OSError, ValueError, AttributeError):
            deps = {"?"}
        if not deps <= wanted:
            return False  # other packages: OpenCode must install them itself
    shutil.copyfile(source / "package.json", package)
    shutil.copyfile(source / "package-lock.json", config_dir / "package-lock.json")
    if modules.is_symlink():
        modules.unlink()
    modules.symlink_to(source / "node_modules")
    return True
