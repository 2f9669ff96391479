"""The session page in a real Chromium, against the real platform (see conftest.py)."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from sandboxes.models import Sandbox
from sessions import tasks as session_tasks
from sessions.models import Session
from tests.end_to_end.conftest import outside_the_event_loop
from tests.support.waiting import eventually

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]
def test_sign_in_prompt_watch_queue_cancel_stop_and_survive_a_server_restart(platform, page, settings):
    live, repo = platform
    User.objects.create_user("ada", "ada@example.com", "correct-horse-battery")

    page.goto(live.browser_url + "/accounts/login/")
    page.fill("#id_login", "ada")
    page.fill("#id_password", "correct-horse-battery")
    page.click("button[type=submit]")
    page.goto(live.browser_url + "/sessions/new")
    page.select_option("#id_repo", str(repo.pk))
    page.fill("#id_prompt", "Please write file:hello.txt")
    page.click("#create")

    # The agent's run streams into the timeline: the write, its diff, the final text.
    expect(page.locator(".tool-card").filter(has_text="write")).to_be_visible(timeout=120_000)
    expect(page.locator(".file-edit .diff .line.add").filter(has_text="Hello from the scripted model!")).to_be_visible()
    expect(page.locator(".assistant-text").filter(has_text="Done.")).to_be_visible()

    # A slow run; a follow-up queued meanwhile is cancelled, and the run is stopped.
    page.fill("#prompt-input", "Tell me something slow")
    page.click("#send")
    expect(page.locator(".assistant-text").filter(has_text="word3")).to_be_visible()
    page.fill("#prompt-input", "justtext never to run")
    page.click("#send")
    queued = page.locator(".queue-item")
    expect(queued).to_have_count(1)
    queued.locator(".cancel").click()
    expect(queued).to_have_count(0)
    page.click("#stop")
    expect(page.locator("#stop")).to_be_hidden()
    assert "word39" not in page.locator("#timeline").inner_text()

    # The Daphnes restart under the page (behind the front proxy): it reconnects and carries on, nothing lost
    # or doubled.
    for daphne in live.daphnes:
        daphne.stop()
    expect(page.locator("#socket-state")).not_to_have_attribute("data-state", "connected")
    for daphne in live.daphnes:
        daphne.start()
    expect(page.locator("#socket-state")).to_have_attribute("data-state", "connected")
    page.fill("#prompt-input", "justtext after the restart")
    page.click("#send")
    expect(page.locator(".assistant-text").filter(has_text="Just some text")).to_be_visible()
    seqs = [int(s) for s in page.locator("#timeline .ev[data-seq]").evaluate_all("els => els.map(e => e.dataset.seq)")]
    assert seqs == sorted(set(seqs))
    assert "never to run" not in page.locator(".assistant-text").all_inner_texts()

    # Once idle it is snapshotted and let go; writing a follow-up restores it before it is sent.
    settings.SESSION_IDLE_TIMEOUT_SECONDS = 0
    settings.SESSION_FOLLOW_UP_WARM_SECONDS = 0  # a new sandbox restores it (a warm one: test_agent_session)
    session = Session.objects.get()
    first_sandbox = session.sandbox

    def let_go() -> bool:
        outside_the_event_loop(session_tasks.release_idle_sandboxes)  # it fans out with async_to_sync
        return Sandbox.objects.get(pk=first_sandbox.pk).state == "terminated"

    eventually(let_go, timeout=60, interval=0.3, what="the idle sandbox let go")
    expect(page.locator("#sandbox-phase")).to_have_attribute("data-state", "terminated")
    page.locator("#prompt-input").press_sequentially("justtext welcome back")
    expect(page.locator("#sandbox-phase")).not_to_have_attribute("data-state", "terminated")
    restoring = Session.objects.get().sandbox
    assert restoring.pk != first_sandbox.pk and restoring.restored_from_id == Session.objects.get().last_snapshot_id
    assert not Session.objects.get().prompts.filter(text="justtext welcome back").exists()  # not sent yet
    page.click("#send")
    expect(page.locator(".assistant-text").filter(has_text="Just some text")).to_have_count(2)
    assert Session.objects.get().sandbox_id == restoring.pk  # the follow-up ran in the sandbox typing started
