"""Fixtures of the sandboxes app's tests."""

import pytest

from sandboxes import tasks


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
