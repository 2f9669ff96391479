"""{% voice_button "textarea-id" %}: the microphone button beside a prompt box, with its styles and script, so a
page adds it with one line (templates/ide/workspace.html, templates/sessions/new.html)."""

from django import template
from django.conf import settings
from django.urls import reverse

from dictation import transcription

register = template.Library()


@register.inclusion_tag("dictation/voice_button.html", takes_context=True)
def voice_button(context: template.Context, target_id: str) -> dict:
    return {
        "target_id": target_id,
        "csrf_token": context.get("csrf_token"),
        "transcribe_url": reverse("dictation-transcribe"),
        "server_transcription": transcription.available(),
        "max_seconds": settings.DICTATION_MAX_SECONDS,
    }
