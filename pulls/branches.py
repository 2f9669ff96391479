"""Sessions' branches on the control plane: each session has a bare repository here, which its sandbox's bridge
pushes the branch to (pulls/handoff.py) and from which the control plane pushes it on to GitHub with the person's
token. The token goes in an HTTP header set through git's environment: never in a URL, a file or anything a
sandbox sees. Only commits by the session's people go on: a sandbox could hand over any history."""

import base64
import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)
GIT_TIMEOUT_SECONDS = 300
# The lines of git's output that say why a push failed (the rest is progress).
REASON_LINE = re.compile(r"^(remote: (error|fatal)?|error:|fatal:| ! |hint: Updates were rejected)")


@dataclass(frozen=True)
class PushResult:
    ok: bool
    sha: str
    reason: str  # why it failed, in git's and GitHub's words


def repo_path(session_id: int) -> Path:
    return Path(settings.GIT_BRANCHES_DIR) / f"{int(session_id)}.git"


def mirror_path(repo_id: int) -> Path:
    return Path(settings.GIT_BRANCHES_DIR) / f"repo-{int(repo_id)}.git"


def new_bare(path: Path, config: tuple[tuple[str, str], ...], alternate: Path | None = None) -> Path:
    """A bare repository at `path`, whole or not at all: configured in a folder of its own, then moved into place
    (one made by another process meanwhile is kept)."""
    if (path / "HEAD").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    making = Path(tempfile.mkdtemp(dir=path.parent, prefix=".new-"))
    git(["init", "--bare", "--quiet", str(making)])
    for key, value in config:
        git(["--git-dir", str(making), "config", "--add", key, value])
    if alternate is not None:
        (making / "objects" / "info" / "alternates").write_text(f"{alternate / 'objects'}\n")
    try:
        making.rename(path)
    except OSError:
        shutil.rmtree(making, ignore_errors=True)
    return path


def update_mirror(repo_id: int, clone_url: str, default_branch: str) -> Path | None:
    """The repo's default branch, fetched into a repository all its sessions borrow objects from: a sandbox's
    first hand-off then sends only what its session made, and each session keeps only that. None when the
    origin cannot be read without a credential (a private repo): the hand-off then carries the history."""
    path = new_bare(mirror_path(repo_id), (("core.hooksPath", "/dev/null"),))
    with open(path / "inspect-fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fetched = git(["--git-dir", str(path), "fetch", "--quiet", "--no-tags", "--", clone_url,
                       f"+refs/heads/{default_branch}:refs/heads/{default_branch}"], check=False)
    if fetched.returncode != 0:
        logger.info("the origin of repo %s could not be fetched: %s", repo_id, reason_of(fetched.stderr))
        return None
    return path


def session_repo(session_id: int, mirror: Path | None = None) -> Path:
    """The session's bare repository, made on first use, borrowing `mirror`'s objects. A push may only move a
    branch under refs/heads/ forward (other refs, replace refs included, are hidden and refused), within the
    hand-off's size limit, and its objects are checked."""
    return new_bare(repo_path(session_id), (
        ("http.receivepack", "true"), ("receive.denyNonFastForwards", "true"), ("receive.denyDeletes", "true"),
        ("receive.fsckObjects", "true"), ("receive.maxInputSize", str(settings.GIT_HANDOFF_MAX_BYTES)),
        ("receive.hideRefs", "refs/"), ("receive.hideRefs", "!refs/heads/"), ("core.hooksPath", "/dev/null"),
    ), alternate=mirror)


def on_session_deleted(sender, instance, **kwargs) -> None:
    """A deleted session's repository goes with it (a later session given the same id starts empty)."""
    shutil.rmtree(repo_path(instance.pk), ignore_errors=True)


def head_of(session_id: int, branch: str) -> str:
    """The commit the control plane holds for the session's branch, or "" before the first hand-off."""
    path = repo_path(session_id)
    if not (path / "HEAD").exists():
        return ""
    found = git(["--git-dir", str(path), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"],
                check=False)
    return found.stdout.strip() if found.returncode == 0 else ""


def push_to_origin(session_id: int, branch: str, url: str, token: str, default_branch: str,
                   people: set[str]) -> PushResult:
    """Push the session's branch, as it is now, to `url`, never forced, once every commit the origin's default
    branch does not have is by one of `people` (git email addresses), as author and as committer. `token` is
    sent as `Authorization: Basic x-access-token:<token>`, as GitHub asks of git."""
    sha = head_of(session_id, branch)
    if not sha:
        return PushResult(False, "", "The agent has committed nothing on this session's branch yet.")
    repo, env = str(session_repo(session_id)), auth_env(token)
    # A ref of this push alone, which no sandbox can write (receive.hideRefs) and no other push shares.
    origin_ref = f"refs/inspect/origin-{uuid.uuid4().hex}"
    try:
        fetched = git(["--git-dir", repo, "fetch", "--quiet", "--no-tags", "--", url,
                       f"+refs/heads/{default_branch}:{origin_ref}"], check=False, env=env)
        if fetched.returncode != 0:
            return PushResult(False, sha, reason_of(fetched.stdout + "\n" + fetched.stderr, token))
        strangers = strangers_in(repo, sha, origin_ref, people)
    finally:
        git(["--git-dir", repo, "update-ref", "-d", origin_ref], check=False)
    if strangers:
        return PushResult(False, sha, "The branch has commits by people who are not in this session "
                                      f"({', '.join(sorted(strangers))}): the platform pushes only its people's "
                                      "commits. Ask the agent to make its changes again without committing them.")
    pushed = git(["--git-dir", repo, "push", "--porcelain", "--", url, f"{sha}:refs/heads/{branch}"],
                 check=False, env=env)
    if pushed.returncode == 0:
        return PushResult(True, sha, "")
    return PushResult(False, sha, reason_of(pushed.stdout + "\n" + pushed.stderr, token))


def strangers_in(repo: str, sha: str, origin_ref: str, people: set[str]) -> set[str]:
    """The authors' and committers' addresses, among the commits `origin_ref` lacks, that are not of `people`."""
    log = git(["--git-dir", repo, "log", "--format=%ae%x00%ce", sha, "--not", origin_ref, "--"]).stdout
    found = {address.lower() for line in log.splitlines() for address in line.split("\0") if address}
    return found - {person.lower() for person in people}


def auth_env(token: str) -> dict[str, str]:
    if not token:
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}


def refused_credentials(reason: str) -> bool:
    """Whether git's reason says the origin refused the token (git asks for a username after a 401)."""
    return any(sign in reason for sign in ("Authentication failed", "could not read Username", "HTTP 401",
                                           "returned error: 401"))


def reason_of(output: str, token: str = "") -> str:
    lines = [line.rstrip() for line in output.splitlines() if REASON_LINE.match(line) and line.strip() != "remote:"]
    reason = "\n".join(lines) or (output.strip().splitlines() or ["git failed"])[-1]
    if token:
        for secret in (token, base64.b64encode(f"x-access-token:{token}".encode()).decode()):
            reason = reason.replace(secret, "[token]")
    return reason[:1000]


def git(args: list[str], check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # None of the control plane's own GIT_* (a GIT_TRACE would print the header), nor any config but the repo's.
    base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    # No replace refs either: `git log` would follow them where a push does not.
    full_env = {**base, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull, "GIT_NO_REPLACE_OBJECTS": "1", "LC_ALL": "C", **(env or {})}
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS,
                          env=full_env, check=check)
