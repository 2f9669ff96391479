"""What the bridge has to send, in order.

Events are kept until the control plane acknowledges their id, and are sent again (in their
original order) on every new connection. Other messages (command results) are sent once: they
leave the outbox when written to a connection.
"""

import asyncio
import json
import uuid

from .protocol import MAX_BRIDGE_MESSAGE_BYTES, MAX_EVENT_DEPTH, json_depth


class Outbox:
    def __init__(self) -> None:
        self._items: dict[int, tuple[str | None, dict]] = {}  # seq -> (event id or None, message)
        self._seq_of: dict[str, int] = {}
        self._seq = 0
        self.changed = asyncio.Event()

    def add_event(self, event: dict) -> str:
        event_id = uuid.uuid4().hex
        message = {"type": "event", "id": event_id, "event": event}
        if len(json.dumps(message)) > MAX_BRIDGE_MESSAGE_BYTES or json_depth(event) > MAX_EVENT_DEPTH:
            # The control plane would refuse it: what happened is said instead, within the limits.
            message["event"] = {"kind": "error", "name": "EventTooLarge",
                                "message": f"a {str(event.get('kind'))[:50]} event was too large to send"}
        self._seq += 1
        self._items[self._seq] = (event_id, message)
        self._seq_of[event_id] = self._seq
        self.changed.set()
        return event_id

    def add_message(self, message: dict) -> None:
        self._seq += 1
        self._items[self._seq] = (None, message)
        self.changed.set()

    def ack(self, event_id: str) -> bool:
        seq = self._seq_of.pop(event_id, None)
        return seq is not None and self._items.pop(seq, None) is not None

    def after(self, seq: int) -> list[tuple[int, dict]]:
        """Everything still to send with a sequence number above `seq`, oldest first."""
        return [(s, message) for s, (_id, message) in self._items.items() if s > seq]

    def sent(self, seq: int) -> None:
        item = self._items.get(seq)
        if item is not None and item[0] is None:
            del self._items[seq]

    @property
    def unacked(self) -> list[str]:
        return [event_id for event_id, _message in self._items.values() if event_id is not None]

    @property
    def has_messages(self) -> bool:
        """Whether a message that is not an event (a command result) is still to be sent."""
        return any(event_id is None for event_id, _message in self._items.values())

    def __len__(self) -> int:
        return len(self._items)
