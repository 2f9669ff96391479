"""Transcribing a recording with the provider settings.TRANSCRIPTION_MODEL names, through its OpenAI-compatible
`POST <base_url>/audio/transcriptions`. The provider's key is added here and never leaves the control plane.

Every failure is a Refused with the status and the plain message the browser shows next to the prompt box.
"""

import json
import logging
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from model_providers.providers import Provider, configured_providers, split_model

logger = logging.getLogger(__name__)

NOT_CONFIGURED = ("No transcription service is configured: an admin can set TRANSCRIPTION_MODEL "
                  "(e.g. openai/whisper-1) in the control plane's environment.")
CONNECT_TIMEOUT_SECONDS = 10.0
MESSAGE_CHARS = 300  # of a provider's error message, shown to the person

# What the transcription APIs accept, told by the file's first bytes (not by the name or type a browser gives):
# (magic, offset, extension, content type).
SIGNATURES = (
    (b"\x1a\x45\xdf\xa3", 0, "webm", "audio/webm"),  # Matroska/WebM: Chrome's and Firefox's MediaRecorder
    (b"OggS", 0, "ogg", "audio/ogg"),
    (b"ftyp", 4, "mp4", "audio/mp4"),  # MP4/M4A: Safari's MediaRecorder
    (b"RIFF", 0, "wav", "audio/wav"),
    (b"fLaC", 0, "flac", "audio/flac"),
    (b"ID3", 0, "mp3", "audio/mpeg"),
)


class Refused(Exception):
    """A request the control plane answers itself: `status` and a message for the person."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Service:
    provider: Provider
    model: str


def service() -> Service:
    """The configured transcription service, or Refused (404 when none is set, 503 when it is set wrong)."""
    value = settings.TRANSCRIPTION_MODEL
    if not value:
        raise Refused(404, NOT_CONFIGURED)
    try:
        provider_name, model = split_model(value)
        providers = configured_providers()
    except (ValueError, ImproperlyConfigured) as error:
        raise Refused(503, f"TRANSCRIPTION_MODEL is set wrong: {error}") from None
    provider = next((p for p in providers if p.name == provider_name), None)
    if provider is None:
        names = ", ".join(p.name for p in providers) or "none"
        raise Refused(503, f"TRANSCRIPTION_MODEL names the provider {provider_name!r}, which is not configured "
                           f"(configured: {names}).")
    if provider.kind != "openai":  # Anthropic's API has no transcription endpoint
        raise Refused(503, f"The provider {provider.name!r} does not offer transcription: TRANSCRIPTION_MODEL must "
                           "name an OpenAI-compatible provider.")
    return Service(provider, model)


def available() -> bool:
    """Whether recordings can be transcribed here (the page offers recording only then)."""
    try:
        service()
    except Refused:
        return False
    return True


def audio_format(head: bytes) -> tuple[str, str] | None:
    """(extension, content type) of a recording from its first bytes, or None when it is no audio we know."""
    for magic, offset, extension, content_type in SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            if extension == "wav" and head[8:12] != b"WAVE":
                return None
            return extension, content_type
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MP3 frame without an ID3 tag
        return "mp3", "audio/mpeg"
    return None


def provider_message(response: httpx.Response, api_key: str) -> str:
    """The provider's own error message, trimmed, with its key blanked out should it echo it."""
    try:
        payload = response.json()
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        message = error.get("message") if isinstance(error, dict) else error
        text = message if isinstance(message, str) else json.dumps(payload)
    except ValueError:
        text = response.text
    text = " ".join(text.split())
    if api_key:
        text = text.replace(api_key, "[key]")
    return text[:MESSAGE_CHARS] or response.reason_phrase


def transcribe(audio: bytes, extension: str, content_type: str) -> str:
    """The text the configured service hears in `audio`, or Refused."""
    found = service()
    provider = found.provider
    url = provider.upstream_url("audio/transcriptions")
    timeout = httpx.Timeout(settings.DICTATION_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
    try:
        response = httpx.post(url, headers=provider.wire.auth_headers(provider.api_key), timeout=timeout,
                              files={"file": (f"dictation.{extension}", audio, content_type)},
                              data={"model": found.model, "response_format": "json"})
    except httpx.TimeoutException:
        raise Refused(502, f"The transcription service ({provider.label}) did not answer within "
                           f"{settings.DICTATION_TIMEOUT_SECONDS:g} s: try a shorter recording, or type.") from None
    except httpx.HTTPError as error:
        logger.warning("dictation: %s unreachable: %s", provider.name, type(error).__name__)
        raise Refused(502, f"The transcription service ({provider.label}) could not be reached.") from None
    if response.status_code in (404, 405):
        raise Refused(502, f"The provider {provider.label} does not offer transcription (it has no "
                           "/audio/transcriptions endpoint): an admin can point TRANSCRIPTION_MODEL at one that does.")
    if response.status_code != 200:
        raise Refused(502, f"The transcription service ({provider.label}) answered {response.status_code}: "
                           f"{provider_message(response, provider.api_key)}")
    try:
        text = response.json()["text"]
    except (ValueError, KeyError, TypeError):
        raise Refused(502, f"The transcription service ({provider.label}) answered without a transcript.") from None
    if not isinstance(text, str):
        raise Refused(502, f"The transcription service ({provider.label}) answered without a transcript.")
    return text.strip()
