"""The workspace page (a session's page): who may see it, what it holds, and its scripts in Chromium."""

from pathlib import Path

import pytest

from tests.support.rows import login, owned_session

pytestmark = pytest.mark.django_db


def test_the_session_page_is_for_members_and_staff_only(client, users, repo):
    session = owned_session(repo, users["ada"], "Ada's table fix")
    assert login(client, users["bob"]).get(f"/sessions/{session.pk}/").status_code == 404
    assert client.get("/sessions/999999/").status_code == 404  # the same answer as for a session that exists
    session.add_member(users["bob"])
    assert client.get(f"/sessions/{session.pk}/").status_code == 200
    assert login(client, users["root"]).get(f"/sessions/{session.pk}/").status_code == 200


def test_the_session_page_has_the_socket_and_the_prompt_box(client, users, repo):
    session = owned_session(repo, users["ada"], "<script>alert(1)</script>", branch="inspect/x")
    page = login(client, users["ada"]).get(f"/sessions/{session.pk}/").content.decode()
    assert f'data-ws-path="/ws/sessions/{session.pk}/"' in page and f'data-session-id="{session.pk}"' in page
    for hook in ['id="timeline"', 'id="prompt-input"', 'id="send"', 'id="stop"', 'id="queue"',
                 'id="socket-state"', 'id="sandbox-phase"', "sessions/session.js"]:
        assert hook in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- the page's script (static/sessions/session.js), in Chromium, against a fake socket ---------

FAKE_SOCKET = """
window.fake = { sockets: [], sent: [], events: [] };
window.WebSocket = class {
  static OPEN = 1;
  constructor(url) { this.url = url; this.readyState = 0; fake.sockets.push(this); setTimeout(() => this.open(), 5); }
  open() { this.readyState = 1; this.onopen({}); }
  send(text) {
    const msg = JSON.parse(text); fake.sent.push(msg);
    if (msg.type === "subscribe") fake.events.filter((e) => e.seq > msg.after).forEach((e) => this.deliver(e));
  }
  deliver(ev) { this.onmessage({ data: JSON.stringify({ type: "event", ...ev }) }); }
  reply(obj) { this.onmessage({ data: JSON.stringify(obj) }); }
  close(code) {
    if (this.readyState !== 3) { this.readyState = 3; this.onclose && this.onclose({ code: code || 1006 }); }
  }
};
fake.live = () => fake.sockets.findLast((s) => s.readyState === 1);
fake.store = (kind, data) => {
  const ev = { seq: fake.events.length + 1, kind, data, created_at: new Date().toISOString() };
  fake.events.push(ev);
  return ev;
};
fake.emit = (kind, data) => { const ev = fake.store(kind, data); const s = fake.live(); if (s) s.deliver(ev); };
"""
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page(client, users, repo, open_tmp, settings):
    """The real session page, its static files from the checkout, the socket faked."""
    pytest.importorskip("playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium")
    session = owned_session(repo, users["ada"], "Fix the table")
    html = login(client, users["ada"]).get(f"/sessions/{session.pk}/").content.decode()
    static = (Path(settings.BASE_DIR) / "static").as_uri() + "/"
    html = html.replace('href="/static/', f'href="{static}').replace('src="/static/', f'src="{static}')
    html = html.replace("<script src=", f"<script>{FAKE_SOCKET}</script><script src=", 1)
    (open_tmp / "session.html").write_text(html)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:  # started after the database work: it runs an event loop
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page()
        errors = []
        tab.on("pageerror", lambda error: errors.append(error))
        tab.goto((open_tmp / "session.html").as_uri())
        tab.wait_for_function("fake.live()")
        yield tab
        browser.close()
        assert not errors


def seqs(page) -> list[int]:
    return page.eval_on_selector_all("#timeline [data-seq]", "nodes => nodes.map((n) => +n.dataset.seq)")


@pytest.mark.sandbox  # Chromium
def test_the_timeline_shows_every_kind_and_never_parses_data_as_html(page):
    evil = "<img src=x onerror=window.pwned=1>"
    page.evaluate("""evil => {
      fake.emit("prompt_queued", {prompt_id: 1, author: {id: 1, name: "ada"}, text: evil, position: 1, context: {
        picks: [{url: "http://localhost:5173/" + evil, selector: "button.pay", components: [
          {name: "App"}, {name: evil, source: {file: "src/PayButton.tsx", line: 7}}]}]}});
      fake.emit("sandbox", {state: "provisioning"});
      fake.emit("text_delta", {message_id: "m", part_id: "p1", delta: "Hel"});
      fake.emit("text_delta", {message_id: "m", part_id: "p1", delta: evil});
      fake.emit("tool_started", {call_id: "c1", tool: "bash", input: {command: evil}});
      fake.emit("tool_finished", {call_id: "c1", tool: "bash", input: {command: "x"}, output: evil, error: "exit 1"});
      fake.emit("file_edited", {path: "a.py", diff: "--- a/a.py\\n+++ b/a.py\\n@@ -1 +1 @@\\n-old\\n+" + evil});
      fake.emit("title", {title: evil});
      fake.emit("error", {name: "ProviderError", message: evil});
      fake.emit("some_future_kind", {});
    }""", evil)
    page.wait_for_function("document.querySelector('#timeline').dataset.lastSeq === '10'")
    assert page.evaluate("window.pwned") is None and page.locator("#timeline img").count() == 0
    assert page.text_content(".prompt[data-prompt-id='1'] .prompt-text") == evil
    # A pick from the Chrome extension: its component chain, the picked one's source, the page it was on.
    assert page.text_content(".prompt[data-prompt-id='1'] .pick-chain") == f"App › {evil} src/PayButton.tsx:7"
    assert page.text_content(".prompt[data-prompt-id='1'] .pick-page") == "http://localhost:5173/" + evil
    assert page.text_content(".assistant-text[data-part-id='p1']") == "Hel" + evil
    card = page.locator(".tool-card[data-call-id='c1']")
    assert card.get_attribute("data-state") == "error" and card.locator(".tool-output").text_content() == evil
    assert page.text_content(".diff .add") == "+" + evil and page.text_content(".diff .del") == "-old"
    assert page.text_content("#session-title") == evil
    assert page.text_content("#sandbox-phase") == "sandbox: provisioning"
    assert evil in page.text_content(".event-error") and page.locator(".note-unknown").count() == 1
    assert seqs(page) == sorted(set(seqs(page)))
    page.evaluate("fake.emit('text', {message_id: 'm', part_id: 'p1', text: 'Hello.'})")
    page.wait_for_function("document.querySelector('[data-part-id=p1]').textContent === 'Hello.'")


