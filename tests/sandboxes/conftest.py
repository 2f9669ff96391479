"""Fixtures of the sandboxes app's tests."""

import pytest

from sandboxes import builds, tasks
from sandboxes.backends.base import StartRequest
from sandboxes.backends.local import LocalBackend
from sandboxes.models import Repo
from tests.sandboxes.local_support import spec


@pytest.fixture
def build_calls(monkeypatch) -> list[int]:
    """What would have been sent to the workers: there is no worker in these tests."""
    calls: list[int] = []
    monkeypatch.setattr(tasks.build_image, "delay", lambda image_id: calls.append(image_id))
    return calls


@pytest.fixture
def user_client(client, django_user_model):
    user = django_user_model.objects.create_user("pm", password="pw-for-tests-only")
    client.force_login(user)
    return client


@pytest.fixture
def built_repo(git_repo) -> Repo:
    """A repo of the `git_repo` fixture whose image is built (its setup writes image.txt)."""
    repo = Repo.objects.create(name="demo", clone_url=git_repo.url, setup_commands="echo image > image.txt")
    image, _ = repo.request_build("test")
    assert builds.run_build(image.pk).status == "ready"
    return repo


@pytest.fixture
def backend(sandbox_root) -> LocalBackend:
    return LocalBackend(sandbox_root)


@pytest.fixture
def image(backend, git_repo):
    """An image of `git_repo` whose setup wrote built.txt."""
    return backend.build_image(spec(git_repo, setup=["echo built > built.txt"]), lambda line: None)


@pytest.fixture
def sandbox(backend, image, git_repo):
    """A running sandbox of `image` (its ref), ended after the test."""
    ref = backend.start(StartRequest(sandbox_id="box1", image_ref=image.ref, env={"GREETING": "hi"},
                                     clone_url=git_repo.url))
    yield ref
    backend.terminate(ref)
