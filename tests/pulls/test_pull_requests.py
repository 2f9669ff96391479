"""The result of a session: the sandbox hands its branch to the control plane (real git over smart HTTP, the
bridge's own code), which pushes it to GitHub (the double's git http-backend) with the person's token in a header
and opens the pull request as that person. Each refusal says why and changes nothing it should not."""

import base64
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from allauth.socialaccount.models import SocialAccount
from django.utils import timezone

from bridge import branch
from pulls import branches, tasks, tokens
from pulls.models import GitHubToken, PullRequest
from sessions import commits
from sessions.models import Event, Prompt
from tests.support.live_server import LiveServer
from tests.support.rows import owned_session, repo_with_image

pytestmark = pytest.mark.django_db(transaction=True)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def handoff_server(django_db_setup, tmp_path_factory):
    """The platform's ASGI app in Daphne (the hand-off is an ASGI app of its own), on the test database, with the
    sessions' branches in a folder the tests share with it."""
    branches_dir = tmp_path_factory.mktemp("branches")
    server = LiveServer(env={"GIT_BRANCHES_DIR": str(branches_dir)}).start()
    server.branches_dir = branches_dir
    yield server
    server.stop()


@pytest.fixture
def setup(github, handoff_server, settings, user, make_sandbox, tmp_path, enqueued):
    """Ada's session of acme/app, its sandbox (with the bridge's token) and the sandbox's workspace: a clone."""
    settings.GIT_BRANCHES_DIR = handoff_server.branches_dir
    repo = repo_with_image("app", clone_url=f"{github.url}/acme/app.git")
    assert repo.github_repo == "acme/app"
    session = owned_session(repo, user, title="Add a greeting")
    sandbox = make_sandbox()  # of another repo: the hand-off goes by the session the sandbox serves
    session.sandbox = sandbox
    session.save()
    workspace = tmp_path / "workspace"
    subprocess.run(["git", "clone", "-q", repo.clone_url, str(workspace)], check=True)
    ada_token = github.issue_token("ada")
    user.first_name, user.last_name = "Ada", "Lovelace"
    user.save()
    SocialAccount.objects.create(user=user, provider="github", uid="101", extra_data={"login": "ada"})
    tokens.store(user, 101, "ada", ada_token)

    class Setup:
        pass

    s = Setup()
    s.repo, s.session, s.workspace, s.ada_token, s.user = repo, session, workspace, ada_token, user
    s.author = commits.person(user)  # as the control plane names her: Ada Lovelace <101+ada@users.noreply...>
    s.sandbox_token = sandbox.issue_token()
    s.url = branch.handoff_url(handoff_server.url)
    s.branches_dir = handoff_server.branches_dir
    s.enqueued = enqueued
    return s


def commit_and_hand_off(s, files: dict[str, str], message: str = "Add a greeting", token: str | None = None):
    for name, text in files.items():
        (s.workspace / name).write_text(text)
    made = branch.commit_changes(s.workspace, s.session.branch, s.author, [], message)
    handed, why = branch.hand_off(s.workspace, s.url, s.session.branch, made.sha, token or s.sandbox_token)
    return made, handed, why


def ran(session, author, text: str, position: int) -> Prompt:
    return Prompt.objects.create(session=session, author=author, text=text, position=position,
                                 status=Prompt.Status.DONE, started_at=timezone.now())


def events(session, kind: str) -> list[dict]:
    return [e.data for e in Event.objects.filter(session=session, kind=kind).order_by("seq")]


def test_the_branch_reaches_github_and_the_pull_request_is_opened_as_the_person(setup, github):
    made, handed, why = commit_and_hand_off(setup, {"hello.txt": "hello\n"})
    assert handed, why
    assert branches.head_of(setup.session.pk, setup.session.branch) == made.sha

    tasks.open_pull_request(setup.session.pk, setup.user.pk, False, "Add a greeting", "Made in Inspect.")

    origin = github.repo_path("acme/app")
    assert git(origin, "rev-parse", f"refs/heads/{setup.session.branch}") == made.sha
    assert git(origin, "log", "-1", "--format=%an <%ae>", made.sha) == \
        f"Ada Lovelace <101+ada@users.noreply.{urlsplit(github.url).hostname}>"  # an Enterprise Server's no-reply
    pull = PullRequest.objects.get()
    assert (pull.session, pull.opened_by, pull.opened_through_platform) == (setup.session, setup.user, True)
    assert pull.url == f"{github.url}/acme/app/pull/{pull.number}" and pull.pushed_sha == made.sha
    assert events(setup.session, "pull_request")[-1]["url"] == pull.url
    created = [c for c in github.api_calls if c["method"] == "POST"]
    assert [c["body"]["head"] for c in created] == [setup.session.branch]
    assert github.pulls["acme/app"][pull.number]["user"]["login"] == "ada"
    # Ada's token, and no other, reached GitHub: in the API's Authorization and in git's Basic header.
    assert all(setup.ada_token in c["authorization"] for c in github.api_calls)
    basic = base64.b64encode(f"x-access-token:{setup.ada_token}".encode()).decode()
    pushes = [auth for method, path, auth in github.git_requests if "receive-pack" in path]
    assert pushes and all(auth == f"Basic {basic}" for auth in pushes)
    # Nothing the sandbox or the page sees holds it.
    assert not any(setup.ada_token in str(e.data) for e in Event.objects.all())
    assert setup.ada_token not in (setup.workspace / ".git" / "config").read_text()


