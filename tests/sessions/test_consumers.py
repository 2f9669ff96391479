"""The session socket through the real ASGI stack (origin check, cookie auth), the real channel
layer and the database."""

import json
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client

from inspect_site.asgi import application
from sessions import consumers
from sessions.events import append_event
from sessions.models import Event, Prompt, Session
from tests.support.rows import may_see_every_session

pytestmark = pytest.mark.django_db(transaction=True)
add_event = database_sync_to_async(append_event)


HOST = "localhost:8000"  # the platform's host, as the browser sends it


def signed_in(user) -> list[tuple[bytes, bytes]]:
    """A browser's headers: the platform's page's own origin, and the session cookie of `user` (None: signed out)."""
    headers = [(b"origin", f"http://{HOST}".encode()), (b"host", HOST.encode())]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


def socket(session_id: int, headers: list) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/sessions/{session_id}/", headers=headers)


def run(scenario):
    async_to_sync(scenario)()


async def refused(ws: WebsocketCommunicator) -> int | None:
    connected, code = await ws.connect()
    if not connected:
        return code
    message = await ws.receive_output(timeout=2)
    assert message["type"] == "websocket.close"
    return message.get("code")


async def events(ws: WebsocketCommunicator, count: int) -> list[tuple[int, str]]:
    received = [await ws.receive_json_from(timeout=3) for _ in range(count)]
    assert all(m["type"] == "event" for m in received), received
    return [(m["seq"], m["data"].get("n")) for m in received]


async def until(ws: WebsocketCommunicator, wanted) -> list[dict]:
    """Messages received up to and including the first one `wanted` accepts."""
    received = [await ws.receive_json_from(timeout=3)]
    while not wanted(received[-1]):
        received.append(await ws.receive_json_from(timeout=3))
    return received


def counts() -> tuple[int, int]:
    return Prompt.objects.count(), Event.objects.count()


def test_only_members_and_staff_get_in(session, user, other_user, django_user_model):
    staff = may_see_every_session(django_user_model.objects.create_user("admin", is_staff=True))
    anonymous, outsider, member, admin = (signed_in(u) for u in (None, other_user, user, staff))

    async def scenario():
        assert await refused(socket(session.pk, anonymous)) == 4403
        assert await refused(socket(session.pk, outsider)) == 4403
        assert await refused(socket(session.pk + 1000, member)) == 4403  # no such session: looks the same
        assert await refused(socket(10**30, member)) == 4403
        # Only the page's own origin: scheme, host and port exactly. Not another site, not the same host on
        # another port (a preview's), not a session's workspace host (ide/workspace_hosts.py), nor a page
        # that sends no Origin: the handshake itself is refused.
        for origin in ("http://evil.example", "http://localhost:9000", "http://localhost",
                       "https://localhost:8000", f"http://s-{session.pk}.{settings.WORKSPACE_HOST}:8000", None):
            sent = [(b"origin", origin.encode())] if origin else []
            other_origin = socket(session.pk, sent + member[1:])
            assert await other_origin.connect() == (False, 4403), origin
        for headers in (member, admin):
            ws = socket(session.pk, headers)
            assert (await ws.connect())[0]
            await ws.send_json_to({"type": "ping"})
            assert await ws.receive_json_from(timeout=2) == {"type": "pong"}
            await ws.disconnect()

    run(scenario)


def test_resuming_sends_exactly_the_missing_events_then_live_ones(session, user):
    for n in range(1, 6):
        append_event(session.pk, "text", {"n": n})

    headers = signed_in(user)

    async def scenario():
        ws = socket(session.pk, headers)
        assert (await ws.connect())[0]
        await add_event(session.pk, "text", {"n": 6})  # before subscribing: comes from the log
        await ws.send_json_to({"type": "subscribe", "after": 2})
        assert await events(ws, 4) == [(3, 3), (4, 4), (5, 5), (6, 6)]
        await add_event(session.pk, "text", {"n": 7})
        assert await events(ws, 1) == [(7, 7)]
        assert await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()

    run(scenario)


