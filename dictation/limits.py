"""How often a person may have a recording transcribed: a counter per person and minute, in the shared cache so
that every web process counts the same."""

from django.conf import settings
from django.core.cache import cache


def transcription_allowed(user_id: object, now: float) -> bool:
    """Whether `user_id` may ask for one more transcription this minute; counts it if so."""
    key = f"rate:dictation:{user_id}:{int(now // 60)}"
    cache.add(key, 0, 120)
    try:
        return cache.incr(key) <= settings.DICTATION_PER_MINUTE
    except ValueError:  # expired between add and incr: a new minute
        return True
