"""When make run stops: the Procfile's `sandboxes` process saves this machine's sandboxes' work and stops them,
or leaves them running when asked to. A real local sandbox, the command in a process of its own."""

import os
import signal
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from sandboxes import builds, provisioning
from sandboxes.backends import get_backend
from sandboxes.lifecycle import State
from sandboxes.models import Repo, Sandbox
from sessions.models import Session

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def repo(git_repo) -> Repo:
    repo = Repo.objects.create(name="demo", clone_url=git_repo.url)
    assert builds.run_build(repo.request_build()[0].pk).status == "ready"
    return repo


def keeper(sandbox_root, **env) -> subprocess.Popen:
    """manage.py keep_local_sandboxes as honcho runs it, on this test's database and sandboxes."""
    database = connection.settings_dict
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    url = (f"postgres://{database['USER']}{password}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/"
           f"{database['NAME']}")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "keep_local_sandboxes"], cwd=settings.BASE_DIR, text=True,
        env={**os.environ, "DATABASE_URL": url, "SANDBOX_ROOT": str(sandbox_root), **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert "keeping this machine's sandboxes" in process.stdout.readline()
    return process


def working_session(repo) -> tuple[Session, Sandbox]:
    sandbox = provisioning.provision(provisioning.create_sandbox(repo).pk)
    sandbox.move_to(State.RUNNING)
    session = Session.objects.create(repo=repo, sandbox=sandbox, status=Session.Status.IDLE)
    get_backend().exec(sandbox.backend_ref, "echo unsaved work > notes.txt")
    return session, sandbox


def test_stopping_saves_the_work_and_stops_every_sandbox(repo, sandbox_root):
    if connection.vendor != "postgresql":
        pytest.skip("the command's own process needs a database both processes reach")
    session, sandbox = working_session(repo)
    pooled = provisioning.provision(provisioning.create_sandbox(repo, pooled=True).pk)
    process = keeper(sandbox_root)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    for row in (sandbox, pooled):
        row.refresh_from_db()
        assert row.state == State.TERMINATED, output
        assert not get_backend().is_alive(row.backend_ref)
    assert "its work was saved" in sandbox.end_reason
    session.refresh_from_db()
    snapshot = session.last_snapshot
    assert snapshot is not None and snapshot.sandbox_id == sandbox.pk
    saved = get_backend().snapshots / snapshot.backend_ref / "upper" / "workspace" / "notes.txt"
    assert saved.read_text() == "unsaved work\n"


def test_asked_to_keep_them_it_leaves_them_running(repo, sandbox_root):
    if connection.vendor != "postgresql":
        pytest.skip("the command's own process needs a database both processes reach")
    _session, sandbox = working_session(repo)
    process = keeper(sandbox_root, KEEP_SANDBOXES_ON_STOP="1")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert "leaving the sandboxes running" in output
    sandbox.refresh_from_db()
    assert sandbox.state == State.RUNNING and get_backend().is_alive(sandbox.backend_ref)
