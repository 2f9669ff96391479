"""Workspace figures on the live platform (the Daphnes behind the front proxy, a Celery worker, real
sandboxes with VS Code, the desktop and a dev server): sandbox ready -> VS Code usable in Chromium, the
desktop connected in noVNC, and a 5 MB static asset through the workspace proxy vs straight from the dev server.
See docs/benchmarks.md."""

import os
import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection
from django.test.utils import override_settings

from bench._common import goal, open_dir, p50, report, say, spread
from bench._fixtures import build, ready_sandbox, register, terminate_all
from bench._git import MB, Origin
from bench._live import Platform, delete_users, make_user
from bridge.protocol import SERVICE_SECRET_COOKIES
from sandboxes.backends import get_backend
from sandboxes.models import Sandbox
from sessions import member_requests
from sessions.models import Event, Session
from tests.support.live_server import free_port

IDE_RUNS = 5
DESKTOP_RUNS = 7
LOAD_RUNS = 5  # fresh browsers loading a running VS Code, through the proxy and straight, in turn
ASSET_RUNS = 21
REPO = "bench-workspace"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


def off_loop(function, *args):
    """Call ORM code that fans out events (async_to_sync) away from Playwright's event loop thread."""
    def call():
        try:
            return function(*args)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def service_ready_at(session_id: int, name: str, state: str = "ready") -> float | None:
    """When the session's log first had `name` in `state` (epoch seconds)."""
    event = Event.objects.filter(session_id=session_id, kind="service", data__name=name,
                                 data__state=state).order_by("seq").first()
    return event.created_at.timestamp() if event else None


def ready_at(session_id: int) -> float:
    """When the session's sandbox became ready (wall clock)."""
    def check():
        sandbox = Session.objects.select_related("sandbox").get(pk=session_id).sandbox
        return sandbox.ready_at.timestamp() if sandbox and sandbox.ready_at else None
    return wait_for(check, 120, "the sandbox to be ready")


def wait_usable(page) -> None:
    """VS Code's explorer lists the repo's files, and its frame is shown (it loads out of sight while
    VS Code starts)."""
    page.frame_locator("#ide-frame").locator(".explorer-folders-view .monaco-list-row").first.wait_for(
        state="visible", timeout=120_000)
    page.locator("#ide-frame").wait_for(state="visible", timeout=120_000)


WORKBENCH_MARKS = {"code/didStartRenderer": "page", "code/didLoadWorkbenchMain": "scripts run",
                   "code/didCreateSocketOK/Management": "server socket", "code/didResolveExplorer": "explorer"}


def workbench_marks(page) -> list[tuple[str, float]]:
    """When (epoch seconds) VS Code's frame reached its own performance marks."""
    frame = page.locator("#ide-frame").element_handle().content_frame()  # on the session's host: its own
    found = frame.evaluate("""names => names.map(n => {
        const m = performance.getEntriesByName(n)[0];
        return m ? (performance.timeOrigin + m.startTime) / 1000 : null;
    })""", list(WORKBENCH_MARKS))
    return [(label, at) for label, at in zip(WORKBENCH_MARKS.values(), found, strict=True) if at is not None]


# The session page's own thread: a timer every 20 ms notes how late each turn comes. A late turn is time
# the page answered nothing (its timeline, its prompt box, the desktop), whatever held its thread.
STALLS = """window.stalls = [];
let last = performance.now();
(function beat() {
    const now = performance.now();
    if (now - last > 70) window.stalls.push(now - last - 20);
    last = now;
    setTimeout(beat, 20);
})();"""


