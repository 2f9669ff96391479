"""The real ASGI server (Daphne) in a subprocess, on the test database, for end-to-end tests."""

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection

from tests.support.waiting import eventually

BASE = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_url() -> str:
    """A URL for the database the tests are using right now (pytest-django's test database)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class LiveServer:
    def __init__(self, env: dict[str, str] | None = None, without: tuple[str, ...] = ()):
        """`env` on top of this process's environment, less the variables starting with `without`."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Where a browser opens the platform: the site of the sessions' workspace hosts (settings.WORKSPACE_HOST).
        self.browser_url = f"http://{settings.WORKSPACE_HOST}:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if not (without and k.startswith(without))}
        self.env = {
            **inherited,
            "DATABASE_URL": test_database_url(),
            "SANDBOX_ROOT": str(settings.SANDBOX_ROOT),
            "ALLOWED_HOSTS": f"{settings.WORKSPACE_HOST},127.0.0.1,localhost",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None
        self.log_path = Path(settings.VAR_DIR) / f"daphne-{self.port}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> "LiveServer":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "inspect_site.asgi:application"],
            cwd=BASE, env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "ab"),
            start_new_session=True,
        )
        wait_until_answering(self.url + "/accounts/login/", self.process, "daphne", 30, self.log)
        return self

    def stop(self) -> None:
        stop_group(self.process)


def wait_until_answering(url: str, process: subprocess.Popen, what: str, timeout: float,
                         log: Callable[[], str] = str, past_front: bool = False) -> httpx.Response:
    """Polls `url` until anything answers, and returns the answer; with `past_front`, the front proxy's 502
    while the Daphnes behind it start is no answer yet. If `process` exits first or `timeout` passes, it is
    stopped and RuntimeError says so, with `log()`."""

    def answer() -> httpx.Response | None:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: " + log())
        try:
            response = httpx.get(url, timeout=2)
        except httpx.TransportError:
            return None
        return None if past_front and response.status_code == 502 else response

    try:
        return eventually(answer, timeout=timeout)
    except AssertionError:
        stop_group(process)
        raise RuntimeError(f"{what} did not start in {timeout:g} s: " + log()) from None


def stop_group(process: subprocess.Popen | None, timeout: float = 10) -> None:
    """SIGTERM to a process started with start_new_session=True and its children; SIGKILL after `timeout`."""
    if process and process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
