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


def test_adding_a_member_in_the_admin_keeps_what_bridges_wrote_meanwhile(admin_client, session, user, other_user,
                                                                        monkeypatch):
    """The change page's save writes the members, never the session row it read at the start of the request."""
    from sessions.admin import SessionAdmin

    read = SessionAdmin.get_object

    def read_then_an_event_arrives(self, request, object_id, from_field=None):
        found = read(self, request, object_id, from_field)
        if request.method == "POST":
            append_event(session.pk, "text", {"text": "written by a bridge meanwhile"})
        return found

    monkeypatch.setattr(SessionAdmin, "get_object", read_then_an_event_arrives)
    owner = session.memberships.get()
    url = reverse("admin:agent_sessions_session_change", args=[session.pk])
    response = admin_client.post(url, {
        "memberships-TOTAL_FORMS": "2", "memberships-INITIAL_FORMS": "1", "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": owner.pk, "memberships-0-session": session.pk, "memberships-0-user": user.pk,
        "memberships-0-role": "owner",
        "memberships-1-session": session.pk, "memberships-1-user": other_user.pk, "memberships-1-role": "member",
        "prompts-TOTAL_FORMS": "0", "prompts-INITIAL_FORMS": "0", "prompts-MIN_NUM_FORMS": "0",
        "prompts-MAX_NUM_FORMS": "1000",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    session.refresh_from_db()
    assert session.is_member(other_user)
    assert session.last_seq == 1 == session.events.count()  # not rolled back to the 0 read before the event
