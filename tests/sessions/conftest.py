"""Sessions on repos with a ready image and sandboxes made as rows: no backend runs here."""

import pytest
from django.utils import timezone

from sandboxes import tasks
from sandboxes.lifecycle import State
from sandboxes.models import Repo, Sandbox
from sessions.models import Session
from tests.support.listener import Listener
from tests.support.rows import repo_with_image


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


@pytest.fixture(autouse=True)
def model_provider(settings):
    """A configured provider, as every working deployment has (tests of its absence clear it)."""
    settings.MODEL_PROVIDERS = [{
        "name": "scripted", "kind": "openai", "label": "Scripted", "base_url": "http://127.0.0.1:9/v1",
        "api_key": "sk-test", "models": ["scripted"],
    }]
    return settings.MODEL_PROVIDERS


@pytest.fixture(autouse=True)
def provisions(monkeypatch) -> list[str]:
    """Sandboxes queued for provisioning: recorded, never started."""
    calls: list[str] = []
    monkeypatch.setattr(tasks.provision_sandbox, "delay", calls.append)
    return calls


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("ada", "ada@example.com", "pw", first_name="Ada")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "pw")


@pytest.fixture
def repo() -> Repo:
    return repo_with_image()


@pytest.fixture
def make_sandbox(repo):
    def make(state: str = State.READY, pooled: bool = False, **fields) -> Sandbox:
        now = timezone.now()
        fields = {"image": repo.current_image(), **fields}
        return Sandbox.objects.create(repo=repo, state=state, pooled=pooled, backend="local", backend_ref="ref",
                                      ready_at=now, **fields)

    return make


@pytest.fixture
def session(repo, user) -> Session:
    """A session with no prompt yet and no sandbox."""
    session = Session.objects.create(repo=repo, creator=user, status=Session.Status.IDLE)
    session.add_member(user, "owner")
    return session