def ide_ready(platform: Platform, browser, user, repo, returning: bool = False) -> tuple[list[float], list[dict]]:
    """A new session each run: its page is open while the sandbox starts; the figure is from the
    sandbox's ready_at to VS Code's explorer listing the repo's files (the workbench talks to its server).
    Also, per run, how long the session page's own thread was held (stalls over 50 ms) until then.
    Each run in a fresh browser, or with `returning` all in one that opened a session once before (not
    counted): a person's next session, VS Code's files in the browser's cache."""
    samples, blocked = [], []
    kept = new_context(platform, browser, user) if returning else None
    for run in range(-1 if returning else 0, IDE_RUNS):
        created = time.time()
        session = off_loop(member_requests.create_session, repo, user, "justtext hello")
        page = open_page(kept or new_context(platform, browser, user))
        page.add_init_script(STALLS)
        opened = time.time()
        page.goto(f"{platform.browser_url}/sessions/{session.pk}/")
        wait_usable(page)
        usable = time.time()
        ready = ready_at(session.pk)
        stalls = page.evaluate("window.stalls")
        if run >= 0:
            samples.append(usable - ready)
            blocked.append({"longest": max(stalls, default=0.0), "total": sum(stalls)})
        service = service_ready_at(session.pk, "ide")
        starting = service_ready_at(session.pk, "ide", "starting")
        marks = ", ".join(f"{name} {at - ready:+.2f} s" for name, at in workbench_marks(page))
        say(f"ide{' (returning)' if returning else ''} run {run + 1}: {usable - ready:.2f} s after the sandbox was "
            f"ready (session created "
            f"{created - ready:+.2f} s, its page opened {opened - ready:+.2f} s, VS Code starting "
            f"{starting - ready:+.2f} s, code-server ready {service - ready:+.2f} s; the frame's {marks}; "
            f"the page's thread held {len(stalls)} times, {sum(stalls):.0f} ms in all, the longest "
            f"{max(stalls, default=0.0):.0f} ms)" + (" (not counted: the browser's first)" if run < 0 else ""))
        if kept:
            page.close()
        else:
            page.context.close()
        off_loop(terminate_all, repo)
    if kept:
        kept.close()
    return samples, blocked


def ide_ready_pooled(platform: Platform, browser, user, repo) -> list[float]:
    """The usual path: a warm sandbox (VS Code running already) claimed by a new session; from the
    claim (the sandbox is ready for this session) to VS Code's explorer listing the repo."""
    samples = []
    for run in range(IDE_RUNS):
        pooled = off_loop(ready_sandbox, repo, True)
        # Warm as a pool keeps it: VS Code and the desktop up (its Chromium starts after VS Code). On the
        # local backend the dev server waits for the claim (its port is the host's: docs/sandboxes.md).
        wait_for(lambda pk=pooled.pk: all(Sandbox.objects.get(pk=pk).services.get(name, {}).get("state") == "ready"
                                          for name in ("ide", "desktop")),
                 120, "the pooled sandbox's services")
        time.sleep(2)
        session = off_loop(member_requests.create_session, repo, user, "justtext hello")
        claimed = Session.objects.select_related("sandbox").get(pk=session.pk).sandbox
        if claimed.pk != pooled.pk:
            raise RuntimeError("the session did not take the pooled sandbox")
        page = new_page(platform, browser, user)
        opened = time.time()
        page.goto(f"{platform.browser_url}/sessions/{session.pk}/")  # its load event waits for VS Code's page too
        loaded = time.time()
        wait_usable(page)
        samples.append(time.time() - claimed.claimed_at.timestamp())
        claim = claimed.claimed_at.timestamp()
        say(f"ide (pooled) run {run + 1}: {samples[-1]:.2f} s after the claim (page opened {opened - claim:+.2f} s, "
            f"loaded with VS Code's page {loaded - claim:+.2f} s)")
        page.context.close()
        off_loop(terminate_all, repo)
    return samples


