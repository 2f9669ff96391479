"""The microphone button in a real Chromium, emulating a phone, against a plain Daphne serving rows (no sandbox
runs): the browser's speech recognition (a scripted one, as Chromium's needs Google's servers), a recording
transcribed through the control plane by the scripted provider, and neither."""

import pytest
from django.conf import settings as django_settings
from django.test import Client
from playwright.sync_api import expect, sync_playwright

from sessions.models import Prompt, Session
from tests.end_to_end.conftest import CHROMIUM_ARGS
from tests.support.live_server import LiveServer
from tests.support.providers import OPENAI_KEY
from tests.support.rows import owned_session
from tests.support.waiting import eventually

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]

UNAVAILABLE = "Voice input needs a browser with speech recognition, or a transcription service on the server."

# A SpeechRecognition as Chromium's behaves with continuous and interim results: each `result` event carries the
# session's whole result list and the index of the first result that changed; a result is interim until final.
# The test speaks through window.fakeSpeech.
FAKE_SPEECH = """
(() => {
  class FakeSpeechRecognition extends EventTarget {
    constructor() {
      super();
      this.continuous = false; this.interimResults = false; this.lang = "";
      this.onresult = this.onerror = this.onend = this.onstart = null;
      this.results = []; this.current = 0; this.running = false;
      window.fakeSpeech.recognitions.push(this);
    }
    fire(type, fields) {
      const event = Object.assign(new Event(type), fields);
      this.dispatchEvent(event);
      if (typeof this["on" + type] === "function") this["on" + type](event);
    }
    start() {
      if (this.running) throw new DOMException("recognition has already started", "InvalidStateError");
      this.running = true;
      setTimeout(() => this.fire("start", {}), 10);
    }
    say(transcript, isFinal) {
      const result = Object.assign([{ transcript, confidence: 0.9 }], { isFinal });
      this.results[this.current] = result;
      const list = Object.assign([...this.results], { item(i) { return this[i]; } });
      this.fire("result", { resultIndex: this.current, results: list });
      if (isFinal) this.current += 1;
    }
    stop() {
      if (!this.running) return;
      setTimeout(() => { this.running = false; this.fire("end", {}); }, 50);
    }
    abort() { this.stop(); }
  }
  window.fakeSpeech = {
    recognitions: [],
    live() { return this.recognitions.filter((r) => r.running).at(-1); },
    interim(text) { this.live().say(text, false); },
    final(text) { this.live().say(text, true); },
  };
  window.SpeechRecognition = undefined;
  window.webkitSpeechRecognition = FakeSpeechRecognition;
})();
"""
NO_SPEECH = "delete window.SpeechRecognition; delete window.webkitSpeechRecognition;"


@pytest.fixture
def phone(monkeypatch):
    """phone(base_url, user, init_script) -> a page in Chromium emulating a phone, signed in as `user`, with a
    fake microphone that is allowed without asking."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API keeps a loop in this thread
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            *CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"])

        def open_page(base_url: str, user, init_script: str):
            context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                          device_scale_factor=2)
            client = Client()
            client.force_login(user)
            context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "url": base_url,
                                  "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value}])
            context.add_init_script(init_script)
            page = context.new_page()
            page.set_default_timeout(20_000)
            expect.set_options(timeout=20_000)
            return page

        yield open_page
        browser.close()


@pytest.fixture
def daphne(model_server):
    """A Daphne whose transcription service is the scripted provider's whisper-1."""
    model_server.transcription_key = OPENAI_KEY
    server = LiveServer(env={
        "OPENAI_COMPATIBLE_NAME": "scripted", "OPENAI_COMPATIBLE_BASE_URL": model_server.url + "/v1",
        "OPENAI_COMPATIBLE_MODELS": "scripted", "OPENAI_COMPATIBLE_API_KEY": OPENAI_KEY,
        "TRANSCRIPTION_MODEL": "scripted/whisper-1",
    }).start()
    yield server
    server.stop()


# Rows are made by fixtures named before `phone`: once Playwright's loop runs in this thread, the signals they send
# through the channel layer (async_to_sync) cannot.
@pytest.fixture
def session(repo, user) -> Session:
    return owned_session(repo, user)


