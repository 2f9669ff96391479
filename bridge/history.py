"""A conversation carried from one OpenCode to another that is already running (a snapshot restored
into a pooled sandbox): the sync events of the old OpenCode's database, replayed through the new
one's `POST /sync/replay`.

OpenCode keeps every session as a history of sync events (its `event` table, what `POST /sync/history`
lists); replaying a session's whole history rebuilds it, ids and messages alike, in another server."""

import json
import sqlite3
from pathlib import Path


class HistoryError(Exception):
    pass


def read_histories(db: Path) -> list[list[dict]]:
    """Each session's events from an OpenCode database, in replay form; sessions in the order they
    were created (a sub-agent's session after its parent's)."""
    if not db.is_file():
        raise HistoryError(f"no OpenCode database at {db}")
    connection = sqlite3.connect(db, timeout=5)
    sessions: dict[str, list[dict]] = {}
    try:
        rows = connection.execute("SELECT id, aggregate_id, seq, type, data FROM event ORDER BY aggregate_id, seq")
        for event_id, aggregate, seq, kind, data in rows:
            sessions.setdefault(aggregate, []).append(
                {"id": event_id, "aggregateID": aggregate, "seq": seq, "type": kind, "data": json.loads(data)}
            )
    except (sqlite3.DatabaseError, ValueError) as e:
        raise HistoryError(f"the OpenCode database could not be read: {e}") from None
    finally:
        connection.close()
    # Event ids grow with time, so a session's first event orders the sessions by creation.
    return sorted(sessions.values(), key=lambda events: events[0]["id"])
