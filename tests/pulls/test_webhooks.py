"""GitHub's webhook deliveries to POST /github/webhook, with payloads made by the GitHub double: what a signed
delivery changes (pull requests, their session's live badge), what a forged, replayed or malformed one does not,
and the admin page that says what to paste into GitHub."""

import json
import uuid

import httpx
import pytest
from django.contrib.auth.models import Permission

from pulls.models import PullRequest, WebhookDelivery
from sessions.models import Event
from tests.pulls.conftest import WEBHOOK_SECRET
from tests.support.github_double import sign
from tests.support.github_git import FIXED_AUTHOR, git, git_env
from tests.support.rows import login, owned_session, repo_with_image

pytestmark = pytest.mark.django_db
URL = "/github/webhook"


@pytest.fixture
def repo(github):
    """The platform's repo for acme/app on the double (github_repo derived from the clone URL)."""
    repo = repo_with_image("app", clone_url=github.url + "/acme/app.git")
    assert repo.github_repo == "acme/app"
    return repo


def open_pull(github, branch: str, login: str = "ada") -> int:
    """`login` opens a pull request on GitHub from `branch` (a commit on top of main, written into the double)."""
    path = github.repo_path("acme/app")
    blob = git(path, "hash-object", "-w", "--stdin", stdin=f"{branch}\n".encode())
    tree = git(path, "mktree", stdin=f"100644 blob {blob}\tchange.txt\n".encode())
    commit = git(path, "commit-tree", tree, "-p", "refs/heads/main", "-m", "Change", env=git_env(**FIXED_AUTHOR))
    git(path, "update-ref", f"refs/heads/{branch}", commit)
    answer = httpx.post(f"{github.api_url}/repos/acme/app/pulls", json={"title": f"From {branch}", "head": branch,
                        "base": "main"}, headers={"Authorization": f"Bearer {github.issue_token(login)}"})
    assert answer.status_code == 201, answer.text
    return answer.json()["number"]


def deliver(client, event: str, payload=None, *, body: bytes | None = None, delivery: str | None = "new",
            signature: str | None = "good"):
    """POST a delivery as GitHub would; `delivery`/`signature` None leaves that header out."""
    body = json.dumps(payload).encode() if body is None else body
    headers = {"X-GitHub-Event": event,
               "X-GitHub-Delivery": str(uuid.uuid4()) if delivery == "new" else delivery,
               "X-Hub-Signature-256": sign(body, WEBHOOK_SECRET) if signature == "good" else signature}
    return client.post(URL, body, content_type="application/json",
                       headers={k: v for k, v in headers.items() if v is not None})


def nothing_recorded() -> bool:
    return not (PullRequest.objects.exists() or WebhookDelivery.objects.exists() or Event.objects.exists())


def test_a_merged_pull_request_from_a_sessions_branch_turns_its_badge_to_merged(client, github, repo, user):
    session = owned_session(repo, user)
    number = open_pull(github, session.branch)
    github.merge("acme/app", number)
    answer = deliver(client, "pull_request", github.pull_request_payload("acme/app", number, "closed"))
    assert answer.status_code == 200
    pull = PullRequest.objects.get(repo=repo, number=number)
    assert (pull.session, pull.state, pull.head_branch, pull.author_login) == (session, "merged", session.branch, "ada")
    assert pull.merged_at is not None
    events = Event.objects.filter(session=session, kind="pull_request")
    assert [(e.data["number"], e.data["state"]) for e in events] == [(number, "merged")]
    assert WebhookDelivery.objects.get().status == 200


def test_a_pull_request_opened_on_github_by_someone_else_is_recorded_too(client, github, repo, user):
    owned_session(repo, user)
    number = open_pull(github, "bobs-fix", login="bob")
    assert deliver(client, "pull_request", github.pull_request_payload("acme/app", number, "opened")).status_code == 200
    pull = PullRequest.objects.get(repo=repo, number=number)
    assert (pull.session, pull.opened_through_platform, pull.state, pull.author_login) == (None, False, "open", "bob")
    assert not Event.objects.filter(kind="pull_request").exists()


def test_an_approving_review_sets_the_review_state_and_tells_the_session(client, github, repo, user):
    session = owned_session(repo, user)
    number = open_pull(github, session.branch)
    answer = deliver(client, "pull_request_review", github.review_payload("acme/app", number, "approved", "bob"))
    assert answer.status_code == 200
    assert PullRequest.objects.get(number=number).review_state == "approved"
    event = Event.objects.get(session=session, kind="pull_request")
    assert (event.data["review_state"], event.data["state"]) == ("approved", "open")


@pytest.mark.parametrize("signature", ["sha256=" + "0" * 64, None, "other", "sha1", "empty setting"],
                         ids=["wrong", "missing", "other secret", "sha1 scheme", "empty setting"])
def test_a_forged_delivery_is_refused_and_changes_nothing(client, github, repo, user, settings, signature):
    session = owned_session(repo, user)
    number = open_pull(github, session.branch)
    body = json.dumps(github.pull_request_payload("acme/app", number, "opened")).encode()
    if signature == "other":
        signature = sign(body, "another-secret")
    elif signature == "sha1":
        signature = "sha1=" + sign(body, WEBHOOK_SECRET).removeprefix("sha256=")
    elif signature == "empty setting":
        settings.GITHUB_WEBHOOK_SECRET, signature = "", sign(body, "")
    answer = deliver(client, "pull_request", body=body, signature=signature)
    assert answer.status_code == 401
    assert nothing_recorded()