@pytest.mark.parametrize("when", ["before the read", "after the read"])
def test_an_event_appended_while_subscribing_arrives_exactly_once(session, user, monkeypatch, when):
    for n in range(1, 4):
        append_event(session.pk, "text", {"n": n})
    original = consumers.events_after
    raced = []

    def racing_read(session_id, seq, limit):
        if raced:
            return original(session_id, seq, limit)
        raced.append(True)
        if when == "before the read":  # committed and fanned out before the read: in both
            append_event(session_id, "text", {"n": 4})
            return original(session_id, seq, limit)
        found = original(session_id, seq, limit)  # committed just after the read: only live
        append_event(session_id, "text", {"n": 4})
        return found

    monkeypatch.setattr(consumers, "events_after", racing_read)

    headers = signed_in(user)

    async def scenario():
        ws = socket(session.pk, headers)
        assert (await ws.connect())[0]
        await ws.send_json_to({"type": "subscribe", "after": 1})
        assert await events(ws, 3) == [(2, 2), (3, 3), (4, 4)]
        assert await ws.receive_nothing(timeout=0.5)
        await ws.disconnect()

    run(scenario)
    assert raced


def test_a_lost_fan_out_is_filled_in_from_the_log(session, user, monkeypatch):
    headers = signed_in(user)

    async def scenario():
        ws = socket(session.pk, headers)
        assert (await ws.connect())[0]
        await ws.send_json_to({"type": "subscribe", "after": 0})
        assert await ws.receive_nothing(timeout=0.2)
        with monkeypatch.context() as patch:
            patch.setattr("sessions.events.fan_out", lambda event: None)  # e.g. Redis restarted
            await add_event(session.pk, "text", {"n": 1})
        await add_event(session.pk, "text", {"n": 2})
        assert await events(ws, 2) == [(1, 1), (2, 2)]
        assert await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()

    run(scenario)


BAD_MESSAGES = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"type": "dance"}', "Unknown message type"),
    ('{"no": "type"}', "Unknown message type"),
    ('{"type": "subscribe", "after": -1}', '"after"'),
    ('{"type": "subscribe", "after": "5"}', '"after"'),
    ('{"type": "subscribe", "after": 99999999999999999999999}', '"after"'),
    ('{"type": "prompt"}', '"text" must be a string'),
    ('{"type": "prompt", "text": ""}', "needs some text"),
    ('{"type": "prompt", "text": "hi", "context": [1]}', '"context" must be a JSON object'),
    (json.dumps({"type": "prompt", "text": "x" * 100_001}), "at most 100,000 characters"),
    ('{"type": "cancel"}', '"prompt_id"'),
    ('{"type": "cancel", "prompt_id": true}', '"prompt_id"'),
    ('{"type": "cancel", "prompt_id": 12345}', "Only a queued prompt"),
    ('{"type": "stop"}', "Nothing is running"),
    ("x" * 1_000_001, "A message is at most 1,000,000 characters"),
]


def test_bad_messages_get_a_clear_error_and_change_nothing(session, user):
    before = counts()
    headers = signed_in(user)

    async def scenario():
        ws = socket(session.pk, headers)
        assert (await ws.connect())[0]
        for message, error in BAD_MESSAGES:
            await ws.send_to(text_data=message)
            reply = await ws.receive_json_from(timeout=3)
            assert reply["type"] == "error" and error in reply["message"], (message, reply)
            assert await database_sync_to_async(counts)() == before, message
        await ws.send_json_to({"type": "ping"})  # still open
        assert await ws.receive_json_from(timeout=2) == {"type": "pong"}
        await ws.send_to(bytes_data=b"\x00")
        assert (await ws.receive_json_from(timeout=2))["message"] == "Send JSON text messages."
        await ws.disconnect()

    run(scenario)
    assert counts() == before


