"""The git side of the GitHub double: bare repositories on disk, served over smart HTTP by `git http-backend`
(run as a CGI script, as a web server would), with GitHub's refusal for protected branches."""

import base64
import binascii
import os
import shlex
import subprocess
from pathlib import Path

# The first commit of every repository, made by a fixed author at a fixed time: its hash is the same each run.
FIXED_AUTHOR = {"GIT_AUTHOR_NAME": "GitHub Double", "GIT_AUTHOR_EMAIL": "double@example.com",
                "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_NAME": "GitHub Double",
                "GIT_COMMITTER_EMAIL": "double@example.com", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}


def git_env(**extra: str) -> dict[str, str]:
    """Git away from the developer's own configuration (credential helpers, hooks paths, signing)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C", **extra}


def git(git_dir: Path, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["git", f"--git-dir={git_dir}", *args], input=stdin, capture_output=True,
                          env=env or git_env(), check=True, timeout=30)
    return done.stdout.decode().strip()


def create_bare(path: Path, default_branch: str) -> None:
    """A bare repository that takes pushes over HTTP, refuses force pushes, and holds one commit (README.md)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "--bare", "--quiet", "-b", default_branch, str(path)], env=git_env(),
                   check=True, capture_output=True, timeout=30)
    git(path, "config", "http.receivepack", "true")
    git(path, "config", "receive.denyNonFastForwards", "true")
    # Plumbing rather than a work tree: nothing to clean up, and the commit is exactly what we say.
    blob = git(path, "hash-object", "-w", "--stdin", stdin=f"# {path.parent.name}/{path.stem}\n".encode())
    tree = git(path, "mktree", stdin=f"100644 blob {blob}\tREADME.md\n".encode())
    commit = git(path, "commit-tree", tree, "-m", "Initial commit", env=git_env(**FIXED_AUTHOR))
    git(path, "update-ref", f"refs/heads/{default_branch}", commit)


def write_protection_hook(path: Path, branches: set[str]) -> None:
    """A pre-receive hook that refuses any update of these branches with GitHub's own words; git prefixes
    what a hook prints with "remote: ", so the pusher reads exactly what GitHub would have said."""
    patterns = "|".join(shlex.quote(f"refs/heads/{branch}") for branch in sorted(branches))
    hook = path / "hooks" / "pre-receive"
    hook.write_text(f"""#!/bin/sh
status=0
while read old new ref; do
  case "$ref" in
    {patterns}) echo "error: GH006: Protected branch update failed for $ref." >&2; status=1;;
  esac
done
exit $status
""")
    hook.chmod(0o755)


def branch_sha(path: Path, branch: str) -> str | None:
    done = subprocess.run(["git", f"--git-dir={path}", "rev-parse", "--verify", "--quiet",
                           f"refs/heads/{branch}^{{commit}}"], capture_output=True, env=git_env(), timeout=30)
    if done.returncode != 0:
        return None
    return done.stdout.decode().strip() or None


def commits_between(path: Path, base: str, head: str) -> int:
    return int(git(path, "rev-list", "--count", f"{base}..{head}"))


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def token_of_basic(authorization: str) -> str | None:
    """The token in `Basic base64(user:token)`: GitHub takes any user name ("x-access-token" by convention)
    with the token as password, or the token as user name with an empty or "x-oauth-basic" password."""
    user, password = basic_credentials(authorization) or ("", "")
    if password in ("", "x-oauth-basic"):
        return user or None
    return password


def http_backend(project_root: Path, method: str, path: str, query: str, headers, body: bytes,
                 remote_user: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Runs `git http-backend` for one request and splits its CGI answer into status, headers and body."""
    env = git_env(GIT_PROJECT_ROOT=str(project_root), GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path,
                  REQUEST_METHOD=method, QUERY_STRING=query, CONTENT_TYPE=headers.get("Content-Type", ""),
                  CONTENT_LENGTH=str(len(body)), REMOTE_USER=remote_user, REMOTE_ADDR="127.0.0.1",
                  SERVER_PROTOCOL="HTTP/1.0")
    # Gzipped bodies (git compresses large upload-pack requests) are unpacked by http-backend itself.
    for header, variable in (("Content-Encoding", "HTTP_CONTENT_ENCODING"), ("Git-Protocol", "HTTP_GIT_PROTOCOL")):
        if headers.get(header):
            env[variable] = headers[header]
    done = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env, timeout=120)
    head, _, payload = done.stdout.partition(b"\r\n\r\n")
    if not _:  # some CGI writers end header lines with a bare newline
        head, _, payload = done.stdout.partition(b"\n\n")
    status, answer_headers = 200, []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            answer_headers.append((name.strip(), value.strip()))
    if done.returncode != 0 and not done.stdout:
        return 500, [("Content-Type", "text/plain")], done.stderr
    return status, answer_headers, payload
