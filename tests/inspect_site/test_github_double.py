"""The GitHub double itself: that real git and a real HTTP client meet GitHub's answers there."""

import base64
import os
import subprocess
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.github_double import GitHubDouble


@pytest.fixture
def github():
    double = GitHubDouble()
    double.add_user("ada", 1, "Ada Lovelace",
                    emails=[("ada@example.com", True, True), ("ada@work.example", True, False)])
    double.add_repo("acme/app", collaborators=["ada"])
    yield double
    double.stop()


@pytest.fixture
def git_env(tmp_path):
    """git as a user without any configuration of theirs: no credential helper, never a prompt."""
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C",
            "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
            "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com"}


def basic(token: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()


@pytest.fixture
def clone(github, git_env, tmp_path):
    """A clone of acme/app made with the token in a header only, and a way to run git in it."""
    header = basic(github.issue_token("ada"))
    work = tmp_path / "app"
    subprocess.run(["git", "-c", f"http.extraHeader={header}", "clone", "-q", f"{github.url}/acme/app.git",
                    str(work)], env=git_env, check=True, capture_output=True, timeout=30)

    def git(*args: str, auth: bool = True) -> subprocess.CompletedProcess:
        extra = ["-c", f"http.extraHeader={header}"] if auth else []
        return subprocess.run(["git", *extra, *args], cwd=work, env=git_env, capture_output=True, text=True,
                              timeout=30)

    def commit(name: str) -> str:
        (work / name).write_text(name)
        git("add", name)
        git("commit", "-q", "-m", f"Add {name}")
        return git("rev-parse", "HEAD").stdout.strip()

    git.commit = commit
    return git


def test_a_push_with_the_token_in_a_header_arrives_and_one_without_is_refused(github, clone):
    clone("checkout", "-q", "-b", "feature")
    sha = clone.commit("a.txt")
    assert clone("push", "-q", "origin", "feature").returncode == 0
    bare = github.repo_path("acme/app")
    assert subprocess.run(["git", f"--git-dir={bare}", "rev-parse", "feature"], capture_output=True,
                          text=True).stdout.strip() == sha
    assert all(auth.startswith("Basic ") for _, _, auth in github.git_requests)

    clone.commit("b.txt")
    refused = clone("push", "origin", "feature", auth=False)
    assert refused.returncode != 0 and github.git_requests[-1][2] == ""
    answer = httpx.get(f"{github.url}/acme/app.git/info/refs?service=git-receive-pack")
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == 'Basic realm="GitHub"'


def test_a_protected_branch_and_a_force_push_are_refused_as_github_refuses_them(github, clone):
    github.protect("acme/app", "main")
    clone.commit("a.txt")
    refused = clone("push", "origin", "main")
    assert refused.returncode != 0
    assert "remote: error: GH006: Protected branch update failed for refs/heads/main." in refused.stderr

    clone("checkout", "-q", "-b", "feature")
    clone.commit("b.txt")
    assert clone("push", "-q", "origin", "feature").returncode == 0
    clone("commit", "-q", "--amend", "-m", "Rewritten")
    forced = clone("push", "--force", "origin", "feature")
    assert forced.returncode != 0 and "non-fast-forward" in forced.stderr


def test_oauth_code_then_token_then_user(github):
    github.sign_in_as = "ada"
    callback = "http://127.0.0.1:1/accounts/github/login/callback/"
    with httpx.Client(base_url=github.url) as web:
        sent = web.get("/login/oauth/authorize", params={"client_id": github.client_id, "redirect_uri": callback,
                                                          "state": "xyz", "scope": "user:email read:org"})
        assert sent.status_code == 302 and sent.headers["Location"].startswith(callback)
        back = parse_qs(urlsplit(sent.headers["Location"]).query)
        assert back["state"] == ["xyz"]
        form = {"client_id": github.client_id, "client_secret": github.client_secret, "code": back["code"][0],
                "redirect_uri": callback}
        granted = web.post("/login/oauth/access_token", data=form, headers={"Accept": "application/json"}).json()
        assert granted["token_type"] == "bearer" and granted["scope"] == "user:email,read:org"
        again = web.post("/login/oauth/access_token", data=form)  # the same code twice: form-encoded refusal
        assert parse_qs(again.text)["error"] == ["bad_verification_code"]

    with httpx.Client(base_url=github.url + "/api/v3", headers={"Authorization": f"token {granted['access_token']}"}) \
            as api:
        user = api.get("/user")
        assert user.json()["login"] == "ada" and user.json()["email"] == "ada@example.com"
        assert user.headers["X-GitHub-Media-Type"] == "github.v3; format=json"
        assert [e["email"] for e in api.get("/user/emails").json() if e["primary"]] == ["ada@example.com"]
        github.revoke(granted["access_token"])
        assert api.get("/user").status_code == 401


def test_expiring_tokens_are_refreshed_once(github):
    github.sign_in_as, github.expiring_tokens = "ada", True
    location = httpx.get(f"{github.url}/login/oauth/authorize",
                         params={"client_id": github.client_id, "redirect_uri": "http://127.0.0.1:1/cb"}).headers
    code = parse_qs(urlsplit(location["Location"]).query)["code"][0]
    secret = {"client_id": github.client_id, "client_secret": github.client_secret}
    first = httpx.post(f"{github.url}/login/oauth/access_token", data={**secret, "code": code},
                       headers={"Accept": "application/json"}).json()
    assert first["expires_in"] == 28800 and first["refresh_token"].startswith("ghr_")
    refresh = {**secret, "grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = httpx.post(f"{github.url}/login/oauth/access_token", data=refresh,
                        headers={"Accept": "application/json"}).json()
    assert second["access_token"] not in (None, first["access_token"]) and first["access_token"] not in github.tokens
    assert httpx.post(f"{github.url}/login/oauth/access_token", data=refresh,
                      headers={"Accept": "application/json"}).json()["error"] == "bad_refresh_token"


def test_a_second_pull_request_for_the_same_branch_is_refused(github, clone):
    clone("checkout", "-q", "-b", "feature")
    clone.commit("a.txt")
    clone("push", "-q", "origin", "feature")
    api = httpx.Client(base_url=github.api_url, headers={"Authorization": f"Bearer {github.issue_token('ada')}"})
    wanted = {"title": "Add a", "head": "feature", "base": "main"}
    created = api.post("/repos/acme/app/pulls", json=wanted)
    assert created.status_code == 201 and created.json()["number"] == 1
    assert created.json()["html_url"] == f"{github.url}/acme/app/pull/1"
    again = api.post("/repos/acme/app/pulls", json={**wanted, "head": "acme:feature"})
    assert again.status_code == 422
    assert again.json()["errors"][0]["message"] == "A pull request already exists for acme:feature."
    assert api.get("/repos/acme/app/pulls", params={"head": "acme:feature"}).json()[0]["number"] == 1

    github.fail_next("GET", "/repos/acme/app/pulls/1", 403, {"message": "API rate limit exceeded for user ID 1."},
                     {"X-RateLimit-Remaining": "0"})
    limited = api.get("/repos/acme/app/pulls/1")
    assert limited.status_code == 403 and limited.headers["X-RateLimit-Remaining"] == "0"
    github.merge("acme/app", 1)
    assert api.get("/repos/acme/app/pulls/1").json()["merged"] is True
    assert github.pull_request_payload("acme/app", 1, "closed")["pull_request"]["merged"] is True