def desktop_connect(platform: Platform, browser, user, session: Session) -> list[float]:
    """Desktop tab clicked (the desktop service already ready) -> noVNC connected, each on a fresh page
    clicked as soon as the tab says ready (so noVNC's files may still be loading). The page records
    when the desktop socket is created, opens, gets its first message, and when noVNC connected."""
    samples = []
    for _ in range(DESKTOP_RUNS):
        page = new_page(platform, browser, user)
        page.goto(f"{platform.browser_url}/sessions/{session.pk}/")
        page.locator('#tab-desktop[data-state="ready"]').wait_for(timeout=120_000)
        page.evaluate("""() => {
            window.marks = {};
            const Native = window.WebSocket;
            window.WebSocket = function (url, protocols) {
                const socket = new Native(url, protocols);
                if (String(url).includes("/desktop/")) {
                    window.marks.created = performance.now();
                    socket.addEventListener("open", () => { window.marks.open = performance.now(); });
                    socket.addEventListener("message", () => { window.marks.first ??= performance.now(); });
                }
                return socket;
            };
            Object.assign(window.WebSocket, Native);
            window.WebSocket.prototype = Native.prototype;
            document.getElementById("tab-desktop").addEventListener("click", () => {
                window.marks.click = performance.now();
            });
            new MutationObserver(() => {
                const state = document.getElementById("desktop-screen").dataset.state;
                window.marks[state] ??= performance.now();
            }).observe(document.getElementById("desktop-screen"), {attributes: true});
        }""")
        started = time.perf_counter()
        page.click("#tab-desktop")
        page.locator('#desktop-screen[data-state="connected"]').wait_for(timeout=60_000)
        seen = time.perf_counter() - started
        # The figure is the page's own clock, from the click event to noVNC's connect: Playwright's
        # click (actionability checks) and its polling add ~0.3 s that nobody sees.
        marks = page.evaluate("window.marks")
        samples.append((marks["connected"] - marks["click"]) / 1000)
        say("desktop: " + ", ".join(f"{k} {v - marks['click']:+.0f} ms" for k, v in marks.items() if k != "click")
            + f" (Playwright saw it after {seen * 1000:.0f} ms)")
        page.context.close()
    return samples


def workbench_load(platform: Platform, browser, user, session: Session, direct: bool) -> float:
    """A fresh browser context loads VS Code (running already) until its explorer lists the repo."""
    page = new_page(platform, browser, user)
    sandbox = Session.objects.select_related("sandbox").get(pk=session.pk).sandbox
    # Direct: code-server at the host port its sandbox's network forwards. Through the platform as the page's
    # frame goes: its ticket link, then VS Code on the session's host.
    url = service_address(sandbox, sandbox.services["ide"]["port"]) + "/" if direct \
        else f"{platform.browser_url}/sessions/{session.pk}/open/ide/"
    if direct:  # with the service secret the proxy adds (docs/threat-model.md)
        page.context.add_cookies([{"name": SERVICE_SECRET_COOKIES["ide"], "value": sandbox.service_secret(),
                                   "url": url}])
    started = time.perf_counter()
    page.goto(url)
    page.locator(".explorer-folders-view .monaco-list-row").first.wait_for(state="visible", timeout=120_000)
    elapsed = time.perf_counter() - started
    page.context.close()
    return elapsed


def service_address(sandbox, port: int) -> str:
    """Where the host reaches a sandbox's port: the forwarded port of its own network (local_network.py)."""
    return get_backend(sandbox.backend).endpoints(sandbox.backend_ref, [port])[port]


def proxy_overhead(platform: Platform, user, session: Session, port: int) -> dict[str, list[float]]:
    """The same 5 MB file, in turn through /w/<id>/preview-<port>/ on the session's host as browsers reach it
    (the front proxy), through Daphne alone (its own proxy, what https:// services take) and from the dev
    server itself (at the host port its sandbox's network forwards)."""
    path = f"/w/{session.pk}/preview-{port}/f0000.bin"
    urls = {"front": platform.url + path, "daphne": platform.live.url + path,
            "direct": service_address(Session.objects.get(pk=session.pk).sandbox, port) + "/f0000.bin"}
    # Through the platform, on the session's workspace host (its cookie); the dev server itself, as it is.
    headers = {"front": platform.workspace_headers(user, session.pk, platform.url),
               "daphne": platform.workspace_headers(user, session.pk, platform.live.url), "direct": {}}
    samples = {name: [] for name in urls}
    with httpx.Client(timeout=30) as client:
        for name, url in urls.items():  # warm every path (connections, caches)
            assert len(client.get(url, headers=headers[name]).content) == 5 * MB
        for _ in range(ASSET_RUNS):
            for name, url in urls.items():
                started = time.perf_counter()
                response = client.get(url, headers=headers[name])
                size = len(response.content)
                samples[name].append(time.perf_counter() - started)
                if response.status_code != 200 or size != 5 * MB:
                    raise RuntimeError(f"{url} answered {response.status_code} with {size} bytes")
    return samples


