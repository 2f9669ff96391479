"""POST /dictation/transcribe (dictation/): a recording goes to the configured provider's OpenAI-compatible
/audio/transcriptions with the provider's key, and only its transcript comes back. Every bad request is refused
with a clear message before the provider is called, and nothing else changes."""

import json
import socket

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from dictation.views import ENVELOPE_BYTES
from ide import front_config
from sessions.models import Prompt, Session
from tests.support.providers import ANTHROPIC_KEY, OPENAI_KEY, provider_settings
from tests.support.rows import login, owned_session

pytestmark = pytest.mark.django_db

URL = "/dictation/transcribe"
# The first bytes of what browsers' MediaRecorder makes: WebM (Chrome, Firefox) and MP4 (Safari).
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + b"\x00" * 200
MP4 = b"\x00\x00\x00\x1cftypiso5" + b"\x00" * 200


@pytest.fixture
def provider(settings, model_server):
    """The scripted provider, configured for transcription with the model whisper-1 and its key checked."""
    settings.MODEL_PROVIDERS = provider_settings(model_server.url)
    settings.TRANSCRIPTION_MODEL = "scripted/whisper-1"
    model_server.transcription_key = OPENAI_KEY
    return model_server


@pytest.fixture
def ada(client, user) -> Client:
    return login(client, user)


def upload(data: bytes = WEBM, name: str = "dictation.webm", content_type: str = "audio/webm") -> dict:
    return {"audio": SimpleUploadedFile(name, data, content_type=content_type)}


def transcriptions(server) -> list[dict]:
    return [r for r in server.requests if r["path"].endswith("/audio/transcriptions")]


def header(sent: dict, name: str) -> str | None:
    return next((v for k, v in sent["headers"].items() if k.lower() == name.lower()), None)


def nothing_changed() -> bool:
    return not Prompt.objects.exists() and not Session.objects.exists()


def test_a_recording_comes_back_as_its_transcript_and_the_key_stays_on_the_control_plane(provider, ada):
    provider.transcripts = ["The invoice table overflows on mobile, fix it."]

    response = ada.post(URL, upload())

    assert response.status_code == 200
    assert response.json() == {"text": "The invoice table overflows on mobile, fix it."}
    [sent] = transcriptions(provider)
    assert sent["path"] == "/v1/audio/transcriptions"
    assert header(sent, "Authorization") == f"Bearer {OPENAI_KEY}"
    assert sent["body"]["model"] == "whisper-1"
    assert sent["body"]["filename"] == "dictation.webm" and sent["body"]["content_type"] == "audio/webm"
    assert sent["body"]["size"] == len(WEBM)
    assert header(sent, "Cookie") is None  # nothing of the person's own request goes upstream
    assert OPENAI_KEY not in response.content.decode() and OPENAI_KEY not in str(response.headers)
    assert nothing_changed()  # a transcript only: no prompt is sent


def test_the_format_is_told_by_the_recordings_bytes_not_by_what_the_browser_says(provider, ada):
    response = ada.post(URL, upload(MP4, name="voice.bin", content_type="application/octet-stream"))

    assert response.status_code == 200
    [sent] = transcriptions(provider)
    assert sent["body"]["filename"] == "dictation.mp4" and sent["body"]["content_type"] == "audio/mp4"


def test_both_prompt_boxes_offer_recording_only_when_a_transcription_service_is_configured(settings, provider, ada,
                                                                                          user, repo):
    session = owned_session(repo, user)
    new_page = ada.get(reverse("session-new")).content.decode()
    session_page = ada.get(reverse("session-detail", args=[session.pk])).content.decode()
    assert 'data-target="id_prompt"' in new_page and 'data-target="prompt-input"' in session_page
    for page in (new_page, session_page):
        assert page.count('id="voice-button"') == 1 and 'data-server="true"' in page
        assert OPENAI_KEY not in page and "whisper" not in page

    settings.TRANSCRIPTION_MODEL = ""
    page = ada.get(reverse("session-new")).content.decode()
    assert 'id="voice-button"' in page and 'data-server="false"' in page


# --- the provider's failures: a 502 with a clear message, never its key ----------------------------------------

def test_a_provider_without_a_transcription_endpoint_is_named_as_such(provider, ada):
    provider.offers_transcription = False

    response = ada.post(URL, upload())

    assert response.status_code == 502
    assert "does not offer transcription" in response.json()["error"]
    assert len(transcriptions(provider)) == 1


def test_a_refused_key_is_reported_without_the_key_the_provider_echoed(provider, ada):
    provider.transcription_key = "sk-some-other-key"

    response = ada.post(URL, upload())

    assert response.status_code == 502
    message = response.json()["error"]
    assert "answered 401" in message and "Incorrect API key provided: [key]" in message
    assert OPENAI_KEY not in response.content.decode()


def test_a_provider_error_is_passed_on_trimmed(provider, ada):
    provider.transcription_error = (500, "The server is overloaded. " + "x" * 2000)

    response = ada.post(URL, upload())

    assert response.status_code == 502
    message = response.json()["error"]
    assert "answered 500: The server is overloaded." in message and len(message) < 400


def test_a_model_the_provider_does_not_know_is_its_error(settings, provider, ada):
    settings.TRANSCRIPTION_MODEL = "scripted/whisper-9"

    response = ada.post(URL, upload())

    assert response.status_code == 502
    assert "answered 400" in response.json()["error"] and "whisper-9" in response.json()["error"]


