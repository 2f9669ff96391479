"""The workspace proxy over WebSockets, through the real Daphne to a real echo server."""

import hashlib
import json
import os
import time

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from inspect_site.asgi import application
from tests.ide.support import ready, signed_in
from tests.support.front import FrontServer
from tests.support.live_server import free_port
from tests.support.waiting import eventually

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def desktop(users, make_session, socket_upstream):
    return make_session(users["ada"], {"desktop": ready(socket_upstream.port)})


def open_socket(entry, path: str, headers: dict, subprotocols=("binary", "base64")):
    return connect(entry.url.replace("http", "ws") + path, additional_headers=headers,
                   subprotocols=list(subprotocols), max_size=None, open_timeout=10)


def signed_in_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()


def closed_with(socket) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=10)
    return closed.value.rcvd.code


def test_frames_relay_both_ways_with_the_services_subprotocol(entry, users, desktop):
    with open_socket(entry, f"/w/{desktop.pk}/desktop/websockify?token=1", signed_in(users["ada"], entry)) as socket:
        assert socket.subprotocol == "binary"
        socket.send("hello")
        assert socket.recv(timeout=10) == "hello"
        # Daphne's own limit, both ways (--websocket-max-message-size, 1 MiB by default).
        frame = os.urandom(1024 * 1024)
        socket.send(frame)
        assert socket.recv(timeout=10) == frame


def test_the_service_sees_the_path_origin_and_only_its_own_cookies(entry, users, desktop):
    with open_socket(entry, f"/w/{desktop.pk}/desktop/websockify?token=1", signed_in(users["ada"], entry)) as socket:
        socket.send("headers")
        seen = json.loads(socket.recv(timeout=10))
    assert seen["path"] == "/websockify?token=1"
    assert seen["subprotocol"] == "binary"
    assert seen["headers"]["cookie"] == "theme=light"
    assert "secret" not in json.dumps(seen) and "sessionid" not in json.dumps(seen)
    assert seen["headers"]["origin"] == entry.url
    assert seen["headers"]["x-forwarded-host"] == f"127.0.0.1:{entry.port}"


def test_a_frame_larger_than_daphne_sends_closes_the_socket_with_4009(entry, users, desktop):
    """Without the front proxy; through it, a ready service's frames never pass Daphne: they arrive whole."""
    with open_socket(entry, f"/w/{desktop.pk}/desktop/", signed_in(users["ada"], entry)) as socket:
        socket.send(f"big {1024 * 1024 + 1}")
        if isinstance(entry, FrontServer):
            big = socket.recv(timeout=10)
            assert len(big) == 1024 * 1024 + 1
            assert socket.recv(timeout=10) == hashlib.sha256(big).hexdigest()
        else:
            assert closed_with(socket) == 4009


def test_the_proxy_itself_sets_no_frame_size_limit(users, desktop):
    """In process, without Daphne's limit: 8 MiB frames pass both ways."""
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost"), signed_in_cookie(users["ada"])]

    async def scenario():
        socket = WebsocketCommunicator(application, f"/w/{desktop.pk}/desktop/", subprotocols=["binary"],
                                       headers=headers)
        connected, subprotocol = await socket.connect(timeout=10)
        assert connected and subprotocol == "binary"
        await socket.send_to(text_data=f"big {8 * 1024 * 1024}")
        big = await socket.receive_from(timeout=10)
        assert len(big) == 8 * 1024 * 1024
        assert await socket.receive_from(timeout=10) == hashlib.sha256(big).hexdigest()
        await socket.send_to(bytes_data=big)
        assert await socket.receive_from(timeout=10) == big
        await socket.disconnect()

    async_to_sync(scenario)()


def test_the_services_close_code_reaches_the_browser(entry, users, desktop):
    with open_socket(entry, f"/w/{desktop.pk}/desktop/", signed_in(users["ada"], entry)) as socket:
        socket.send("close 4123")
        assert closed_with(socket) == 4123


def test_the_browsers_close_code_reaches_the_service(entry, users, desktop, socket_upstream):
    before = len(socket_upstream.closes)
    with open_socket(entry, f"/w/{desktop.pk}/desktop/", signed_in(users["ada"], entry)) as socket:
        socket.send("ping")
        assert socket.recv(timeout=10) == "ping"
        socket.close(4321)
    eventually(lambda: len(socket_upstream.closes) > before, what="the service saw the close")
    assert socket_upstream.closes[before:] == [4321]


@pytest.mark.parametrize("who", ["bob", "anonymous"])
def test_non_members_are_refused_before_the_service_is_dialled(entry, users, desktop, socket_upstream, who):
    before = len(socket_upstream.closes)
    headers = signed_in(users["bob"], entry) if who == "bob" else {"Origin": entry.url}
    with pytest.raises(InvalidStatus) as refused:
        open_socket(entry, f"/w/{desktop.pk}/desktop/", headers)
    assert refused.value.response.status_code == 403
    time.sleep(0.2)
    assert len(socket_upstream.closes) == before


def test_another_site_cannot_open_a_members_socket(entry, users, desktop):
    headers = {**signed_in(users["ada"], entry), "Origin": "https://evil.example"}
    with pytest.raises(InvalidStatus):
        open_socket(entry, f"/w/{desktop.pk}/desktop/", headers)


def test_a_service_that_is_not_ready_closes_with_4503(entry, users, make_session):
    session = make_session(users["ada"], {"desktop": {"state": "starting", "port": None, "reason": ""}})
    with open_socket(entry, f"/w/{session.pk}/desktop/", signed_in(users["ada"], entry)) as socket:
        assert closed_with(socket) == 4503


def test_a_service_that_does_not_answer_closes_with_4502(entry, users, make_session):
    session = make_session(users["ada"], {"desktop": ready(free_port())})
    with open_socket(entry, f"/w/{session.pk}/desktop/", signed_in(users["ada"], entry)) as socket:
        assert closed_with(socket) == 4502
