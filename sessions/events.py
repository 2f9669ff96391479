"""The session event log: every event gets the session's next sequence number and is stored
before it is fanned out, so a client that resumes from the last seq it saw misses nothing."""

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from sessions.models import Event, Session

logger = logging.getLogger(__name__)

MAX_KIND_LENGTH = 50

# Set by collect_fan_out: where committed events' messages go instead of the channel layer.
_collected: contextvars.ContextVar[list[dict] | None] = contextvars.ContextVar("collected_fan_out", default=None)


def group_name(session_id: int) -> str:
    return f"session-{session_id}"


def check_kind(kind: str) -> None:
    if not kind or len(kind) > MAX_KIND_LENGTH:
        raise ValueError(f"An event kind is 1 to {MAX_KIND_LENGTH} characters.")


def append_event(session_id: int, kind: str, data: dict, bridge_event_id: str = "") -> Event | None:
    """Store an event with the next seq; fan it out once the transaction commits.
    Returns None, changing nothing, when an event with this bridge_event_id is already stored."""
    return append_events([(session_id, kind, data, bridge_event_id)])[0]


def append_events(entries: list[tuple[int, str, dict, str]]) -> list[Event | None]:
    """Store events (session id, kind, data, bridge event id), in order, each with its session's
    next seq, in a fixed number of queries however many sessions and events there are; fan them out
    once the transaction commits. An entry whose bridge event id its session already has (stored
    before or earlier in `entries`) is not stored again: its result is None."""
    for _session_id, kind, _data, _bridge_event_id in entries:
        check_kind(kind)
    session_ids = sorted({entry[0] for entry in entries})
    bridge_event_ids = {entry[3] for entry in entries if entry[3]}
    with transaction.atomic(savepoint=False):
        # The row locks serialize seq allocation per session on Postgres (taken in pk order, as
        # every caller does); on SQLite the transaction itself takes the write lock
        # (transaction_mode IMMEDIATE).
        last_seq = dict(
            Session.objects.select_for_update(of=("self",)).filter(pk__in=session_ids)
            .order_by("pk").values_list("pk", "last_seq")
        )
        if len(last_seq) < len(session_ids):
            raise Session.DoesNotExist(f"no session {sorted(set(session_ids) - set(last_seq))}")
        seen = set(
            Event.objects.filter(session_id__in=session_ids, bridge_event_id__in=bridge_event_ids)
            .values_list("session_id", "bridge_event_id")
        ) if bridge_event_ids else set()
        now = timezone.now()
        results: list[Event | None] = []
        for session_id, kind, data, bridge_event_id in entries:
            if bridge_event_id and (session_id, bridge_event_id) in seen:
                results.append(None)
                continue
            if bridge_event_id:
                seen.add((session_id, bridge_event_id))
            last_seq[session_id] += 1
            results.append(Event(session_id=session_id, seq=last_seq[session_id], kind=kind, data=without_nul(data),
                                 bridge_event_id=bridge_event_id, created_at=now))
        stored = [event for event in results if event is not None]
        if stored:
            Event.objects.bulk_create(stored)
            set_last_seq({event.session_id: last_seq[event.session_id] for event in stored}, now)
            transaction.on_commit(lambda: [fan_out(event) for event in stored])
    return results


def set_last_seq(last_seq: dict[int, int], now) -> None:
    """One statement run once per session: bulk_update's CASE over hundreds of sessions cost more
    Python than the rest of a batch's write."""
    table, pk = connection.ops.quote_name(Session._meta.db_table), connection.ops.quote_name(Session._meta.pk.column)
    when = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET last_seq = %s, last_activity_at = %s WHERE {pk} = %s",
            [(seq, when, session_id) for session_id, seq in sorted(last_seq.items())],
        )


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
