"""Two people in one session, each in their own browser context: sharing by link, presence, typing, a follow-up
labelled with its person, roles, and removal, through the front proxy and two Daphnes with a real sandbox."""

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from sessions.models import Membership, Prompt, Session

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct-horse-battery"


def sign_in(browser, live, username: str):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(live.browser_url + "/accounts/login/")
    page.fill("#id_login", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".who")).to_have_text(username)
    return page


def test_two_people_share_a_session_watch_each_other_and_one_removes_the_other(platform, page):
    live, repo = platform
    ada = User.objects.create_user("ada", "ada@example.com", PASSWORD)
    bob = User.objects.create_user("bob", "bob@example.com", PASSWORD)
    browser = page.context.browser
    a = sign_in(browser, live, "ada")
    b = sign_in(browser, live, "bob")

    # Ada starts a slow run and shares a join link that lets people prompt.
    a.goto(live.browser_url + "/sessions/new")
    a.select_option("#id_repo", str(repo.pk))
    a.fill("#id_prompt", "Tell me something slow")
    a.click("#create")
    expect(a.locator(".assistant-text").filter(has_text="word2")).to_be_visible(timeout=120_000)
    a.click("#share-open")
    a.select_option("#share-link-role", "member")  # a link gives "can watch" unless the owner says otherwise
    a.check("#share-link-on")
    expect(a.locator("#share-link")).to_have_value(re.compile("^" + re.escape(live.browser_url + "/join/")))
    link = a.locator("#share-link").input_value()
    a.click("#share-close")

    # Bob opens the link, joins, and sees Ada here, and Ada sees him.
    b.goto(link)
    b.click("#join")
    expect(b.locator(f"#presence .person[data-user-id='{ada.pk}']")).to_be_visible()
    expect(a.locator(f"#presence .person[data-user-id='{bob.pk}']")).to_be_visible()
    assert Membership.objects.get(user=bob).role == "member"

    # Ada types: Bob sees it, and it goes away once she stops.
    a.locator("#prompt-input").press_sequentially("thinking about it")
    expect(b.locator("#typing")).to_have_text("ada is typing…")
    expect(b.locator("#typing")).to_have_text("", timeout=10_000)

    # Bob's follow-up queues behind Ada's running prompt, labelled with his name on both pages.
    b.fill("#prompt-input", "justtext from bob")
    b.click("#send")
    for viewer in (a, b):
        expect(viewer.locator(".queue-item").filter(has_text="justtext from bob").locator(".queue-author")) \
            .to_have_text("bob")
    assert Prompt.objects.get(text="justtext from bob").author == bob

    # Bob's page reloads (a new socket): on Ada's page he never leaves the list meanwhile.
    a.evaluate("""(id) => {
        window.bobGone = false;
        const list = document.getElementById("presence");
        new MutationObserver(() => {
            if (!list.querySelector(`[data-user-id="${id}"]`)) window.bobGone = true;
        }).observe(list, { childList: true });
    }""", bob.pk)
    b.reload()
    expect(b.locator("#presence .person")).to_have_count(2)
    a.wait_for_timeout(5000)  # past the grace a leaving person is kept for
    assert a.evaluate("window.bobGone") is False

    # Ada makes Bob a watcher: his page reloads without the prompt box and the workspace.
    a.click("#share-open")
    a.locator(f"#share-members li[data-user-id='{bob.pk}'] .member-role").select_option("watcher")
    expect(b.locator("#watch-only")).to_be_visible()
    expect(b.locator("#composer")).to_be_hidden()
    expect(b.locator("#workspace")).to_have_count(0)

    # Ada removes Bob (the dialog still open): his page loses the session at once, and he cannot come back by
    # the old link once she turns it off.
    a.locator(f"#share-members li[data-user-id='{bob.pk}'] .member-remove").click()
    expect(b.locator("#socket-state")).to_have_attribute("data-state", "closed")
    expect(a.locator(f"#share-members li[data-user-id='{bob.pk}']")).to_have_count(0)
    a.uncheck("#share-link-on")
    expect(a.locator("#share-link")).to_be_hidden()
    b.goto(link)
    expect(b.locator("#join-problem")).to_contain_text("does not work any more")
    assert not Session.objects.get().memberships.filter(user=bob).exists()
    b.context.close()
    a.context.close()
