"""A browser's view of a session over its socket, for end-to-end tests."""

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect


class Watcher:
    """A browser's view of a session: the socket, the events in order."""

    def __init__(self, live, session_id: int, headers: dict):
        self.url = live.url.replace("http", "ws") + f"/ws/sessions/{session_id}/"
        self.headers = headers
        self.events: list[dict] = []

    async def __aenter__(self):
        self.socket = await connect(self.url, additional_headers=self.headers)
        after = self.events[-1]["seq"] if self.events else 0
        await self.socket.send(json.dumps({"type": "subscribe", "after": after}))
        return self

    async def __aexit__(self, *exc):
        await self.socket.close()

    async def send(self, message: dict) -> dict:
        await self.socket.send(json.dumps(message))
        return await self.until(lambda m: m["type"] in ("ok", "error"))

    async def until(self, done, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                raw = await asyncio.wait_for(self.socket.recv(), max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                pytest.fail(f"timed out; events so far: {[(e['kind'], e['data']) for e in self.events]}")
            message = json.loads(raw)
            if message["type"] == "event":
                self.events.append(message)
            if done(message):
                return message

    def kinds(self) -> list[str]:
        return [e["kind"] for e in self.events]

    def of(self, kind: str) -> list[dict]:
        return [e["data"] for e in self.events if e["kind"] == kind]


def is_event(kind: str, **fields):
    def matches(m: dict) -> bool:
        return m["type"] == "event" and m["kind"] == kind and all(m["data"].get(k) == v for k, v in fields.items())

    return matches
