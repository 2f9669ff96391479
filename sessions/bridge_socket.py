"""The socket a sandbox's bridge dials out to: events in (stored, then acknowledged), commands out.

Protocol: docs/bridge-protocol.md. The bridge proves who it is with its sandbox's token; a token
only opens the socket of its own sandbox.
"""

import asyncio
import json
import logging
import time
import uuid

from channels.db import database_sync_to_async

from bridge.protocol import (
    MAX_BRIDGE_MESSAGE_BYTES,
    MAX_EVENT_DEPTH,
    MAX_EVENT_ID_LENGTH,
    Ack,
    Command,
    ErrorMessage,
    Refused,
    command_message,
    json_depth,
)
from proxy_core.headers import bearer_token
from sandboxes.bridge_channel import BridgeCommandMessage, SandboxPhaseMessage, group_name
from sandboxes.lifecycle import State
from sandboxes.models import Sandbox
from sessions import bridge_events, event_intake
from sessions.rate_limits import BRIDGE_SOCKET_BURST, BRIDGE_SOCKET_RATE, TokenBucket
from sessions.socket_base import AsyncDatabaseFreeConsumer

logger = logging.getLogger(__name__)
MAX_BATCH = 100  # events one socket hands over at once
# Heartbeats closer than this on one socket are ignored: each costs a database write and a query.
MIN_HEARTBEAT_GAP_SECONDS = 4.0


@database_sync_to_async
def authenticate(token: str, sandbox_id) -> Sandbox | None:
    sandbox = Sandbox.from_token(token)
    if sandbox is None or str(sandbox.pk) != str(sandbox_id):
        return None
    return sandbox


@database_sync_to_async
def refresh(sandbox: Sandbox) -> Sandbox:
    sandbox.refresh_from_db()
    return sandbox


@database_sync_to_async
def heartbeat(sandbox: Sandbox) -> None:
    sandbox.record_heartbeat()


@database_sync_to_async
def heartbeat_and_resend(sandbox: Sandbox) -> None:
    sandbox.record_heartbeat()
    bridge_events.handle_bridge_heartbeat(sandbox)


@database_sync_to_async
def bridge_connected(sandbox: Sandbox) -> None:
    bridge_events.handle_bridge_connected(sandbox)


class BridgeConsumer(AsyncDatabaseFreeConsumer):
    sandbox: Sandbox
    storing: asyncio.Task | None = None
    closed = False
    last_heartbeat = 0.0  # monotonic time of the last heartbeat acted on

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pending: list[tuple[str, dict]] = []  # received, not yet being stored
        self.bucket = TokenBucket(BRIDGE_SOCKET_RATE, BRIDGE_SOCKET_BURST)

    async def connect(self) -> None:
        token = bearer_token(self.scope.get("headers", []))
        sandbox = await authenticate(token, self.scope["url_route"]["kwargs"]["sandbox_id"])
        if sandbox is None:
            await self.close(code=4401)
            return
        self.sandbox = sandbox
        self.group = group_name(sandbox.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        # A batch being stored still fans out; what was not stored yet the bridge sends again.
        self.closed = True
        self.pending.clear()
        if self.storing is not None:
            await asyncio.gather(self.storing, return_exceptions=True)
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def send_error(self, message: str) -> None:
        error: ErrorMessage = {"type": "error", "message": message}
        await self.send_json(error)

    async def refuse(self, event_id: str, why: str) -> None:
        refused: Refused = {"type": "refused", "id": event_id, "message": f"event {event_id}: {why}"}
        await self.send_json(refused)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if not self.bucket.allow(time.monotonic()):  # not acknowledged: a real bridge sends it again later
            await self.send_error("too many messages: slow down")
            return
        raw = text_data if text_data is not None else bytes_data
        # Before parsing: a bridge keeps within it. A text's bytes are counted only when it may be near the limit.
        if raw is None or len(raw) > MAX_BRIDGE_MESSAGE_BYTES or (
                isinstance(raw, str) and len(raw) * 4 > MAX_BRIDGE_MESSAGE_BYTES
                and len(raw.encode()) > MAX_BRIDGE_MESSAGE_BYTES):
            await self.send_error(f"a message is at most {MAX_BRIDGE_MESSAGE_BYTES} bytes")
            return
        try:
            content = json.loads(raw)
        except (TypeError, ValueError, RecursionError):
            await self.send_error("a message must be JSON")
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict):
            await self.send_error("a message must be a JSON object")
            return
        kind = content.get("type")  # one of bridge/protocol.py's BridgeMessage types
        if kind == "event":
            await self.receive_event(content)
        elif kind == "heartbeat":
            now = time.monotonic()
            if now - self.last_heartbeat >= MIN_HEARTBEAT_GAP_SECONDS:  # a real bridge beats every 10 s
                self.last_heartbeat = now
                await heartbeat_and_resend(self.sandbox)
        elif kind == "hello":
            await heartbeat(self.sandbox)
            self.sandbox = await refresh(self.sandbox)
            if self.sandbox.state in (State.READY, State.RUNNING):
                await self.send_command({"name": "sync_done"})
            await bridge_connected(self.sandbox)
        elif kind == "command_result":
            if not content.get("ok"):
                logger.warning("sandbox %s: command %.40r failed: %.300r", self.sandbox.pk,
                               content.get("command_id"), content.get("error"))
        else:
            await self.send_error(f"unknown message type {kind!r}")

    async def receive_event(self, content: dict) -> None:
        event_id, event = content.get("id"), content.get("event")
        if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_EVENT_ID_LENGTH:
            await self.send_error("an event needs a string id")
            return
        if not isinstance(event, dict) or not isinstance(event.get("kind"), str):
            await self.refuse(event_id, "an event needs an object with a string kind")
            return
        if json_depth(event) > MAX_EVENT_DEPTH:  # alone, before it can fail the batch it would be written with
            await self.refuse(event_id, f"an event nests at most {MAX_EVENT_DEPTH} levels deep")
            return
        self.pending.append((event_id, event))
        if self.storing is None or self.storing.done():
            self.storing = asyncio.create_task(self.store_pending())

    async def store_pending(self) -> None:
        """Store received events in order. Those that arrive while a batch is being stored make
        the next batch, written together with other bridges' (event_intake)."""
        try:
            while self.pending and not self.closed:
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
                problems = await event_intake.writer().store(self.sandbox, batch)
                for (event_id, _event), problem in zip(batch, problems, strict=True):
                    if self.closed:
                        return
                    if problem:  # never to be stored: the bridge drops it
                        await self.refuse(event_id, problem)
                    else:  # stored (or already stored before a resend): the bridge may forget it
                        ack: Ack = {"type": "ack", "id": event_id}
                        await self.send_json(ack)
        except Exception:
            logger.exception("sandbox %s: storing events failed; closing so the bridge resends", self.sandbox.pk)
            if not self.closed:
                await self.close(code=1011)

    async def send_command(self, command: Command) -> None:
        # Unique across control-plane processes and restarts: the bridge answers a known id
        # again instead of running it again.
        await self.send_json(command_message(uuid.uuid4().hex, command))

    # --- channel-layer messages to the group sandbox-<id> (sandboxes/bridge_channel.py) -----------

    async def bridge_command(self, message: BridgeCommandMessage) -> None:
        await self.send_command(message["command"])

    async def sandbox_phase(self, message: SandboxPhaseMessage) -> None:
        if message.get("state") == State.READY:
            await self.send_command({"name": "sync_done"})
        elif message.get("state") in (State.TERMINATING, State.TERMINATED):
            await self.close(code=4410)
