"""While the sandbox starts, the session page gets VS Code going: it fetches VS Code's largest files, which
the frame then takes from the browser's cache, and loads the frame itself out of sight. Real Chromium, the
real Daphne, the real code-server."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client
from playwright.sync_api import sync_playwright

from sandboxes.bridge.workspace import vscode_facts
from sandboxes.lifecycle import State
from sandboxes.models import Sandbox
from sandboxes.tools import tools_dir
from sessions.events import append_event
from tests.ide.support import ready

pytestmark = pytest.mark.django_db(transaction=True)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
FILES = ["workbench.js", "workbench.css", "nls.messages.js"]

# Each prefetched URL's resource timing in this document: [name, transferSize, encodedBodySize, responseEnd].
TIMINGS = """names => names.map(name => {
    const entry = performance.getEntriesByName(new URL(name, location.href).href)
        .find(e => e.responseEnd > 0);
    return entry ? [entry.name, entry.transferSize, entry.encodedBodySize] : null;
})"""


def log_service(session_id: int, report: dict) -> None:
    """append_event away from Playwright's event-loop thread, where its fan-out (async_to_sync) cannot run."""
    def call():
        try:
            append_event(session_id, "service", report)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(call).result()


def signed_in_page(live, browser, user, viewport=None):
    """A fresh browser context (no cache) signed in as `user`, and a page in it."""
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport=viewport or {"width": 1400, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live.url}])
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


def wait_for_workbench_scripts(page) -> None:
    """VS Code's frame ran the workbench's scripts (its own performance mark)."""
    page.wait_for_function("() => document.getElementById('ide-frame').contentWindow.performance"
                           ".getEntriesByName('code/didLoadWorkbenchMain').length > 0")


def mark_frame(page) -> None:
    page.evaluate("() => { document.getElementById('ide-frame').contentWindow.loadedEarly = true; }")


def frame_marked(page) -> bool:
    return page.evaluate("() => document.getElementById('ide-frame').contentWindow.loadedEarly") is True


@pytest.fixture
def browser(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API keeps a loop in this thread
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_the_page_fetches_vscode_files_while_the_sandbox_starts_and_the_frame_takes_them_from_the_cache(
        live, users, make_session, install, code_server, browser):
    starting = {"state": "starting", "port": None, "reason": ""}
    session = make_session(users["ada"], {"ide": starting})
    log_service(session.pk, {"name": "ide", **starting})
    page = signed_in_page(live, browser, users["ada"])
    page.goto(f"{live.url}/sessions/{session.pk}/")

    urls = page.evaluate('JSON.parse(document.getElementById("vscode-prefetch").textContent)')
    assert [url.rsplit("/", 1)[1] for url in urls] == FILES
    assert all(url.startswith(f"/w/{session.pk}/ide{install.prefix}") for url in urls)
    page.wait_for_function(f"names => ({TIMINGS})(names).every(Boolean)", arg=urls)
    fetched = page.evaluate(TIMINGS, urls)
    assert all(transferred > 0 for _name, transferred, _size in fetched)  # from the proxy, while VS Code starts

    # VS Code is up: the page loads its frame, whose page asks for the same URLs.
    Sandbox.objects.filter(pk=session.sandbox_id).update(services={"ide": ready(code_server.port)})
    log_service(session.pk, {"name": "ide", **ready(code_server.port)})
    page.frame_locator("#ide-frame").locator(".monaco-workbench").wait_for(state="visible")
    frame = next(f for f in page.frames if f.url.startswith(f"{live.url}/w/{session.pk}/ide/"))
    loaded = frame.evaluate(TIMINGS, [f"{live.url}{url}" for url in urls])
    assert [name for name, _transferred, _size in loaded] == [f"{live.url}{url}" for url in urls]
    # From the cache: nothing transferred, the whole body there.
    assert [(transferred, size > 0) for _name, transferred, size in loaded] == [(0, True)] * len(urls)
    # The font was not prefetched: it came over the network (so the zeros above are the cache's).
    font = "performance.getEntriesByType('resource').find(e => e.name.includes('/out/media/codicon.ttf'))"
    frame.wait_for_function(f"() => ({font})?.responseEnd > 0")
    assert frame.evaluate(f"() => ({font}).transferSize") > 0
    page.context.close()


def test_vscodes_frame_loads_out_of_sight_while_it_starts_and_shows_once_ready_without_loading_again(
        live, users, make_session, install, code_server, browser):
    facts = vscode_facts(tools_dir(), code_server.home, code_server.folder)
    starting = {"state": "starting", "port": None, "reason": "", **facts}
    session = make_session(users["ada"], {"ide": starting})
    log_service(session.pk, {"name": "ide", **starting})
    page = signed_in_page(live, browser, users["ada"])
    page.goto(f"{live.url}/sessions/{session.pk}/")

    # The workbench page (the control plane's) runs its scripts while VS Code's server is not up.
    wait_for_workbench_scripts(page)
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
        live, users, make_session, install, code_server, browser):
    session = make_session(users["ada"], {}, state=State.PROVISIONING)
    page = signed_in_page(live, browser, users["ada"])
    with page.expect_request(f"{live.url}/w/{session.pk}/ide/"):  # held by the proxy: nothing reported yet
        page.goto(f"{live.url}/sessions/{session.pk}/", wait_until="commit")  # "load" waits for the frame

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
        live, users, make_session, install, code_server, browser):
    starting = {"state": "starting", "port": None, "reason": ""}
    session = make_session(users["ada"], {"ide": starting})
    log_service(session.pk, {"name": "ide", **starting})
    page = signed_in_page(live, browser, users["ada"], viewport={"width": 390, "height": 844})
    asked = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{live.url}/sessions/{session.pk}/")
    # VS Code's state is rendered (out of sight): the render that would have fetched its files has run.
    page.wait_for_function("() => document.querySelector('#pane-ide .pane-message').textContent"
                           ".includes('VS Code is starting')")
    prefix = f"{live.url}/w/{session.pk}/ide/"
    assert not [url for url in asked if url.startswith(prefix)]

    page.click("#workspace-toggle")  # the phone opens the workspace: VS Code's tab is shown
    page.wait_for_function(f"names => ({TIMINGS})(names).every(Boolean)",
                           arg=page.evaluate('JSON.parse(document.getElementById("vscode-prefetch").textContent)'))
    page.wait_for_function("() => document.getElementById('ide-frame').getAttribute('src')")
    assert any(url == prefix for url in asked)  # and its frame, out of sight while VS Code starts
    page.context.close()
