"""While the sandbox starts, the session page gets VS Code going: it fetches VS Code's largest files, which
the frame then takes from the browser's cache, and loads the frame itself out of sight. Real Chromium, the
real Daphne alone and behind the front proxy (whose workspace origin then serves the frame), the real
code-server."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from bridge.protocol import vscode_facts
from ide import vscode_static
from sandboxes.lifecycle import State
from sandboxes.models import Sandbox
from sandboxes.tools import tools_dir
from sessions.events import append_event
from tests.ide.support import ready
from tests.support.waiting import eventually

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]
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


def signed_in_page(entry, browser, user, viewport=None):
    """A fresh browser context (no cache) signed in as `user`, and a page in it."""
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport=viewport or {"width": 1400, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": entry.url}])
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


def ide_frame(page):
    """VS Code's frame as Playwright reaches it, whatever its origin."""
    return page.locator("#ide-frame").element_handle().content_frame()


def ide_origin(page, entry) -> str:
    """Where the page loads VS Code from: the front's workspace origin, or the page's own."""
    return page.evaluate("document.getElementById('workspace').dataset.ideOrigin") or entry.url


def wait_for_workbench_scripts(page, timeout: float = 60) -> None:
    """VS Code's frame ran the workbench's scripts (its own performance mark). Asked of the frame as it is
    now: a frame still waiting for its page is replaced when the page arrives from another origin."""

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


def test_the_page_fetches_vscode_files_while_the_sandbox_starts_and_the_frame_takes_them_from_the_cache(
        entry, users, make_session, install, code_server, browser):
    starting = {"state": "starting", "port": None, "reason": ""}
    session = make_session(users["ada"], {"ide": starting})
    log_service(session.pk, {"name": "ide", **starting})
    page = signed_in_page(entry, browser, users["ada"])
    page.goto(f"{entry.url}/sessions/{session.pk}/")

    paths = page.evaluate('JSON.parse(document.getElementById("vscode-prefetch").textContent)')
    assert [path.rsplit("/", 1)[1] for path in paths] == FILES
    assert all(path.startswith(vscode_static.shared_base(install) + "/") for path in paths)  # any session's
    origin = ide_origin(page, entry)
    urls = [origin + path for path in paths]
    page.wait_for_function(f"names => ({TIMINGS})(names).every(Boolean)", arg=urls)
    fetched = page.evaluate(TIMINGS, urls)
    if origin == entry.url:  # sizes are shown to the same origin only
        assert all(transferred > 0 for _name, transferred, _size in fetched)  # from the proxy, while VS Code starts

    # VS Code is up: the page loads its frame, whose page asks for the same URLs.
    facts = vscode_facts(tools_dir(), code_server.home, code_server.folder)
    Sandbox.objects.filter(pk=session.sandbox_id).update(services={"ide": {**ready(code_server.port), **facts}})
    log_service(session.pk, {"name": "ide", **ready(code_server.port), **facts})
    page.frame_locator("#ide-frame").locator(".monaco-workbench").wait_for(state="visible")
    frame = ide_frame(page)
    assert frame.url.startswith(f"{origin}/w/{session.pk}/ide/")
    loaded = frame.evaluate(TIMINGS, urls)
    assert [name for name, _transferred, _size in loaded] == urls
    # From the cache: nothing transferred, the whole body there.
    assert [(transferred, size > 0) for _name, transferred, size in loaded] == [(0, True)] * len(urls)
    # The font was not prefetched: it came over the network (so the zeros above are the cache's).
    font = "performance.getEntriesByType('resource').find(e => e.name.includes('/out/media/codicon.ttf'))"
    frame.wait_for_function(f"() => ({font})?.responseEnd > 0")
    assert frame.evaluate(f"() => ({font}).transferSize") > 0
    page.context.close()