@pytest.mark.sandbox  # Chromium
def test_a_reconnect_resubscribes_from_the_last_seq_and_shows_nothing_twice(page):
    page.evaluate("""() => {
      for (const p of ["one", "two", "three"]) fake.emit("text", {message_id: "m", part_id: p, text: p});
      fake.live().close(1006);
      fake.store("text", {message_id: "m", part_id: "four", text: "four"});  // while the page was away
    }""")
    assert page.get_attribute("#socket-state", "data-state") == "reconnecting"
    page.wait_for_function("fake.sockets.length === 2 && fake.live()")
    subscribes = page.evaluate("fake.sent.filter((m) => m.type === 'subscribe').map((m) => m.after)")
    assert subscribes == [0, 3]
    page.evaluate("fake.live().deliver(fake.events[1])")  # a duplicate
    page.evaluate("fake.emit('text', {message_id: 'm', part_id: 'five', text: 'five'})")
    page.wait_for_function("document.querySelector('#timeline').dataset.lastSeq === '5'")
    assert seqs(page) == [1, 2, 3, 4, 5]
    assert page.get_attribute("#socket-state", "data-state") == "connected"


@pytest.mark.sandbox  # Chromium
def test_events_overtaken_by_later_ones_are_put_back_in_order(page):
    page.evaluate("""() => {
      const [a, b, c] = ["a", "b", "c"].map((p) => fake.store("text", {message_id: "m", part_id: p, text: p}));
      fake.live().deliver(a); fake.live().deliver(c); fake.live().deliver(b);
    }""")
    page.wait_for_function("document.querySelector('#timeline').dataset.lastSeq === '3'")
    assert page.eval_on_selector_all(".assistant-text", "ns => ns.map((n) => n.textContent)") == ["a", "b", "c"]


@pytest.mark.sandbox  # Chromium
def test_prompt_queue_cancel_and_stop(page):
    page.fill("#prompt-input", "also the payments table")
    page.press("#prompt-input", "Control+Enter")
    page.evaluate("""() => {
      fake.live().reply({type: "ok", for: "prompt", prompt_id: 2});
      fake.emit("prompt_queued", {prompt_id: 2, author: {id: 1, name: "ada"}, text: "also the payments table"});
      fake.emit("busy", {prompt_id: 1});
    }""")
    page.wait_for_selector(".queue-item[data-prompt-id='2']")
    assert page.input_value("#prompt-input") == ""
    page.click(".queue-item[data-prompt-id='2'] .cancel")
    page.click("#stop")
    sent = page.evaluate("fake.sent.filter((m) => m.type !== 'subscribe')")
    # Writing said so (once, not per keystroke): the page shows no live sandbox, so it asks for one at once.
    assert sent == [{"type": "typing", "warm": True},
                    {"type": "prompt", "text": "also the payments table", "context": None},
                    {"type": "cancel", "prompt_id": 2}, {"type": "stop"}]
    # Its subscription names the surface: the others see this person here, on the web.
    assert page.evaluate("fake.sent.find((m) => m.type === 'subscribe').surface") == "web"
    page.evaluate("fake.emit('prompt_cancelled', {prompt_id: 2, by: {name: 'bob'}}); fake.emit('idle', {prompt_id: 1})")
    page.wait_for_selector("#queue-box", state="hidden")
    assert page.is_hidden("#stop")
    assert page.get_attribute(".prompt[data-prompt-id='2']", "data-state") == "cancelled"
    assert page.inner_text(".prompt[data-prompt-id='2'] .prompt-state") == "cancelled by bob"


@pytest.mark.sandbox  # Chromium
def test_the_page_names_services_and_groups_sandbox_states_as_the_server_does(page):
    page.evaluate("""() => {
      fake.emit("sandbox_phase", {sandbox_id: "s", state: "syncing", reason: ""});
      fake.emit("service", {name: "preview-3000", state: "ready", port: 3000, reason: ""});
      fake.emit("service", {name: "desktop", state: "starting", port: null, reason: ""});
      fake.emit("service", {name: "ide", state: "ready", port: 41000, reason: ""});
    }""")
    page.wait_for_function("document.querySelector('#timeline').dataset.lastSeq === '4'")
    notes = page.eval_on_selector_all(".service-note", "ns => ns.map((n) => n.textContent)")
    assert notes == ["Preview :3000 ready", "Desktop starting", "VS Code ready"]  # ide/names.py SERVICE_NAMES
    assert "starting" in page.get_attribute("#sandbox-phase", "class")  # syncing is a starting state
    page.evaluate("fake.emit('sandbox_phase', {sandbox_id: 's', state: 'ready', reason: ''})")
    page.wait_for_function("!document.querySelector('#sandbox-phase').classList.contains('starting')")
