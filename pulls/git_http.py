"""git's smart HTTP for the branch hand-off, through `git http-backend` (a CGI program that comes with git): the
requests a bridge's `git push` to HANDOFF_GIT_PATH makes, as pure functions around the program's environment and
output. pulls/handoff.py serves them."""

import os
from dataclasses import dataclass
from pathlib import Path

# A sandbox may only push (receive-pack): the repository holds nothing it does not have already.
ALLOWED = {("GET", "info/refs", "service=git-receive-pack"), ("POST", "git-receive-pack", "")}


@dataclass(frozen=True)
class CgiAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def allowed(method: str, rest: str, query: str) -> bool:
    return (method, rest, query if method == "GET" else "") in ALLOWED


def cgi_environment(repo: Path, rest: str, method: str, query: str, headers: dict[str, str]) -> dict[str, str]:
    """`git http-backend`'s environment for one request to `repo` (`rest`: the path after the repository).
    Without a Content-Length (a chunked push), it reads the body to its end."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": str(repo.parent),
        "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": f"/{repo.name}/{rest}", "REQUEST_METHOD": method,
        "QUERY_STRING": query, "CONTENT_TYPE": headers.get("content-type", ""), "REMOTE_USER": "sandbox",
        "REMOTE_ADDR": "127.0.0.1", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo.parent),
    }
    if headers.get("content-length", "").isascii() and headers.get("content-length", "").isdigit():
        env["CONTENT_LENGTH"] = headers["content-length"]
    if headers.get("content-encoding"):
        env["HTTP_CONTENT_ENCODING"] = headers["content-encoding"]
    if headers.get("git-protocol"):
        env["GIT_PROTOCOL"] = headers["git-protocol"]
    return env


def parse_cgi(output: bytes) -> CgiAnswer:
    """A CGI program's output: header lines, a blank line, the body; the status from `Status:` (200 without).
    No output at all (the program failed) is a 500."""
    if not output:
        return CgiAnswer(500, [("Content-Type", "text/plain")], b"git http-backend failed\n")
    head, found, body = output.partition(b"\r\n\r\n")
    if not found:
        head, _, body = output.partition(b"\n\n")
    status, headers = 200, []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers.append((name.strip(), value.strip()))
    return CgiAnswer(status, headers, body)
