"""A person who loses a session loses its socket within a second: removed, deactivated, the repo closed to them,
or signed out (that sign-in's sockets only). Through the real ASGI app and Redis channel layer."""

import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth import logout
from django.contrib.auth.models import Group, Permission
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory

from sandboxes.models import Repo
from sessions.models import Membership
from tests.sessions.test_consumers import signed_in, socket

pytestmark = pytest.mark.django_db(transaction=True)


def cookie_key(headers: list) -> str:
    return dict(headers)[b"cookie"].decode().partition("=")[2]


def sign_out(user, session_key: str) -> None:
    """What the sign-out page does for the browser holding that session."""
    request = RequestFactory().post("/accounts/logout/")
    request.session, request.user = SessionStore(session_key), user
    logout(request)


def lose_access(how: str, session, user, headers) -> None:
    if how == "removed":
        Membership.objects.filter(session=session, user=user).delete()
    elif how == "deactivated":
        user.is_active = False
        user.save()
    elif how == "repo closed to them":
        session.repo.access = Repo.Access.LISTED
        session.repo.save()
    elif how == "signed out":
        sign_out(user, cookie_key(headers))
    elif how == "password changed":
        user.set_password("a-new-password-4242")
        user.save()
    elif how == "permission taken from their group":
        session.memberships.filter(user=user).delete()  # in by the permission alone, then not
        Group.objects.get(name="admins").permissions.clear()
    elif how == "group deleted":
        session.repo.access = Repo.Access.LISTED
        session.repo.save()  # the repo is for its listed group alone now
        Group.objects.get(name="admins").delete()


@pytest.mark.parametrize("how", ["removed", "deactivated", "repo closed to them", "signed out", "password changed",
                                 "permission taken from their group", "group deleted"])
def test_losing_the_session_closes_the_socket_within_a_second(session, user, other_user, how):
    session.add_member(other_user)
    if how in ("permission taken from their group", "group deleted"):  # in by a group of both
        group = Group.objects.create(name="admins")
        if how == "permission taken from their group":
            group.permissions.add(Permission.objects.get(codename="see_every_session"))
        else:
            session.repo.allowed_groups.add(group)
        user.groups.add(group)
        other_user.groups.add(group)
    ada, ada_elsewhere, bob = signed_in(user), signed_in(user), signed_in(other_user)

    async def scenario():
        sockets = [socket(session.pk, headers) for headers in (ada, ada_elsewhere, bob)]
        for ws in sockets:
            assert (await ws.connect())[0]
            await ws.send_json_to({"type": "subscribe", "after": 0})
            await ws.send_json_to({"type": "ping"})
            assert (await ws.receive_json_from(timeout=3))["type"] == "pong"
        started = time.monotonic()
        await database_sync_to_async(lose_access)(how, session, user, ada)
        closed = await sockets[0].receive_output(timeout=1)
        assert closed == {"type": "websocket.close", "code": 4403}
        assert time.monotonic() - started < 1
        # Her other sign-in keeps its socket when she signs out of one; otherwise she is out everywhere.
        if how == "signed out":
            await sockets[1].send_json_to({"type": "ping"})
            assert (await sockets[1].receive_json_from(timeout=3))["type"] == "pong"
        else:
            assert await sockets[1].receive_output(timeout=1) == {"type": "websocket.close", "code": 4403}
        # Bob, still in, is untouched (a repo closed to everyone unlisted, or a group of both, closes his too).
        if how in ("removed", "deactivated", "signed out", "password changed"):
            await sockets[2].send_json_to({"type": "ping"})
            assert (await sockets[2].receive_json_from(timeout=3))["type"] == "pong"
        for ws in sockets:
            await ws.disconnect()

    async_to_sync(scenario)()


def test_a_change_that_leaves_her_in_closes_nothing(session, user):
    headers = signed_in(user)

    async def scenario():
        ws = socket(session.pk, headers)
        assert (await ws.connect())[0]
        await ws.send_json_to({"type": "subscribe", "after": 0})

        def still_in() -> None:
            user.first_name = "Ada L."
            user.save()  # her account changed, her access did not
            session.repo.allowed_users.add(user)  # listed as well
        await database_sync_to_async(still_in)()
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from(timeout=3))["type"] == "pong"
        await ws.disconnect()

    async_to_sync(scenario)()
