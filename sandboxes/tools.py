"""Where the sandbox tools live on the host (OpenCode, code-server, the bridge's packages), mounted
read-only at /opt/inspect in every sandbox. `manage.py install_sandbox_tools` fills the folder."""

import hashlib
import os
from pathlib import Path

from django.conf import settings

from bridge.protocol import OPENCODE_BIN, VSCODE_DIR


def default_tools_dir() -> Path:
    """var/sandbox-tools of the checkout (shared by `make run` and the tests, whose VAR_DIR differs),
    unless the sandbox uid could not reach it (root with a checkout under /root): then a folder of
    this checkout's own under /var/lib/inspect, as for the sandbox root."""
    base = Path(settings.BASE_DIR)
    folder = base / "var" / "sandbox-tools"
    if os.geteuid() != 0 or all(p.stat().st_mode & 0o001 for p in folder.parents if p.exists()):
        return folder
    checkout = hashlib.sha256(str(base).encode()).hexdigest()[:10]
    return Path("/var/lib/inspect") / checkout / "tools"


def tools_dir() -> Path:
    configured = getattr(settings, "SANDBOX_TOOLS_DIR", None) or os.environ.get("SANDBOX_TOOLS_DIR")
    return Path(configured) if configured else default_tools_dir()


def opencode_binary(root: Path | None = None) -> Path:
    return (root or tools_dir()) / OPENCODE_BIN


def vscode_dir(root: Path | None = None) -> Path:
    """VS Code inside the installed code-server: what its server serves under /<quality>-<commit>/static/."""
    return (root or tools_dir()) / VSCODE_DIR
