"""The front proxy's nginx configuration (ide/nginx/nginx.conf), rendered for this deployment.

`manage.py run_front` writes it and runs nginx; tests and benchmarks start it the same way in front of
their own Daphne. See docs/front-proxy.md.
"""

import json
import os
import pwd
import shutil
from pathlib import Path

from django.conf import settings

from ide.front import front_key
from ide.headers import platform_cookies

TEMPLATE_DIR = Path(__file__).resolve().parent / "nginx"
# Debian's nginx and its Lua module (apt: nginx, libnginx-mod-http-lua; see scripts/install-system-deps.sh).
MODULES_DIR = Path(os.environ.get("NGINX_MODULES_DIR", "/usr/lib/nginx/modules"))


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")  # outside many users' PATH


def lua_table(names) -> str:
    """A Lua set of strings (a JSON string is a valid Lua string literal for these ASCII names)."""
    return "{" + ", ".join(f"[{json.dumps(name)}] = true" for name in sorted(names)) + "}"


def render(*, listen: str, daphnes: list[str], run_dir: Path, workers: int | str = "auto",
           error_log: str = "stderr") -> str:
    """The configuration for nginx listening on `listen` ("127.0.0.1:8000") in front of the Daphnes at
    `daphnes` (each "127.0.0.1:8001" or "unix:/path/daphne-0.sock"), with its pid and temporary files in
    `run_dir`. The platform's pages and every session's workspace host share that one listener."""
    if not daphnes:
        raise ValueError("the front proxy needs at least one Daphne")
    values = {
        # nginx started as root would hand its workers to "nobody"; they run as the platform's own user.
        "USER": f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else "",
        "MODULES": str(MODULES_DIR),
        "WORKERS": str(workers),
        "RUN": str(run_dir),
        "ERROR_LOG": error_log,
        "LUA": str(TEMPLATE_DIR),
        # max_fails=0: a Daphne that refuses (restarting) is skipped for the next one at once, but never
        # written off for fail_timeout (10 s): after a restart of them all, the first retry gets through.
        "DAPHNE_SERVERS": "\n        ".join(f"server {address} max_fails=0;" for address in daphnes),
        "LISTEN": listen,
        "KEY": front_key(),
        "PLATFORM_COOKIES": lua_table(platform_cookies()),
        "HANDOFF_MAX_BYTES": str(settings.GIT_HANDOFF_MAX_BYTES),
        # The recording and its multipart envelope (ENVELOPE_BYTES in dictation/views.py, which checks it again).
        "DICTATION_MAX_BODY_BYTES": str(settings.DICTATION_MAX_AUDIO_BYTES + 64 * 1024),
    }
    text = (TEMPLATE_DIR / "nginx.conf").read_text()
    for name, value in values.items():
        text = text.replace(f"@@{name}@@", value)
    return text


def write(run_dir: Path, **options) -> Path:
    """Renders the configuration into `run_dir`/nginx.conf (the folder created, with nginx's temp folders)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "nginx.conf"
    # It holds the routing key: readable by this user only, from the first byte.
    with os.fdopen(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write(render(run_dir=run_dir, **options))
    config.chmod(0o600)  # a file left by an earlier run keeps its mode
    return config


def default_run_dir() -> Path:
    return Path(settings.VAR_DIR) / "front"
