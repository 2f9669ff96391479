"""Opening a pull request on the live platform (the Daphnes behind the front proxy, a Celery worker) against the
GitHub double: from the "Create pull request" request to the PR's URL reaching the page (the `pull_request`
event on the session's socket). The floor, measured in the same run: the same push and the same API call made
directly (`git push` with the token header, then POST /pulls with httpx). See docs/benchmarks.md."""

import asyncio
import base64
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from django.middleware.csrf import get_token
from django.test import RequestFactory
from django.test.utils import override_settings

from bench._common import open_dir, p50, report, say, spread
from bench._live import Platform, Viewer, delete_users, fake_ready_image, in_thread, make_user, simulated_sandbox
from bridge import branch
from pulls import tokens
from sandboxes.models import Repo
from sessions import commits
from sessions.models import Session
from tests.support.github_double import GitHubDouble

RUNS = 7


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def committed_workspace(github: GitHubDouble, root: Path, name: str, author: dict) -> Path:
    """A clone of acme/app with one new commit by `author` on the branch `name`, as a sandbox's workspace has
    after a run."""
    workspace = root / name.replace("/", "-")
    git(root, "clone", "-q", f"file://{github.repo_path('acme/app')}", str(workspace))
    (workspace / "greeting.txt").write_text(f"hello from {name}\n")
    branch.commit_changes(workspace, name, author, [], f"Add a greeting ({name})")
    return workspace


def csrf_headers(platform: Platform, cookie_headers: dict) -> dict:
    token = get_token(RequestFactory().get("/"))
    return {**cookie_headers, "Cookie": f"{cookie_headers['Cookie']}; csrftoken={token}", "X-CSRFToken": token,
            "Content-Type": "application/json", "Referer": platform.url + "/"}


async def time_create(platform: Platform, session_id: int, headers: dict) -> float:
    """Seconds from the request to the `pull_request` event on a subscribed socket."""
    after = await in_thread(lambda: Session.objects.get(pk=session_id).last_seq)
    viewer = await Viewer(platform.ws_url, session_id, headers).open(after)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            start = time.monotonic()
            answer = await client.post(f"{platform.url}/sessions/{session_id}/pull-request", headers=headers,
                                       json={"title": "Add a greeting", "body": "From the bench.", "draft": False})
            if answer.status_code != 202:
                raise RuntimeError(f"Create pull request answered {answer.status_code}: {answer.text}")
            while True:
                at, message = await viewer.receive(60)
                if message.get("type") == "event" and message["kind"] == "pull_request_failed":
                    raise RuntimeError(f"the pull request was not opened: {message['data']['message']}")
                if message.get("type") == "event" and message["kind"] == "pull_request" and message["data"]["url"]:
                    return at - start
    finally:
        await viewer.close()


def direct(github: GitHubDouble, token: str, workspace: Path, name: str) -> float:
    """The floor: the same push and the same API call, made directly."""
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    start = time.monotonic()
    git(workspace, "-c", f"http.extraHeader=Authorization: Basic {basic}", "push", "-q",
        f"{github.url}/acme/app.git", f"{name}:refs/heads/{name}")
    answer = httpx.post(f"{github.api_url}/repos/acme/app/pulls", headers={"Authorization": f"Bearer {token}"},
                        json={"title": "Add a greeting", "head": name, "base": "main", "body": "Direct."}, timeout=30)
    answer.raise_for_status()
    return time.monotonic() - start


def run() -> None:
    github = GitHubDouble()
    root = open_dir(Path(tempfile.mkdtemp(prefix="bench-pulls-")))
    try:
        github.add_user("bench", 501, "Bench", emails=[("bench@example.com", True, True)])
        github.add_repo("acme/app", collaborators=["bench"])
        with override_settings(GITHUB_URL=github.url), Platform() as platform:
            repo = Repo.objects.create(name="bench-pulls", clone_url=f"{github.url}/acme/app.git")
            image = fake_ready_image(repo)
            user = make_user("pulls")
            token = github.issue_token("bench")
            tokens.store(user, 501, "bench", token)
            headers = csrf_headers(platform, platform.browser_headers(user))
            through, floor = [], []
            for index in range(RUNS + 1):  # the first warms githubkit's imports and the worker up: not counted
                sandbox, sandbox_token = simulated_sandbox(repo, image)
                session = Session.objects.create(repo=repo, creator=user, sandbox=sandbox)
                session.add_member(user, "owner")
                workspace = committed_workspace(github, root, session.branch, commits.person(user))
                sha = git(workspace, "rev-parse", "HEAD")
                handed, why = branch.hand_off(workspace, branch.handoff_url(platform.url), session.branch, sha,
                                              sandbox_token)
                if not handed:
                    raise RuntimeError(f"the hand-off failed: {why}")
                seconds = asyncio.run(time_create(platform, session.pk, headers))
                bare = committed_workspace(github, root, f"direct/{index}", commits.person(user))
                baseline = direct(github, token, bare, f"direct/{index}")
                if index:
                    through.append(seconds)
                    floor.append(baseline)
            report("create_pr_to_url_p50", p50(through) * 1000, "ms", 1)
            report("create_pr_direct_p50", p50(floor) * 1000, "ms", 1)
            report("create_pr_overhead_ratio", p50(through) / p50(floor), "x", 2)
            say(f"through the platform: {spread(through, 1000, 'ms')}; direct: {spread(floor, 1000, 'ms')}")
            Repo.objects.filter(pk=repo.pk).delete()
            delete_users()
    finally:
        github.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)