def test_later_hand_offs_are_pushed_to_the_same_pull_request(setup, github):
    commit_and_hand_off(setup, {"hello.txt": "hello\n"})
    tasks.open_pull_request(setup.session.pk, setup.user.pk, True, "Add a greeting", "")
    assert PullRequest.objects.get().draft is True
    second, handed, _ = commit_and_hand_off(setup, {"hello.txt": "hello, world\n"}, "Say more")
    assert handed
    tasks.push_to_pull_request(setup.session.pk)  # what the hand-off asks the workers for
    assert git(github.repo_path("acme/app"), "rev-parse", f"refs/heads/{setup.session.branch}") == second.sha
    assert events(setup.session, "branch_pushed")[-1]["sha"] == second.sha
    assert len(github.pulls["acme/app"]) == 1


def test_a_hand_off_needs_the_sandboxs_token_and_may_only_push(setup, handoff_server):
    made, handed, why = commit_and_hand_off(setup, {"a.txt": "a\n"}, token="not-the-token")
    assert not handed and "not-the-token" not in why
    assert branches.head_of(setup.session.pk, setup.session.branch) == ""
    auth = {"Authorization": f"Bearer {setup.sandbox_token}"}
    refs = f"{handoff_server.url}/git/handoff.git/info/refs"
    assert httpx.get(refs + "?service=git-upload-pack", headers=auth).status_code == 403  # no fetching
    assert httpx.get(refs + "?service=git-receive-pack").status_code == 401
    assert httpx.get(refs + "?service=git-receive-pack", headers={"Authorization": "Bearer x"}).status_code == 401


def test_what_was_handed_over_cannot_be_forced_over_or_deleted(setup, tmp_path):
    made, handed, _ = commit_and_hand_off(setup, {"a.txt": "a\n"})
    assert handed
    header = f"http.extraHeader=Authorization: Bearer {setup.sandbox_token}"
    other = tmp_path / "rewritten"
    subprocess.run(["git", "clone", "-q", setup.repo.clone_url, str(other)], check=True)
    git(other, "-c", "user.name=M", "-c", "user.email=m@example.com", "commit", "-q", "--allow-empty", "-m", "x")
    for refspec in (f"+HEAD:refs/heads/{setup.session.branch}", f":refs/heads/{setup.session.branch}"):
        pushed = subprocess.run(["git", "-c", header, "push", setup.url, refspec], cwd=other, capture_output=True,
                                text=True)
        assert pushed.returncode != 0, refspec
    assert branches.head_of(setup.session.pk, setup.session.branch) == made.sha


def test_commits_by_someone_outside_the_session_are_never_pushed_to_github(setup, github):
    (setup.workspace / "evil.txt").write_text("x\n")
    git(setup.workspace, "checkout", "-q", "-b", setup.session.branch)
    git(setup.workspace, "add", "-A")
    git(setup.workspace, "-c", "user.name=Mallory", "-c", "user.email=mallory@example.com", "commit", "-q",
        "-m", "not Ada's")  # the agent committing on its own, as anyone
    made, handed, _ = commit_and_hand_off(setup, {"hello.txt": "hello\n"})
    assert handed
    tasks.open_pull_request(setup.session.pk, setup.user.pk, False, "Add a greeting", "")
    failed = events(setup.session, "pull_request_failed")[-1]["message"]
    assert "mallory@example.com" in failed and "not in this session" in failed
    assert not PullRequest.objects.exists()
    assert not [r for r in github.git_requests if "receive-pack" in r[1]]