def new_context(platform: Platform, browser, user):
    """A fresh browser (no cache) signed in as `user`."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    cookie = platform.browser_headers(user)["Cookie"].split("=", 1)[1]
    context.add_cookies([{"name": "sessionid", "value": cookie, "url": platform.browser_url}])
    return context


def open_page(context):
    page = context.new_page()
    page.set_default_timeout(120_000)
    return page


def new_page(platform: Platform, browser, user):
    return open_page(new_context(platform, browser, user))


def run() -> None:
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API keeps a loop in this thread
    root = open_dir(Path(settings.VAR_DIR) / "bench-workspace")
    port = free_port()
    origin = Origin(root / "origin", files=1, total_bytes=5 * MB)  # src/d00/f0000.bin: the 5 MB asset
    repo = register(REPO, origin)
    repo.start_commands = f"python3 -m http.server {port} --bind 127.0.0.1 --directory src/d00"
    repo.preview_ports = str(port)
    repo.save()
    try:
        build(repo)
        user = make_user("workspace")
        with Platform() as platform, override_settings(SANDBOX_WORKSPACE_SERVICES=True), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                        args=CHROMIUM_ARGS)
            say(f"{len(platform.lives)} Daphne(s) behind the front proxy, a Celery worker in this process; each "
                "sandbox runs OpenCode, code-server, Xvfb + x11vnc + websockify + Chromium and the repo's dev server")
            ide, blocked = ide_ready(platform, browser, user, repo)
            report("ide_ready_p50", p50(ide), "s")
            say(spread(ide, unit="s"))
            # A same-site frame would run on the page's thread: VS Code's seconds of script would hold the timeline,
            # the prompt box and the desktop. On the session's workspace host it has a process of its own.
            report("session_page_longest_stall_p50", p50([b["longest"] for b in blocked]), "ms")
            report("session_page_stalled_p50", p50([b["total"] for b in blocked]), "ms")
            returning, _ = ide_ready(platform, browser, user, repo, returning=True)
            report("ide_ready_returning_p50", p50(returning), "s")
            say(spread(returning, unit="s"))
            pooled = ide_ready_pooled(platform, browser, user, repo)
            report("ide_ready_pooled_p50", p50(pooled), "s")
            say(spread(pooled, unit="s"))

            session = off_loop(member_requests.create_session, repo, user, "justtext hello")
            ready_at(session.pk)
            desktop = desktop_connect(platform, browser, user, session)
            report("desktop_connect_p50", p50(desktop), "s")
            say(spread(desktop, unit="s"))

            # The floor under ide_ready: VS Code already running and nothing starting, a fresh browser alone.
            loads = {True: [], False: []}
            for _ in range(LOAD_RUNS):
                for direct_load in (False, True):
                    loads[direct_load].append(workbench_load(platform, browser, user, session, direct_load))
            report("vscode_load_direct_p50", p50(loads[True]), "s")
            report("vscode_load_proxied_p50", p50(loads[False]), "s")
            say(f"VS Code already running, a fresh browser until its explorer lists the repo: through the proxy "
                f"{spread(loads[False], unit='s')}; straight from code-server {spread(loads[True], unit='s')}")

            fetched = proxy_overhead(platform, user, session, port)
            proxied, direct = fetched["front"], fetched["direct"]
            report("proxy_overhead_ratio", p50(proxied) / p50(direct), "x")
            report("proxy_overhead_daphne_ratio", p50(fetched["daphne"]) / p50(direct), "x")
            say(f"5 MB through the front proxy {spread(proxied, 1000, 'ms')}; through Daphne alone "
                f"{spread(fetched['daphne'], 1000, 'ms')}; straight from the dev server "
                f"{spread(direct, 1000, 'ms')}; paired ratios p50 (front) "
                f"{statistics.median(a / b for a, b in zip(proxied, direct, strict=True)):.2f}")
            browser.close()
        goal("ide_ready_p50", p50(ide), "s", 3)
        goal("ide_ready_returning_p50", p50(returning), "s", 3)
        goal("ide_ready_pooled_p50", p50(pooled), "s", 3)
        goal("desktop_connect_p50", p50(desktop), "s", 1)
        goal("proxy_overhead_ratio", p50(proxied) / p50(direct), "x", 1.2)
    finally:
        terminate_all()
        repo.delete()
        delete_users()
        shutil.rmtree(root, ignore_errors=True)
