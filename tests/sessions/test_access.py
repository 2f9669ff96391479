"""Who may start sessions in which repo, and how many sandboxes one person may hold: through the pages."""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied

from sandboxes.lifecycle import State
from sandboxes.models import Repo
from sessions import member_requests
from sessions.models import Prompt, Session
from tests.support.rows import login, owned_session, repo_with_image

pytestmark = pytest.mark.django_db
PROVIDERS = [{"name": "local", "kind": "openai", "label": "Local",
              "base_url": "http://127.0.0.1:9/v1", "models": ["scripted"]}]


@pytest.fixture
def providers(settings):
    settings.MODEL_PROVIDERS, settings.DEFAULT_MODEL = PROVIDERS, ""


@pytest.fixture
def private_repo() -> Repo:
    repo = repo_with_image("payroll")
    repo.access = Repo.Access.LISTED
    repo.save()
    return repo


def test_a_repo_for_the_listed_only_is_offered_and_usable_by_them_alone(client, users, repo, private_repo,
                                                                      providers, provisions):
    ada = login(client, users["ada"])
    assert "payroll" not in ada.get("/").content.decode()
    assert "payroll" not in ada.get("/sessions/new").content.decode()
    # Sent anyway: refused as an unknown choice, and nothing is made or warmed.
    response = ada.post("/sessions/new", {"repo": private_repo.pk, "model": "local/scripted", "prompt": "x"})
    assert response.status_code == 400 and response.context["form"].errors["repo"]
    assert ada.post("/sessions/warm", {"repo": private_repo.pk}).status_code == 404
    with pytest.raises(PermissionDenied, match="You may not use the repo payroll"):
        member_requests.create_session(private_repo, users["ada"], "fix it")
    assert not Session.objects.exists() and not Prompt.objects.exists() and not provisions

    team = Group.objects.create(name="payroll-team")
    private_repo.allowed_groups.add(team)
    users["ada"].groups.add(team)
    assert "payroll" in ada.get("/sessions/new").content.decode()
    response = ada.post("/sessions/new", {"repo": private_repo.pk, "model": "local/scripted", "prompt": "x"})
    assert response.status_code == 302


def test_a_member_who_loses_the_repo_loses_its_sessions(client, users, private_repo):
    private_repo.allowed_users.add(users["ada"])
    session = owned_session(private_repo, users["ada"], title="Payroll fix")
    ada = login(client, users["ada"])
    assert ada.get(f"/sessions/{session.pk}/").status_code == 200
    assert "Payroll fix" in ada.get("/").content.decode()
    private_repo.allowed_users.remove(users["ada"])
    assert ada.get(f"/sessions/{session.pk}/").status_code == 404
    assert "Payroll fix" not in ada.get("/").content.decode()


def test_staff_without_the_permission_see_only_their_own_sessions(client, users, repo, django_user_model):
    owned_session(repo, users["ada"], title="Ada's table fix")
    ops = django_user_model.objects.create_user("ops", is_staff=True)
    page = login(client, ops).get("/").content.decode()
    assert "Ada&#x27;s table fix" not in page
    assert client.get(f"/sessions/{Session.objects.get().pk}/").status_code == 404


def test_one_person_holds_at_most_the_limit_of_sandboxes(client, users, repo, providers, provisions, settings,
                                                          make_sandbox):
    settings.MAX_SANDBOXES_PER_USER = 2
    ada = login(client, users["ada"])
    for _ in range(2):
        assert ada.post("/sessions/new", {"repo": repo.pk, "model": "local/scripted", "prompt": "x"}).status_code \
            == 302
    refused = ada.post("/sessions/new", {"repo": repo.pk, "model": "local/scripted", "prompt": "x"})
    assert refused.status_code == 400
    assert "You already have 2 sessions with a sandbox running" in refused.content.decode()
    assert Session.objects.count() == 2
    assert ada.post("/sessions/warm", {"repo": repo.pk}).status_code == 204  # but warms nothing
    # Somebody else is not held back by Ada's.
    bob = login(client.__class__(), users["bob"])
    assert bob.post("/sessions/new", {"repo": repo.pk, "model": "local/scripted", "prompt": "x"}).status_code == 302

    # Once one of hers has let its sandbox go, she may start another.
    first = Session.objects.filter(creator=users["ada"]).order_by("pk").first()
    first.sandbox = make_sandbox(state=State.TERMINATED)
    first.status = Session.Status.IDLE
    first.save()
    assert ada.post("/sessions/new", {"repo": repo.pk, "model": "local/scripted", "prompt": "x"}).status_code == 302


def test_a_follow_up_that_restores_an_idle_session_counts_against_its_owner(users, repo, providers, settings,
                                                                           make_sandbox):
    settings.MAX_SANDBOXES_PER_USER = 1
    idle = owned_session(repo, users["ada"], title="Yesterday's fix")
    idle.sandbox = make_sandbox(state=State.TERMINATED)
    idle.status = Session.Status.IDLE
    idle.save()
    idle.add_member(users["bob"], "member")
    member_requests.create_session(repo, users["ada"], "a new one")  # Ada's one sandbox
    prompts_before = Prompt.objects.count()

    # A follow-up to the idle session would start a second sandbox for Ada: refused, whoever sends it.
    with pytest.raises(PermissionDenied, match="You already have 1 sessions"):
        member_requests.submit_prompt(idle, users["ada"], "and one more thing")
    with pytest.raises(PermissionDenied, match="This session's owner already has 1"):
        member_requests.submit_prompt(idle, users["bob"], "and one more thing")
    assert not member_requests.note_typing(idle, users["bob"])  # nor is one warmed for it
    assert Prompt.objects.count() == prompts_before

    # Once Ada's other session lets its sandbox go, the follow-up restores the idle one.
    other = Session.objects.exclude(pk=idle.pk).get()
    other.sandbox = make_sandbox(state=State.TERMINATED)
    other.status = Session.Status.IDLE
    other.save()
    member_requests.submit_prompt(idle, users["bob"], "and one more thing")
    assert Prompt.objects.count() == prompts_before + 1
