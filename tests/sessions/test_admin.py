"""The sessions admin, driven through HTTP as a staff member would."""

import pytest
from django.urls import reverse

from sessions.events import append_event
from sessions.models import Prompt, Session

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def test_sessions_show_their_members_prompts_and_events(admin_client, session, user):
    Prompt.objects.create(session=session, author=user, text="fix the invoice table " * 20, position=1)
    append_event(session.pk, "status", {"status": "idle"})

    page = admin_client.get(reverse("admin:agent_sessions_session_change", args=[session.pk]))
    assert page.status_code == 200
    assert b"ada" in page.content and b"fix the invoice table" in page.content
    assert admin_client.get(reverse("admin:agent_sessions_session_changelist")).status_code == 200
    events = admin_client.get(reverse("admin:agent_sessions_event_changelist"))
    assert events.status_code == 200 and b"status" in events.content
    assert admin_client.get(reverse("admin:agent_sessions_session_add")).status_code == 403


def test_archiving_sessions_logs_it(admin_client, session):
    response = admin_client.post(reverse("admin:agent_sessions_session_changelist"),
                                 {"action": "archive", "_selected_action": [session.pk]})
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.status == Session.Status.ARCHIVED
    assert session.events.get().data["status"] == "archived"