def test_a_slow_provider_times_out_with_a_clear_message(settings, provider, ada):
    settings.DICTATION_TIMEOUT_SECONDS = 0.3
    provider.transcription_delay = 1.5

    response = ada.post(URL, upload())

    assert response.status_code == 502
    assert "did not answer within 0.3 s" in response.json()["error"]


def test_an_unreachable_provider_is_reported(settings, ada):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings.MODEL_PROVIDERS = provider_settings(f"http://127.0.0.1:{port}")
    settings.TRANSCRIPTION_MODEL = "scripted/whisper-1"

    response = ada.post(URL, upload())

    assert response.status_code == 502
    assert "could not be reached" in response.json()["error"]


# --- refused before the provider is called ---------------------------------------------------------------------

@pytest.mark.parametrize(("value", "status", "says"), [
    ("", 404, "No transcription service is configured"),
    ("nobody/whisper-1", 503, "'nobody', which is not configured"),
    ("whisper-1", 503, "TRANSCRIPTION_MODEL is set wrong"),
    ("anthropic/claude-test", 503, "'anthropic' does not offer transcription"),
])
def test_without_a_usable_transcription_service_it_says_what_to_set(settings, provider, ada, value, status, says):
    settings.TRANSCRIPTION_MODEL = value

    response = ada.post(URL, upload())

    assert response.status_code == status
    assert says in response.json()["error"]
    assert transcriptions(provider) == [] and provider.requests == []
    assert ANTHROPIC_KEY not in response.content.decode()


@pytest.mark.parametrize(("files", "status", "says"), [
    ({}, 400, "a file field named 'audio'"),
    ({"recording": SimpleUploadedFile("a.webm", WEBM, "audio/webm")}, 400, "a file field named 'audio'"),
    (upload(b""), 400, "The recording is empty"),
    (upload(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "a.webm", "audio/webm"), 400, "not a recording"),
    (upload(b"hello, I am text pretending to be audio", "a.webm", "audio/webm"), 400, "not a recording"),
    (upload(b"RIFF\x00\x00\x00\x00AVI LIST", "a.wav", "audio/wav"), 400, "not a recording"),
])
def test_a_missing_empty_or_non_audio_upload_is_refused(provider, ada, files, status, says):
    response = ada.post(URL, files)

    assert response.status_code == status
    assert says in response.json()["error"]
    assert transcriptions(provider) == []
    assert nothing_changed()


def test_a_body_that_is_not_multipart_is_refused(provider, ada):
    response = ada.post(URL, json.dumps({"audio": "AAAA"}), content_type="application/json")

    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]
    assert transcriptions(provider) == []


def test_an_oversized_recording_is_refused_with_413(settings, provider, ada):
    settings.DICTATION_MAX_AUDIO_BYTES = 1000

    response = ada.post(URL, upload(WEBM + b"\x00" * 1000))

    assert response.status_code == 413
    assert "larger than" in response.json()["error"]
    assert transcriptions(provider) == []


def test_an_oversized_upload_is_refused_by_its_declared_length_without_being_parsed(settings, provider, ada):
    settings.DICTATION_MAX_AUDIO_BYTES = 1000
    # A body no multipart parser could read, declared far larger than the limit: refused by its length alone.
    response = ada.generic("POST", URL, b"not multipart at all", content_type="multipart/form-data; boundary=zz",
                           CONTENT_LENGTH=str(50 * 1024**2))

    assert response.status_code == 413
    assert "larger than" in response.json()["error"]
    assert transcriptions(provider) == []


def test_the_front_proxy_caps_a_recordings_body_before_daphne_takes_it_all(settings, tmp_path):
    settings.DICTATION_MAX_AUDIO_BYTES = 1000
    config = front_config.render(listen="127.0.0.1:8000", daphnes=["127.0.0.1:8001"], run_dir=tmp_path)
    location = config.split("location = /dictation/transcribe {", 1)[1].split("}", 1)[0]
    assert f"client_max_body_size {1000 + ENVELOPE_BYTES};" in location


def test_a_person_may_have_only_so_many_recordings_transcribed_a_minute(settings, provider, ada, other_user):
    settings.DICTATION_PER_MINUTE = 2

    assert [ada.post(URL, upload()).status_code for _ in range(3)] == [200, 200, 429]
    assert "At most 2 recordings a minute" in ada.post(URL, upload()).json()["error"]
    assert len(transcriptions(provider)) == 2
    # Another person counts their own, and a refused upload counts too: the server read it all the same.
    bob = login(Client(), other_user)
    assert bob.post(URL, upload(b"")).status_code == 400
    assert [bob.post(URL, upload()).status_code for _ in range(2)] == [200, 429]


def test_only_signed_in_people_with_the_pages_csrf_token_may_post(provider, user):
    assert Client().post(URL, upload()).status_code == 302  # to the sign-in page
    checked = login(Client(enforce_csrf_checks=True), user)
    assert checked.post(URL, upload()).status_code == 403
    assert checked.get(URL).status_code == 405
    assert transcriptions(provider) == []
    page = checked.get(reverse("session-new"))
    token = page.cookies["csrftoken"].value
    assert checked.post(URL, upload(), HTTP_X_CSRFTOKEN=token).status_code == 200
