"""The stats page in real Chromium, on a phone's width, served by the real Daphne: its charts are drawn with the
seeded numbers, nothing scrolls sideways, and "humans prompting now" changes without a reload."""


import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from pulls.models import PullRequest
from sessions import member_requests
from tests.end_to_end.conftest import CHROMIUM_ARGS, outside_the_event_loop
from tests.support.live_server import LiveServer
from tests.support.rows import owned_session, repo_with_image

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]


def test_the_page_draws_its_charts_and_the_live_count_changes_without_a_reload(users, monkeypatch):
    ada, bob = users["ada"], users["bob"]
    repo = repo_with_image("app")
    sessions = [owned_session(repo, ada) for _ in range(3)]
    sessions[0].add_member(bob)
    for number, state in ((1, PullRequest.State.MERGED), (2, PullRequest.State.OPEN)):
        PullRequest.objects.create(repo=repo, number=number, session=sessions[number], opened_by=ada, state=state,
                                   opened_through_platform=True,
                                   merged_at=timezone.now() if state == PullRequest.State.MERGED else None)
    client = Client()
    client.force_login(ada)
    server = LiveServer().start()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop lives in this thread
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
            context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                                  "url": server.url}])
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.goto(server.url + "/stats")
            expect(page.locator("#sessions-recent")).to_have_text("3")
            expect(page.locator("#opened-total")).to_have_text("2")
            expect(page.locator("#merged-rate")).to_have_text("50%")
            expect(page.locator("#top-people-sessions")).to_contain_text("Ada")
            # Chart.js drew the seeded numbers: today's bar is 3, and the canvas has pixels on it.
            page.wait_for_function("""() => {
                const chart = window.Chart && Chart.getChart("sessions-chart");
                return chart && chart.data.datasets[0].data.at(-1) === 3; }""")
            drawn = page.evaluate("""() => {
                const canvas = document.getElementById("sessions-chart");
                const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
                let painted = 0;
                for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted++;
                return {painted, width: canvas.getBoundingClientRect().width}; }""")
            assert drawn["painted"] > 500 and 0 < drawn["width"] <= 390, drawn
            assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll on a phone
            expect(page.locator("#prompting-now")).to_have_text("0")

            def bob_types() -> None:  # what the session socket does when he writes in its prompt box
                member_requests.record_typing(sessions[0], bob)

            outside_the_event_loop(bob_types)  # its signal's group_send too
            expect(page.locator("#prompting-now")).to_have_text("1", timeout=10_000)
            browser.close()
    finally:
        server.stop()
