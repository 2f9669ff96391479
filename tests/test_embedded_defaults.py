"""Smoke test of `make run`'s process set on the embedded defaults: SQLite, the embedded
Redis, Daphne, a Celery worker and beat, with no DATABASE_URL or REDIS_URL."""

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.support.live_server import free_port, stop_group, wait_until_answering
from tests.support.waiting import eventually

pytestmark = pytest.mark.sandbox

BASE = Path(settings.BASE_DIR)


def manage(env, *args) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def embedded_env(open_tmp):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(VAR_DIR=str(open_tmp / "var"), WEB_PORT=str(free_port()), PYTHONUNBUFFERED="1")
    return env


def test_settings_default_to_sqlite_and_the_embedded_redis(embedded_env):
    out = manage(embedded_env, "shell", "-c",
                 "from django.conf import settings as s; print(s.DATABASES['default']['ENGINE']); "
                 "print(s.CELERY_BROKER_URL); print(s.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0]['address'])")
    engine, broker, channel_host = out.split()[-3:]
    var = embedded_env["VAR_DIR"]
    assert engine == "django.db.backends.sqlite3"
    assert broker == f"redis+socket://{var}/redis.sock"
    assert channel_host == f"unix://{var}/redis.sock"


def test_the_procfile_runs_web_worker_beat_and_redis_on_embedded_defaults(embedded_env, git_repo):
    manage(embedded_env, "migrate", "--noinput")  # as `make run` does first
    manage(embedded_env, "createcachetable")
    honcho = subprocess.Popen(
        [str(BASE / ".venv/bin/honcho"), "start", "-f", "Procfile"], cwd=BASE, env=embedded_env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        base_url = f"http://127.0.0.1:{embedded_env['WEB_PORT']}"
        home = wait_until_answering(base_url + "/", honcho, "make run's processes", 60,
                                    lambda: honcho.stdout.read().decode(), past_front=True)
        assert home.status_code == 302 and "/accounts/login/" in home.headers["location"]
        with httpx.Client(base_url=base_url, timeout=5) as browser:
            login = browser.get("/accounts/login/")
            assert login.status_code == 200
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)[1]
            # A failed login is counted in the cache (the database's, shared by the web processes).
            failed = browser.post("/accounts/login/", data={"login": "nobody", "password": "wrong",
                                                            "csrfmiddlewaretoken": token})
            assert failed.status_code == 200 and "not correct" in failed.text
        assert httpx.get(base_url + "/static/admin/css/base.css", timeout=5).status_code == 200
        # A session's workspace host is on the same port (docs/front-proxy.md), serving nothing of the platform's.
        workspace_host = f"s-1.{settings.WORKSPACE_HOST}:{embedded_env['WEB_PORT']}"
        workspace = httpx.get(base_url + "/", headers={"Host": workspace_host}, timeout=5)
        assert workspace.status_code == 404

        # A task through the embedded Redis to the worker, which builds an image into SQLite.
        manage(embedded_env, "shell", "-c",
               "from sandboxes.models import Repo; from sandboxes.tasks import rebuild_due_images; "
               f"Repo.objects.create(name='demo', clone_url='{git_repo.url}', setup_commands='echo hi'); "
               "rebuild_due_images.delay()")
        check = ("from sandboxes.models import RepoImage; "
                 "print(RepoImage.objects.filter(status='ready').count())")
        eventually(lambda: manage(embedded_env, "shell", "-c", check).split()[-1] == "1", timeout=60, interval=0.5,
                   what="the worker built the image")
    finally:
        stop_group(honcho, timeout=20)