def test_speech_recognition_fills_a_follow_up_which_is_sent_only_with_send(session, phone, daphne, user):
    page = phone(daphne.browser_url, user, FAKE_SPEECH)
    page.goto(f"{daphne.browser_url}/sessions/{session.pk}/")
    expect(page.locator("#socket-state")).to_have_attribute("data-state", "connected")
    button, box = page.locator("#voice-button"), page.locator("#prompt-input")
    expect(page.locator("#voice")).to_have_attribute("data-mode", "speech")
    box.fill("Please")

    button.tap()
    expect(button).to_have_attribute("aria-pressed", "true")
    expect(button).to_have_text("Stop")
    page.evaluate("window.fakeSpeech.interim('fix the')")
    expect(page.locator("#voice-interim")).to_have_text("fix the")
    page.evaluate("window.fakeSpeech.interim('fix the invoice table')")
    expect(page.locator("#voice-interim")).to_have_text("fix the invoice table")
    expect(box).to_have_value("Please")  # interim words are shown, not written in
    page.evaluate("window.fakeSpeech.final('fix the invoice table')")
    expect(box).to_have_value("Please fix the invoice table")
    expect(page.locator("#voice-interim")).to_be_empty()
    page.evaluate("window.fakeSpeech.interim('on mobile')")
    page.evaluate("window.fakeSpeech.final('on mobile')")
    expect(box).to_have_value("Please fix the invoice table on mobile")

    button.tap()  # stops listening
    expect(button).to_have_attribute("aria-pressed", "false")
    expect(button).to_have_text("Dictate")
    assert page.evaluate("window.fakeSpeech.recognitions.length") == 1
    assert page.evaluate("window.fakeSpeech.recognitions[0].interimResults") is True
    page.wait_for_timeout(300)
    assert not Prompt.objects.filter(session=session).exists()  # nothing is sent by dictating

    page.locator("#send").tap()
    prompt = eventually(lambda: Prompt.objects.filter(session=session).first(), what="the follow-up queued")
    assert prompt.text == "Please fix the invoice table on mobile" and prompt.author_id == user.pk


def test_a_recording_is_transcribed_by_the_control_plane_into_a_new_sessions_prompt(repo, phone, daphne, model_server,
                                                                                     user):
    model_server.transcripts = ["The invoice table overflows on mobile, fix it."]
    page = phone(daphne.browser_url, user, NO_SPEECH)
    page.goto(f"{daphne.browser_url}/sessions/new")
    button, box = page.locator("#voice-button"), page.locator("#id_prompt")
    expect(page.locator("#voice")).to_have_attribute("data-mode", "record")

    button.tap()
    expect(page.locator("#voice")).to_have_attribute("data-state", "recording")
    expect(button).to_contain_text("Stop 0:01")  # it shows how long it has been recording
    expect(page.locator("#voice-status")).to_contain_text("at most 2:00")
    button.tap()
    expect(box).to_have_value("The invoice table overflows on mobile, fix it.")
    expect(page.locator("#voice-status")).to_have_text("Transcribed: check it, then press Send.")

    [sent] = [r for r in model_server.requests if r["path"] == "/v1/audio/transcriptions"]
    assert sent["body"]["model"] == "whisper-1" and sent["body"]["size"] > 100
    assert sent["body"]["filename"] == "dictation.webm" and sent["body"]["content_type"] == "audio/webm"
    assert OPENAI_KEY not in page.content()
    assert not Session.objects.exists()  # nothing is sent by dictating

    page.locator("#create").tap()
    page.wait_for_url(f"{daphne.browser_url}/sessions/*/")
    session = Session.objects.get()
    assert session.repo_id == repo.pk
    assert session.prompts.get().text == "The invoice table overflows on mobile, fix it."


def test_without_speech_recognition_or_a_transcription_service_the_button_says_voice_is_unavailable(repo, phone,
                                                                                                    user):
    server = LiveServer().start()
    try:
        page = phone(server.browser_url, user, NO_SPEECH)
        page.goto(f"{server.browser_url}/sessions/new")
        button = page.locator("#voice-button")
        expect(page.locator("#voice")).to_have_attribute("data-mode", "none")
        expect(button).to_have_text("Voice unavailable")
        expect(button).to_have_attribute("aria-disabled", "true")
        expect(button).to_have_attribute("title", UNAVAILABLE)
        button.tap(force=True)  # Playwright taps no aria-disabled button by itself; a person can, and is told why
        expect(page.locator("#voice-status")).to_have_text(UNAVAILABLE)
        expect(page.locator("#id_prompt")).to_have_value("")
    finally:
        server.stop()
