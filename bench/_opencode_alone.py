"""OpenCode alone: the floor under `first_token_warm_p50`, measured in the same run (bench/sessions.py).

The same OpenCode binary, started and driven by the bridge's own `OpenCodeServer` with the config a sandbox
gets (`model_providers.providers.opencode_config`, the bridge's permission rules on top), but outside any sandbox
and straight on the scripted model: no bwrap, no bridge socket, no control plane, no model proxy. A prompt is
timed from `prompt_async` to OpenCode's first text delta on its own event stream."""

import asyncio
import subprocess
import threading
import time
from pathlib import Path

from bench._live import PROVIDER
from bridge.config import SESSION_RULES, BridgeConfig
from bridge.opencode import OpenCodeServer
from model_providers.providers import opencode_config
from sandboxes.tools import opencode_binary, tools_dir
from tests.support.model_server import ScriptedModelServer

START_TIMEOUT = 120.0
PROMPT_TIMEOUT = 60.0


class BareOpenCode:
    """`with BareOpenCode(model, origin_path, root) as bare:` then `bare.prompt(text)` (its marks in seconds)."""

    def __init__(self, model: ScriptedModelServer, origin: Path, root: Path):
        self.model = model
        self.home = root / "bare-opencode"
        self.workspace = self.home / "workspace"
        subprocess.run(["git", "clone", "-q", str(origin), str(self.workspace)], check=True)
        config = opencode_config("bench-no-key", f"{PROVIDER}/{PROVIDER}", proxy_base_url=model.url)
        self.bridge_config = BridgeConfig(
            control_plane_url="http://127.0.0.1:9", sandbox_id="bare", token="unused", opencode_config=config,
            workspace=self.workspace, home=self.home, tools_dir=tools_dir(), opencode_bin=opencode_binary(),
            synced=True, env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
        self.changed = threading.Condition()
        self.events: list[tuple[float, dict]] = []
        self.loop = asyncio.new_event_loop()
        # Not the bridge's warm-up: it prompts a model the control plane answers, and there is none here.
        self.server = OpenCodeServer(self.bridge_config, self.on_event, nothing_waiting=lambda: False)
        self.session_id: str | None = None

    def on_event(self, event: dict) -> None:
        with self.changed:
            self.events.append((time.monotonic(), event))
            self.changed.notify_all()

    def call(self, coroutine, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def __enter__(self) -> "BareOpenCode":
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.server.supervise(), self.loop)
        self.wait_for(lambda e: e.get("type") == "bridge.stream" and e.get("connected"), 0.0, START_TIMEOUT)
        created = self.call(self.server.request("POST", "/session", {"title": "bare", "permission": SESSION_RULES}))
        self.session_id = created["id"]
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)

    def wait_for(self, matches, since: float, timeout: float) -> float:
        """When (time.monotonic) the first event after `since` that `matches` arrived."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = next((at for at, event in self.events if at >= since and matches(event)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or not self.server.alive and self.server.generation:
                    raise RuntimeError("OpenCode alone gave no such event in time")
                self.changed.wait(min(left, 0.5))

    def prompt(self, text: str) -> dict[str, float]:
        """Seconds from sending the prompt to its request at the scripted model (`model_request`) and to
        OpenCode's first text delta (`first_token`); returns once OpenCode is idle."""
        mine = self.session_id

        def text_delta(event: dict) -> bool:
            props = event.get("properties") or {}
            return (event.get("type") == "message.part.delta" and props.get("sessionID") == mine
                    and props.get("field") == "text" and bool(props.get("delta")))

        def idle(event: dict) -> bool:
            return event.get("type") == "session.idle" and (event.get("properties") or {}).get("sessionID") == mine

        body = {"parts": [{"type": "text", "text": text}], "model": {"providerID": PROVIDER, "modelID": PROVIDER}}
        start = time.monotonic()
        self.call(self.server.request("POST", f"/session/{mine}/prompt_async", body))
        first = self.wait_for(text_delta, start, PROMPT_TIMEOUT)
        self.wait_for(idle, start, PROMPT_TIMEOUT)
        marks = {"first_token": first - start}
        calls = [r["at"] for r in list(self.model.requests) if r["at"] >= start and r["body"].get("tools")]
        if calls:
            marks["model_request"] = calls[0] - start
        return marks
