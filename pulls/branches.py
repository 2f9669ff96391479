"""Sessions' branches on the control plane: each session has a bare repository here, which its sandbox's bridge
pushes the branch to (pulls/git_http.py) and from which the control plane pushes it on to GitHub with the
person's token. The token goes in an HTTP header set through git's environment: never in a URL, a file or
anything a sandbox sees."""

import base64
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

GIT_TIMEOUT_SECONDS = 300
# The lines of git's output that say why a push failed (the rest is progress).
REASON_LINE = re.compile(r"^(remote: (error|fatal)?|error:|fatal:| ! |hint: Updates were rejected)")


@dataclass(frozen=True)
class PushResult:
    ok: bool
    sha: str
    reason: str  # why it failed, in git's and GitHub's words


def session_repo(session_id: int) -> Path:
    """The session's bare repository, made on first use: pushes to it may only move a branch forward."""
    path = Path(settings.GIT_BRANCHES_DIR) / f"{int(session_id)}.git"
    if not (path / "HEAD").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        git(["init", "--bare", "--quiet", str(path)])
        for key, value in (("http.receivepack", "true"), ("receive.denyNonFastForwards", "true"),
                           ("receive.denyDeletes", "true"), ("core.hooksPath", "/dev/null")):
            git(["--git-dir", str(path), "config", key, value])
    return path


def head_of(session_id: int, branch: str) -> str:
    """The commit the control plane holds for the session's branch, or "" before the first hand-off."""
    path = Path(settings.GIT_BRANCHES_DIR) / f"{int(session_id)}.git"
    if not (path / "HEAD").exists():
        return ""
    found = git(["--git-dir", str(path), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"],
                check=False)
    return found.stdout.strip() if found.returncode == 0 else ""


def push_to_origin(session_id: int, branch: str, clone_url: str, token: str) -> PushResult:
    """Push the session's branch to the repo's origin, never forced. `token` ("" for an origin that needs none,
    such as file://) is sent as `Authorization: Basic x-access-token:<token>`, as GitHub asks of git."""
    sha = head_of(session_id, branch)
    if not sha:
        return PushResult(False, "", "The agent has committed nothing on this session's branch yet.")
    env = {}
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
               "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}
    pushed = git(["--git-dir", str(session_repo(session_id)), "push", "--porcelain", "--", clone_url,
                  f"refs/heads/{branch}:refs/heads/{branch}"], check=False, env=env)
    if pushed.returncode == 0:
        return PushResult(True, sha, "")
    return PushResult(False, sha, reason_of(pushed.stdout + "\n" + pushed.stderr, token))


def refused_credentials(reason: str) -> bool:
    """Whether git's reason says the origin refused the token (git asks for a username after a 401)."""
    return any(sign in reason for sign in ("Authentication failed", "could not read Username", "HTTP 401",
                                           "returned error: 401"))


def reason_of(output: str, token: str = "") -> str:
    lines = [line.rstrip() for line in output.splitlines() if REASON_LINE.match(line) and line.strip() != "remote:"]
    reason = "\n".join(lines) or (output.strip().splitlines() or ["git push failed"])[-1]
    if token:
        reason = reason.replace(token, "[token]")
    return reason[:1000]


def git(args: list[str], check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "LC_ALL": "C", **(env or {})}
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS,
                          env=full_env, check=check)
