"""A session's result end to end, in Chromium: Ada signs up through GitHub (the double, its OAuth and API), the agent
writes a file in a real sandbox, the bridge commits it as Ada (with Bob, whose prompt shaped it, as co-author) and
hands the branch over, "Create pull request" pushes it to GitHub with Ada's token and opens the PR as her, and a
webhook saying it merged turns the page's badge to merged. No token reaches the sandbox or the browser."""

import base64
import json
import re
import subprocess
from urllib.parse import urlsplit

import httpx
import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from sandboxes.backends import get_backend
from sessions import member_requests
from sessions.models import Event, Session
from tests.end_to_end.conftest import outside_the_event_loop, running_platform
from tests.support.github_double import GitHubDouble, sign

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]
WEBHOOK_SECRET = "e2e-webhook-secret"


@pytest.fixture
def github(settings, tmp_path):
    double = GitHubDouble()
    double.add_user("ada", 101, "Ada Lovelace", emails=[("ada@example.com", True, True)])
    double.add_repo("acme/app", collaborators=["ada"])
    settings.GITHUB_URL = double.url  # the worker (in this process) pushes and calls the API there
    settings.GIT_BRANCHES_DIR = tmp_path / "branches"
    yield double
    double.stop()


@pytest.fixture
def platform_on_github(settings, model_server, github):
    """The platform pointed at the double. The repo syncs from the double's repository as a file:// mirror (a
    sandbox reaches no other host here), and pushes go to GitHub over HTTPS: its `github_repo` is acme/app."""
    env = {"GITHUB_URL": github.url, "GITHUB_CLIENT_ID": github.client_id,
           "GITHUB_CLIENT_SECRET": github.client_secret, "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "SIGNUP_EMAIL_DOMAINS": "example.com", "GIT_BRANCHES_DIR": str(settings.GIT_BRANCHES_DIR)}
    fields = {"name": "app", "clone_url": f"file://{github.repo_path('acme/app')}", "github_repo": "acme/app"}
    with running_platform(settings, model_server, fields, env) as running:
        yield running


def test_sign_up_through_github_prompt_and_open_the_pull_request_as_the_person(platform_on_github, github, page):
    live, repo = platform_on_github
    github.sign_in_as = "ada"
    page.goto(live.browser_url + "/accounts/login/")
    page.get_by_role("link", name="GitHub").click()
    page.locator("form button[type=submit]").click()  # allauth's "Continue" to GitHub
    expect(page.locator("nav .who")).to_have_text("ada")
    [token] = [t for t, login in github.tokens.items() if login == "ada"]

    page.goto(live.browser_url + "/sessions/new")
    page.select_option("#id_repo", str(repo.pk))
    page.fill("#id_prompt", "justtext Where should a greeting go?")
    page.click("#create")
    expect(page.locator(".assistant-text").filter(has_text="Just some text")).to_be_visible(timeout=120_000)
    found = {}
    outside_the_event_loop(lambda: found.update(session=Session.objects.get(), ada=User.objects.get(username="ada")))
    session, ada = found["session"], found["ada"]

    def bob_asks() -> None:  # Bob, a member, asks a question that shapes the change (no change of his own)
        bob = User.objects.create_user("bob", "bob@example.com", first_name="Bob")
        session.add_member(bob)
        member_requests.submit_prompt(session, bob, "justtext A file at the top, please.")

    outside_the_event_loop(bob_asks)
    expect(page.locator(".assistant-text").filter(has_text="Just some text")).to_have_count(2)
    page.fill("#prompt-input", "Please write file:hello.txt")
    page.click("#send")
    commit = page.locator(".commit")
    expect(commit).to_be_visible(timeout=120_000)
    expect(commit.locator(".commit-authors")).to_have_text("Ada Lovelace, Bob")
    expect(commit.locator(".commit-file .path")).to_have_text("hello.txt")
    expect(commit.locator(".commit-file .adds")).to_have_text("+1")

    page.click("#pr-open")
    expect(page.locator("#pr-title")).to_have_value("justtext Where should a greeting go?")  # the session's title
    expect(page.locator("#pr-body")).to_have_value(re.compile(r"^- Bob: justtext A file at the top", re.M))
    page.fill("#pr-title", "Add a greeting")
    page.click("#pr-submit")
    badge = page.locator("#pr-badge")
    expect(badge).to_have_text("PR #1 open")
    assert badge.get_attribute("href") == f"{github.url}/acme/app/pull/1"

    # GitHub's side: the branch holds the commit by Ada, with Bob as co-author; the PR was opened with her token.
    origin = github.repo_path("acme/app")
    log = subprocess.run(["git", "--git-dir", str(origin), "log", "-1", "--format=%an <%ae>%n%B", session.branch],
                         capture_output=True, text=True, check=True).stdout
    noreply = f"users.noreply.{urlsplit(github.url).hostname}"  # GITHUB_URL is not github.com: a server of its own
    assert log.startswith(f"Ada Lovelace <101+ada@{noreply}>\nPlease write file:hello.txt")
    assert "Co-authored-by: Bob <bob@example.com>" in log
    [created] = [c for c in github.api_calls if c["method"] == "POST"]
    assert created["body"]["head"] == session.branch and created["body"]["title"] == "Add a greeting"
    assert {c["authorization"].split()[-1] for c in github.api_calls} == {token}  # sign-in, then the PR
    basic = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert {auth for _m, path, auth in github.git_requests if "receive-pack" in path} == {basic}
    assert github.pulls["acme/app"][1]["user"]["login"] == "ada"

    # No token in the sandbox (its processes' environments, its files, its git config) nor in what the page got.
    sandbox_ref = Session.objects.get(pk=session.pk).sandbox.backend_ref
    probe = get_backend().exec(sandbox_ref, f"grep -rlsF {token} /proc/[0-9]*/environ /home /tmp /etc; "
                                            "git -C ~/workspace config --list", timeout=60)
    assert token not in probe.output and "extraheader" not in probe.output.lower(), probe.output
    assert token not in page.content() and token not in json.dumps(list(Event.objects.values_list("data")))
    assert token not in json.dumps(page.context.cookies())
    assert ada.github_token.access_encrypted and token not in ada.github_token.access_encrypted

    # A later run's commit goes to the same pull request by itself.
    page.fill("#prompt-input", "Please write file:more.txt")
    page.click("#send")
    expect(page.locator(".commit")).to_have_count(2, timeout=120_000)
    expect(page.locator(".note-pr").filter(has_text="to pull request #1")).to_be_visible()
    later = page.locator(".commit").nth(1).get_attribute("data-sha")
    head = subprocess.run(["git", "--git-dir", str(origin), "rev-parse", session.branch], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert head == later and len(github.pulls["acme/app"]) == 1

    # GitHub says it merged: the badge turns merged, live.
    github.merge("acme/app", 1, by="ada")
    body = json.dumps(github.pull_request_payload("acme/app", 1, "closed")).encode()
    answer = httpx.post(live.url + "/github/webhook", content=body, headers={
        "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "e2e-1", "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(body, WEBHOOK_SECRET)})
    assert answer.status_code == 200, answer.text
    expect(badge).to_have_text("PR #1 merged")