def test_a_push_github_refuses_is_shown_with_githubs_reason(setup, github):
    commit_and_hand_off(setup, {"hello.txt": "hello\n"})
    github.protect("acme/app", setup.session.branch)
    tasks.open_pull_request(setup.session.pk, setup.user.pk, False, "Add a greeting", "")
    failed = events(setup.session, "pull_request_failed")[-1]["message"]
    assert "GH006: Protected branch update failed" in failed
    assert not PullRequest.objects.exists() and not [c for c in github.api_calls if c["method"] == "POST"]


def test_a_branch_moved_on_github_is_never_overwritten(setup, github, tmp_path):
    commit_and_hand_off(setup, {"hello.txt": "hello\n"})
    # Someone else pushes to the session's branch on GitHub first.
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", setup.repo.clone_url, str(other)], check=True)
    git(other, "-c", "user.name=Bob", "-c", "user.email=bob@example.com", "commit", "-q", "--allow-empty", "-m", "x")
    theirs = git(other, "rev-parse", "HEAD")
    bob = base64.b64encode(f"x-access-token:{github.issue_token('bob')}".encode()).decode()
    git(other, "-c", f"http.extraHeader=Authorization: Basic {bob}", "push", "-q", "origin",
        f"HEAD:refs/heads/{setup.session.branch}")
    origin = github.repo_path("acme/app")
    tasks.open_pull_request(setup.session.pk, setup.user.pk, False, "Add a greeting", "")
    assert "rejected" in events(setup.session, "pull_request_failed")[-1]["message"]
    assert git(origin, "rev-parse", f"refs/heads/{setup.session.branch}") == theirs


def test_a_revoked_token_asks_the_person_to_connect_again(setup, github):
    commit_and_hand_off(setup, {"hello.txt": "hello\n"})
    github.revoke(setup.ada_token)
    tasks.open_pull_request(setup.session.pk, setup.user.pk, False, "Add a greeting", "")
    assert "connect GitHub again" in events(setup.session, "pull_request_failed")[-1]["message"]
    assert GitHubToken.objects.get(user=setup.user).broken_at is not None


def test_an_expired_token_that_cannot_be_refreshed_opens_nothing(setup, github):
    commit_and_hand_off(setup, {"hello.txt": "hello\n"})
    GitHubToken.objects.filter(user=setup.user).update(expires_at=timezone.now())  # no refresh token to use
    tasks.open_pull_request(setup.session.pk, setup.user.pk, False, "Add a greeting", "")
    assert "connect GitHub again" in events(setup.session, "pull_request_failed")[-1]["message"]
    assert not github.api_calls and not [r for r in github.git_requests if "receive-pack" in r[1]]


def test_a_pull_request_already_open_on_github_is_taken_as_the_sessions(setup, github):
    commit_and_hand_off(setup, {"hello.txt": "hello\n"})
    tasks.open_pull_request(setup.session.pk, setup.user.pk, False, "Add a greeting", "")
    number = PullRequest.objects.get().number
    PullRequest.objects.all().delete()  # as if the platform had lost track of it (say, a failed earlier attempt)
    tasks.open_pull_request(setup.session.pk, setup.user.pk, False, "Add a greeting", "")
    assert PullRequest.objects.get().number == number and len(github.pulls["acme/app"]) == 1