def test_a_replayed_delivery_is_answered_but_applied_once(client, github, repo, user):
    session = owned_session(repo, user)
    number = open_pull(github, session.branch)
    payload = github.pull_request_payload("acme/app", number, "opened")
    assert deliver(client, "pull_request", payload, delivery="d-1").status_code == 200
    PullRequest.objects.filter(number=number).update(title="Renamed by hand")
    again = deliver(client, "pull_request", payload, delivery="d-1")
    assert (again.status_code, again.json()["outcome"]) == (200, "already received")
    assert PullRequest.objects.get(number=number).title == "Renamed by hand"
    assert WebhookDelivery.objects.count() == 1
    assert Event.objects.filter(session=session, kind="pull_request").count() == 1


def test_ping_is_recorded_and_what_the_platform_does_not_use_is_accepted_without_effect(client, github, repo):
    repository = github.pull_request_payload("acme/app", open_pull(github, "f"), "opened")["repository"]
    assert deliver(client, "ping", {"zen": "Keep it logically awesome.", "repository": repository}).status_code == 200
    assert WebhookDelivery.objects.get(event="ping").status == 200
    assert deliver(client, "push", {"ref": "refs/heads/f", "repository": repository}).status_code == 202
    other = github.pull_request_payload("acme/app", 1, "opened")
    other["repository"] = {**other["repository"], "full_name": "acme/other", "name": "other"}
    assert deliver(client, "pull_request", other).status_code == 202
    assert not PullRequest.objects.exists()
    assert sorted(WebhookDelivery.objects.values_list("event", "status")) == [
        ("ping", 200), ("pull_request", 202), ("push", 202)]


@pytest.mark.parametrize("body, delivery", [(b"event=pull_request", "new"), (b"[1, 2]", "new"), (b"{}", None)],
                         ids=["not json", "json array", "no delivery id"])
def test_a_malformed_delivery_is_refused_and_records_nothing(client, github, repo, body, delivery):
    assert deliver(client, "pull_request", body=body, delivery=delivery).status_code == 400
    assert nothing_recorded()


@pytest.fixture
def delivered(client, github, repo, user):
    """One pull_request delivery received for acme/app."""
    payload = github.pull_request_payload("acme/app", open_pull(github, owned_session(repo, user).branch), "opened")
    assert deliver(client, "pull_request", payload, delivery="delivery-abc").status_code == 200
    return WebhookDelivery.objects.get()


def deliveries_page(client, repo):
    return client.get(f"/admin/pulls/webhookdelivery/?repo__id__exact={repo.pk}")


def test_the_admin_shows_what_to_paste_into_github_and_the_deliveries_but_never_the_secret(
        client, django_user_model, repo, delivered, settings):
    login(client, django_user_model.objects.create_superuser("boss", "boss@example.com"))
    page = deliveries_page(client, repo)
    assert page.status_code == 200
    html = page.content.decode()
    assert f'<code id="webhook-url">http://testserver{URL}</code>' in html
    assert WEBHOOK_SECRET not in html and "GITHUB_WEBHOOK_SECRET" in html
    assert delivered.delivery_id in html and "#1 open" in html and '<td class="field-status">200</td>' in html
    change = client.get(f"/admin/sandboxes/repo/{repo.pk}/change/").content.decode()
    assert "GitHub webhook" in change and f"/admin/pulls/webhookdelivery/?repo__id__exact={repo.pk}" in change
    settings.GITHUB_WEBHOOK_SECRET = ""
    assert "every delivery is refused" in deliveries_page(client, repo).content.decode()


def test_staff_with_the_view_permission_see_the_deliveries(client, staff_user, repo, delivered):
    staff_user.user_permissions.add(Permission.objects.get(codename="view_webhookdelivery"))
    page = deliveries_page(login(client, staff_user), repo)
    assert page.status_code == 200
    html = page.content.decode()
    assert delivered.delivery_id in html and f"http://testserver{URL}" in html and WEBHOOK_SECRET not in html


def test_someone_who_is_not_staff_cannot_open_the_deliveries(client, user, repo, delivered):
    page = deliveries_page(login(client, user), repo)
    assert page.status_code == 302 and page["Location"].startswith("/admin/login/")


def test_a_forks_branch_of_the_same_name_is_not_taken_for_the_sessions(client, github, repo, user):
    session = owned_session(repo, user)
    number = open_pull(github, session.branch, login="bob")
    payload = github.pull_request_payload("acme/app", number, "opened")
    payload["pull_request"]["head"]["repo"] = {"full_name": "mallory/app"}  # as GitHub sends a fork's
    assert deliver(client, "pull_request", payload).status_code == 200
    assert PullRequest.objects.get(number=number).session is None
    assert not Event.objects.filter(session=session, kind="pull_request").exists()


def test_a_delivery_older_than_what_is_kept_changes_nothing(client, github, repo, user):
    session = owned_session(repo, user)
    number = open_pull(github, session.branch)
    opened = github.pull_request_payload("acme/app", number, "opened")
    github.merge("acme/app", number)
    merged = github.pull_request_payload("acme/app", number, "closed")
    merged["pull_request"]["updated_at"] = "2030-01-01T00:00:01Z"
    opened["pull_request"]["updated_at"] = "2030-01-01T00:00:00Z"
    assert deliver(client, "pull_request", merged).status_code == 200
    assert deliver(client, "pull_request", opened).status_code == 200  # GitHub delivered it late
    assert PullRequest.objects.get(number=number).state == "merged"
