"""The session socket (/ws/sessions/<id>/): the event log, resumed and then live, and the prompt box.

Protocol (docs/sessions.md): the client sends {"type": "subscribe", "after": N} and gets every
stored event with seq > N, in order, then live ones, each exactly once. The socket joins the
session's group before it reads the log, so an event committed meanwhile arrives either in the
read or live (or both: then the live copy is skipped); a live event beyond the next seq (a
fan-out lost or overtaken) is filled in from the log first. Nothing is ever sent twice or skipped.
"""

import asyncio
import json
import logging
import time

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError

from sessions import access, member_requests, presence, workspace
from sessions.events import collect_fan_out, events_after, group_name, send_fan_out
from sessions.models import Session
from sessions.rate_limits import SESSION_SOCKET_BURST, SESSION_SOCKET_RATE, TokenBucket
from sessions.socket_base import AsyncDatabaseFreeConsumer

MAX_MESSAGE_CHARS = 1_000_000  # a prompt and its context fit well within this
REPLAY_BATCH = 500
FORBIDDEN = 4403
MAX_ID = 2**63 - 1  # ids and seqs are 64-bit in the database
# PostgreSQL's deadlock_detected, serialization_failure and lock_not_available: the transaction was rolled
# back whole, so trying it again is safe.
RETRIED_SQLSTATES = {"40P01", "40001", "55P03"}
DEADLOCK_ATTEMPTS = 3

logger = logging.getLogger(__name__)


@database_sync_to_async
def joinable_repo(session_id: int, user) -> int | None:
    """The repo of the session if `user` may join it, else None."""
    session = Session.objects.select_related("repo").filter(pk=session_id).first() if session_id <= MAX_ID else None
    return session.repo_id if session is not None and session.is_member(user) else None


@database_sync_to_async
def fresh_user(user_id: int):
    return get_user_model().objects.get(pk=user_id)


@database_sync_to_async
def may_prompt(session_id: int, user) -> bool:
    session = Session.objects.select_related("repo").filter(pk=session_id).first()
    return session is not None and session.can_prompt(user)


@database_sync_to_async
def stored_after(session_id: int, seq: int) -> list[dict]:
    return [event.as_message() for event in events_after(session_id, seq, REPLAY_BATCH)]


@database_sync_to_async
def act(session_id: int, user, kind: str, content: dict) -> tuple[dict | str, list[dict]]:
    """request() with the events it committed collected, not sent from the database thread: the
    command to the bridge, sent at commit, is then the only thing the prompt waits for there.
    Returns (the `ok` reply's fields or an error message, the events to fan out)."""
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        with collect_fan_out() as fan_out:
            try:
                return request(session_id, user, kind, content), fan_out
            except (ValueError, PermissionDenied) as e:
                return str(e), fan_out
            except DatabaseError as e:
                if conflicting_transactions(e) and attempt < DEADLOCK_ATTEMPTS:
                    logger.warning("session %s: %s met another transaction (%s), trying again", session_id, kind, e)
                    continue
                logger.exception("session %s: %s failed in the database", session_id, kind)
                return (f"The server may not have carried out this {kind}: check the timeline before you try "
                        "again."), fan_out
    raise AssertionError("unreachable")


def conflicting_transactions(error: DatabaseError) -> bool:
    """Whether the database rolled the request back because of another transaction (worth one more try)."""
    return getattr(getattr(error, "__cause__", None), "sqlstate", None) in RETRIED_SQLSTATES


def request(session_id: int, user, kind: str, content: dict) -> dict:
    """Carry out a prompt / cancel / stop / typing / ...; the `ok` reply's fields."""
    session = Session.objects.filter(pk=session_id).first()
    if session is None:
        raise ValueError("This session no longer exists.")
    if kind == "prompt":
        prompt = member_requests.submit_prompt(session, user, content.get("text"), content.get("context"))
        return {"prompt_id": prompt.pk, "status": prompt.status}
    if kind == "cancel":
        prompt = member_requests.cancel_prompt(session, user, content["prompt_id"])
        return {"prompt_id": prompt.pk}
    if kind == "typing":
        return {"warming": member_requests.note_typing(session, user)}
    if kind == "restart_service":
        member_requests.check_prompter(session, user)
        workspace.restart_service(session, content["name"])
        return {"name": content["name"]}
    if kind == "screenshot":
        member_requests.check_prompter(session, user)
        workspace.request_screenshot(session, user, content["target"])
        return {"target": content["target"]}
    member_requests.stop(session, user)
    return {}


