"""What the bridge runs for people to see and take over: the services, and screenshots of them.

The agent's screenshot tool (an OpenCode custom tool the bridge writes into OpenCode's config
folder) calls the bridge over a unix socket in the sandbox's private /tmp; the image goes to the
control plane with the sandbox's token, which stores it as a session artifact.
"""

import asyncio
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

from . import screenshot
from .config import BridgeConfig
from .protocol import CODE_SERVER_BIN, SERVICE_SECRET_COOKIES, SERVICE_SECRET_ENV, vscode_data, vscode_facts
from .services import SCREEN, Plan, Service, Step, exists, free_display, http_ok, service_port, tcp_open

log = logging.getLogger("bridge.workspace")
RUNTIME = Path("/tmp/inspect")
TOOL_SOCKET = RUNTIME / "bridge.sock"
MAX_REQUEST_BYTES = 64 * 1024
BRIDGE_PARENT = Path(__file__).resolve().parent.parent  # on websockify's path, for bridge.desktop_auth
AGENT_STARTING = "waiting for the agent to start"

SCREENSHOT_TOOL = """\
import { tool } from "@opencode-ai/plugin"

// Written by the sandbox bridge: asks it for a screenshot, which people in the session see.
export default tool({
  description:
    "Take a screenshot of the sandbox's desktop, or of a web page such as the app's dev server " +
    "(for example http://127.0.0.1:3000/), to check visually what you built. People in the session see it.",
  args: {
    url: tool.schema.string().optional().describe("The page to capture; leave it out to capture the desktop"),
  },
  async execute(args) {
    const response = await fetch("http://bridge/screenshot", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ url: args.url ?? null }),
      unix: SOCKET_PATH,
    })
    const result = await response.json()
    if (!result.ok) throw new Error(result.error)
    return `Screenshot of ${result.source} (${result.width}x${result.height}) taken and shown in the session.`
  },
})
"""


# VS Code opens straight onto the workspace: no welcome page, trust prompt or update checks.
IDE_SETTINGS = {
    "workbench.startupEditor": "none",
    "security.workspace.trust.enabled": False,
    "update.mode": "none",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "telemetry.telemetryLevel": "off",
    "workbench.enableExperiments": False,
}


def write_default_settings(path: Path) -> None:
    """Only the first time: afterwards the settings are the user's (and kept in snapshots)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(IDE_SETTINGS, indent=2) + "\n")


def code_server_argv(tools_dir: Path, port: int, home: Path, folder: Path) -> list[str]:
    """code-server as the bridge runs it, with code_server_env. The control plane renders the page these flags
    give while it starts (ide/workbench_page.py), so a change here shows in tests/ide/test_workbench_page.py."""
    data = vscode_data(home)
    return [str(tools_dir / CODE_SERVER_BIN), "--bind-addr", f"127.0.0.1:{port}",
            "--auth", "password", "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
            "--disable-getting-started-override", "--user-data-dir", str(data),
            "--extensions-dir", str(data / "extensions"), "--config", str(home / ".config/code-server/config.yaml"),
            str(folder)]


def code_server_env(secret: str) -> dict[str, str]:
    """code-server's password mode with the service secret as the "hash": it then lets in exactly the requests
    whose `code-server-session` cookie equals the secret (the proxy adds it), and code-server takes the
    variable out of its own environment, so VS Code's terminals do not inherit it. The secret is no hash of
    any password, so its login page lets nobody in."""
    return {"HASHED_PASSWORD": secret}


def secret_cookie(service: str, secret: str) -> dict[str, str]:
    """The header the platform's proxy adds to a request for `service`, for the bridge's own probes."""
    return {"Cookie": f"{SERVICE_SECRET_COOKIES[service]}={secret}"}


def workbench_ready(port: int, folder: Path, secret: str) -> Callable[[], Awaitable[bool]]:
    """code-server answers /healthz, then its workbench page for `folder` answers 200. code-server loads
    VS Code's server on the first page request (~0.4 s); paying it here spares the first person to open
    the tab. A slow answer is retried until the plan's deadline."""
    health = http_ok(port, "/healthz")
    page = http_ok(port, "/?" + urlencode({"folder": str(folder)}), timeout=20, status=200,
                   headers=secret_cookie("ide", secret))

    async def probe() -> bool:
        return await health() and await page()

    return probe


