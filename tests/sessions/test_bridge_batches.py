"""Bridge events that arrive together: stored in order once each (one transaction per batch),
acked, and fanned out from the event loop as one channel-layer message, never from the database
thread."""

import asyncio
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from inspect_site.asgi import application
from sandboxes.lifecycle import State
from sessions import bridge_events, event_intake, events
from sessions.events import group_name
from sessions.models import Event, Session

pytestmark = pytest.mark.django_db(transaction=True)


def bridge_socket(sandbox, token: str) -> WebsocketCommunicator:
    headers = [(b"authorization", f"Bearer {token}".encode())]
    return WebsocketCommunicator(application, f"/ws/sandbox/{sandbox.pk}/", headers=headers)


def delta(n: int) -> dict:
    return {"type": "event", "id": f"evt-{n}", "event": {"kind": "text_delta", "delta": str(n)}}


async def send_all(sandbox, token: str, messages: list[dict], replies: int) -> list[dict]:
    ws = bridge_socket(sandbox, token)
    assert (await ws.connect())[0]
    for message in messages:  # back to back, as a bridge flushing its outbox
        await ws.send_json_to(message)
    received = [await ws.receive_json_from(timeout=5) for _ in range(replies)]
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()
    return received


@pytest.fixture
def running(session, make_sandbox):
    sandbox = make_sandbox(State.RUNNING)
    session.sandbox = sandbox
    session.save(update_fields=["sandbox"])
    return sandbox


def test_events_sent_together_are_stored_in_batches_acked_and_fanned_out_in_order(session, running, listen,
                                                                                 monkeypatch):
    listener = listen(group_name(session.pk))
    batches, store_threads, send_threads = [], set(), set()
    store, handle = event_intake.store_events.func, bridge_events.handle_bridge_events

    def slow_store(batch):
        batches.append([event_id for _sandbox, event_id, _event in batch])
        if len(batches) == 1:
            time.sleep(0.3)  # the rest arrive meanwhile and make one batch
        return store(batch)

    def recording_handle(*args):
        store_threads.add(threading.get_ident())
        return handle(*args)

    layer = get_channel_layer()

    class RecordingLayer:
        async def group_send(self, group, message):
            send_threads.add(threading.get_ident())
            return await layer.group_send(group, message)

    monkeypatch.setattr(event_intake, "store_events", database_sync_to_async(slow_store))
    monkeypatch.setattr(bridge_events, "handle_bridge_events", recording_handle)
    monkeypatch.setattr(events, "get_channel_layer", RecordingLayer)

    replies = async_to_sync(send_all)(running, running.issue_token(), [delta(n) for n in range(1, 6)], 5)

    assert replies == [{"type": "ack", "id": f"evt-{n}"} for n in range(1, 6)]
    assert batches == [["evt-1"], ["evt-2", "evt-3", "evt-4", "evt-5"]]
    stored = list(Event.objects.filter(session=session).order_by("seq").values_list("seq", "bridge_event_id"))
    assert stored == [(n, f"evt-{n}") for n in range(1, 6)]
    messages = [listener.receive(), listener.receive()]
    assert listener.nothing()
    assert [m["type"] for m in messages] == ["session.events", "session.events"]
    assert [[e["seq"] for e in m["events"]] for m in messages] == [[1], [2, 3, 4, 5]]
    assert [e["data"]["delta"] for e in messages[1]["events"]] == ["2", "3", "4", "5"]
    assert send_threads and store_threads and not send_threads & store_threads  # not on the database thread


def test_a_refused_event_is_refused_by_id_and_the_rest_of_its_batch_is_stored(session, running):
    refused = {"type": "event", "id": "evt-x", "event": {"kind": "status", "status": "idle"}}
    replies = async_to_sync(send_all)(running, running.issue_token(), [delta(1), refused, delta(2), delta(1)], 4)

    assert replies[0] == {"type": "ack", "id": "evt-1"}
    assert replies[1]["type"] == "refused" and replies[1]["id"] == "evt-x" and "'status'" in replies[1]["message"]
    assert replies[2:] == [{"type": "ack", "id": "evt-2"}, {"type": "ack", "id": "evt-1"}]  # a resend: acked again
    assert list(Event.objects.filter(session=session).order_by("seq").values_list("bridge_event_id", flat=True)) == [
        "evt-1", "evt-2"]


def test_events_of_several_bridges_that_arrive_meanwhile_are_written_together(session, running, repo, user,
                                                                               make_sandbox, monkeypatch):
    others = [make_sandbox(State.RUNNING) for _ in range(2)]
    other_sessions = [Session.objects.create(repo=repo, creator=user, sandbox=box) for box in others]
    batches = []
    store = event_intake.store_events.func

    def slow_store(batch):
        batches.append(sorted(event_id for _sandbox, event_id, _event in batch))
        if len(batches) == 1:
            time.sleep(0.3)
        return store(batch)

    monkeypatch.setattr(event_intake, "store_events", database_sync_to_async(slow_store))
    boxes = [running, *others]
    tokens = [box.issue_token() for box in boxes]

    async def talk():
        sockets = [bridge_socket(box, token) for box, token in zip(boxes, tokens, strict=True)]
        for ws in sockets:
            assert (await ws.connect())[0]
        await sockets[0].send_json_to(delta(1))
        await asyncio.sleep(0.1)  # the first write is under way
        for n, ws in enumerate(sockets[1:], 1):
            await ws.send_json_to({"type": "event", "id": f"other-{n}", "event": {"kind": "text_delta", "delta": "x"}})
        replies = [await ws.receive_json_from(timeout=5) for ws in sockets]
        for ws in sockets:
            await ws.disconnect()
        return replies

    replies = async_to_sync(talk)()
    assert batches == [["evt-1"], ["other-1", "other-2"]]
    assert replies == [{"type": "ack", "id": i} for i in ("evt-1", "other-1", "other-2")]
    for one in (session, *other_sessions):
        assert list(Event.objects.filter(session=one).values_list("seq", flat=True)) == [1]


def test_text_before_a_state_change_in_one_batch_is_fanned_out_before_the_change_is_written(
        session, running, listen, monkeypatch):
    """An instant answer arrives as one batch: its text, then `idle` (the prompt's bookkeeping and the
    queue's next step, the slow part). The text is stored and sent first, in a transaction of its own."""
    listener = listen(group_name(session.pk))
    writes = []
    store = event_intake.store_events.func

    def recording_store(batch):
        writes.append([event_id for _sandbox, event_id, _event in batch])
        if len(writes) == 1:
            time.sleep(0.3)  # the answer arrives meanwhile, as one batch
        return store(batch)

    monkeypatch.setattr(event_intake, "store_events", database_sync_to_async(recording_store))
    idle = {"type": "event", "id": "evt-idle", "event": {"kind": "idle"}}
    replies = async_to_sync(send_all)(running, running.issue_token(), [delta(1), delta(2), delta(3), idle, delta(4)], 5)

    assert [r["type"] for r in replies] == ["ack"] * 5
    assert writes == [["evt-1"], ["evt-2", "evt-3"], ["evt-idle", "evt-4"]]
    fanned_out = [[e["kind"] for e in listener.receive()["events"]] for _ in range(3)]
    assert fanned_out[:2] == [["text_delta"], ["text_delta", "text_delta"]]
    assert fanned_out[2][0] == "idle" and fanned_out[2][-1] == "text_delta"
    stored = Event.objects.filter(session=session).exclude(bridge_event_id="").order_by("seq")
    assert list(stored.values_list("bridge_event_id", flat=True)) == ["evt-1", "evt-2", "evt-3", "evt-idle", "evt-4"]