def invalid(content: dict) -> str:
    """What is wrong with a well-formed message's fields, or ""."""
    kind = content.get("type")
    if kind == "subscribe":
        after = content.get("after", 0)
        if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= MAX_ID:
            return '"after" must be the last sequence number seen: an integer, 0 or more.'
        if content.get("surface") is not None and presence.clean_surface(content["surface"]) is None:
            return f'"surface" is where you are watching from: one of {", ".join(presence.SURFACES)}.'
    elif kind == "prompt":
        if not isinstance(content.get("text"), str):
            return '"text" must be a string.'
        if content.get("context") is not None and not isinstance(content["context"], dict):
            return '"context" must be a JSON object.'
    elif kind == "cancel":
        prompt_id = content.get("prompt_id")
        if not isinstance(prompt_id, int) or isinstance(prompt_id, bool) or not 0 < prompt_id <= MAX_ID:
            return '"prompt_id" must be the id of a queued prompt.'
    elif kind == "restart_service":
        if not isinstance(content.get("name"), str) or not workspace.SERVICE_NAME.match(content["name"]):
            return '"name" must be a service: ide, desktop or preview-<port>.'
    elif kind == "screenshot":
        if not isinstance(content.get("target"), str) or not workspace.SCREENSHOT_TARGET.match(content["target"]):
            return '"target" must be desktop or preview-<port>.'
    elif kind == "typing":
        if not isinstance(content.get("warm", False), bool):
            return '"warm" says whether the page shows no live sandbox: true or false.'
    elif kind not in ("stop", "ping"):
        return (f"Unknown message type {kind!r}: use subscribe, prompt, cancel, stop, typing, restart_service, "
                "screenshot or ping.")
    return ""


