"""The platform on a phone, in a real Chromium with a phone's screen and touch (390 px wide, 3x, docs/phone.md):
signing in, the session list, a new session and a session's page fit the screen and take taps; the workspace is
folded away; the service worker keeps static files alone and shows the offline page offline. One Daphne serves
sessions made as rows (no sandbox runs): the layout is the subject, not the agent."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect, sync_playwright

from sessions.events import append_events
from sessions.models import Prompt
from tests.end_to_end.conftest import CHROMIUM_ARGS
from tests.support.live_server import LiveServer
from tests.support.rows import owned_session, repo_with_image

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}
# What a finger taps: each at least 44 px each way where it is shown (links inside sentences aside).
TAPPABLE = ("button, .button, input:not([type=hidden]), select, textarea, .topbar a, .session-row a, "
            "[role=tab], summary, .repo-list a")


def fits(page: Page) -> None:
    """Nothing wider than the screen: the page never scrolls sideways."""
    widths = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways: {widths}"


def small_targets(page: Page) -> list[str]:
    return page.evaluate("""(selector) => [...document.querySelectorAll(selector)].filter((node) => {
        const box = node.getBoundingClientRect();
        return box.width > 0 && box.height > 0 && getComputedStyle(node).visibility !== "hidden"
            && (box.width < 44 || box.height < 44);
      }).map((node) => `${node.tagName.toLowerCase()}#${node.id}.${node.className}: ${
        Math.round(node.getBoundingClientRect().width)}x${Math.round(node.getBoundingClientRect().height)}`)""",
                         TAPPABLE)


def cached_urls(page: Page) -> list[str]:
    return page.evaluate("""async () => {
        const urls = [];
        for (const name of await caches.keys()) {
          for (const request of await (await caches.open(name)).keys()) urls.push(new URL(request.url).pathname);
        }
        return urls;
      }""")


def a_session_with_a_long_timeline(user: User):
    repo = repo_with_image()
    session = owned_session(repo, user, title="The invoice table overflows on mobile")
    prompt = Prompt.objects.create(session=session, author=user, text="Fix the invoice table", position=1,
                                   status=Prompt.Status.DONE)
    long_word = "https://staging.example.com/invoices/" + "x" * 120
    events = [(session.pk, "prompt_queued", {"prompt_id": prompt.pk, "position": 1, "text": prompt.text,
                                             "context": {}, "author": "ada", "author_id": user.pk}, "")]
    for i in range(12):
        events += [
            (session.pk, "tool_started", {"call_id": f"c{i}", "tool": "bash", "input": {"command": "npm test " * 30}},
             ""),
            (session.pk, "tool_finished", {"call_id": f"c{i}", "tool": "bash", "output": "ok " * 200}, ""),
            (session.pk, "text", {"part_id": f"p{i}", "text": f"Step {i}: looked at {long_word} and fixed it."}, ""),
        ]
    events.append((session.pk, "file_edited", {"path": "src/components/invoices/InvoiceTable.tsx",
                                               "diff": "@@ -1 +1 @@\n-" + "a" * 300 + "\n+" + "b" * 300}, ""))
    append_events(events)
    return repo, session


def test_a_phone_signs_in_lists_starts_and_prompts_without_sideways_scroll_and_works_offline(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    user = User.objects.create_user("ada", "ada@example.com", "correct-horse-battery")
    repo, session = a_session_with_a_long_timeline(user)
    server = LiveServer().start()
    base = server.browser_url
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            context = browser.new_context(**PHONE)
            page = context.new_page()
            page.set_default_timeout(15_000)

            page.goto(base + "/accounts/login/")
            fits(page)
            page.locator("#id_login").tap()
            page.keyboard.type("ada")
            page.fill("#id_password", "correct-horse-battery")
            page.locator("button[type=submit]").tap()

            # The session list: the session, tappable, the page no wider than the phone.
            row = page.locator(f".session-row[data-session-id='{session.pk}'] a")
            expect(row).to_be_visible()
            fits(page)
            assert small_targets(page) == []
            assert page.evaluate("navigator.serviceWorker.ready.then(() => true)")

            # A new session: the form fits and takes taps.
            page.locator("#new-session").tap()
            expect(page.locator("#new-session-form")).to_be_visible()
            fits(page)
            assert small_targets(page) == []
            page.select_option("#id_repo", str(repo.pk))
            page.locator("#id_prompt").tap()
            page.keyboard.type("Make the table scroll inside its card")
            page.locator("#create").tap()
            page.wait_for_url(lambda url: "/sessions/" in url and "/new" not in url)
            expect(page.locator("#prompt-input")).to_be_visible()
            fits(page)

            # The long session: the timeline wraps, the prompt box stays at the bottom of the screen, the
            # workspace is folded behind its toggle.
            page.goto(f"{base}/sessions/{session.pk}/")
            expect(page.locator(".tool-card")).to_have_count(12)
            fits(page)
            expect(page.locator("#workspace-toggle")).to_have_attribute("aria-expanded", "false")
            expect(page.locator("#workspace-body")).to_be_hidden()
            assert small_targets(page) == []
            prompt_box = page.locator("#prompt-input")
            for scroll in ("0", "document.scrollingElement.scrollHeight / 2"):
                page.evaluate(f"window.scrollTo(0, {scroll})")
                expect(prompt_box).to_be_in_viewport()
                box = page.locator(".dock").bounding_box()
                assert box["y"] + box["height"] <= 844 + 1
            prompt_box.tap()
            assert page.evaluate("document.activeElement.id") == "prompt-input"
            # The keyboard takes half the screen (resizes-content): the prompt box is above it.
            page.set_viewport_size({"width": 390, "height": 420})
            expect(prompt_box).to_be_in_viewport()
            box = page.locator("#send").bounding_box()
            assert box["y"] + box["height"] <= 420 + 1
            page.set_viewport_size({"width": 390, "height": 844})
            page.keyboard.type("Also the totals row")
            page.locator("#workspace-toggle").tap()
            expect(page.locator("#workspace-body")).to_be_visible()
            expect(page.locator("#tab-desktop")).to_be_visible()
            fits(page)
            assert small_targets(page) == []

            # The notifications toggle says clearly that this browser does not allow them.
            page.goto(base + "/notifications/")
            fits(page)
            toggle = page.locator("#push-toggle")
            expect(toggle).to_be_enabled()
            page.locator("label.switch").tap()
            expect(page.locator("#push-state")).to_contain_text("does not allow notifications")
            expect(toggle).not_to_be_checked()

            # The service worker controls the pages, and kept static files and the offline page alone.
            page.goto(f"{base}/sessions/{session.pk}/")
            expect(page.locator(".tool-card")).to_have_count(12)
            assert page.evaluate("Boolean(navigator.serviceWorker.controller)")
            urls = cached_urls(page)
            assert "/offline" in urls and any(url.startswith("/static/") for url in urls), urls
            assert [url for url in urls if not (url.startswith("/static/") or url == "/offline")] == []

            # Offline: a session page is the offline page, never a copy of the private one.
            context.set_offline(True)
            page.goto(f"{base}/sessions/{session.pk}/")
            expect(page.locator("#offline-title")).to_have_text("You are offline")
            assert "invoice table" not in page.content().lower()
            fits(page)
            context.set_offline(False)
            page.locator("#offline-retry").tap()
            expect(page.locator("#session-title")).to_have_text("The invoice table overflows on mobile")
            browser.close()
    finally:
        server.stop()
