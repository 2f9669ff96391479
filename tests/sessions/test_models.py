"""Sessions, memberships, prompts and events as rows."""

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.db import IntegrityError, transaction

from sandboxes.models import Repo
from sessions.models import Event, Membership, Prompt, Session, clean_prompt
from tests.support.rows import may_see_every_session

pytestmark = pytest.mark.django_db


def test_a_session_works_on_its_own_branch_by_default(repo, user):
    session = Session.objects.create(repo=repo, creator=user)
    assert session.branch == f"inspect/{session.pk}"
    assert Session.objects.get(pk=session.pk).branch == f"inspect/{session.pk}"
    named = Session.objects.create(repo=repo, creator=user, branch="fix/invoices")
    assert named.branch == "fix/invoices"


def test_members_and_those_who_see_every_session_are_in_it_and_nobody_else(session, user, other_user,
                                                                              django_user_model):
    admin = may_see_every_session(django_user_model.objects.create_user("root", is_staff=True))
    staff = django_user_model.objects.create_user("ops", is_staff=True)  # staff alone is not enough
    superuser = django_user_model.objects.create_superuser("boss")
    assert session.is_member(user)
    assert session.is_member(admin) and session.is_member(superuser)
    assert not session.is_member(staff)
    assert not session.is_member(other_user)
    assert not session.is_member(AnonymousUser())
    assert not session.is_member(None)
    user.is_active = False
    assert not session.is_member(user)


def test_a_repo_for_the_listed_only_keeps_everyone_else_out_of_it_and_its_sessions(session, user, other_user,
                                                                                    django_user_model):
    repo = session.repo
    session.add_member(other_user)
    assert repo.usable_by(user) and repo.usable_by(other_user)
    repo.access = Repo.Access.LISTED
    repo.save()
    assert not repo.usable_by(user) and not session.is_member(user)  # a member who lost the repo is out
    assert list(Repo.objects.usable_by(user)) == []
    repo.allowed_users.add(user)
    team = Group.objects.create(name="team")
    repo.allowed_groups.add(team)
    other_user.groups.add(team)
    assert session.is_member(user) and session.is_member(other_user)
    assert list(Repo.objects.usable_by(other_user)) == [repo]  # once, though listed by group
    outsider = django_user_model.objects.create_user("eve")
    assert not repo.usable_by(outsider) and not repo.usable_by(AnonymousUser()) and not repo.usable_by(None)
    assert repo.usable_by(django_user_model.objects.create_superuser("boss"))
    user.is_active = False
    assert not repo.usable_by(user) and list(Repo.objects.usable_by(user)) == []


def test_adding_a_member_twice_keeps_one_membership(session, other_user):
    first = session.add_member(other_user)
    again = session.add_member(other_user, role=Membership.Role.OWNER)
    assert first.pk == again.pk and again.role == Membership.Role.MEMBER
    assert session.is_member(other_user)
    assert session.memberships.count() == 2


def test_two_events_cannot_share_a_seq_nor_a_bridge_event_id(session):
    Event.objects.create(session=session, seq=1, kind="text", bridge_event_id="b-1")
    Event.objects.create(session=session, seq=2, kind="status")
    Event.objects.create(session=session, seq=3, kind="status")  # blank ids do not collide
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(session=session, seq=1, kind="text")
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(session=session, seq=4, kind="text", bridge_event_id="b-1")


def test_the_model_is_given_to_the_bridge_as_provider_and_model_ids(session):
    assert session.model_spec() is None
    session.model = "anthropic/claude-sonnet-4"
    assert session.model_spec() == {"providerID": "anthropic", "modelID": "claude-sonnet-4"}


def test_the_agent_gets_a_prompts_context_along_with_its_text(session, user):
    plain = Prompt.objects.create(session=session, author=user, text="fix it", position=1)
    assert plain.text_for_agent() == "fix it"
    picked = Prompt.objects.create(session=session, author=user, text="fix it", position=2,
                                   context={"component": "InvoiceTable", "source": "src/Invoice.tsx:12"})
    assert picked.text_for_agent().startswith("fix it\n\nContext (JSON):")
    assert '"component": "InvoiceTable"' in picked.text_for_agent()
    assert plain.author_name() == "Ada"


@pytest.mark.parametrize(("text", "context", "message"), [
    ("", None, "needs some text"),
    ("   \n", None, "needs some text"),
    (None, None, "needs some text"),
    ("x" * 100_001, None, "at most 100,000 characters"),
    ("a\x00b", None, "NUL"),
    ("fix", ["not", "an", "object"], "JSON object"),
    ("fix", {"big": "x" * 100_001}, "context is at most"),
])
def test_bad_prompts_are_refused_with_a_clear_message(text, context, message):
    with pytest.raises(ValueError, match=message):
        clean_prompt(text, context)


def test_a_prompt_of_exactly_the_limit_is_accepted():
    assert clean_prompt("x" * 100_000, None) == ("x" * 100_000, {})
