import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from inspect_site import embedded_redis
from sandboxes import backends

pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture(scope="session", autouse=True)
def redis_service():
    """The real Redis when REDIS_URL is set (CI), otherwise the embedded one, as `make run` does."""
    if settings.REDIS_URL:
        yield settings.REDIS_URL
        return
    proc = embedded_redis.start(settings.EMBEDDED_REDIS_SOCKET)
    yield settings.CHANNEL_REDIS_HOST
    proc.terminate()
    proc.wait()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's, plus: before the test database is dropped, end the connections that async code run
    in-process (the app under httpx.ASGITransport, consumers) left open on asgiref's worker threads. They
    are kept for reuse (CONN_MAX_AGE), and PostgreSQL refuses to drop a database someone is connected to."""
    yield
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture
def open_tmp():
    """A temporary folder the sandbox user can reach (pytest's own tmp_path is private to root)."""
    base = Path(tempfile.gettempdir()) / "inspect-tests"
    base.mkdir(mode=0o711, exist_ok=True)
    path = base / uuid.uuid4().hex[:12]
    path.mkdir(mode=0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def sandbox_root(settings, open_tmp):
    """Each test gets its own sandbox root, so images and sandboxes never leak between tests."""
    root = open_tmp / "sandbox-root"
    root.mkdir()
    settings.SANDBOX_ROOT = root
    # Sandboxes alone here: the bridge and OpenCode are started by the tests that are about them.
    settings.SANDBOX_START_BRIDGE = False
    settings.SANDBOX_WORKSPACE_SERVICES = False  # VS Code and the desktop: only where a test turns them on
    backends._instances.clear()
    yield root
    backend = backends._instances.get("local")
    if backend is not None:
        for box in backend.sandboxes.iterdir():
            backend.terminate(box.name)
    backends._instances.clear()


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=dev@example.com", "-c", "user.name=Dev", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()


class GitRepo:
    """A real git repository reached by a file:// URL, as a registered repo would be."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def commit(self, files: dict[str, str | bytes], message: str = "change") -> str:
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return self.head()

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD")


@pytest.fixture
def git_repo(open_tmp) -> GitRepo:
    repo = GitRepo(open_tmp / "origin")
    repo.commit({"README.md": "# demo\n", "app.py": "print('hello')\n"}, "initial")
    return repo


@pytest.fixture
def model_server():
    """The scripted model provider (OpenAI-compatible and Anthropic wire formats)."""
    from tests.support.model_server import ScriptedModelServer

    server = ScriptedModelServer().start()
    yield server
    server.stop()