def test_githubs_rate_limit_is_said_with_when_to_try_again(setup, github):
    commit_and_hand_off(setup, {"hello.txt": "hello\n"})
    reset = int(timezone.now().timestamp()) + 600
    github.fail_next("POST", "/repos/acme/app/pulls", 403, {"message": "API rate limit exceeded for user ID 101."},
                     {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
    tasks.open_pull_request(setup.session.pk, setup.user.pk, False, "Add a greeting", "")
    failed = events(setup.session, "pull_request_failed")[-1]["message"]
    assert "rate limit" in failed and "minute" in failed
    assert GitHubToken.objects.get(user=setup.user).broken_at is None


def test_without_a_github_connection_the_person_is_told_how_or_the_bot_opens_it_for_them(setup, github, settings):
    commit_and_hand_off(setup, {"hello.txt": "hello\n"})
    GitHubToken.objects.all().delete()
    tasks.open_pull_request(setup.session.pk, setup.user.pk, False, "Add a greeting", "")
    assert "/accounts/3rdparty/" in events(setup.session, "pull_request_failed")[-1]["message"]
    github.add_user("inspect-bot", 900, "Inspect")
    github.repos["acme/app"]["collaborators"].add("inspect-bot")
    settings.GITHUB_BOT_TOKEN = github.issue_token("inspect-bot")
    tasks.open_pull_request(setup.session.pk, setup.user.pk, False, "Add a greeting", "")
    pull = github.pulls["acme/app"][PullRequest.objects.get().number]
    assert pull["user"]["login"] == "inspect-bot" and pull["body"].startswith("Opened for Ada")


def test_a_repo_that_is_not_on_github_says_so(setup):
    commit_and_hand_off(setup, {"hello.txt": "hello\n"})
    type(setup.repo).objects.filter(pk=setup.repo.pk).update(clone_url="https://gitlab.example.com/acme/app.git",
                                                            github_repo="")
    tasks.open_pull_request(setup.session.pk, setup.user.pk, False, "Add a greeting", "")
    assert "is not on GitHub" in events(setup.session, "pull_request_failed")[-1]["message"]


def test_create_pull_request_is_for_members_and_checks_its_input(setup, client, other_user):
    url = f"/sessions/{setup.session.pk}/pull-request"
    client.force_login(other_user)
    assert client.post(url, {"title": "x"}, content_type="application/json").status_code == 404
    assert client.get(url).status_code == 404
    client.force_login(setup.user)
    ran(setup.session, setup.user, "Add a greeting\nto the README", 1)
    prefilled = client.get(url).json()
    assert prefilled["title"] == "Add a greeting" and prefilled["github_problem"] == ""
    assert f"/sessions/{setup.session.pk}/" in prefilled["body"]
    assert "- Ada Lovelace: Add a greeting" in prefilled["body"]
    assert client.post(url, "{not json", content_type="application/json").status_code == 400
    assert client.post(url, {"title": " "}, content_type="application/json").status_code == 400
    assert client.post(url, {"title": "x", "draft": "yes"}, content_type="application/json").status_code == 400
    assert "pulls.tasks.open_pull_request" not in setup.enqueued
    answer = client.post(url, {"title": "Add a greeting", "body": "b", "draft": True}, content_type="application/json")
    assert answer.status_code == 202
    assert setup.enqueued["pulls.tasks.open_pull_request"] == [(setup.session.pk, setup.user.pk, True,
                                                                "Add a greeting", "b")]


def test_a_hand_off_larger_than_the_limit_is_refused_and_stores_nothing(setup, django_db_setup):
    small = LiveServer(env={"GIT_BRANCHES_DIR": str(setup.branches_dir), "GIT_HANDOFF_MAX_BYTES": "2000"}).start()
    try:
        setup.url = branch.handoff_url(small.url)
        # 1.5 MB: git sends it chunked, without a Content-Length, so the limit is counted as it streams.
        made, handed, why = commit_and_hand_off(setup, {"big.txt": os.urandom(750_000).hex()})
    finally:
        small.stop()
    assert not handed and "413" in why
    assert branches.head_of(setup.session.pk, setup.session.branch) == ""


def test_a_hand_off_sends_only_what_the_session_made_and_may_push_branches_alone(setup, tmp_path):
    made, handed, _ = commit_and_hand_off(setup, {"hello.txt": "hello\n"})
    assert handed
    repo = setup.branches_dir / f"{setup.session.pk}.git"
    assert (repo / "objects" / "info" / "alternates").read_text().strip().endswith(f"repo-{setup.repo.pk}.git/objects")
    counts = dict(line.split(": ") for line in git(repo, "count-objects", "-v").splitlines())
    assert int(counts["count"]) + int(counts["in-pack"]) <= 3  # the commit, its tree, its blob: no history
    header = f"http.extraHeader=Authorization: Bearer {setup.sandbox_token}"
    # A replace ref would show `git log` another author than the commit a push sends: refused, as is any ref
    # outside refs/heads/.
    for ref in (f"refs/replace/{made.sha}", "refs/inspect/origin-x", "refs/tags/v1"):
        pushed = subprocess.run(["git", "-c", header, "push", setup.url, f"{made.sha}:{ref}"], cwd=setup.workspace,
                                capture_output=True, text=True)
        assert pushed.returncode != 0, ref
    assert git(repo, "for-each-ref", "--format=%(refname)") == f"refs/heads/{setup.session.branch}"


def test_commits_made_before_the_person_connected_github_still_go(setup, github):
    SocialAccount.objects.filter(user=setup.user).delete()
    setup.author = commits.person(setup.user)  # ada@example.com: no GitHub yet
    Prompt.objects.create(session=setup.session, author=setup.user, text="Add a greeting", position=1,
                          status=Prompt.Status.DONE, started_at=timezone.now(), commit_people=[setup.author["email"]])
    commit_and_hand_off(setup, {"hello.txt": "hello\n"})
    SocialAccount.objects.create(user=setup.user, provider="github", uid="101", extra_data={"login": "ada"})
    tasks.open_pull_request(setup.session.pk, setup.user.pk, False, "Add a greeting", "")
    assert PullRequest.objects.get().session == setup.session
