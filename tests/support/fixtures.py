"""Fixtures every test package may use (registered in tests/conftest.py): people, a repo with a ready image,
sandbox rows, channel-layer listeners and the Celery tasks sent by name. Rows only: no backend runs behind
them. A package's conftest adds what only it needs."""

import functools

import pytest
from celery import current_app
from django.utils import timezone

# The modules whose tasks the workers run, imported so that Celery here knows their names.
import pulls.tasks  # noqa: F401
import sandboxes.tasks  # noqa: F401
import sessions.tasks  # noqa: F401
from sandboxes import jobs
from sandboxes.lifecycle import State
from sandboxes.models import Repo, Sandbox
from tests.support.listener import Listener
from tests.support.rows import may_see_every_session, repo_with_image


# No passwords: hashing one costs ~0.3 s, and these people are signed in with force_login.
@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("ada", "ada@example.com", first_name="Ada")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com")


@pytest.fixture
def staff_user(django_user_model):
    """Staff with the permission to see every session (sessions.models SEE_EVERY_SESSION)."""
    return may_see_every_session(django_user_model.objects.create_user("root", "root@example.com", is_staff=True))


@pytest.fixture
def users(user, other_user, staff_user) -> dict:
    """Ada, Bob and an admin who may see every session (root) by name, for tests about who may see what."""
    return {"ada": user, "bob": other_user, "root": staff_user}


@pytest.fixture
def repo() -> Repo:
    """A repo whose current image is ready."""
    return repo_with_image()


@pytest.fixture
def make_sandbox(repo):
    """make_sandbox(state=READY, pooled=False, **fields) -> a sandbox row of `repo` on its current image."""

    def make(state: str = State.READY, pooled: bool = False, **fields) -> Sandbox:
        fields = {"image": repo.current_image(), "backend": "local", "backend_ref": "ref",
                  "ready_at": timezone.now(), **fields}
        return Sandbox.objects.create(repo=repo, state=state, pooled=pooled, **fields)

    return make


@pytest.fixture
def listen():
    """listen(group) -> a Listener on that channel-layer group, closed after the test."""
    listeners: list[Listener] = []

    def make(group: str) -> Listener:
        listeners.append(Listener(group))
        return listeners[-1]

    yield make
    for listener in listeners:
        listener.close()


@pytest.fixture
def enqueued(monkeypatch) -> dict[str, list]:
    """Celery tasks sent (by name through sandboxes/jobs.py, or with .delay()), recorded instead, since no worker
    runs here: {task name: [its argument, or tuple of arguments, per call]}. An unknown name fails the test."""
    calls: dict[str, list] = {}

    def record(task_name: str, *args) -> None:
        assert task_name in current_app.tasks, f"no Celery task named {task_name!r}"
        calls.setdefault(task_name, []).append(args[0] if len(args) == 1 else args)

    monkeypatch.setattr(jobs, "enqueue", record)
    for name, task in current_app.tasks.items():  # and those a task sends its siblings with .delay()
        if name.startswith(("sandboxes.", "sessions.", "pulls.", "notifications.")):
            monkeypatch.setattr(task, "delay", functools.partial(record, name))
    return calls
