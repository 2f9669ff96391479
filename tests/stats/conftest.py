"""The stats tests: GitHub (the double, as in tests/pulls) and a history of sessions and pull requests across two
repos, one of which Ada may not use."""

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import httpx
import pytest
from django.core.cache import cache
from django.utils import timezone

from pulls import opening
from pulls.models import PullRequest
from sandboxes.models import Repo
from sessions.models import Prompt, Session
from tests.pulls.conftest import WEBHOOK_SECRET, github  # noqa: F401  (github: the fixture)
from tests.support.github_double import sign
from tests.support.github_git import FIXED_AUTHOR, git, git_env
from tests.support.rows import owned_session, repo_with_image


@pytest.fixture(autouse=True)
def fresh_cache():
    """The figures are cached for 30 s: each test starts from none."""
    cache.clear()
    yield
    cache.clear()


def noon(days_ago: int) -> datetime:
    """Noon, `days_ago` days before today (in TIME_ZONE): well inside that day whatever time the test runs."""
    day = timezone.localdate() - timedelta(days=days_ago)
    return timezone.make_aware(datetime.combine(day, datetime.min.time())) + timedelta(hours=12)


def open_on_github(double, branch: str, login: str) -> dict:
    """`login` opens a pull request on GitHub (the double) from `branch` (a commit on top of main); its answer."""
    path = double.repo_path("acme/app")
    blob = git(path, "hash-object", "-w", "--stdin", stdin=f"{branch}\n".encode())
    tree = git(path, "mktree", stdin=f"100644 blob {blob}\tchange.txt\n".encode())
    commit = git(path, "commit-tree", tree, "-p", "refs/heads/main", "-m", "Change", env=git_env(**FIXED_AUTHOR))
    git(path, "update-ref", f"refs/heads/{branch}", commit)
    answer = httpx.post(f"{double.api_url}/repos/acme/app/pulls", json={"title": f"From {branch}", "head": branch,
                        "base": "main"}, headers={"Authorization": f"Bearer {double.issue_token(login)}"})
    assert answer.status_code == 201, answer.text
    return answer.json()


@dataclass
class History:
    app: Repo  # acme/app, for everyone
    secret: Repo  # only Bob may use it
    sessions: dict[str, Session] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)  # the PRs on GitHub, by name

    @property
    def today(self) -> date:
        return timezone.localdate()


def session_on(repo: Repo, person, days_ago: int) -> Session:
    session = owned_session(repo, person)
    Session.objects.filter(pk=session.pk).update(created_at=noon(days_ago))
    session.refresh_from_db()
    return session


def through_platform(double, session: Session, person, minutes_after_prompt: int) -> PullRequest:
    """The platform opens the session's PR on GitHub as `person` (pulls/opening.py remembers it), its first
    prompt written `minutes_after_prompt` minutes before."""
    pull = opening.remember(session, person, open_on_github(double, session.branch, person.username), sha="")
    Prompt.objects.create(session=session, author=person, text="Fix it", position=1, status=Prompt.Status.DONE,
                          created_at=pull.created_at - timedelta(minutes=minutes_after_prompt))
    return pull


@pytest.fixture
def history(github, users, deliver) -> History:  # noqa: F811  (github is the imported fixture)
    """In acme/app (for everyone): Ada's two sessions yesterday, each with a PR through the platform that was
    merged (10 and 30 minutes after its first prompt), Bob's session three days ago with an open PR (20
    minutes), Ada's session 40 days ago without one; and two PRs opened on GitHub by Bob, one merged. In
    Bob's repo "secret": two sessions of his two days ago, one with a merged PR through the platform."""
    ada, bob = users["ada"], users["bob"]
    app = repo_with_image("app", clone_url=github.url + "/acme/app.git")
    secret = repo_with_image("secret", clone_url="https://example.com/acme/secret.git")
    secret.access = Repo.Access.LISTED
    secret.save()
    secret.allowed_users.add(bob)
    found = History(app, secret)
    for name, repo, person, days_ago in [("s1", app, ada, 1), ("s2", app, ada, 1), ("s3", app, bob, 3),
                                          ("s4", app, ada, 40), ("t1", secret, bob, 2), ("t2", secret, bob, 2)]:
        found.sessions[name] = session_on(repo, person, days_ago)
    for name, person, minutes in [("s1", ada, 10), ("s2", ada, 30), ("s3", bob, 20)]:
        pull = through_platform(github, found.sessions[name], person, minutes)
        found.numbers[name] = pull.number
        deliver("pull_request", github.pull_request_payload("acme/app", pull.number, "opened"))
    for name in ("q1", "q2"):
        found.numbers[name] = open_on_github(github, f"bobs-{name}", "bob")["number"]
        deliver("pull_request", github.pull_request_payload("acme/app", found.numbers[name], "opened"))
    for name in ("s1", "s2", "q1"):
        github.merge("acme/app", found.numbers[name])
        deliver("pull_request", github.pull_request_payload("acme/app", found.numbers[name], "closed"))
    PullRequest.objects.create(repo=secret, number=1, session=found.sessions["t1"], opened_by=bob,
                               opened_through_platform=True, state=PullRequest.State.MERGED,
                               merged_at=timezone.now())
    return found


@pytest.fixture
def deliver(client):
    """deliver(event, payload): a signed delivery to /github/webhook, as GitHub makes it; it must be applied."""
    def send(event: str, payload: dict) -> None:
        body = json.dumps(payload).encode()
        answer = client.post("/github/webhook", body, content_type="application/json", headers={
            "X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(body, WEBHOOK_SECRET)})
        assert answer.status_code == 200, answer.content

    return send
