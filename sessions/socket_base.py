"""What the project's WebSocket consumers share."""

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer


class AsyncDatabaseFreeConsumer(AsyncJsonWebsocketConsumer):
    """A consumer whose handlers reach the database only through database_sync_to_async.

    Channels hops to its one database thread before every message to close stale connections
    (`aclose_old_connections`). database_sync_to_async already does that around each call, so
    here the hop is pure cost: with 50 viewers it was 50 hops per session event, all queued on
    the thread that also stores the events."""

    async def dispatch(self, message: dict) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
