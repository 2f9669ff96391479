"""POST /dictation/transcribe: a recording from the prompt box's microphone button, transcribed by the configured
service (dictation/transcription.py). The transcript goes back to the page; nothing is sent to the agent."""

import time

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.http import require_POST

from dictation import limits, transcription
from dictation.transcription import Refused

# What a multipart envelope may add to the recording itself (boundaries, headers, the CSRF field).
ENVELOPE_BYTES = 64 * 1024


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@require_POST
def transcribe(request: HttpRequest) -> JsonResponse:
    """Signed-in people only (LoginRequiredMiddleware), CSRF-checked; multipart with one `audio` file."""
    try:
        transcription.service()
        if not limits.transcription_allowed(request.user.pk, time.time()):  # before the upload is parsed
            raise Refused(429, f"At most {settings.DICTATION_PER_MINUTE} recordings a minute can be transcribed: "
                               "try again in a minute.")
        audio, extension, content_type = recording(request)
        return JsonResponse({"text": transcription.transcribe(audio, extension, content_type)})
    except Refused as refused:
        return error(refused.status, refused.message)


def recording(request: HttpRequest) -> tuple[bytes, str, str]:
    """The uploaded recording and its (extension, content type), or Refused saying what is wrong with it."""
    limit = settings.DICTATION_MAX_AUDIO_BYTES
    too_big = Refused(413, f"The recording is larger than {limit / 1024**2:g} MB: record a shorter one.")
    declared = request.META.get("CONTENT_LENGTH") or ""
    # Told by its length first, so an oversized upload is not parsed at all.
    if declared.isascii() and declared.isdigit() and int(declared) > limit + ENVELOPE_BYTES:
        raise too_big
    try:
        upload = request.FILES.get("audio")
    except MultiPartParserError:
        upload = None
    if upload is None:
        raise Refused(400, "Send the recording as multipart/form-data, in a file field named 'audio'.")
    if upload.size is not None and upload.size > limit:
        raise too_big
    if not upload.size:
        raise Refused(400, "The recording is empty: nothing was heard. Try again.")
    audio = upload.read(limit + 1)
    if len(audio) > limit:
        raise too_big
    found = transcription.audio_format(audio[:16])
    if found is None:
        raise Refused(400, "This is not a recording in a format the transcription service takes "
                           "(WebM, Ogg, MP4, WAV, FLAC or MP3).")
    return audio, *found
