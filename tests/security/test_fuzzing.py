"""Property-based fuzzing (hypothesis) of what browsers and bridges send: every message type of both sockets
with arbitrary fields, arbitrary JSON, and the JSON and form endpoints. Whatever arrives: never a server error,
never a socket closed for anyone but the sender, and nothing changed by what was refused."""

import asyncio
import json
import threading

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.protocol import EVENT_KINDS
from inspect_site.asgi import application
from sandboxes.lifecycle import State
from sessions import consumers
from sessions.models import Event, Session
from tests.sessions.test_consumers import signed_in
from tests.support.rows import owned_session, repo_with_image

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))

scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() \
    | st.text(max_size=40)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
BROWSER_TYPES = ["subscribe", "prompt", "cancel", "stop", "typing", "restart_service", "screenshot", "ping"]
browser_messages = st.one_of(
    json_values,
    st.fixed_dictionaries({"type": st.sampled_from(BROWSER_TYPES)},
                          optional={"after": json_values, "text": json_values, "context": json_values,
                                    "prompt_id": json_values, "name": json_values, "target": json_values}),
)
bridge_messages = st.one_of(
    json_values,
    st.fixed_dictionaries({"type": st.sampled_from(["event", "hello", "heartbeat", "command_result", "x"])},
                          optional={"id": json_values, "busy": json_values, "ok": json_values,
                                    "command_id": json_values, "error": json_values,
                                    "event": st.one_of(json_values, st.fixed_dictionaries(
                                        {"kind": st.sampled_from(sorted(EVENT_KINDS) + ["prompt_queued", "status"])},
                                        optional={"prompt_id": json_values, "delta": json_values,
                                                  "title": json_values, "state": json_values,
                                                  "name": json_values, "port": json_values}))}),
)


def frames(value) -> str:
    try:
        return json.dumps(value, allow_nan=True)
    except (ValueError, RecursionError):
        return "{not json"


class World:
    def __init__(self, django_user_model):
        self.member = django_user_model.objects.create_user("ada")
        self.outsider = django_user_model.objects.create_user("eve")
        self.repo = repo_with_image()
        self.session = owned_session(self.repo, self.member)
        image = self.repo.current_image()
        self.sandbox = self.repo.sandboxes.create(image=image, state=State.RUNNING, backend="local", backend_ref="")
        Session.objects.filter(pk=self.session.pk).update(sandbox=self.sandbox)
        self.other = owned_session(self.repo, self.outsider)
        self.other_sandbox = self.repo.sandboxes.create(image=image, state=State.RUNNING, backend="local",
                                                        backend_ref="")
        Session.objects.filter(pk=self.other.pk).update(sandbox=self.other_sandbox)

    def state(self, session: Session) -> tuple:
        found = Session.objects.get(pk=session.pk)
        return (found.status, found.title, found.agent_busy, found.last_seq, found.prompts.count(),
                found.memberships.count(), found.sandbox_id)


@pytest.fixture
def world(django_user_model) -> World:
    return World(django_user_model)