def test_vscodes_frame_loads_out_of_sight_while_it_starts_and_shows_once_ready_without_loading_again(
        entry, users, make_session, install, code_server, browser):
    facts = vscode_facts(tools_dir(), code_server.home, code_server.folder)
    starting = {"state": "starting", "port": None, "reason": "", **facts}
    session = make_session(users["ada"], {"ide": starting})
    log_service(session.pk, {"name": "ide", **starting})
    page = signed_in_page(entry, browser, users["ada"])
    page.goto(f"{entry.url}/sessions/{session.pk}/")

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
        entry, users, make_session, install, code_server, browser):
    session = make_session(users["ada"], {}, state=State.PROVISIONING)
    page = signed_in_page(entry, browser, users["ada"])
    # Held by the proxy: nothing reported yet.
    with page.expect_request(lambda request: request.url.endswith(f"/w/{session.pk}/ide/")):
        page.goto(f"{entry.url}/sessions/{session.pk}/", wait_until="commit")  # "load" waits for the frame

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
    page.goto(f"{entry.url}/sessions/{session.pk}/")
    # VS Code's state is rendered (out of sight): the render that would have fetched its files has run.
    page.wait_for_function("() => document.querySelector('#pane-ide .pane-message').textContent"
                           ".includes('VS Code is starting')")
    assert not [url for url in asked if f"/w/{session.pk}/ide/" in url]
    assert page.evaluate("document.querySelectorAll('link[rel=prefetch]').length") == 0
    assert page.locator("#ide-frame").get_attribute("src") is None

    page.click("#workspace-toggle")  # the phone opens the workspace: VS Code's tab is shown
    paths = page.evaluate('JSON.parse(document.getElementById("vscode-prefetch").textContent)')
    page.wait_for_function(f"names => ({TIMINGS})(names).every(Boolean)",
                           arg=[ide_origin(page, entry) + path for path in paths])
    page.wait_for_function("() => document.getElementById('ide-frame').getAttribute('src')")
    assert f"{ide_origin(page, entry)}/w/{session.pk}/ide/" in asked  # and its frame, out of sight while it starts
    page.context.close()


def test_a_second_session_takes_vscodes_files_from_the_browsers_cache(
        entry, users, make_session, install, code_server, browser):
    """Every session's workbench page loads VS Code's files from one path: a person who opened VS Code in one
    session has them, compiled scripts included, for the next."""
    facts = vscode_facts(tools_dir(), code_server.home, code_server.folder)
    sessions = [make_session(users["ada"], {"ide": {**ready(code_server.port), **facts}}) for _ in range(2)]
    for session in sessions:
        log_service(session.pk, {"name": "ide", **ready(code_server.port), **facts})
    page = signed_in_page(entry, browser, users["ada"])
    script = vscode_static.shared_base(install) + "/out/vs/code/browser/workbench/workbench.js"
    transferred = []
    for session in sessions:
        page.goto(f"{entry.url}/sessions/{session.pk}/")
        page.frame_locator("#ide-frame").locator(".explorer-folders-view").wait_for(state="visible")
        frame = ide_frame(page)
        assert frame.url.startswith(f"{ide_origin(page, entry)}/w/{session.pk}/ide/")
        # VS Code was up before the page: nothing prefetched, the frame fetched what it needed itself.
        assert page.evaluate("document.querySelectorAll('link[rel=prefetch]').length") == 0
        timing = frame.evaluate(TIMINGS, [ide_origin(page, entry) + script])[0]
        assert timing is not None, "the frame did not load VS Code's script from the shared path"
        assert timing[2] > 0  # sizes are shown to the frame (same origin): a zero transfer is the cache's
        transferred.append(timing[1])
    # The first session's frame fetched it over the network; the second's found it in the browser's cache.
    assert transferred[0] > 0 and transferred[1] == 0
    page.context.close()


# The session page's long tasks (over 50 ms) and the frame each ran in, as Chromium reports them to the page.
LONG_TASKS = """window.longTasks = [];
new PerformanceObserver(list => {
    for (const task of list.getEntries())
        window.longTasks.push(task.attribution.map(a => a.containerSrc || a.name).join(" "));
}).observe({entryTypes: ["longtask"]});"""


def test_on_the_fronts_workspace_origin_vscode_loads_without_stopping_the_session_page(
        entry, users, make_session, install, code_server, browser):
    """Same-origin, VS Code's frame runs on the page's own thread: the workbench's seconds of script stop the
    timeline and the prompt box. On the front's workspace origin it runs in a process of its own."""
    facts = vscode_facts(tools_dir(), code_server.home, code_server.folder)
    session = make_session(users["ada"], {"ide": {**ready(code_server.port), **facts}})
    log_service(session.pk, {"name": "ide", **ready(code_server.port), **facts})
    page = signed_in_page(entry, browser, users["ada"])
    page.add_init_script(LONG_TASKS)
    page.goto(f"{entry.url}/sessions/{session.pk}/")
    page.frame_locator("#ide-frame").locator(".explorer-folders-view").wait_for(state="visible")
    # Chromium's frames in processes of their own ("iframe" targets of its DevTools protocol).
    cdp = browser.new_browser_cdp_session()
    apart = [t["url"] for t in cdp.send("Target.getTargets")["targetInfos"] if t["type"] == "iframe"]
    cdp.detach()
    if entry.url == ide_origin(page, entry):  # Daphne alone: the page's own origin, its thread
        assert [where for where in page.evaluate("window.longTasks") if "/ide/" in where]
        assert not [url for url in apart if f"/w/{session.pk}/ide/" in url]
    else:
        assert ide_frame(page).url.startswith(f"{entry.workspace_url}/w/{session.pk}/ide/")
        assert [url for url in apart if url.startswith(f"{entry.workspace_url}/w/{session.pk}/ide/")]
    page.context.close()
