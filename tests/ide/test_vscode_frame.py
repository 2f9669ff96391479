"""VS Code's frame on the session page: while the sandbox starts, the page loads it out of sight, and shows it
once VS Code is ready without loading it again; it is served on the session's own host (ide/workspace_hosts.py),
so it runs in a process of its own. Real Chromium, the real Daphne alone and behind the front proxy, the real
code-server."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from bridge.protocol import vscode_facts
from sandboxes.lifecycle import State
from sandboxes.models import Sandbox
from sandboxes.tools import tools_dir
from sessions.events import append_event
from tests.ide.support import ready
from tests.support.waiting import eventually

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def log_service(session_id: int, report: dict) -> None:
    """append_event away from Playwright's event-loop thread, where its fan-out (async_to_sync) cannot run."""
    def call():
        try:
            append_event(session_id, "service", report)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(call).result()


def signed_in_page(entry, browser, user, viewport=None):
    """A fresh browser context (no cache) signed in as `user`, and a page in it."""
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport=viewport or {"width": 1400, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": entry.browser_url}])
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


def ide_url(entry, session_id: int) -> str:
    """VS Code's page as the browser ends up at it: on the session's own host, on the platform's port (the
    page's frame gets there through /sessions/<id>/open/ide/ and the ticket exchange)."""
    return f"http://s-{session_id}.{settings.WORKSPACE_HOST}:{entry.port}/w/{session_id}/ide/"


def ide_frame(page):
    """VS Code's frame as Playwright reaches it (cross-origin: the page's scripts cannot)."""
    return page.locator("#ide-frame").element_handle().content_frame()


def wait_for_workbench_scripts(page, timeout: float = 60) -> None:
    """VS Code's frame ran the workbench's scripts (its own performance mark). Asked of the frame as it is
    now: a frame still on its way through the redirects is replaced when the page arrives from another origin."""

    def ran() -> bool:
        frame = ide_frame(page)
        try:
            return bool(frame and frame.evaluate("performance.getEntriesByName('code/didLoadWorkbenchMain').length"))
        except PlaywrightError:  # navigating, or the frame was just replaced
            return False

    eventually(ran, timeout=timeout, interval=0.1, what="VS Code's frame ran the workbench's scripts")


def mark_frame(page) -> None:
    ide_frame(page).evaluate("() => { window.loadedEarly = true; }")


def frame_marked(page) -> bool:
    return ide_frame(page).evaluate("() => window.loadedEarly") is True


@pytest.fixture
def browser(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API keeps a loop in this thread
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_vscodes_frame_loads_out_of_sight_while_it_starts_and_shows_once_ready_without_loading_again(
        entry, users, make_session, install, code_server, browser):
    facts = vscode_facts(tools_dir(), code_server.home, code_server.folder)
    starting = {"state": "starting", "port": None, "reason": "", **facts}
    session = make_session(users["ada"], {"ide": starting})
    log_service(session.pk, {"name": "ide", **starting})
    page = signed_in_page(entry, browser, users["ada"])
    page.goto(f"{entry.browser_url}/sessions/{session.pk}/")

    # The workbench page (the control plane's) runs its scripts while VS Code's server is not up.
    wait_for_workbench_scripts(page)
    assert ide_frame(page).url.startswith(ide_url(entry, session.pk))
    frame = page.locator("#ide-frame")
    assert frame.get_attribute("data-early") == "true" and not frame.is_visible()
    assert page.locator("#pane-ide .pane-message").is_visible()
    mark_frame(page)

    Sandbox.objects.filter(pk=session.sandbox_id).update(services={"ide": ready(code_server.port)})
    log_service(session.pk, {"name": "ide", **ready(code_server.port), **facts})
    frame.wait_for(state="visible")
    page.frame_locator("#ide-frame").locator(".explorer-folders-view").wait_for(state="visible")
    assert frame_marked(page)  # the same document: not loaded again
    page.context.close()


def test_while_the_sandbox_starts_vscodes_frame_asks_for_its_page_before_vscode_is_reported(
        entry, users, make_session, install, code_server, browser):
    session = make_session(users["ada"], {}, state=State.PROVISIONING)
    page = signed_in_page(entry, browser, users["ada"])
    # Held by the proxy: nothing reported yet.
    with page.expect_request(lambda request: request.url == ide_url(entry, session.pk)):
        page.goto(f"{entry.browser_url}/sessions/{session.pk}/", wait_until="commit")  # "load" waits for the frame

    facts = vscode_facts(tools_dir(), code_server.home, code_server.folder)
    starting = {"state": "starting", "port": None, "reason": "", **facts}
    Sandbox.objects.filter(pk=session.sandbox_id).update(services={"ide": starting})  # the bridge's report
    wait_for_workbench_scripts(page)
    mark_frame(page)
    log_service(session.pk, {"name": "ide", **starting})  # the page learns it: the same run, no new load
    Sandbox.objects.filter(pk=session.sandbox_id).update(services={"ide": ready(code_server.port)})
    log_service(session.pk, {"name": "ide", **ready(code_server.port), **facts})
    page.locator("#ide-frame").wait_for(state="visible")
    page.frame_locator("#ide-frame").locator(".explorer-folders-view").wait_for(state="visible")
    assert frame_marked(page)  # the same document: not loaded again
    page.context.close()


def test_a_phone_with_the_workspace_closed_fetches_nothing_of_vscode_until_it_is_opened(
        entry, users, make_session, install, code_server, browser):
    starting = {"state": "starting", "port": None, "reason": ""}
    session = make_session(users["ada"], {"ide": starting})
    log_service(session.pk, {"name": "ide", **starting})
    page = signed_in_page(entry, browser, users["ada"], viewport={"width": 390, "height": 844})
    asked = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{entry.browser_url}/sessions/{session.pk}/")
    # VS Code's state is rendered (out of sight): the render that would have loaded its frame has run.
    page.wait_for_function("() => document.querySelector('#pane-ide .pane-message').textContent"
                           ".includes('VS Code is starting')")
    assert not [url for url in asked if f"/sessions/{session.pk}/open/ide/" in url or f"/w/{session.pk}/" in url
                or f"s-{session.pk}.{settings.WORKSPACE_HOST}" in url]
    assert page.locator("#ide-frame").get_attribute("src") is None

    # The phone opens the workspace: VS Code's tab is shown, and its frame, out of sight while VS Code starts,
    # goes through the opener to VS Code's page on the session's host.
    with page.expect_request(lambda request: request.url == ide_url(entry, session.pk)):
        page.click("#workspace-toggle")
    assert page.locator("#ide-frame").get_attribute("src") == f"/sessions/{session.pk}/open/ide/"
    page.context.close()


# The session page's long tasks (over 50 ms) and the frame each ran in, as Chromium reports them to the page.
LONG_TASKS = """window.longTasks = [];
new PerformanceObserver(list => {
    for (const task of list.getEntries())
        window.longTasks.push(task.attribution.map(a => a.containerSrc || a.name).join(" "));
}).observe({entryTypes: ["longtask"]});"""


def test_on_the_sessions_own_host_vscode_loads_without_stopping_the_session_page(
        entry, users, make_session, install, code_server, browser):
    """Same-origin, VS Code's frame would run on the page's own thread: the workbench's seconds of script would
    stop the timeline and the prompt box. On the session's own host it runs in a process of its own."""
    facts = vscode_facts(tools_dir(), code_server.home, code_server.folder)
    session = make_session(users["ada"], {"ide": {**ready(code_server.port), **facts}})
    log_service(session.pk, {"name": "ide", **ready(code_server.port), **facts})
    page = signed_in_page(entry, browser, users["ada"])
    page.add_init_script(LONG_TASKS)
    page.goto(f"{entry.browser_url}/sessions/{session.pk}/")
    page.frame_locator("#ide-frame").locator(".explorer-folders-view").wait_for(state="visible")
    assert ide_frame(page).url.startswith(ide_url(entry, session.pk))
    # Chromium's frames in processes of their own ("iframe" targets of its DevTools protocol).
    cdp = browser.new_browser_cdp_session()
    apart = [t["url"] for t in cdp.send("Target.getTargets")["targetInfos"] if t["type"] == "iframe"]
    cdp.detach()
    assert [url for url in apart if url.startswith(ide_url(entry, session.pk))]
    assert not [where for where in page.evaluate("window.longTasks") if "/ide/" in where]
    page.context.close()
