"""Sharing a session: invitations, roles, the join link, and every refusal changing nothing."""

import json

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client

from sandboxes.models import Repo
from sessions import member_requests, rate_limits, sharing
from sessions.models import Membership, Session
from tests.support.rows import login, owned_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def shared(repo, user) -> Session:
    return owned_session(repo, user, title="Shared work")


def post(client: Client, path: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    response = client.post(path, data, content_type="application/json")
    return response.status_code, response.json()


def roles(session: Session) -> dict[str, str]:
    return dict(session.memberships.values_list("user__username", "role"))


def test_the_owner_invites_by_name_or_email_changes_roles_and_removes(shared, user, other_user, django_user_model):
    carol = django_user_model.objects.create_user("carol", "Carol@Example.com")
    owner = login(Client(), user)
    assert post(owner, f"/sessions/{shared.pk}/members", {"name": "bob", "role": "member"})[0] == 200
    assert post(owner, f"/sessions/{shared.pk}/members", {"name": "carol@example.com", "role": "watcher"})[0] == 200
    assert roles(shared) == {"ada": "owner", "bob": "member", "carol": "watcher"}
    assert shared.can_prompt(other_user) and not shared.can_prompt(carol) and shared.is_member(carol)

    assert post(owner, f"/sessions/{shared.pk}/members/{carol.pk}", {"role": "member"}) == \
        (200, {"user_id": carol.pk, "role": "member"})
    assert post(owner, f"/sessions/{shared.pk}/members/{other_user.pk}", {"remove": True})[0] == 200
    assert roles(shared) == {"ada": "owner", "carol": "member"}
    listing = owner.get(f"/sessions/{shared.pk}/members").json()
    assert [(m["username"], m["role"]) for m in listing["members"]] == [("ada", "owner"), ("carol", "member")]
    assert listing["link"] == "" and listing["members"][0]["name"] == "Ada"


@pytest.mark.parametrize("body, message", [
    ({"name": "nobody", "role": "member"}, "Nobody who may use demo goes by that name"),
    ({"name": "bob", "role": "owner"}, "A role is"),
    ({"name": "bob", "role": None}, "A role is"),
    ({"name": "", "role": "member"}, "Say whom to invite"),
    ({"name": ["bob"], "role": "member"}, "Say whom to invite"),
    ({"name": "b" * 300, "role": "member"}, "Say whom to invite"),
    ("{not json", "not JSON"),
    ("[1, 2]", "JSON object"),
    ("x" * 5000, "too large"),
])
def test_bad_invitations_are_refused_and_change_nothing(shared, user, other_user, body, message):
    before = roles(shared)
    status, answer = post(login(Client(), user), f"/sessions/{shared.pk}/members", body)
    assert status == 400 and message in answer["error"]
    assert roles(shared) == before


def test_only_the_owner_shares_and_outsiders_learn_nothing(shared, user, other_user, django_user_model):
    carol = django_user_model.objects.create_user("carol", "carol@example.com")
    shared.add_member(other_user, "member")
    before = (roles(shared), Session.objects.get(pk=shared.pk).join_token)
    member, outsider = login(Client(), other_user), login(Client(), carol)
    assert post(member, f"/sessions/{shared.pk}/members", {"name": "carol", "role": "member"})[0] == 403
    assert post(member, f"/sessions/{shared.pk}/join-link", {"on": True})[0] == 403
    assert member.get(f"/sessions/{shared.pk}/members").status_code == 403  # the list is the owner's
    assert outsider.get(f"/sessions/{shared.pk}/members").status_code == 404
    assert post(outsider, f"/sessions/{shared.pk}/members", {"name": "carol", "role": "member"})[0] == 404
    assert post(outsider, f"/sessions/{shared.pk + 999}/members", {"name": "carol", "role": "member"})[0] == 404
    owner = login(Client(), user)
    assert post(owner, f"/sessions/{shared.pk}/members/{user.pk}", {"remove": True}) == \
        (400, {"error": "The owner stays the owner."})
    assert post(owner, f"/sessions/{shared.pk}/members/{carol.pk}", {"role": "watcher"})[0] == 400  # not in it
    assert (roles(shared), Session.objects.get(pk=shared.pk).join_token) == before
    assert Client().post(f"/sessions/{shared.pk}/members", "{}", content_type="application/json").status_code == 302


def test_a_join_link_adds_people_with_its_role_until_it_is_renewed_or_turned_off(shared, user, other_user,
                                                                                 django_user_model):
    owner = login(Client(), user)
    status, answer = post(owner, f"/sessions/{shared.pk}/join-link", {"on": True, "role": "watcher"})
    assert status == 200 and answer["role"] == "watcher"
    first = answer["url"].rsplit("/", 1)[1]
    bob = login(Client(), other_user)
    page = bob.get(f"/join/{first}")
    assert page.status_code == 200 and b"Shared work" in page.content and b"can watch" in page.content
    assert not shared.is_member(other_user)  # looking is not joining
    assert bob.post(f"/join/{first}").status_code == 302
    assert roles(shared)["bob"] == "watcher"

    # A new link: the old one stops working. Off: no link works.
    second = post(owner, f"/sessions/{shared.pk}/join-link", {"on": True, "new": True})[1]["url"].rsplit("/", 1)[1]
    assert second != first
    carol = login(Client(), django_user_model.objects.create_user("carol", "carol@example.com"))
    refused = carol.post(f"/join/{first}")
    assert refused.status_code == 404 and b"does not work any more" in refused.content
    assert post(owner, f"/sessions/{shared.pk}/join-link", {"on": False}) == (200, {"url": "", "role": "watcher"})
    assert carol.post(f"/join/{second}").status_code == 404
    assert "carol" not in roles(shared)
    assert post(owner, f"/sessions/{shared.pk}/join-link", {"on": "yes"})[0] == 400


def test_nobody_joins_a_session_of_a_repo_they_may_not_use(shared, user, other_user):
    Repo.objects.filter(pk=shared.repo_id).update(access=Repo.Access.LISTED)
    shared.repo.allowed_users.add(user)
    token = sharing.set_join_link(shared, user, True)
    bob = login(Client(), other_user)
    assert bob.post(f"/join/{token}").status_code == 403
    status, answer = post(login(Client(), user), f"/sessions/{shared.pk}/members", {"name": "bob", "role": "member"})
    # The same answer as for nobody at all: invitations tell nobody who has an account.
    assert status == 400 and answer["error"].startswith("Nobody who may use demo goes by that name")
    assert "bob" not in answer["error"]
    assert not Membership.objects.filter(user=other_user).exists()


def test_watchers_cannot_act(shared, user, other_user):
    shared.add_member(other_user, "watcher")
    bob = login(Client(), other_user)
    assert bob.get(f"/sessions/{shared.pk}/").status_code == 200  # they watch
    assert bob.get(f"/sessions/{shared.pk}/open/ide/").status_code == 404  # not the workspace
    status, answer = post(bob, f"/sessions/{shared.pk}/pull-request", {"title": "x", "body": "", "draft": False})
    assert status == 403 and "watch" in answer["error"]
    with pytest.raises(PermissionDenied, match="watch this session but not prompt"):
        member_requests.submit_prompt(shared, other_user, "do something")
    assert shared.prompts.count() == 0


def test_the_session_list_shows_mine_and_shared_with_me(repo, user, other_user):
    mine = owned_session(repo, user, title="Mine")
    theirs = owned_session(repo, other_user, title="Theirs")
    theirs.add_member(user, "watcher")
    client = login(Client(), user)
    assert list(client.get("/?show=mine").context["sessions"]) == [mine]
    assert list(client.get("/?show=shared").context["sessions"]) == [theirs]
    assert set(client.get("/").context["sessions"]) == {mine, theirs}
    assert set(client.get("/?show=bogus").context["sessions"]) == {mine, theirs}


def test_removing_someone_renews_the_link_so_they_cannot_come_back_by_it(shared, user, other_user):
    assert shared.join_role == "watcher"  # what a link gives unless the owner says otherwise
    token = sharing.set_join_link(shared, user, True)
    bob = login(Client(), other_user)
    assert bob.post(f"/join/{token}").status_code == 302
    assert post(login(Client(), user), f"/sessions/{shared.pk}/members/{other_user.pk}", {"remove": True})[0] == 200
    assert bob.post(f"/join/{token}").status_code == 404
    assert not shared.is_member(other_user)
    assert Session.objects.get(pk=shared.pk).join_token not in ("", token)  # on still, for the others


def test_an_owner_invites_only_so_many_people_a_minute(shared, user, monkeypatch):
    monkeypatch.setattr(rate_limits, "INVITES_PER_MINUTE", 2)
    owner = login(Client(), user)
    answers = [post(owner, f"/sessions/{shared.pk}/members", {"name": "nobody", "role": "member"}) for _ in range(3)]
    assert [status for status, _ in answers] == [400, 400, 400]
    assert "At most 2 invitations a minute" in answers[-1][1]["error"]
