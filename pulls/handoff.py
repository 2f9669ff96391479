"""The branch hand-off: the ASGI app a sandbox's bridge pushes its session's branch to (HANDOFF_GIT_PATH), with
its bridge token. Outside Django's views, like the model proxy: the token is checked before a byte of the body is
read, the body streams into `git http-backend` within a size limit, and no web thread waits on git.

Only pushes are served, into the session's own repository (pulls/branches.py), which refuses force pushes and
deletions. A push that moved the branch is pushed on to the session's open pull request (a Celery task)."""

import asyncio
import logging

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


async def answer(send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


@database_sync_to_async
def session_for(token: str) -> tuple[int, str] | None:
    """(id, branch) of the session the live sandbox with this bridge token serves, or None."""
    sandbox = Sandbox.from_token(token) if token else None
    session = Session.objects.filter(sandbox=sandbox).values_list("pk", "branch").first() if sandbox else None
    return (session[0], session[1]) if session else None


class BranchHandoff:
    async def __call__(self, scope, receive, send) -> None:
        method, rest = scope["method"], scope["path"].removeprefix(PREFIX)
        query = scope.get("query_string", b"").decode("latin-1")
        if not git_http.allowed(method, rest, query):
            return await answer(send, 403, "Only pushes are served here.")
        found = await session_for(bearer_token(scope.get("headers", [])))
        if found is None:
            return await answer(send, 401, "Unknown or ended sandbox.", [(b"www-authenticate", b'Bearer realm="git"')])
        session_id, branch = found
        declared = header(scope.get("headers", []), b"content-length") or ""
        if declared.isascii() and declared.isdigit() and int(declared) > settings.GIT_HANDOFF_MAX_BYTES:
            return await answer(send, 413, "The push is larger than the hand-off's limit.")
        repo = await asyncio.to_thread(branches.session_repo, session_id)
        before = await asyncio.to_thread(branches.head_of, session_id, branch)
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        env = git_http.cgi_environment(repo, rest, method, query, headers)
        process = await asyncio.create_subprocess_exec(
            "git", "http-backend", env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                if not await feed(process, receive, settings.GIT_HANDOFF_MAX_BYTES):
                    process.kill()
                    await process.wait()
                    return await answer(send, 413, "The push is larger than the hand-off's limit.")
                output, errors = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            return await answer(send, 504, "The push took too long.")
        if errors:
            logger.info("git http-backend for session %s: %s", session_id, errors.decode(errors="replace")[:500])
        cgi = git_http.parse_cgi(output)
        await send({"type": "http.response.start", "status": cgi.status,
                    "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in cgi.headers]})
        await send({"type": "http.response.body", "body": cgi.body})
        if method == "POST" and await asyncio.to_thread(branches.head_of, session_id, branch) != before:
            await asyncio.to_thread(jobs.enqueue, "pulls.tasks.push_to_pull_request", session_id)


async def feed(process: asyncio.subprocess.Process, receive, limit: int) -> bool:
    """The request's body into the program, chunk by chunk; False once it passes `limit` bytes."""
    stdin = process.stdin
    assert stdin is not None  # started with stdin=PIPE
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            return False
        try:
            if chunk:
                stdin.write(chunk)
                await stdin.drain()
            if not message.get("more_body"):
                stdin.close()
                return True
        except (BrokenPipeError, ConnectionResetError):  # git stopped reading: its answer says why
            return True
