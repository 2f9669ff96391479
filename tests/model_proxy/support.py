"""Helpers of the model proxy's tests: request bodies in both wire formats, sandboxes with a token, one call
to the ASGI application as a sandbox makes it, and what the provider received."""

import asyncio
import json
import uuid

import httpx
import pytest

from inspect_site.asgi import application
from proxy_core.clients import aclose_loop_clients
from sandboxes.lifecycle import State
from sandboxes.models import Repo, RepoImage, Sandbox
from sessions.models import Session

TOOLS = [{"type": "function", "function": {"name": "write", "parameters": {"type": "object"}}}]
ANTHROPIC_TOOLS = [{"name": "write", "input_schema": {"type": "object"}}]

db = pytest.mark.django_db(transaction=True)  # the proxy reads sandboxes on another thread (or process)


def chat_body(prompt: str, stream: bool = True) -> dict:
    return {"model": "scripted", "stream": stream, "tools": TOOLS, "messages": [{"role": "user", "content": prompt}]}


def messages_body(prompt: str) -> dict:
    return {"model": "claude-test", "max_tokens": 1000, "stream": True, "tools": ANTHROPIC_TOOLS,
            "messages": [{"role": "user", "content": prompt}]}


def make_sandbox(state: str = State.RUNNING, session: bool = True) -> tuple[Sandbox, str]:
    """A sandbox (working for a session unless told otherwise: the proxy counts its tokens) and its model token."""
    repo = Repo.objects.create(name=f"repo-{uuid.uuid4().hex[:8]}", clone_url="file:///tmp/nowhere")
    image = RepoImage.objects.create(repo=repo, status=RepoImage.Status.READY)
    sandbox = Sandbox.objects.create(repo=repo, image=image, state=state, backend="local")
    if session:
        Session.objects.create(repo=repo, sandbox=sandbox)
    return sandbox, sandbox.issue_model_token()


def call(method: str, path: str, **kwargs) -> httpx.Response:
    """One request to the ASGI app, as a sandbox sends it: no cookies, no CSRF token."""

    async def go() -> httpx.Response:
        try:
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
                return await client.request(method, path, **kwargs)
        finally:
            await aclose_loop_clients()

    return asyncio.run(go())


def sse_data(text: str) -> list:
    return [json.loads(line[6:]) if line[6:] != "[DONE]" else "[DONE]"
            for line in text.splitlines() if line.startswith("data: ")]


def header(request: dict, name: str) -> str | None:
    """A header the provider received (names are case-insensitive)."""
    return next((v for k, v in request["headers"].items() if k.lower() == name.lower()), None)


def assert_clean_upstream(request: dict, token: str) -> None:
    for name, value in request["headers"].items():
        assert token not in value, f"the sandbox token reached the provider in {name}"