class Loop:
    """One event loop in a thread of its own for a test's sockets, which live across hypothesis's examples."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def loop():
    running = Loop()
    yield running
    running.close()


def test_the_session_socket_answers_anything_and_refusals_change_nothing(world, monkeypatch, loop):
    monkeypatch.setattr(consumers, "SESSION_SOCKET_BURST", 100_000)  # the fuzzing is not what is limited here
    headers, others = signed_in(world.member), signed_in(world.outsider)

    async def open_both():
        mine = WebsocketCommunicator(application, f"/ws/sessions/{world.session.pk}/", headers=headers)
        theirs = WebsocketCommunicator(application, f"/ws/sessions/{world.other.pk}/", headers=others)
        assert (await mine.connect())[0] and (await theirs.connect())[0]
        return mine, theirs

    mine, theirs = loop.run(open_both())
    seen = {"examples": 0}

    async def replies_to(socket, text: str, pongs: int = 1) -> list[dict]:
        """What the socket answers to `text`, up to the pong of a ping sent after it (answered, never closed).
        `pongs`: 2 when `text` is a ping itself."""
        await socket.send_to(text_data=text)
        await socket.send_to(text_data=json.dumps({"type": "ping"}))
        replies = []
        while pongs:
            output = await socket.receive_output(timeout=5)
            assert output["type"] == "websocket.send", output
            replies.append(json.loads(output["text"]))
            pongs -= replies[-1]["type"] == "pong"
        return replies[:-1]

    @FUZZ
    @given(message=browser_messages)
    def exchange(message):
        seen["examples"] += 1
        before, other_before = world.state(world.session), world.state(world.other)
        text = frames(message)
        is_ping = text != "{not json" and isinstance(message, dict) and message.get("type") == "ping"
        replies = loop.run(replies_to(mine, text, 2 if is_ping else 1))
        answers = [r for r in replies if r["type"] != "event"]
        assert all(r["type"] in ("ok", "error", "pong") for r in answers), replies
        if answers and answers[0]["type"] == "error":
            assert world.state(world.session) == before, (message, answers[0])
        assert world.state(world.other) == other_before  # nobody else's session changes

    exchange()
    assert loop.run(replies_to(theirs, json.dumps({"type": "ping"}), 2)) == [{"type": "pong"}]  # answers on

    async def close():
        await mine.disconnect()
        await theirs.disconnect()

    loop.run(close())
    assert seen["examples"] >= 30


def test_a_bridge_socket_answers_anything_and_other_bridges_are_untouched(world, loop):
    mine_token, other_token = world.sandbox.issue_token(), world.other_sandbox.issue_token()

    async def open_both():
        mine = WebsocketCommunicator(application, f"/ws/sandbox/{world.sandbox.pk}/",
                                     headers=[(b"authorization", f"Bearer {mine_token}".encode())])
        theirs = WebsocketCommunicator(application, f"/ws/sandbox/{world.other_sandbox.pk}/",
                                       headers=[(b"authorization", f"Bearer {other_token}".encode())])
        assert (await mine.connect())[0] and (await theirs.connect())[0]
        return mine, theirs

    mine, theirs = loop.run(open_both())
    counter = {"n": 0}

    @FUZZ
    @given(message=bridge_messages)
    def exchange(message):
        counter["n"] += 1
        other_before = world.state(world.other)

        async def send():
            await mine.send_to(text_data=frames(message))
            # Whatever it was, the other bridge's next event is stored and acknowledged, alone.
            event_id = f"other-{counter['n']}"
            await theirs.send_json_to({"type": "event", "id": event_id, "event": {"kind": "text_delta",
                                                                                   "delta": "x"}})
            while True:
                reply = json.loads((await theirs.receive_output(timeout=10))["text"])
                if reply.get("type") == "ack" and reply.get("id") == event_id:
                    return
            # (commands the other bridge might get are skipped above)

        loop.run(send())
        after = world.state(world.other)
        assert after[:3] == other_before[:3] and after[3] == other_before[3] + 1  # exactly its own event added

    exchange()

    async def drain_and_check():
        # The fuzzed socket is still open: a heartbeat goes through, then a well-formed event is acknowledged.
        await mine.send_json_to({"type": "event", "id": "last", "event": {"kind": "text_delta", "delta": "y"}})
        for _ in range(500):
            reply = json.loads((await mine.receive_output(timeout=10))["text"])
            if reply.get("type") == "ack" and reply.get("id") == "last":
                break
        await mine.disconnect()
        await theirs.disconnect()

    loop.run(drain_and_check())
    assert Event.objects.filter(session=world.session, bridge_event_id="last").exists()
    # Whatever the control plane writes itself (a queued prompt, a status) never came from the bridge.
    assert not Event.objects.filter(session=world.session, kind__in=["prompt_queued", "status"]) \
        .exclude(bridge_event_id="").exists()
    assert counter["n"] >= 30


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(["repo", "model", "prompt", "csrfmiddlewaretoken", "x"]),
                              st.text(max_size=60), max_size=5))
def test_the_new_session_form_and_warming_never_fail_on_any_input(fields, world):
    client = Client()
    client.force_login(world.member)
    before = Session.objects.count()
    response = client.post("/sessions/new", fields)
    assert response.status_code in (200, 302, 400), response.status_code
    if response.status_code != 302:
        assert Session.objects.count() == before
    assert client.post("/sessions/warm", fields).status_code in (204, 400, 404)


@FUZZ
@given(body=st.binary(max_size=300), content_type=st.sampled_from(["image/png", "application/json", "", "x/y"]),
       source=st.text(max_size=30).filter(lambda s: "\n" not in s and "\r" not in s))
def test_screenshot_uploads_never_fail_on_any_input(body, content_type, source, world):
    token = world.sandbox.issue_token()
    response = Client().post("/sessions/api/screenshots/", data=body, content_type=content_type,
                             HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_SCREENSHOT_SOURCE=source)
    assert response.status_code in (201, 400, 413, 415, 429), response.status_code