def test_prompts_and_cancels_over_the_socket(session, user, provisions):
    headers = signed_in(user)

    async def scenario():
        ws = socket(session.pk, headers)
        assert (await ws.connect())[0]
        await ws.send_json_to({"type": "subscribe", "after": 0})
        await ws.send_json_to({"type": "prompt", "text": "fix the footer", "context": {"el": "footer"}})
        received = await until(ws, lambda m: m.get("kind") == "status")
        [ok] = [m for m in received if m["type"] == "ok"]
        [queued] = [m for m in received if m.get("kind") == "prompt_queued"]
        # The event log tells everybody (this socket too) about the prompt.
        assert queued["data"]["text"] == "fix the footer" and queued["data"]["context"] == {"el": "footer"}
        assert ok == {"type": "ok", "for": "prompt", "prompt_id": queued["data"]["prompt_id"], "status": "queued"}
        assert [m["seq"] for m in received if m["type"] == "event"] == [1, 2, 3]

        await ws.send_json_to({"type": "cancel", "prompt_id": ok["prompt_id"]})
        received = await until(ws, lambda m: m.get("kind") == "prompt_cancelled")
        if not any(m["type"] == "ok" for m in received):
            received.append(await ws.receive_json_from(timeout=3))
        assert {"type": "ok", "for": "cancel", "prompt_id": ok["prompt_id"]} in received
        await ws.disconnect()
        return ok["prompt_id"]

    # The repo has a ready image but no warm sandbox: the prompt waits for one being provisioned.
    prompt_id = async_to_sync(scenario)()
    assert Prompt.objects.get(pk=prompt_id).status == "cancelled"
    assert len(provisions) == 1


def test_a_member_removed_while_connected_cannot_resubscribe(session, user, other_user):
    membership = session.add_member(other_user)

    headers = signed_in(other_user)

    async def scenario():
        ws = socket(session.pk, headers)
        assert (await ws.connect())[0]
        await database_sync_to_async(membership.delete)()
        await ws.send_json_to({"type": "subscribe", "after": 0})
        message = await ws.receive_output(timeout=2)
        assert message == {"type": "websocket.close", "code": 4403}

    run(scenario)


def test_writing_a_prompt_starts_the_sessions_sandbox_over_the_socket(session, user, provisions):
    headers = signed_in(user)

    async def scenario():
        ws = socket(session.pk, headers)
        assert (await ws.connect())[0]
        await ws.send_json_to({"type": "typing"})
        received = await until(ws, lambda m: m["type"] == "ok")
        assert received[-1] == {"type": "ok", "for": "typing", "warming": True}
        await ws.send_json_to({"type": "typing"})  # a moment later, the page showing a live sandbox: noted already
        assert await ws.receive_nothing(timeout=0.5)
        await ws.send_json_to({"type": "typing", "warm": True})  # the page shows none: checked at once
        assert await ws.receive_json_from(timeout=3) == {"type": "ok", "for": "typing", "warming": False}
        await ws.send_json_to({"type": "typing", "warm": "yes"})
        assert "warm" in (await ws.receive_json_from(timeout=3))["message"]
        await ws.disconnect()

    run(scenario)
    session.refresh_from_db()
    assert session.sandbox is not None and provisions == [str(session.sandbox_id)]
    assert session.prompts.count() == 0
    assert session.memberships.get(user=user).last_typed_at is not None  # "humans prompting now" counts them


@pytest.mark.skipif(settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"), reason="row locks are PostgreSQL's")
def test_a_prompt_that_meets_a_deadlock_is_queued_all_the_same(session, user):
    """Another transaction holds the session's row and then wants its owner's, which the prompt holds:
    PostgreSQL aborts the prompt's transaction (it waited first) and the socket tries it again."""
    holding_session = threading.Event()
    finished = threading.Event()

    def other_transaction() -> None:
        try:
            with transaction.atomic():
                Session.objects.select_for_update().filter(pk=session.pk).exists()
                holding_session.set()
                # The prompt takes the owner's row and waits for the session's meanwhile.
                time.sleep(0.5)
                get_user_model().objects.select_for_update().filter(pk=user.pk).exists()
        except Exception:
            pass  # chosen as the victim instead: the prompt then goes through at once
        finally:
            connection.close()
            finished.set()

    headers = signed_in(user)

    async def scenario():
        ws = socket(session.pk, headers)
        assert (await ws.connect())[0]
        await ws.send_json_to({"type": "subscribe", "after": 0})
        threading.Thread(target=other_transaction).start()
        assert holding_session.wait(5)
        await ws.send_json_to({"type": "prompt", "text": "after the deadlock"})
        replies = await until(ws, lambda m: m["type"] in ("ok", "error"))
        assert replies[-1]["type"] == "ok", replies[-1]
        await ws.disconnect()

    run(scenario)
    assert finished.wait(10)
    assert list(Prompt.objects.values_list("text", flat=True)) == ["after the deadlock"]