class SessionConsumer(AsyncDatabaseFreeConsumer):
    session_id: int
    group: str | None = None
    last_sent: int | None = None  # None until the client subscribes
    me: dict | None = None  # this socket's presence, once subscribed: user_id, name, surface
    heartbeat: asyncio.Task | None = None
    typing_forwarded_at = -1e9  # monotonic
    typing_noted_at = -1e9
    can_prompt = False  # as of the subscription or the last access change: watchers' typing is nobody's news

    async def connect(self) -> None:
        self.session_id = int(self.scope["url_route"]["kwargs"]["session_id"])
        self.access_groups: list[str] = []
        self.bucket = TokenBucket(SESSION_SOCKET_RATE, SESSION_SOCKET_BURST)
        self.book = presence.PresenceBook()
        # Accept first so the browser sees why it was closed (an unknown id looks the same as a forbidden one).
        await self.accept()
        user = self.scope.get("user")
        repo_id = await joinable_repo(self.session_id, user)
        if repo_id is None:
            await self.close(code=FORBIDDEN)
            return
        self.login = access.login_of(getattr(self.scope.get("session"), "session_key", None))
        self.auth_hash = user.get_session_auth_hash()
        # Told when the person's access changes (sessions/access.py), to check again and close if they are out.
        self.access_groups = access.groups_for(user.pk, repo_id)
        for group in self.access_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.group = group_name(self.session_id)
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        await self.leave()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        for group in self.access_groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def access_changed(self, message: dict) -> None:
        if not access.concerns(message, self.login):
            return
        if not await access.still_in_async(self.session_id, self.scope["user"].pk, self.login, self.auth_hash):
            await self.leave()
            if self.group:  # no more events for them, and nothing more taken from them
                await self.channel_layer.group_discard(self.group, self.channel_name)
                self.group = None
            await self.close(code=FORBIDDEN)
        elif self.me is not None:  # still in, perhaps in another role: the page shows what they may do now
            self.scope["user"] = await fresh_user(self.scope["user"].pk)  # its permissions are cached on it
            self.can_prompt = await may_prompt(self.session_id, self.scope["user"])
            await self.send_json({"type": "access", "can_prompt": self.can_prompt})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs) -> None:
        if not self.group:
            return
        if not self.bucket.allow(time.monotonic()):
            return await self.error("Too many messages: slow down. This one was not carried out.")
        if text_data is None:
            return await self.error("Send JSON text messages.")
        if len(text_data) > MAX_MESSAGE_CHARS:
            return await self.error(f"A message is at most {MAX_MESSAGE_CHARS:,} characters.")
        try:
            content = json.loads(text_data)
        except ValueError:
            return await self.error("That message is not valid JSON.")
        if not isinstance(content, dict):
            return await self.error('A message is a JSON object with a "type".')
        await self.receive_json(content)

    async def receive_json(self, content: dict, **kwargs) -> None:
        kind = content.get("type")
        problem = invalid(content)
        if problem:
            return await self.error(problem)
        if kind == "ping":
            return await self.send_json({"type": "pong"})
        if kind == "subscribe":
            if await joinable_repo(self.session_id, self.scope.get("user")) is None:  # membership may have ended
                return await self.close(code=FORBIDDEN)
            self.last_sent = content.get("after", 0)
            await self.replay()
            if content.get("surface") is not None:  # a person's page: shown to the others, and told who is here
                await self.arrive(content["surface"])
            return None
        if kind == "typing":
            await self.forward_typing()
            recently = time.monotonic() - self.typing_noted_at < member_requests.TYPING_RECORD_SECONDS
            if recently and not content.get("warm"):
                return None  # noted a moment ago, and the page shows a live sandbox: no database work
            self.typing_noted_at = time.monotonic()
        fields, fan_out = await act(self.session_id, self.scope["user"], kind, content)
        await send_fan_out(fan_out)
        if isinstance(fields, str):
            return await self.error(fields)
        await self.send_json({"type": "ok", "for": kind, **fields})

    async def error(self, message: str) -> None:
        await self.send_json({"type": "error", "message": message})

    async def replay(self) -> None:
        """Send every stored event after the last one sent, in order."""
        while True:
            batch = await stored_after(self.session_id, self.last_sent)
            for event in batch:
                await self.send_event(event)
            if len(batch) < REPLAY_BATCH:
                return

    async def send_event(self, event: dict) -> None:
        await self.send_json({"type": "event", **event})
        self.last_sent = event["seq"]

    async def session_event(self, message: dict) -> None:
        """A live event from the group session-<id> (stored by sync code: views, tasks)."""
        await self.deliver([message["event"]])

    async def session_events(self, message: dict) -> None:
        """Live events from the group session-<id>, in seq order (a batch a bridge sent)."""
        await self.deliver(message["events"])

    async def deliver(self, events: list[dict]) -> None:
        for event in events:
            if self.last_sent is None or event["seq"] <= self.last_sent:
                continue  # not subscribed yet, or already sent by a replay
            if event["seq"] == self.last_sent + 1:
                await self.send_event(event)
            else:
                await self.replay()  # one went missing or is late: the log has it, and this one too

    # --- presence (sessions/presence.py) -----------------------------------------------------

    async def arrive(self, surface: str) -> None:
        """Subscribed: say who is here to the others (on every Daphne), who answer with themselves."""
        user = self.scope["user"]
        first = self.me is None
        moved = not first and self.me["surface"] != surface
        self.can_prompt = await may_prompt(self.session_id, user)
        self.me = {"user_id": user.pk, "name": presence.display_name(user), "username": user.get_username(),
                   "surface": surface}
        if first:
            await self.announce(hello=True)
            self.heartbeat = asyncio.ensure_future(self.keep_announcing())
            return
        if moved:
            await self.announce()
        await self.send_people()  # subscribed again on the same socket: the page wants the people again

    async def announce(self, hello: bool = False, to: str | None = None) -> None:
        if self.me is None or self.group is None:
            return
        message = {"type": "presence.here", "channel": self.channel_name, "hello": hello, **self.me}
        if to is None:
            await self.channel_layer.group_send(self.group, message)
        else:
            await self.channel_layer.send(to, message)

    async def keep_announcing(self) -> None:
        """Every HEARTBEAT_SECONDS while this socket is here; a failed round (Redis restarting) is only logged, so
        the person does not drop out of the others' lists."""
        while self.me is not None:
            await asyncio.sleep(presence.HEARTBEAT_SECONDS)
            try:
                await self.announce()
                if self.book.expire(time.monotonic()):
                    await self.send_people()
            except Exception:
                logger.exception("session %s: a presence heartbeat failed", self.session_id)

    async def __call__(self, scope, receive, send) -> None:
        """The heartbeat ends with the socket, even one whose handler raised (Channels then skips disconnect)."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.heartbeat is not None:
                self.heartbeat.cancel()

    async def leave(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            self.heartbeat = None
        if self.me is not None and self.group is not None:
            self.me = None
            await self.channel_layer.group_send(self.group, {"type": "presence.leave", "channel": self.channel_name})

    async def forward_typing(self) -> None:
        now = time.monotonic()
        if self.me is None or self.group is None or not self.can_prompt \
                or now - self.typing_forwarded_at < presence.TYPING_FORWARD_SECONDS:
            return
        self.typing_forwarded_at = now
        await self.channel_layer.group_send(self.group, {
            "type": "presence.typing", "channel": self.channel_name,
            "user_id": self.me["user_id"], "name": self.me["name"], "surface": self.me["surface"]})

    async def send_people(self) -> None:
        await self.send_json({"type": "presence", "people": self.book.people()})

    async def presence_here(self, message: dict) -> None:
        if self.me is None:
            return  # not subscribed yet: it learns who is here when it is
        changed = self.book.heard(message["channel"], message["user_id"], message["name"], message["username"],
                                  message["surface"], time.monotonic())
        if message.get("hello") and message["channel"] != self.channel_name:
            await self.announce(to=message["channel"])
        if changed:
            await self.send_people()

    async def presence_leave(self, message: dict) -> None:
        if self.me is not None and self.book.left(message["channel"]):
            await self.send_people()

    async def presence_typing(self, message: dict) -> None:
        if self.me is None or message["user_id"] == self.me["user_id"]:
            return  # not subscribed, or the person's own typing (on this device or another)
        await self.send_json({"type": "typing", "user_id": message["user_id"], "name": message["name"],
                              "surface": message["surface"]})
