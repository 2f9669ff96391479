import pytest

from inspect_site.celery import app
from tests.support.push_service import PushService


@pytest.fixture
def push_service(settings):
    """The push service double, which the platform may post to (plain http on loopback, as with DEBUG)."""
    settings.WEB_PUSH_ALLOW_LOOPBACK_HTTP = True
    service = PushService(settings.VAPID_PUBLIC_KEY)
    yield service
    service.stop()


@pytest.fixture
def eager():
    """Celery tasks run where they are sent, as a worker would run them."""
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before
