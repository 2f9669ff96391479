"""git's smart HTTP for the branch hand-off, through `git http-backend` (a CGI program that comes with git): what
a bridge's `git push` to HANDOFF_GIT_PATH asks, answered from the session's bare repository."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# A sandbox may only push (receive-pack): the repository holds nothing it does not have already.
ALLOWED = {("GET", "info/refs", "service=git-receive-pack"), ("POST", "git-receive-pack", "")}
MAX_PUSH_BYTES = 512 * 1024 * 1024
TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class CgiAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def allowed(method: str, rest: str, query: str) -> bool:
    return (method, rest, query if method == "GET" else "") in ALLOWED


def run_http_backend(repo: Path, rest: str, method: str, query: str, headers: dict[str, str],
                     body: BinaryIO, length: int) -> CgiAnswer:
    """Run `git http-backend` for one request to `repo` (`rest` is the path after the repository), its `length`
    bytes of body read from the file `body`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": str(repo.parent),
        "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": f"/{repo.name}/{rest}", "REQUEST_METHOD": method,
        "QUERY_STRING": query, "CONTENT_TYPE": headers.get("content-type", ""),
        "CONTENT_LENGTH": str(length), "REMOTE_USER": "sandbox", "REMOTE_ADDR": "127.0.0.1",
        "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo.parent),
    }
    if headers.get("content-encoding"):
        env["HTTP_CONTENT_ENCODING"] = headers["content-encoding"]
    if headers.get("git-protocol"):
        env["GIT_PROTOCOL"] = headers["git-protocol"]
    done = subprocess.run(["git", "http-backend"], stdin=body, capture_output=True, env=env, timeout=TIMEOUT_SECONDS)
    return parse_cgi(done.stdout)


def spool(source: BinaryIO, target: BinaryIO, limit: int) -> int | None:
    """Copy a request's body to a file, in chunks (a push can be large); None once it passes `limit` bytes."""
    total = 0
    while chunk := source.read(1024 * 1024):
        total += len(chunk)
        if total > limit:
            return None
        target.write(chunk)
    target.seek(0)
    return total


def parse_cgi(output: bytes) -> CgiAnswer:
    """A CGI program's output: header lines, a blank line, the body; the status from `Status:` (200 without)."""
    head, _, body = output.partition(b"\r\n\r\n")
    if not _:
        head, _, body = output.partition(b"\n\n")
    status, headers = 200, []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers.append((name.strip(), value.strip()))
    return CgiAnswer(status, headers, body)
