"""The stats socket through the real ASGI stack (origin check, cookie auth) and the real channel layer: the live
"humans prompting now" count goes up when someone starts typing (sessions.signals.member_typing) and down once
they have stopped for the window; who may open it."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from inspect_site.asgi import application
from sandboxes.models import Repo
from sessions import member_requests
from sessions.models import Prompt
from stats import live
from tests.sessions.test_consumers import HOST, signed_in
from tests.support.rows import owned_session, repo_with_image

pytestmark = pytest.mark.django_db(transaction=True)


def socket(headers: list, query: str = "") -> WebsocketCommunicator:
    return WebsocketCommunicator(application, "/ws/stats/" + query, headers=headers)


async def refused(ws: WebsocketCommunicator) -> int | None:
    connected, code = await ws.connect()
    if not connected:
        return code
    message = await ws.receive_output(timeout=2)
    assert message["type"] == "websocket.close"
    return message.get("code")


@database_sync_to_async
def starts_typing(session, person) -> None:
    """What the session socket does when someone writes in the prompt box: record it, then tell (after commit)."""
    member_requests.record_typing(session, person)


def test_the_count_goes_up_when_a_third_person_types_and_down_once_they_stopped(users, django_user_model,
                                                                                monkeypatch):
    ada, bob = users["ada"], users["bob"]
    carol = django_user_model.objects.create_user("carol", "carol@example.com")
    app = repo_with_image("app")
    secret = repo_with_image("secret")
    secret.access = Repo.Access.LISTED
    secret.save()
    secret.allowed_users.add(carol)
    # Ada's prompt runs and Bob's waits: two people prompting, whose prompts keep them counted.
    for person, status in ((ada, Prompt.Status.RUNNING), (bob, Prompt.Status.QUEUED)):
        session = owned_session(app, person)
        Prompt.objects.create(session=session, author=person, text="Fix it", position=1, status=status)
    shared = owned_session(app, ada)
    shared.add_member(carol)
    hidden = owned_session(secret, carol)  # a repo Ada may not use: Carol typing there is not counted for her
    headers = signed_in(ada)
    monkeypatch.setattr(live, "TYPING_WINDOW_SECONDS", 1.5)
    monkeypatch.setattr(live, "REFRESH_SECONDS", 60)  # first, only the signal can change the count

    async def scenario():
        pushed = socket(headers)
        assert (await pushed.connect())[0]
        assert await pushed.receive_json_from(timeout=3) == {"type": "prompting_now", "count": 2}
        await starts_typing(hidden, carol)
        assert await pushed.receive_nothing(0.5)
        await starts_typing(shared, carol)
        assert await pushed.receive_json_from(timeout=3) == {"type": "prompting_now", "count": 3}

        live.REFRESH_SECONDS = 0.2  # a socket opened now counts again every 0.2 s: Carol drops out
        refreshed = socket(headers)
        assert (await refreshed.connect())[0]
        assert await refreshed.receive_json_from(timeout=3) == {"type": "prompting_now", "count": 3}
        assert await refreshed.receive_json_from(timeout=5) == {"type": "prompting_now", "count": 2}
        await refreshed.send_to(text_data="not json, ignored")  # the page only listens
        assert await refreshed.receive_nothing(0.5)
        await refreshed.disconnect()
        await pushed.disconnect()

    async_to_sync(scenario)()


def test_the_count_of_one_repo_is_of_that_repo_alone(users):
    ada = users["ada"]
    app, other = repo_with_image("app"), repo_with_image("other")
    for repo in (app, other):
        session = owned_session(repo, ada if repo == app else users["bob"])
        Prompt.objects.create(session=session, author=session.creator, text="Go", position=1)
    headers = signed_in(ada)

    async def scenario():
        for query, count in (("", 2), (f"?repo={app.pk}", 1), (f"?repo={other.pk}", 1), ("?repo=", 2)):
            ws = socket(headers, query)
            assert (await ws.connect())[0]
            assert await ws.receive_json_from(timeout=3) == {"type": "prompting_now", "count": count}, query
            await ws.disconnect()

    async_to_sync(scenario)()


def test_only_signed_in_browsers_of_the_platforms_origin_get_in(users):
    secret = repo_with_image("secret")
    secret.access = Repo.Access.LISTED
    secret.save()
    ada = signed_in(users["ada"])

    async def scenario():
        assert await refused(socket(signed_in(None))) == 4403
        for origin in ("http://evil.example", "http://localhost:9000", "https://localhost:8000", None):
            sent = [(b"origin", origin.encode())] if origin else []
            assert await socket(sent + ada[1:]).connect() == (False, 4403), origin
        # A repo she may not use, an unknown one and malformed ones: all refused alike.
        for query in (f"?repo={secret.pk}", f"?repo={secret.pk + 1000}", "?repo=abc", "?repo=-1", "?repo=" + "9" * 30):
            assert await refused(socket(ada, query)) == 4403, query
        ws = socket(ada)
        assert (await ws.connect())[0]
        assert (await ws.receive_json_from(timeout=3))["type"] == "prompting_now"
        await ws.disconnect()

    assert HOST == "localhost:8000"
    async_to_sync(scenario)()
