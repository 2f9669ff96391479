"""The branch hand-off: the ASGI app a sandbox's bridge pushes its session's branch to (HANDOFF_GIT_PATH), with
its bridge token. Outside Django's views, like the model proxy: the token is checked before a byte of the body is
read, the body streams into `git http-backend` within a size limit, and no web thread waits on git.

Only pushes are served, into the session's own repository (pulls/branches.py), which refuses force pushes and
deletions. A push that moved the branch is pushed on to the session's open pull request (a Celery task)."""

import asyncio
import logging
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from channels.db import database_sync_to_async
from django.conf import settings

from bridge.protocol import HANDOFF_GIT_PATH
from proxy_core.headers import bearer_token, header
from pulls import branches, git_http
from sandboxes import jobs
from sandboxes.models import Sandbox
from sessions.models import Session

logger = logging.getLogger(__name__)
PREFIX = HANDOFF_GIT_PATH + "/"
TIMEOUT_SECONDS = 300
HTTP_BACKEND = os.path.join(subprocess.run(["git", "--exec-path"], capture_output=True, text=True,
                                           check=True).stdout.strip(), "git-http-backend")


async def answer(send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class Target:
    session_id: int
    branch: str
    repo_id: int
    clone_url: str
    default_branch: str


@database_sync_to_async
def target_for(token: str) -> Target | None:
    """The session the live sandbox with this bridge token serves, or None."""
    sandbox = Sandbox.from_token(token) if token else None
    session = Session.objects.select_related("repo").filter(sandbox=sandbox).first() if sandbox else None
    if session is None:
        return None
    return Target(session.pk, session.branch, session.repo_id, session.repo.clone_url, session.repo.default_branch)


def repository_for(target: Target) -> Path:
    """The session's repository; the first time, borrowing the objects of the repo's default branch."""
    if (branches.repo_path(target.session_id) / "HEAD").exists():
        return branches.repo_path(target.session_id)
    mirror = branches.update_mirror(target.repo_id, target.clone_url, target.default_branch)
    return branches.session_repo(target.session_id, mirror)


class BranchHandoff:
    async def __call__(self, scope, receive, send) -> None:
        method, rest = scope["method"], scope["path"].removeprefix(PREFIX)
        query = scope.get("query_string", b"").decode("latin-1")
        if not git_http.allowed(method, rest, query):
            return await answer(send, 403, "Only pushes are served here.")
        target = await target_for(bearer_token(scope.get("headers", [])))
        if target is None:
            return await answer(send, 401, "Unknown or ended sandbox.", [(b"www-authenticate", b'Bearer realm="git"')])
        declared = header(scope.get("headers", []), b"content-length") or ""
        if declared.isascii() and declared.isdigit() and int(declared) > settings.GIT_HANDOFF_MAX_BYTES:
            return await answer(send, 413, "The push is larger than the hand-off's limit.")
        repo = await asyncio.to_thread(repository_for, target)
        before = await asyncio.to_thread(branches.head_of, target.session_id, target.branch)
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        env = git_http.cgi_environment(repo, rest, method, query, headers)
        # git-http-backend itself (not `git http-backend`, which runs it as a child), in a process group of its
        # own, so that a push cut short ends with everything it started.
        process = await asyncio.create_subprocess_exec(
            HTTP_BACKEND, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        finished = False
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                fed, output_errors = await asyncio.gather(
                    feed(process, receive, settings.GIT_HANDOFF_MAX_BYTES), read_all(process))
            finished = fed
        except TimeoutError:
            return await answer(send, 504, "The push took too long.")
        finally:
            if not finished:
                await end_group(process)
        if not fed:
            return await answer(send, 413, "The push is larger than the hand-off's limit.")
        output, errors = output_errors
        if errors:
            logger.info("git http-backend for session %s: %s", target.session_id, errors.decode(errors="replace")[:500])
        cgi = git_http.parse_cgi(output)
        await send({"type": "http.response.start", "status": cgi.status,
                    "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in cgi.headers]})
        await send({"type": "http.response.body", "body": cgi.body})
        if method == "POST" and await asyncio.to_thread(branches.head_of, target.session_id, target.branch) != before:
            await asyncio.to_thread(jobs.enqueue, "pulls.tasks.push_to_pull_request", target.session_id)


async def read_all(process: asyncio.subprocess.Process) -> tuple[bytes, bytes]:
    """The program's output and errors, read while its input is still being fed (so neither pipe fills up)."""
    assert process.stdout is not None and process.stderr is not None  # started with PIPEs
    output, errors = await asyncio.gather(process.stdout.read(), process.stderr.read())
    await process.wait()
    return output, errors


async def end_group(process: asyncio.subprocess.Process) -> None:
    """End the program and whatever it started (receive-pack, index-pack): TERM, then KILL."""
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), grace)
            break
        except TimeoutError:
            continue


async def feed(process: asyncio.subprocess.Process, receive, limit: int) -> bool:
    """The request's body into the program, chunk by chunk; False once it passes `limit` bytes (or the client
    left). Its input is closed either way."""
    stdin = process.stdin
    assert stdin is not None  # started with stdin=PIPE
    total = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return False
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                return False
            if chunk:
                stdin.write(chunk)
                await stdin.drain()
            if not message.get("more_body"):
                return True
    except (BrokenPipeError, ConnectionResetError):  # the program stopped reading: its answer says why
        return True
    finally:
        stdin.close()
