"""A bridge process and what it talks to, for tests/bridge/test_bridge_process.py: a fake control plane (a
websockets server that checks the token, records every message and acks events) and the bridge started with
the environment a sandbox gives it."""

import asyncio
import json
import os
import subprocess
import sys
import threading
from http import HTTPStatus
from pathlib import Path

from sandboxes.tools import opencode_binary
from tests.support.model_server import ScriptedModelServer
from tests.support.waiting import eventually

BRIDGE_MAIN = Path(__file__).resolve().parents[2] / "bridge" / "main.py"
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
SANDBOX_ID = "sbx-test"
TOKEN = "sandbox-token-for-tests"


class FakeControlPlane:
    """A websockets server in a thread: checks the token, records every message, acks events."""

    def __init__(self, token: str):
        self.token = token
        self.messages: list[tuple[int, dict]] = []  # (connection number, message)
        self.refused = 0
        self.connections = 0
        self.auto_ack = True
        self.current = None
        self.command_ids = 0
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.call(self._start())

    def call(self, coroutine, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _start(self) -> None:
        from websockets.asyncio.server import serve

        self.server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check)
        self.port = self.server.sockets[0].getsockname()[1]

    def _check(self, connection, request):
        if request.path != f"/ws/sandbox/{SANDBOX_ID}/":
            return connection.respond(HTTPStatus.NOT_FOUND, "no such sandbox\n")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.refused += 1
            return connection.respond(HTTPStatus.FORBIDDEN, "bad token\n")
        return None

    async def _handle(self, ws) -> None:
        self.connections += 1
        number = self.connections
        self.current = ws
        async for raw in ws:
            message = json.loads(raw)
            self.messages.append((number, message))
            if message.get("type") == "event" and self.auto_ack:
                await ws.send(json.dumps({"type": "ack", "id": message["id"]}))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def mark(self) -> int:
        return len(self.messages)

    def command(self, name: str, **fields) -> int:
        self.command_ids += 1
        message = {"type": "command", "command_id": self.command_ids, "name": name, **fields}
        self.call(self.current.send(json.dumps(message)))
        return self.command_ids

    def ack(self, ids: list[str]) -> None:
        for event_id in ids:
            self.call(self.current.send(json.dumps({"type": "ack", "id": event_id})))

    def refuse(self, ids: list[str]) -> None:
        for event_id in ids:
            message = {"type": "refused", "id": event_id, "message": f"event {event_id}: refused by the test"}
            self.call(self.current.send(json.dumps(message)))

    def drop(self) -> None:
        self.call(self.current.close())

    def wait_for(self, predicate, since: int = 0, timeout: float = 30, what: str = "a message"):
        def found():
            return next((message for number, message in self.messages[since:] if predicate(number, message)), None)

        try:
            return eventually(found, timeout=timeout, what=what)
        except AssertionError:
            got = [m for _, m in self.messages[since:]][-15:]
            raise AssertionError(f"no {what} within {timeout} s; got {got}") from None

    def events(self, since: int = 0) -> list[dict]:
        seen, events = set(), []
        for _number, message in self.messages[since:]:
            if message.get("type") == "event" and message["id"] not in seen:
                seen.add(message["id"])
                events.append(message["event"])
        return events

    def wait_event(self, kind: str, since: int = 0, timeout: float = 30, **match) -> dict:
        def wanted(_n, m):
            return m.get("type") == "event" and m["event"]["kind"] == kind and all(
                m["event"].get(k) == v for k, v in match.items())
        return self.wait_for(wanted, since, timeout, f"{kind} event {match or ''}")["event"]

    def wait_result(self, command_id: int, timeout: float = 30) -> dict:
        return self.wait_for(lambda _n, m: m.get("type") == "command_result" and m["command_id"] == command_id,
                             0, timeout, f"result of command {command_id}")

    def stop(self) -> None:
        self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)


def bridge_env(control_plane: FakeControlPlane, model: ScriptedModelServer, tools: Path, workspace: Path,
               home: Path, **extra: str) -> dict[str, str]:
    config = {
        "provider": {"scripted": {
            "npm": "@ai-sdk/openai-compatible", "name": "Scripted",
            "options": {"baseURL": model.url + "/v1", "apiKey": TOKEN},
            "models": {"scripted": {"name": "Scripted", "tool_call": True}},
        }},
        "model": "scripted/scripted", "small_model": "scripted/scripted",
    }
    return {
        "PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": str(home),
        "INSPECT_CONTROL_PLANE_URL": control_plane.url,
        "INSPECT_SANDBOX_ID": SANDBOX_ID,
        "INSPECT_SANDBOX_TOKEN": TOKEN,
        "INSPECT_OPENCODE_CONFIG": json.dumps(config),
        "INSPECT_WORKSPACE": str(workspace),
        "INSPECT_TOOLS_DIR": str(tools),
        "INSPECT_OPENCODE_BIN": str(opencode_binary(tools)),
        "INSPECT_SYNCED": "0",
        "INSPECT_HEARTBEAT_SECONDS": "1",
        "npm_config_registry": "http://127.0.0.1:9/",  # a sandbox reaches no registry
        **extra,
    }


class Bridge:
    def __init__(self, env: dict[str, str], log: Path):
        self.log = log
        self.process = subprocess.Popen([PYTHON, str(BRIDGE_MAIN)], env=env, stdin=subprocess.DEVNULL,
                                        stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_bridge(control_plane: FakeControlPlane, model: ScriptedModelServer, tools: Path, root: Path) -> Bridge:
    """A bridge over a fresh git workspace, once it said hello."""
    workspace, home = root / "workspace", root / "home"
    workspace.mkdir()
    home.mkdir()
    (workspace / "README.md").write_text("# demo\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "initial"]):
        subprocess.run(["git", "-c", "user.email=dev@example.com", "-c", "user.name=Dev", *args],
                       cwd=workspace, check=True)
    process = Bridge(bridge_env(control_plane, model, tools, workspace, home), root / "bridge.log")
    process.workspace, process.home, process.model, process.control_plane = workspace, home, model, control_plane
    try:
        control_plane.wait_for(lambda _n, m: m.get("type") == "hello", timeout=20, what="hello")
    except AssertionError:
        process.stop()
        raise AssertionError(process.output()) from None
    return process


def opencode_pid(bridge: Bridge) -> int:
    return int(bridge.output().rsplit("OpenCode started (pid ", 1)[1].split(",")[0])
