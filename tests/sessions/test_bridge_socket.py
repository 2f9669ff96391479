"""The socket bridges dial: only a sandbox's own token opens it; events are stored once and acked."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from bridge.protocol import MAX_BRIDGE_MESSAGE_BYTES
from inspect_site.asgi import application
from sandboxes.lifecycle import State
from sandboxes.models import Repo, RepoImage, Sandbox
from sessions.models import Event, Session

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sandboxes(django_user_model):
    repo = Repo.objects.create(name="demo", clone_url="https://example.com/demo.git")
    image = RepoImage.objects.create(repo=repo, status="ready", backend="local", backend_ref="img",
                                     finished_at=timezone.now())
    boxes = [Sandbox.objects.create(repo=repo, image=image, backend="local", state=State.RUNNING) for _ in range(2)]
    user = django_user_model.objects.create_user("ada")
    session = Session.objects.create(repo=repo, creator=user, sandbox=boxes[0])
    return boxes, session


def connect(sandbox: Sandbox, token: str | None):
    headers = [(b"authorization", f"Bearer {token}".encode())] if token is not None else []
    return WebsocketCommunicator(application, f"/ws/sandbox/{sandbox.pk}/", headers=headers)


async def attempt(sandbox: Sandbox, token: str | None) -> tuple[bool, object]:
    communicator = connect(sandbox, token)
    connected, code = await communicator.connect()
    await communicator.disconnect()
    return connected, code


def test_only_the_sandboxs_own_token_opens_its_socket(sandboxes):
    (mine, other), _ = sandboxes
    my_token, other_token = mine.issue_token(), other.issue_token()
    assert async_to_sync(attempt)(mine, my_token)[0]
    assert async_to_sync(attempt)(mine, other_token) == (False, 4401)
    assert async_to_sync(attempt)(mine, "forged") == (False, 4401)
    assert async_to_sync(attempt)(mine, None) == (False, 4401)
    Sandbox.objects.filter(pk=mine.pk).update(state=State.TERMINATED)
    assert async_to_sync(attempt)(mine, my_token) == (False, 4401)  # an ended sandbox's token is dead


def test_events_are_stored_once_and_acknowledged_and_bad_messages_change_nothing(sandboxes):
    (mine, _), session = sandboxes
    token = mine.issue_token()

    async def talk():
        communicator = connect(mine, token)
        assert (await communicator.connect())[0]
        event = {"type": "event", "id": "evt-1", "event": {"kind": "title", "title": "Fix the table"}}
        replies = []
        for message in (event, event):  # the second is a resend after a reconnect
            await communicator.send_json_to(message)
            replies.append(await communicator.receive_json_from())
        for bad in ({"type": "event", "event": {"kind": "x"}}, {"type": "nonsense"}, [1, 2]):
            await communicator.send_json_to(bad)
            replies.append(await communicator.receive_json_from())
        await communicator.send_to(text_data="{not json")
        replies.append(await communicator.receive_json_from())
        # Over the size limit: refused before it is parsed. Nested ~500 deep: refused alone.
        await communicator.send_to(text_data='{"type": "event", "id": "big", "event": {"kind": "text", "text": "'
                                   + "x" * MAX_BRIDGE_MESSAGE_BYTES + '"}}')
        replies.append(await communicator.receive_json_from())
        # Events with an id that can never be stored are refused by id, so the bridge drops them.
        nested: object = "x"
        for _ in range(500):
            nested = [nested]
        deep = {"kind": "text", "text": nested}
        for event_id, refused_event in (("e2", "x"), ("e3", deep), ("e4", {"kind": "prompt_queued"})):
            await communicator.send_json_to({"type": "event", "id": event_id, "event": refused_event})
            replies.append(await communicator.receive_json_from())
        await communicator.send_json_to({"type": "heartbeat", "busy": False})
        await communicator.disconnect()
        return replies

    before = timezone.now()
    replies = async_to_sync(talk)()
    assert replies[:2] == [{"type": "ack", "id": "evt-1"}] * 2
    assert all(r["type"] == "error" and r["message"] for r in replies[2:7])
    assert "at most 262144 bytes" in replies[6]["message"]
    assert [(r["type"], r["id"]) for r in replies[7:]] == [("refused", "e2"), ("refused", "e3"), ("refused", "e4")]
    assert "nests at most 32 levels" in replies[8]["message"] and "'prompt_queued'" in replies[9]["message"]
    assert not Event.objects.filter(session=session, bridge_event_id__in=["big", "e2", "e3", "e4"]).exists()
    assert Event.objects.filter(session=session, kind="title").count() == 1  # the resend was not stored again
    session.refresh_from_db()
    assert session.title == "Fix the table"
    mine.refresh_from_db()
    assert mine.last_heartbeat_at >= before
