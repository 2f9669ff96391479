"""The workspace services the bridge runs beside OpenCode, each supervised and reporting its state.

  ide       code-server (VS Code in the browser) on the workspace folder
  desktop   Xvfb -> x11vnc (on a unix socket) -> websockify, with a Chromium on the screen
  dev       the repo's start commands; reported once per forwarded port as "preview-<port>"

A service reports `starting`, then `ready` (with the port the control plane proxies to) or `failed`
with the reason; a process that exits later turns it `failed`. Nothing restarts by itself: a
crash loop would hide the reason, so people restart a failed service from the page.
"""

import asyncio
import logging
import os
import random
import shlex
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .opencode import die_with_parent
from .protocol import SERVICE_PORTS, ServiceEvent

log = logging.getLogger("bridge.services")
SCREEN = (1280, 800)
LOG_TAIL_LINES = 4


class ServiceFailed(Exception):
    pass


@dataclass
class Step:
    """One process of a service; `ready` is awaited before the next step starts."""
    argv: list[str]
    ready: Callable[[], Awaitable[bool]] | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    steps: list[Step]
    port: int | None
    ready: Callable[[], Awaitable[bool]] | None = None  # checked once every step started
    ready_timeout: float = 60.0


async def tcp_open(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is the answer (code-server sends a request without its secret to its login)


OPENER = urllib.request.build_opener(NoRedirects)


def http_ok(port: int, path: str, timeout: float = 1.0, status: int | None = None,
            headers: dict[str, str] | None = None) -> Callable[[], Awaitable[bool]]:
    """A probe: GET `path` with `headers` answers below 500 (or exactly `status`) within `timeout` seconds,
    redirects not followed."""
    def probe() -> bool:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
        try:
            with OPENER.open(request, timeout=timeout) as response:
                code = response.status
        except urllib.error.HTTPError as error:
            code = error.code
        except OSError:
            return False
        return code == status if status else code < 500

    return lambda: asyncio.to_thread(probe)


def exists(path: Path) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return path.exists()

    return probe


class Service:
    def __init__(self, name: str, names: list[str], plan: Callable[[], Plan], emit: Callable[[dict], None],
                 env: dict[str, str], cwd: Path, log_dir: Path,
                 gates: Sequence[tuple[asyncio.Event | None, str]] = ()):
        self.name = name
        self.names = names  # what it is reported as (the dev servers: one name per port)
        self.plan = plan
        self.emit = emit
        self.env = env
        self.cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        self.processes: list[asyncio.subprocess.Process] = []
        self.state = "stopped"
        self.port: int | None = None
        # Started once each of these is set, in order, reported as starting with its reason meanwhile
        # (the dev servers: once the workspace is synced, and a pooled sandbox's once it is claimed).
        self.gates = [(event, reason) for event, reason in gates if event is not None]
        self.wanted = asyncio.Event()
        self.wanted.set()

    def report(self, state: str, reason: str = "") -> None:
        self.state = state
        for name in self.names:
            port = int(name.removeprefix("preview-")) if name.startswith("preview-") else self.port
            event: ServiceEvent = {"kind": "service", "name": name, "state": state, "reason": reason,
                                   "port": port if state == "ready" else None}
            self.emit(event)

    def restart(self) -> None:
        self.wanted.set()

    async def supervise(self) -> None:
        for gate, reason in self.gates:
            if not gate.is_set():
                self.report("starting", reason)
                await gate.wait()
        while True:
            await self.wanted.wait()
            self.wanted.clear()
            await self.stop_processes()
            self.report("starting")
            started = time.monotonic()
            try:
                await self.start()
            except ServiceFailed as e:
                await self.stop_processes()
                log.warning("%s failed to start: %s", self.name, e)
                self.report("failed", str(e))
                continue
            log.info("%s ready in %.2f s (port %s)", self.name, time.monotonic() - started, self.port)
            self.report("ready")
            exited = asyncio.create_task(self.first_exit())
            restart = asyncio.create_task(self.wanted.wait())
            try:
                done, _ = await asyncio.wait({exited, restart}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                exited.cancel()
                restart.cancel()
                await asyncio.gather(exited, restart, return_exceptions=True)
            if exited in done and restart not in done:
                reason = exited.result()
                await self.stop_processes()
                log.warning("%s stopped: %s", self.name, reason)
                self.report("failed", reason)

    async def start(self) -> None:
        plan = self.plan()
        self.port = plan.port
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + plan.ready_timeout
        for step in plan.steps:
            with open(self.log_path, "ab") as output:
                output.write(f"$ {shlex.join(step.argv)}\n".encode())
                output.flush()
                try:
                    process = await asyncio.create_subprocess_exec(
                        *step.argv, cwd=self.cwd, env={**self.env, **step.env}, stdin=asyncio.subprocess.DEVNULL,
                        stdout=output, stderr=output, start_new_session=True, preexec_fn=die_with_parent,
                    )
                except OSError as e:
                    raise ServiceFailed(f"cannot run {step.argv[0]}: {e}") from None
            self.processes.append(process)
            if step.ready is not None:
                await self.wait_until(step.ready, deadline, plan.ready_timeout)
        if plan.ready is not None:
            await self.wait_until(plan.ready, deadline, plan.ready_timeout)

    async def wait_until(self, probe: Callable[[], Awaitable[bool]], deadline: float, timeout: float) -> None:
        while not await probe():
            for process in self.processes:
                if process.returncode is not None:
                    raise ServiceFailed(self.exit_reason(process))
            if time.monotonic() > deadline:
                raise ServiceFailed(f"not ready after {timeout:g} s{self.log_tail()}")
            await asyncio.sleep(0.05)

    async def first_exit(self) -> str:
        waits = {asyncio.create_task(p.wait()): p for p in self.processes}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when cancelled (a restart): no wait may outlive it
            for task in waits:
                task.cancel()
        return self.exit_reason(waits[next(iter(done))])

    def exit_reason(self, process: asyncio.subprocess.Process) -> str:
        return f"exited with code {process.returncode}{self.log_tail()}"

    def log_tail(self) -> str:
        try:
            lines = [line for line in self.log_path.read_text(errors="replace").splitlines()
                     if line.strip() and not line.startswith("$ ")]
        except OSError:
            return ""
        tail = " | ".join(line.strip()[:200] for line in lines[-LOG_TAIL_LINES:])
        return f": {tail}" if tail else ""

    async def stop_processes(self) -> None:
        processes, self.processes = self.processes, []
        for process in reversed(processes):
            if process.returncode is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)  # its whole group: code-server's children too
                except ProcessLookupError:
                    pass
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 3)
            except TimeoutError:
                pass
            try:  # what is left of its group: VS Code's extension host outlives code-server's SIGTERM
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await process.wait()


def free_port_in(ports: tuple[int, int], avoid: Collection[int] = ()) -> int:
    """A free 127.0.0.1 port in the range `ports` (both ends included), none of `avoid`."""
    for _ in range(200):
        port = random.randint(*ports)
        if port in avoid:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise ServiceFailed(f"no free port in {ports[0]}-{ports[1]}")


def service_port(avoid: Collection[int] = ()) -> int:
    """A free port in SERVICE_PORTS, none of `avoid` (the repo's dev server ports, which may not be
    listening yet: taking one would make its dev server fail to start)."""
    return free_port_in(SERVICE_PORTS, avoid)


def free_display(first: int = 50) -> int:
    """A display number free in this sandbox's own /tmp (Xvfb listens on no TCP or abstract socket)."""
    number = first
    while Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
        number += 1
    return number

