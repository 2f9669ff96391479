"""How often a person may have a recording transcribed: a counter per person and minute, in the shared cache so
that every web process counts the same."""

from django.conf import settings

from sessions.rate_limits import per_minute_allowed


def transcription_allowed(user_id: object, now: float) -> bool:
    """Whether `user_id` may send one more recording this minute; counts it if so (refused ones too: each is an
    upload the server read)."""
    return per_minute_allowed("dictation", user_id, settings.DICTATION_PER_MINUTE, now)
