"""The bridge's service supervisor with real processes: states reported, failures explained, restarts."""

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.management import call_command
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bridge.config import BridgeConfig
from bridge.opencode import free_port
from bridge.protocol import SERVICE_SECRET_ENV, vscode_facts
from bridge.services import Plan, Service, Step, exists, http_ok, tcp_open
from bridge.workspace import Workspace, secret_cookie, workbench_ready
from sandboxes.tools import tools_dir, vscode_dir

pytestmark = pytest.mark.sandbox


class Reports:
    def __init__(self):
        self.items: list[dict] = []
        self.changed = asyncio.Event()

    def __call__(self, event: dict) -> None:
        self.items.append(event)
        self.changed.set()

    async def until(self, name: str, state: str, timeout: float = 20) -> dict:
        async def wait() -> dict:
            while True:
                found = [e for e in self.items if e["name"] == name and e["state"] == state]
                if found:
                    return found[-1]
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    def states(self, name: str) -> list[str]:
        return [e["state"] for e in self.items if e["name"] == name]


def web_server(port: int, folder: Path) -> Plan:
    return Plan([Step([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                       "--directory", str(folder)])], port, ready=http_ok(port, "/"))


def service(tmp_path: Path, plan, reports: Reports, names=("web",), gates=()) -> Service:
    return Service("web", list(names), plan, reports, {"PATH": "/usr/bin:/bin"}, tmp_path, tmp_path / "logs", gates)


async def supervised(svc: Service):
    task = asyncio.create_task(svc.supervise())
    return task


