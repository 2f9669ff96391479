"""Presence: the pure book each socket keeps, and sockets telling each other who is here and who is typing."""

import pytest
from asgiref.sync import async_to_sync

from sessions import presence
from sessions.presence import PresenceBook
from tests.sessions.test_consumers import signed_in, socket


def test_the_book_shows_each_person_once_with_their_surfaces_and_drops_the_silent():
    book = PresenceBook()
    assert book.heard("c1", 1, "Ada", "ada", "web", now=0.0)
    assert book.heard("c2", 1, "Ada", "ada", "phone", now=1.0)  # a second device: a new surface
    assert not book.heard("c1", 1, "Ada", "ada", "web", now=20.0)  # a heartbeat changes nothing shown
    assert book.heard("c3", 2, "bob", "bob", "slack", now=20.0)
    assert book.people() == [{"id": 1, "name": "Ada", "username": "ada", "surfaces": ["web", "phone"]},
                             {"id": 2, "name": "bob", "username": "bob", "surfaces": ["slack"]}]
    assert book.left("c2") and book.people()[0]["surfaces"] == ["web"]
    assert not book.left("c2")
    assert book.expire(now=20.0 + presence.EXPIRE_SECONDS)  # c1 and c3 heard at 20: gone now
    assert book.people() == []
    assert presence.clean_surface("phone") == "phone" and presence.clean_surface("tv") is None


async def until_type(ws, kind: str, wanted=lambda m: True) -> dict:
    while True:
        message = await ws.receive_json_from(timeout=3)
        if message["type"] == kind and wanted(message):
            return message


@pytest.mark.django_db(transaction=True)
def test_two_people_see_each_other_and_typing_and_a_closed_socket_leaves(session, user, other_user):
    session.add_member(other_user, "member")
    ada_headers, bob_headers = signed_in(user), signed_in(other_user)

    async def scenario():
        ada, bob = socket(session.pk, ada_headers), socket(session.pk, bob_headers)
        assert (await ada.connect())[0] and (await bob.connect())[0]
        await ada.send_json_to({"type": "subscribe", "after": 0, "surface": "web"})
        await until_type(ada, "presence", lambda m: [p["id"] for p in m["people"]] == [user.pk])
        await bob.send_json_to({"type": "subscribe", "after": 0, "surface": "phone"})
        both = [{"id": user.pk, "name": "Ada", "username": "ada", "surfaces": ["web"]},
                {"id": other_user.pk, "name": "bob", "username": "bob", "surfaces": ["phone"]}]
        assert (await until_type(bob, "presence", lambda m: len(m["people"]) == 2))["people"] == both
        assert (await until_type(ada, "presence", lambda m: len(m["people"]) == 2))["people"] == both

        await bob.send_json_to({"type": "typing"})
        typing = await until_type(ada, "typing")
        assert typing == {"type": "typing", "user_id": other_user.pk, "name": "bob", "surface": "phone"}

        await bob.disconnect()
        gone = await until_type(ada, "presence", lambda m: len(m["people"]) == 1)
        assert gone["people"][0]["id"] == user.pk

        await ada.send_json_to({"type": "subscribe", "after": 0, "surface": "tv"})
        assert "surface" in (await until_type(ada, "error"))["message"]
        await ada.disconnect()

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_a_watchers_typing_is_nobodys_news_and_is_refused(session, user, other_user):
    session.add_member(other_user, "watcher")
    ada_headers, bob_headers = signed_in(user), signed_in(other_user)

    async def scenario():
        ada, bob = socket(session.pk, ada_headers), socket(session.pk, bob_headers)
        assert (await ada.connect())[0] and (await bob.connect())[0]
        await ada.send_json_to({"type": "subscribe", "after": 0, "surface": "web"})
        await bob.send_json_to({"type": "subscribe", "after": 0, "surface": "web"})
        await until_type(ada, "presence", lambda m: len(m["people"]) == 2)
        await bob.send_json_to({"type": "typing"})
        assert "watch" in (await until_type(bob, "error"))["message"]
        await bob.send_json_to({"type": "prompt", "text": "let me"})
        assert "watch" in (await until_type(bob, "error"))["message"]
        await ada.send_json_to({"type": "ping"})
        before_pong = []
        while (message := await ada.receive_json_from(timeout=3))["type"] != "pong":
            before_pong.append(message["type"])
        assert "typing" not in before_pong
        await ada.disconnect()
        await bob.disconnect()

    async_to_sync(scenario)()
    assert session.prompts.count() == 0
    assert session.memberships.get(user=other_user).last_typed_at is None