class Workspace:
    agent_start_wait = 20.0  # a restored sandbox's services start at the latest this long after the bridge
    desktop_after_ide = 3.0  # the desktop starts this long after VS Code is ready

    def __init__(self, config: BridgeConfig, emit: Callable[[dict], None], agent_started: asyncio.Event | None = None):
        self.config = config
        self.emit = emit
        self.synced = asyncio.Event()
        if config.synced:
            self.synced.set()
        # A sandbox restored from a snapshot is there for a follow-up prompt, which waits for OpenCode's
        # start (seconds of CPU). On two cores, VS Code and the desktop (a whole Chromium) starting beside
        # it delayed that prompt's first token by a second or more: they start once OpenCode's first run
        # reached the model (or it was warmed up with nothing waiting), or after agent_start_wait.
        self.agent_started = agent_started if config.synced else None
        self.chromium = screenshot.find_chromium()
        self.framebuffer = RUNTIME / "framebuffer"
        self.services: list[Service] = []
        wanted = config.services
        env = config.service_env()
        logs = RUNTIME / "logs"
        # The desktop (Xvfb and a whole Chromium) waits for VS Code to settle: on two cores, starting
        # both at once delays the tab people open first by a second or more. Once VS Code is ready, the
        # browser's workbench (already loaded: ide/workbench_page.py) connects and lists the files: the
        # desktop waits desktop_after_ide seconds more, so that it does not take the CPU from that either.
        ide_settled = asyncio.Event()
        if wanted.get("ide"):
            facts = vscode_facts(config.tools_dir, config.home, config.workspace)

            def report_ide(event: dict) -> None:
                if event["state"] == "failed":
                    ide_settled.set()
                elif event["state"] == "ready" and not ide_settled.is_set():
                    asyncio.get_running_loop().call_later(self.desktop_after_ide, ide_settled.set)
                emit({**event, **facts})

            self.services.append(Service("ide", ["ide"], self.ide_plan, report_ide, env, config.workspace, logs,
                                         gates=[(self.agent_started, AGENT_STARTING)]))
        elif self.agent_started is not None:
            ide_settled = self.agent_started
        else:
            ide_settled.set()
        if wanted.get("desktop"):
            reason = "waiting for VS Code to start" if wanted.get("ide") else AGENT_STARTING
            self.services.append(Service("desktop", ["desktop"], self.desktop_plan, emit, env, config.home, logs,
                                         gates=[(ide_settled, reason)]))
        dev = wanted.get("dev") or {}
        # A pooled sandbox whose dev servers would take ports on a network other sandboxes share starts
        # them once a session claims it (the `claimed` command).
        self.claimed = asyncio.Event()
        if not dev.get("after_claim"):
            self.claimed.set()
        self.commands: list[str] = [c for c in dev.get("commands") or [] if isinstance(c, str) and c.strip()]
        self.ports: list[int] = [p for p in dev.get("ports") or [] if isinstance(p, int) and 0 < p < 65536]
        if self.commands:
            names = [f"preview-{port}" for port in self.ports] or ["dev"]
            self.services.append(Service("dev", names, self.dev_plan, emit, env, config.workspace, logs,
                                         gates=[(self.synced, "waiting for the workspace to sync"),
                                                (self.claimed, "waiting for a session to claim the sandbox")]))

    # --- plans ----------------------------------------------------------------------

    def fixed_port(self, service: str) -> int:
        """The port the platform forwards for `service` (sandboxes/bridge_launch.py), or a free one where
        it gave none (the bridge's own tests, a sandbox on the host's network)."""
        port = (self.config.services.get("ports") or {}).get(service)
        return port if isinstance(port, int) and 0 < port < 65536 else service_port(avoid=self.ports)

    def ide_plan(self) -> Plan:
        port = self.fixed_port("ide")
        data = vscode_data(self.config.home)
        write_default_settings(data / "User" / "settings.json")
        argv = code_server_argv(self.config.tools_dir, port, self.config.home, self.config.workspace)
        secret = self.config.service_secret
        return Plan([Step(argv, env=code_server_env(secret))], port,
                    ready=workbench_ready(port, self.config.workspace, secret))

    def desktop_plan(self) -> Plan:
        display, port = free_display(), self.fixed_port("desktop")
        vnc = RUNTIME / f"vnc-{display}.sock"
        vnc.unlink(missing_ok=True)
        self.framebuffer.mkdir(parents=True, exist_ok=True)
        width, height = SCREEN
        steps = [
            Step(["Xvfb", f":{display}", "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp",
                  "-nolisten", "local", "-fbdir", str(self.framebuffer)],
                 ready=exists(Path(f"/tmp/.X11-unix/X{display}"))),
            # VNC on a unix socket of the sandbox's own; only websockify's port is reachable.
            Step(["x11vnc", "-display", f":{display}", "-rfbport", "0", "-unixsock", str(vnc), "-nopw",
                  "-forever", "-shared", "-quiet",
                  "-nonap"],  # its naps when the screen is still made every round trip take 250 ms
                 ready=exists(vnc)),
            # Only handshakes with the sandbox's service secret (bridge/desktop_auth.py) reach the screen.
            Step(["websockify", "--auth-plugin", "bridge.desktop_auth.ServiceSecret", f"127.0.0.1:{port}",
                  f"--unix-target={vnc}"], ready=lambda: tcp_open(port),
                 env={"PYTHONPATH": str(BRIDGE_PARENT), SERVICE_SECRET_ENV: self.config.service_secret}),
        ]
        if self.chromium:
            start = f"http://127.0.0.1:{self.ports[0]}/" if self.ports else "about:blank"
            # --no-sandbox: Chromium's own sandbox needs namespaces the sandbox may not create; --test-type
            # hides the warning bar that flag brings, which people watching the desktop would see.
            steps.append(Step([self.chromium, "--no-sandbox", "--test-type", "--no-first-run", "--disable-sync",
                               "--disable-dev-shm-usage", "--disable-gpu", "--no-default-browser-check",
                               "--password-store=basic",
                               f"--user-data-dir={self.config.home}/.cache/inspect-desktop-browser",
                               "--window-position=0,0", f"--window-size={width},{height}", start],
                              env={"DISPLAY": f":{display}"}))
        return Plan(steps, port)

    def dev_plan(self) -> Plan:
        steps = [Step(["bash", "-lc", command]) for command in self.commands]
        ports = list(self.ports)

        async def all_listening() -> bool:
            return all([await tcp_open(port) for port in ports])

        return Plan(steps, None, ready=all_listening if ports else None, ready_timeout=300.0)

    # --- commands -----------------------------------------------------------------------

    def find(self, name: str) -> Service | None:
        return next((s for s in self.services if name == s.name or name in s.names), None)

    def restart(self, name: str) -> None:
        service = self.find(name)
        if service is None:
            raise ValueError(f"no service {name!r} in this sandbox")
        service.restart()

    async def run(self) -> None:
        """Never ends; a service or the tool that fails is reported, the bridge goes on."""
        if self.agent_started is not None:
            asyncio.get_running_loop().call_later(self.agent_start_wait, self.agent_started.set)
        try:
            await asyncio.to_thread(self.write_tool)
            server = await asyncio.start_unix_server(self.serve_tool, path=str(TOOL_SOCKET))
            TOOL_SOCKET.chmod(0o600)
        except OSError as e:
            log.error("the screenshot tool is not available: %s", e)
        await asyncio.gather(*(service.supervise() for service in self.services))
        await asyncio.Event().wait()
        server.close()

    async def stop(self) -> None:
        for service in self.services:
            await service.stop_processes()

    async def screenshot(self, target: str, taken_by: str) -> dict:
        """Take it, upload it to the control plane; what the upload answered plus the image's facts."""
        if target == "desktop":
            image, width, height = await asyncio.to_thread(screenshot.desktop, self.framebuffer / "Xvfb_screen0")
            source = "desktop"
        else:
            if target.startswith("preview-") and target.removeprefix("preview-").isdigit():
                target = f"http://127.0.0.1:{int(target.removeprefix('preview-'))}/"
            if not target.startswith(("http://", "https://")):
                raise screenshot.ScreenshotError("a screenshot is of the desktop, a preview-<port> or an http(s) URL")
            if not self.chromium:
                raise screenshot.ScreenshotError("no Chromium in this sandbox")
            image = await screenshot.page(target, self.chromium)
            width, height = screenshot.png_size(image)
            source = target
        answer = await asyncio.to_thread(self.upload, image, source, taken_by, width, height)
        return {**answer, "source": source, "width": width, "height": height}

    def upload(self, image: bytes, source: str, taken_by: str, width: int, height: int) -> dict:
        request = urllib.request.Request(
            self.config.control_plane_url.rstrip("/") + "/sessions/api/screenshots/", data=image, method="POST",
            headers={"Authorization": f"Bearer {self.config.token}", "Content-Type": "image/png",
                     "X-Screenshot-Source": source[:500], "X-Screenshot-Taken-By": taken_by[:150]},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:300]
            raise screenshot.ScreenshotError(f"the control plane refused the screenshot ({e.code}): {detail}") from None
        except OSError as e:
            raise screenshot.ScreenshotError(f"could not send the screenshot: {e}") from None

    # --- the agent's screenshot tool ----------------------------------------------------

    def write_tool(self) -> None:
        RUNTIME.mkdir(parents=True, exist_ok=True)
        folder = self.config.home / ".config/opencode/tools"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "screenshot.ts").write_text(SCREENSHOT_TOOL.replace("SOCKET_PATH", json.dumps(str(TOOL_SOCKET))))
        TOOL_SOCKET.unlink(missing_ok=True)

    async def serve_tool(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One HTTP/1.0-style request per connection: POST /screenshot {"url": ...}."""
        status, answer = 200, {}
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            length = int(headers.get("content-length") or 0)
            if not lines[0].startswith("POST /screenshot ") or not 0 <= length <= MAX_REQUEST_BYTES:
                status, answer = 404, {"ok": False, "error": "only POST /screenshot"}
            else:
                body = json.loads(await reader.readexactly(length) or b"{}")
                url = body.get("url") if isinstance(body, dict) else None
                answer = {"ok": True, **await self.screenshot(url or "desktop", "agent")}
        except (screenshot.ScreenshotError, ValueError) as e:
            answer = {"ok": False, "error": str(e)}
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, answer = 400, {"ok": False, "error": "incomplete request"}
        data = json.dumps(answer).encode()
        writer.write(f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                     "Connection: close\r\n\r\n".encode() + data)
        try:
            await writer.drain()
        finally:
            writer.close()
