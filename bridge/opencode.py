"""The OpenCode server: start it, keep it running, call its HTTP API, read its event stream."""

import asyncio
import base64
import ctypes
import http.client
import json
import logging
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable

from . import pull_request_tool
from .config import SESSION_RULES, BridgeConfig, link_plugin_package
from .protocol import WARM_UP_MODEL, WARM_UP_PROVIDER

log = logging.getLogger("bridge.opencode")


class OpenCodeError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"OpenCode answered HTTP {status}: {body[:300]}")
        self.status = status


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_parent() -> None:
    """Runs in the child before exec: OpenCode gets SIGTERM if the bridge dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class OpenCodeServer:
    """`opencode serve` on a free 127.0.0.1 port with HTTP basic auth (a password only the bridge
    knows), restarted when it exits. Events of its `/event` stream are handed to `on_event` on the
    event loop, with `{"type": "bridge.stream", "connected": bool, "generation": n}` when the stream (re)connects
    or drops, and `{"type": "bridge.exited", "code": int}` when the process ended."""

    # OpenCode's start is on the way of a restored sandbox's first prompt: notice it serving within 50 ms
    # (a refused connection costs next to nothing; it was 200 ms, ~0.1 s lost on average).
    health_poll = 0.05

    def __init__(self, config: BridgeConfig, on_event: Callable[[dict], None],
                 nothing_waiting: Callable[[], bool] = lambda: True, on_warm: Callable[[], None] = lambda: None):
        self.config = config
        self.on_event = on_event
        self.nothing_waiting = nothing_waiting  # no command waits for OpenCode: time to warm it up
        self.on_warm = on_warm  # called when a warm-up ended (done or failed)
        self.password = secrets.token_urlsafe(24)
        self.port: int | None = None
        self.version: str | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.generation = 0
        self.stopping = False
        self._auth = "Basic " + base64.b64encode(f"opencode:{self.password}".encode()).decode()
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- process ---------------------------------------------------------------

    def prepare(self) -> None:
        xdg_config = self.config.home / ".config" / "opencode"
        try:
            pull_request_tool.install(xdg_config)
        except OSError as e:
            log.warning("could not install the create_pull_request tool: %s", e)
        for folder in (xdg_config, self.config.workspace / ".opencode"):
            try:
                if (folder == xdg_config or folder.is_dir()) and link_plugin_package(folder, self.config.tools_dir):
                    log.info("linked the plugin package into %s", folder)
            except OSError as e:  # OpenCode still runs; its first prompt may wait for an npm install
                log.warning("could not link the plugin package into %s: %s", folder, e)

    async def supervise(self) -> None:
        self._loop = asyncio.get_running_loop()
        backoff = 1.0
        while not self.stopping:
            started = time.monotonic()
            code = await self._run_once()
            if self.stopping:
                return
            self.on_event({"type": "bridge.exited", "code": code})
            if time.monotonic() - started > 60:
                backoff = 1.0
            log.warning("OpenCode exited with %s; restarting in %.0f s", code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _run_once(self) -> int | None:
        self.generation += 1
        generation = self.generation
        self.port = free_port()
        self.prepare()
        try:
            self.process = await asyncio.create_subprocess_exec(
                str(self.config.opencode_bin), "serve", "--port", str(self.port), "--hostname", "127.0.0.1",
                cwd=self.config.workspace, env=self.config.opencode_env(self.password),
                stdin=asyncio.subprocess.DEVNULL, stdout=2, stderr=2, preexec_fn=die_with_parent,
            )
        except OSError as e:
            log.error("cannot start OpenCode: %s", e)
            return None
        log.info("OpenCode started (pid %s, port %s)", self.process.pid, self.port)
        warm_up = None
        if await self._wait_healthy(60):
            threading.Thread(target=self._read_events, args=(generation,), daemon=True).start()
            if self.nothing_waiting():  # else the waiting prompt does the same work, without a rival
                warm_up = asyncio.create_task(self.warm_up())
        elif self.process.returncode is None:
            log.error("OpenCode did not become healthy in 60 s; killing it")
            self.process.kill()
        code = await self.process.wait()
        if warm_up is not None:
            warm_up.cancel()
        return code

    async def warm_up(self) -> None:
        """OpenCode sets up its project instance and model providers on first use, and loads its
        model-calling code on its first prompt: ~2 s of CPU that the first prompt would wait for. Done
        now, while the sandbox waits for one (a pooled sandbox, or a restore started while someone
        writes): the providers listed, then one throwaway prompt to the warm-up model, which the control
        plane's model proxy answers itself (model_providers/wires.py), so no provider is called."""
        started = time.monotonic()
        try:
            await self.request("GET", "/config/providers", timeout=60)
            if WARM_UP_PROVIDER in (self.config.opencode_config.get("provider") or {}):
                await self.warm_up_prompt()
            log.info("OpenCode warmed up in %.2f s", time.monotonic() - started)
        except (OSError, ValueError, OpenCodeError, http.client.HTTPException, TimeoutError) as e:
            log.warning("warming OpenCode up failed: %s", e)
        self.on_warm()

    async def warm_up_prompt(self, timeout: float = 30) -> None:
        session = await self.request("POST", "/session", {"title": "warm-up", "permission": SESSION_RULES})
        try:
            body = {"model": {"providerID": WARM_UP_PROVIDER, "modelID": WARM_UP_MODEL},
                    "parts": [{"type": "text", "text": "Reply with one word."}]}
            await self.request("POST", f"/session/{session['id']}/prompt_async", body)
            deadline = time.monotonic() + timeout
            while not await self.answered(session["id"]):
                if time.monotonic() > deadline:
                    raise TimeoutError("the warm-up prompt got no answer")
                await asyncio.sleep(0.05)
        finally:
            await self.request("DELETE", f"/session/{session['id']}")

    async def answered(self, session_id: str) -> bool:
        messages = await self.request("GET", f"/session/{session_id}/message")
        return any(m.get("info", {}).get("role") == "assistant" and (m["info"].get("time") or {}).get("completed")
                   for m in messages or [])

    async def _wait_healthy(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process and self.process.returncode is None:
            try:
                health = await self.request("GET", "/global/health", timeout=2)
                if isinstance(health, dict) and health.get("healthy"):
                    self.version = health.get("version")
                    return True
            except (OSError, ValueError, OpenCodeError, http.client.HTTPException):
                pass
            await asyncio.sleep(self.health_poll)
        return False

    async def stop(self) -> None:
        self.stopping = True
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    # --- HTTP ------------------------------------------------------------------

    async def request(self, method: str, path: str, body: object = None, timeout: float = 30) -> object:
        return await asyncio.to_thread(self._request, method, path, body, timeout)

    async def has_session(self, session_id: str) -> bool:
        try:
            await self.request("GET", f"/session/{session_id}")
        except OpenCodeError as e:
            if e.status not in (400, 404):
                raise
            return False
        return True

    def _request(self, method: str, path: str, body: object, timeout: float) -> object:
        if self.port is None:
            raise OSError("OpenCode is not running")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Authorization": self._auth, "Accept": "application/json"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            if response.status >= 400:
                raise OpenCodeError(response.status, raw.decode(errors="replace"))
            return json.loads(raw) if raw.strip() else None
        finally:
            conn.close()

    # --- events (a thread per process; it hands events to the loop) -----------

    def _emit(self, event: dict) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.on_event, event)

    def _read_events(self, generation: int) -> None:
        while not self.stopping and generation == self.generation and self.port is not None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=45)  # heartbeats every ~10 s
            try:
                conn.request("GET", "/event", headers={"Authorization": self._auth, "Accept": "text/event-stream"})
                response = conn.getresponse()
                if response.status != 200:
                    raise OpenCodeError(response.status, response.read(300).decode(errors="replace"))
                self._emit({"type": "bridge.stream", "connected": True, "generation": generation})
                data: list[str] = []
                while generation == self.generation:
                    line = response.readline()
                    if not line:
                        break
                    text = line.decode(errors="replace").rstrip("\r\n")
                    if text.startswith("data:"):
                        data.append(text[5:].lstrip(" "))
                    elif not text and data:
                        try:
                            self._emit(json.loads("\n".join(data)))
                        except ValueError:
                            log.warning("bad event from OpenCode: %.200s", data)
                        data = []
            except (OSError, OpenCodeError, http.client.HTTPException) as e:
                log.info("OpenCode event stream: %s", e)
            finally:
                conn.close()
            self._emit({"type": "bridge.stream", "connected": False, "generation": generation})
            time.sleep(0.3)
