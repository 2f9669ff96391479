"""Sessions on repos with a ready image and sandboxes made as rows: no backend runs here."""

import pytest

from sessions.models import Session


@pytest.fixture(autouse=True)
def model_provider(settings):
    """A configured provider, as every working deployment has (tests of its absence clear it)."""
    settings.MODEL_PROVIDERS = [{
        "name": "scripted", "kind": "openai", "label": "Scripted", "base_url": "http://127.0.0.1:9/v1",
        "api_key": "sk-test", "models": ["scripted"],
    }]
    return settings.MODEL_PROVIDERS


@pytest.fixture(autouse=True)
def provisions(enqueued) -> list[str]:
    """Sandboxes queued for provisioning (their ids): recorded, never started."""
    return enqueued.setdefault("sandboxes.tasks.provision_sandbox", [])


@pytest.fixture
def session(repo, user) -> Session:
    """A session with no prompt yet and no sandbox."""
    session = Session.objects.create(repo=repo, creator=user, status=Session.Status.IDLE)
    session.add_member(user, "owner")
    return session
