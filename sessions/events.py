"""The session event log: every event gets the session's next sequence number and is stored
before it is fanned out, so a client that resumes from the last seq it saw misses nothing."""

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from sessions.models import Event, Session

logger = logging.getLogger(__name__)

MAX_KIND_LENGTH = 50

# Set by collect_fan_out: where committed events' messages go instead of the channel layer.
_collected: contextvars.ContextVar[list[dict] | None] = contextvars.ContextVar("collected_fan_out", default=None)


def group_name(session_id: int) -> str:
    return f"session-{session_id}"


def append_event(session_id: int, kind: str, data: dict, bridge_event_id: str = "") -> Event | None:
    """Store an event with the next seq; fan it out once the transaction commits.
    Returns None, changing nothing, when an event with this bridge_event_id is already stored."""
    if not kind or len(kind) > MAX_KIND_LENGTH:
        raise ValueError(f"An event kind is 1 to {MAX_KIND_LENGTH} characters.")
    data = without_nul(data)
    with transaction.atomic():
        # The row lock serializes seq allocation per session on Postgres; on SQLite the
        # transaction itself takes the write lock (transaction_mode IMMEDIATE).
        last_seq = (
            Session.objects.select_for_update(of=("self",)).values_list("last_seq", flat=True).get(pk=session_id)
        )
        if bridge_event_id and Event.objects.filter(session_id=session_id, bridge_event_id=bridge_event_id).exists():
            return None
        now = timezone.now()
        Session.objects.filter(pk=session_id).update(last_seq=last_seq + 1, last_activity_at=now)
        event = Event.objects.create(
            session_id=session_id, seq=last_seq + 1, kind=kind, data=data,
            bridge_event_id=bridge_event_id, created_at=now,
        )
        transaction.on_commit(lambda: fan_out(event))
    return event


def fan_out(event: Event) -> None:
    """Tell the session's sockets. A failure loses nothing: the event is stored and clients resume."""
    collected = _collected.get()
    if collected is not None:
        collected.append(event.as_message() | {"session_id": event.session_id})
        return
    try:
        async_to_sync(get_channel_layer().group_send)(
            group_name(event.session_id), {"type": "session.event", "event": event.as_message()}
        )
    except Exception:
        logger.exception("could not fan out event %s of session %s", event.seq, event.session_id)


@contextmanager
def collect_fan_out() -> Iterator[list[dict]]:
    """For sync code an async consumer calls: events committed inside the block are not sent from
    this (Channels' one database) thread but collected, in commit order, for `send_fan_out` on the
    event loop. Saves the database thread a blocking group_send per event."""
    collected: list[dict] = []
    token = _collected.set(collected)
    try:
        yield collected
    finally:
        _collected.reset(token)


async def send_fan_out(collected: list[dict]) -> None:
    """Send collected events: one channel-layer message per session, its events in seq order."""
    by_session: dict[int, list[dict]] = {}
    for message in collected:
        event = dict(message)
        by_session.setdefault(event.pop("session_id"), []).append(event)
    layer = get_channel_layer()
    for session_id, events in by_session.items():
        try:
            await layer.group_send(group_name(session_id), {"type": "session.events", "events": events})
        except Exception:
            logger.exception("could not fan out events %s-%s of session %s",
                             events[0]["seq"], events[-1]["seq"], session_id)


def events_after(session_id: int, seq: int, limit: int = 500) -> list[Event]:
    """Stored events with a seq above `seq`, oldest first, at most `limit`."""
    return list(Event.objects.filter(session_id=session_id, seq__gt=seq).order_by("seq")[:limit])


def without_nul(value):
    """Postgres cannot store NUL in text or JSON; tool output may contain it."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value
