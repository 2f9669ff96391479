"""Helpers for the sessions tests."""

from sessions.models import Prompt, Session


def prompt_statuses(session: Session) -> list[tuple[int, str]]:
    return list(Prompt.objects.filter(session=session).order_by("position").values_list("pk", "status"))


def event_kinds(session: Session) -> list[str]:
    return list(session.events.order_by("seq").values_list("kind", flat=True))