async def stop(svc: Service, task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await svc.stop_processes()


def test_a_service_reports_starting_then_ready_with_its_port_and_serves(tmp_path):
    async def scenario():
        reports = Reports()
        port = free_port()
        svc = service(tmp_path, lambda: web_server(port, tmp_path), reports)
        task = await supervised(svc)
        ready = await reports.until("web", "ready")
        assert ready == {"kind": "service", "name": "web", "state": "ready", "reason": "", "port": port}
        assert await tcp_open(port)
        assert reports.states("web") == ["starting", "ready"]
        await stop(svc, task)
        assert not await tcp_open(port)

    asyncio.run(scenario())


def test_a_crash_after_ready_is_reported_with_the_end_of_its_log_and_a_restart_brings_it_back(tmp_path):
    async def scenario():
        reports = Reports()
        marker = tmp_path / "crash"
        script = (f"import os, sys, time; print('serving', flush=True)\n"
                  f"while not os.path.exists({str(marker)!r}): time.sleep(0.05)\n"
                  "print('database connection lost', flush=True); sys.exit(3)")
        ready_file = tmp_path / "logs" / "web.log"
        plan = lambda: Plan([Step([sys.executable, "-c", script])], None, ready=exists(ready_file))  # noqa: E731
        svc = service(tmp_path, plan, reports)
        task = await supervised(svc)
        await reports.until("web", "ready")
        marker.touch()
        failed = await reports.until("web", "failed")
        assert failed["reason"].startswith("exited with code 3")
        assert "database connection lost" in failed["reason"]
        marker.unlink()
        svc.restart()
        await asyncio.sleep(0.2)
        assert reports.states("web")[-2:] == ["starting", "ready"]
        await stop(svc, task)

    asyncio.run(scenario())


def test_a_service_that_never_gets_ready_fails_with_the_time_it_was_given(tmp_path):
    async def scenario():
        reports = Reports()
        port = free_port()
        plan = lambda: Plan([Step(["sleep", "30"])], port, ready=lambda: tcp_open(port), ready_timeout=0.5)  # noqa: E731
        svc = service(tmp_path, plan, reports)
        task = await supervised(svc)
        failed = await reports.until("web", "failed")
        assert failed["reason"] == "not ready after 0.5 s"
        assert svc.processes == []  # the sleeper was stopped
        await stop(svc, task)

    asyncio.run(scenario())


def test_a_missing_program_fails_at_once_with_the_reason(tmp_path):
    async def scenario():
        reports = Reports()
        svc = service(tmp_path, lambda: Plan([Step(["/nonexistent/code-server"])], None), reports)
        task = await supervised(svc)
        failed = await reports.until("web", "failed")
        assert "cannot run /nonexistent/code-server" in failed["reason"]
        await stop(svc, task)

    asyncio.run(scenario())


def test_dev_servers_wait_for_the_sync_and_the_claim_and_report_once_per_port(tmp_path):
    async def scenario():
        reports = Reports()
        synced, claimed = asyncio.Event(), asyncio.Event()
        port = free_port()
        svc = service(tmp_path, lambda: web_server(port, tmp_path), reports,
                      names=(f"preview-{port}", "preview-1"),
                      gates=[(synced, "waiting for the workspace to sync"), (claimed, "waiting for a session")])
        task = await supervised(svc)
        waiting = await reports.until(f"preview-{port}", "starting")
        assert waiting["reason"] == "waiting for the workspace to sync"
        await asyncio.sleep(0.3)
        assert not await tcp_open(port)  # nothing started before the sync
        synced.set()
        await asyncio.sleep(0.3)
        assert [e["reason"] for e in reports.items if e["name"] == "preview-1"] == [
            "waiting for the workspace to sync", "waiting for a session"]
        assert not await tcp_open(port)  # nor before a session claimed the sandbox
        claimed.set()
        ready = await reports.until(f"preview-{port}", "ready")
        assert ready["port"] == port
        assert (await reports.until("preview-1", "ready"))["port"] == 1  # each name carries its own port
        await stop(svc, task)

    asyncio.run(scenario())


@pytest.mark.parametrize("ignores_sigterm", [False, True])
def test_stopping_a_service_ends_its_whole_process_group(tmp_path, ignores_sigterm):
    """The parent starts the real server as a child, as code-server starts its extension host (which
    outlives code-server's SIGTERM: what is left of the group is killed)."""
    async def scenario():
        reports = Reports()
        port = free_port()
        ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignores_sigterm else ""
        child = (f"import runpy, signal, sys; {ignore}sys.argv = ['http.server', '{port}', '--bind', '127.0.0.1']; "
                 f"runpy.run_module('http.server', run_name='__main__')")
        script = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"
        plan = lambda: Plan([Step([sys.executable, "-c", script])], port, ready=lambda: tcp_open(port))  # noqa: E731
        svc = service(tmp_path, plan, reports)
        task = await supervised(svc)
        await reports.until("web", "ready")
        await stop(svc, task)
        await asyncio.sleep(0.2)
        assert not await tcp_open(port)

    asyncio.run(scenario())


def test_service_ports_are_free_and_where_the_control_plane_accepts_them():
    from bridge.protocol import SERVICE_PORTS
    from bridge.services import service_port

    ports = {service_port() for _ in range(20)}
    assert all(SERVICE_PORTS[0] <= port <= SERVICE_PORTS[1] for port in ports)


def test_service_ports_are_never_the_repos_dev_server_ports(monkeypatch):
    """A dev server may not listen yet when VS Code starts: its port must stay free for it."""
    from bridge import services

    dev, other = free_port(), free_port()
    picks = iter([dev, dev, other])
    monkeypatch.setattr(services.random, "randint", lambda *_: next(picks))
    assert services.service_port(avoid=[dev]) == other


@pytest.fixture(scope="module")
def tools() -> Path:
    call_command("install_sandbox_tools")
    return tools_dir()


def test_vs_code_is_ready_only_once_its_workbench_page_was_served(tmp_path, tools):
    """code-server loads VS Code's server on the first page request: the bridge makes it, not the browser."""
    async def scenario():
        reports = Reports()
        workspace = tmp_path / "workspace"
        workspace.mkdir()
        (workspace / "README.md").write_text("# demo\n")
        config = BridgeConfig.from_env({
            "INSPECT_CONTROL_PLANE_URL": "http://cp", "INSPECT_SANDBOX_ID": "1", "INSPECT_SANDBOX_TOKEN": "t",
            "HOME": str(tmp_path / "home"), "INSPECT_WORKSPACE": str(workspace), "INSPECT_TOOLS_DIR": str(tools),
            "PATH": os.environ["PATH"], SERVICE_SECRET_ENV: "s3cret",
        })
        bridge = Workspace(config, reports)
        svc = Service("ide", ["ide"], bridge.ide_plan, reports, config.service_env(), workspace, tmp_path / "logs")
        task = await supervised(svc)
        ready = await reports.until("ide", "ready", timeout=60)
        # code-server records the page's query once VS Code's server is loaded and before it answers.
        settings = json.loads((tmp_path / "home/.local/share/code-server/coder.json").read_text())
        assert settings["query"] == {"folder": str(workspace)}
        # What the control plane needs to render VS Code's page while it starts (ide/workbench_page.py).
        product = json.loads((vscode_dir(tools) / "product.json").read_text())
        data = str(tmp_path / "home/.local/share/code-server")
        assert vscode_facts(config.tools_dir, config.home, config.workspace)["vscode"] == {
            "commit": product["commit"], "folder": str(workspace), "data": data}
        page = f"/?folder={quote(str(workspace), safe='')}"
        assert await http_ok(ready["port"], page, timeout=5, status=200, headers=secret_cookie("ide", "s3cret"))()
        # Without the service secret (or with another), code-server sends to its login page.
        for headers in ({}, secret_cookie("ide", "guess"), {"Cookie": "code-server-session=s3cre"}):
            assert await http_ok(ready["port"], page, timeout=5, status=302, headers=headers)()
        await stop(svc, task)

    asyncio.run(scenario())


def test_vs_code_is_not_ready_while_its_workbench_page_fails(tmp_path):
    async def scenario():
        reports = Reports()
        port = free_port()
        # Healthy, but every page answers 500 (as code-server does when VS Code's server fails to load).
        script = ("import http.server as h\n"
                  "class H(h.BaseHTTPRequestHandler):\n"
                  "    def do_GET(self):\n"
                  "        self.send_response(200 if self.path == '/healthz' else 500); self.end_headers()\n"
                  f"h.HTTPServer(('127.0.0.1', {port}), H).serve_forever()")
        plan = lambda: Plan([Step([sys.executable, "-c", script])], port, ready=workbench_ready(port, tmp_path, "s"),  # noqa: E731
                            ready_timeout=1)
        svc = service(tmp_path, plan, reports)
        task = await supervised(svc)
        failed = await reports.until("web", "failed")
        # The reason ends with the service's log: here the server's own lines, the page's 500 among them.
        assert failed["reason"].startswith("not ready after 1 s: ")
        assert f'"GET /?folder={quote(str(tmp_path), safe="")} HTTP/1.1" 500' in failed["reason"]
        await stop(svc, task)

    asyncio.run(scenario())


def sleeper() -> Plan:
    return Plan([Step([sys.executable, "-c", "import time; time.sleep(60)"])], None)


@pytest.fixture
def runtime(tmp_path, monkeypatch) -> Path:
    """The bridge's runtime folder (its logs, the tool's socket) under tmp_path, not the host's /tmp/inspect."""
    import bridge.workspace as workspace_module

    monkeypatch.setattr(workspace_module, "RUNTIME", tmp_path / "runtime")
    monkeypatch.setattr(workspace_module, "TOOL_SOCKET", tmp_path / "runtime/bridge.sock")
    return tmp_path / "runtime"


def workspace_config(tmp_path: Path, synced: bool, services: dict) -> BridgeConfig:
    (tmp_path / "home").mkdir(exist_ok=True)
    return BridgeConfig.from_env({
        "INSPECT_CONTROL_PLANE_URL": "http://cp", "INSPECT_SANDBOX_ID": "1", "INSPECT_SANDBOX_TOKEN": "t",
        "HOME": str(tmp_path / "home"), "INSPECT_WORKSPACE": str(tmp_path), "INSPECT_SYNCED": "1" if synced else "0",
        "INSPECT_SERVICES": json.dumps(services), "PATH": os.environ["PATH"],
    })


async def supervise_ide_and_desktop(bridge: Workspace, port: int, folder: Path) -> list[asyncio.Task]:
    """The bridge's VS Code (a web server on `port`) and desktop (a sleeper), supervised."""
    bridge.find("ide").plan = lambda: web_server(port, folder)
    bridge.find("desktop").plan = sleeper
    return [await supervised(bridge.find("ide")), await supervised(bridge.find("desktop"))]


async def stop_ide_and_desktop(bridge: Workspace, tasks: list[asyncio.Task]) -> None:
    for svc, task in zip((bridge.find("ide"), bridge.find("desktop")), tasks, strict=True):
        await stop(svc, task)


@pytest.mark.parametrize("synced", [True, False])
def test_a_restored_sandbox_starts_vs_code_and_the_desktop_once_the_agent_started(tmp_path, runtime, synced):
    """A restore is there for a follow-up prompt that waits for OpenCode's start; VS Code and the desktop
    starting beside it on two cores delayed its first token. A new sandbox starts them at once."""
    async def scenario():
        reports = Reports()
        started = asyncio.Event()
        bridge = Workspace(workspace_config(tmp_path, synced, {"ide": True, "desktop": True}), reports, started)
        bridge.desktop_after_ide = 0
        port = free_port()
        tasks = await supervise_ide_and_desktop(bridge, port, tmp_path)
        if synced:
            waiting = await reports.until("ide", "starting")
            assert waiting["reason"] == "waiting for the agent to start"
            await asyncio.sleep(0.3)
            assert not await tcp_open(port) and reports.states("desktop") == ["starting"]
            started.set()
        assert (await reports.until("ide", "ready"))["port"] == port
        await reports.until("desktop", "ready")
        await stop_ide_and_desktop(bridge, tasks)

    asyncio.run(scenario())


def test_a_new_sandboxs_desktop_starts_a_while_after_vs_code_is_ready(tmp_path, runtime):
    """The browser's workbench connects to VS Code as soon as it is ready: the desktop's Chromium waits."""
    async def scenario():
        reports = Reports()
        bridge = Workspace(workspace_config(tmp_path, False, {"ide": True, "desktop": True}), reports)
        bridge.desktop_after_ide = 0.5
        tasks = await supervise_ide_and_desktop(bridge, free_port(), tmp_path)
        waiting = await reports.until("desktop", "starting")
        assert waiting["reason"] == "waiting for VS Code to start"
        await reports.until("ide", "ready")
        ready_at = time.monotonic()
        await reports.until("desktop", "ready")
        assert time.monotonic() - ready_at >= 0.45
        await stop_ide_and_desktop(bridge, tasks)

    asyncio.run(scenario())


def test_a_restored_sandbox_starts_its_services_after_a_while_if_the_agent_never_starts(tmp_path, runtime):
    async def scenario():
        reports = Reports()
        started = asyncio.Event()
        bridge = Workspace(workspace_config(tmp_path, True, {"desktop": True}), reports, started)
        bridge.agent_start_wait = 0.3
        bridge.find("desktop").plan = sleeper
        task = asyncio.create_task(bridge.run())
        waiting = await reports.until("desktop", "starting")
        assert waiting["reason"] == "waiting for the agent to start" and not started.is_set()
        await reports.until("desktop", "ready", timeout=5)
        assert started.is_set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bridge.stop()

    asyncio.run(scenario())


def test_the_desktops_socket_opens_only_with_the_service_secret(tmp_path, runtime):
    """websockify as the desktop's plan runs it, before a stand-in for x11vnc's unix socket."""
    async def scenario():
        config = workspace_config(tmp_path, True, {"desktop": True})
        config.service_secret = "s3cret"
        plan = Workspace(config, Reports()).desktop_plan()
        step = next(step for step in plan.steps if step.argv[0] == "websockify")
        vnc = Path(next(arg for arg in step.argv if arg.startswith("--unix-target=")).partition("=")[2])

        async def greet(reader, writer):
            writer.write(b"RFB 003.008\n")
            await writer.drain()
            writer.close()

        screen = await asyncio.start_unix_server(greet, path=str(vnc))
        process = await asyncio.create_subprocess_exec(*step.argv, env={**config.service_env(), **step.env},
                                                       stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not await tcp_open(plan.port):
                assert time.monotonic() < deadline, "websockify did not listen"
                await asyncio.sleep(0.1)
            url = f"ws://127.0.0.1:{plan.port}/websockify"
            for cookie in ("", "inspect-desktop-secret=guess", "inspect-desktop-secret=s3cre", "s3cret=s3cret"):
                with pytest.raises(InvalidStatus) as refused:
                    await connect(url, subprotocols=["binary"], additional_headers={"Cookie": cookie} if cookie else {})
                assert refused.value.response.status_code == 403
            async with connect(url, subprotocols=["binary"],
                               additional_headers={"Cookie": "theme=a; inspect-desktop-secret=s3cret"}) as socket:
                assert await asyncio.wait_for(socket.recv(), 10) == b"RFB 003.008\n"
        finally:
            process.terminate()
            await process.wait()
            screen.close()

    asyncio.run(scenario())
