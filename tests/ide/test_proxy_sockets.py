"""The workspace proxy over WebSockets, on the session's own host, through the real Daphne to a real echo server."""

import hashlib
import json
import os
import time
from contextlib import ExitStack
from urllib.parse import urlsplit

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ide import workspace_hosts
from inspect_site.asgi import application
from sessions import access
from tests.ide.support import open_socket, ready, signed_in, workspace_host
from tests.support.live_server import free_port
from tests.support.waiting import eventually

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]

SUBPROTOCOLS = ["binary", "base64"]


@pytest.fixture
def desktop(users, make_session, socket_upstream):
    return make_session(users["ada"], {"desktop": ready(socket_upstream.port)})


def closed_with(socket) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=10)
    return closed.value.rcvd.code


def refused_before_the_service(entry, path: str, headers: dict, socket_upstream) -> None:
    """The handshake is refused (HTTP 403: a close before accept) and the service is never dialled."""
    before = len(socket_upstream.closes)
    with pytest.raises(InvalidStatus) as refused:
        open_socket(entry, path, headers, subprotocols=SUBPROTOCOLS)
    assert refused.value.response.status_code == 403
    time.sleep(0.2)
    assert len(socket_upstream.closes) == before


def desktop_socket_url(entry, user, session_id: int, session_key: str = "") -> str:
    """What the platform's page gets for the desktop's viewer from /sessions/<id>/open/desktop/?socket=1, signed
    in to the platform as `user` (under `session_key`, or a sign-in of its own)."""
    if not session_key:
        client = Client()
        client.force_login(user)
        session_key = client.cookies["sessionid"].value
    answer = httpx.get(f"{entry.url}/sessions/{session_id}/open/desktop/", params={"socket": "1"}, timeout=10,
                       headers={"Cookie": f"sessionid={session_key}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["url"]


def test_frames_relay_both_ways_with_the_services_subprotocol(entry, users, desktop):
    headers = signed_in(users["ada"], entry, desktop.pk)
    with open_socket(entry, f"/w/{desktop.pk}/desktop/websockify?token=1", headers,
                     subprotocols=SUBPROTOCOLS) as socket:
        assert socket.subprotocol == "binary"
        socket.send("hello")
        assert socket.recv(timeout=10) == "hello"
        # Daphne's own limit, both ways (--websocket-max-message-size, 1 MiB by default).
        frame = os.urandom(1024 * 1024)
        socket.send(frame)
        assert socket.recv(timeout=10) == frame


def test_the_service_sees_the_path_origin_and_only_its_own_cookies(entry, users, desktop):
    headers = signed_in(users["ada"], entry, desktop.pk)
    with open_socket(entry, f"/w/{desktop.pk}/desktop/websockify?token=1", headers,
                     subprotocols=SUBPROTOCOLS) as socket:
        socket.send("headers")
        seen = json.loads(socket.recv(timeout=10))
    assert seen["path"] == "/websockify?token=1"
    assert seen["subprotocol"] == "binary"
    # The platform's cookies stay out; the desktop's service secret is added (bridge/desktop_auth.py checks it).
    assert seen["headers"]["cookie"] == f"theme=light; inspect-desktop-secret={desktop.sandbox.service_secret()}"
    assert "secret-csrf" not in json.dumps(seen) and "sessionid" not in json.dumps(seen)
    assert workspace_hosts.COOKIE_NAME not in json.dumps(seen)
    assert seen["headers"]["origin"] == f"http://{workspace_host(entry, desktop.pk)}"
    assert seen["headers"]["x-forwarded-host"] == workspace_host(entry, desktop.pk)


def test_a_frame_larger_than_daphne_sends_closes_the_socket_with_4009(entry, users, desktop):
    """With the front proxy too: every socket passes Daphne (the test's keeps its 1 MiB default; make run's
    allows 64 MiB)."""
    headers = signed_in(users["ada"], entry, desktop.pk)
    with open_socket(entry, f"/w/{desktop.pk}/desktop/", headers, subprotocols=SUBPROTOCOLS) as socket:
        socket.send(f"big {1024 * 1024 + 1}")
        assert closed_with(socket) == 4009


def test_a_member_removed_or_signed_out_loses_the_workspace_socket_within_a_second(entry, users, desktop,
                                                                                  socket_upstream):
    """Through the front as through Daphne alone. The desktop's viewer's socket comes from a ticket asked for
    under one sign-in; signing out of it closes that socket, and removing the member closes every one."""
    before = len(socket_upstream.closes)
    client = Client()
    client.force_login(users["ada"])
    key = client.cookies["sessionid"].value
    url = urlsplit(desktop_socket_url(entry, users["ada"], desktop.pk, session_key=key))
    sockets = ExitStack()
    viewer = sockets.enter_context(open_socket(entry, f"{url.path}?{url.query}",
                                               {"Host": url.netloc, "Origin": entry.url}, subprotocols=SUBPROTOCOLS))
    frame = sockets.enter_context(open_socket(entry, f"/w/{desktop.pk}/desktop/",
                                              signed_in(users["ada"], entry, desktop.pk), subprotocols=SUBPROTOCOLS))
    for socket in (viewer, frame):
        socket.send("ping")
        assert socket.recv(timeout=10) == "ping"
    started = time.monotonic()
    client.post("/accounts/logout/")
    assert closed_with(viewer) == 4403 and time.monotonic() - started < 1.5
    eventually(lambda: len(socket_upstream.closes) >= before + 1, what="the service saw the viewer's socket close")
    frame.send("ping")
    assert frame.recv(timeout=10) == "ping"  # another sign-in's socket stays
    # That sign-in ended: a workspace cookie it gave counts for nothing now, on HTTP as on sockets.
    ended = {"Host": workspace_host(entry, desktop.pk), "Origin": f"http://{workspace_host(entry, desktop.pk)}",
             "Cookie": f"{workspace_hosts.COOKIE_NAME}="
                       + workspace_hosts.cookie_value(users["ada"], desktop.pk, access.login_of(key))}
    assert httpx.get(f"{entry.url}/w/{desktop.pk}/desktop/", headers=ended, timeout=10).status_code == 403
    refused_before_the_service(entry, f"/w/{desktop.pk}/desktop/", ended, socket_upstream)

    started = time.monotonic()
    desktop.memberships.filter(user=users["ada"]).delete()
    assert closed_with(frame) == 4403 and time.monotonic() - started < 1.5
    eventually(lambda: len(socket_upstream.closes) >= before + 2, what="the service saw both sockets close")
    sockets.close()


def test_the_proxy_itself_sets_no_frame_size_limit(users, desktop):
    """In process, without Daphne's limit: 8 MiB frames pass both ways."""
    host = f"s-{desktop.pk}.{settings.WORKSPACE_HOST}"
    cookie = f"{workspace_hosts.COOKIE_NAME}={workspace_hosts.cookie_value(users['ada'], desktop.pk)}"
    headers = [(b"origin", f"http://{host}".encode()), (b"host", host.encode()), (b"cookie", cookie.encode())]

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
    headers = signed_in(users["ada"], entry, desktop.pk)
    with open_socket(entry, f"/w/{desktop.pk}/desktop/", headers, subprotocols=SUBPROTOCOLS) as socket:
        socket.send("close 4123")
        assert closed_with(socket) == 4123


def test_the_browsers_close_code_reaches_the_service(entry, users, desktop, socket_upstream):
    before = len(socket_upstream.closes)
    headers = signed_in(users["ada"], entry, desktop.pk)
    with open_socket(entry, f"/w/{desktop.pk}/desktop/", headers, subprotocols=SUBPROTOCOLS) as socket:
        socket.send("ping")
        assert socket.recv(timeout=10) == "ping"
        socket.close(4321)
    eventually(lambda: len(socket_upstream.closes) > before, what="the service saw the close")
    assert socket_upstream.closes[before:] == [4321]


@pytest.mark.parametrize("who", ["bob", "anonymous"])
def test_non_members_are_refused_before_the_service_is_dialled(entry, users, desktop, socket_upstream, who):
    host = workspace_host(entry, desktop.pk)
    headers = signed_in(users["bob"], entry, desktop.pk) if who == "bob" else {"Host": host,
                                                                               "Origin": f"http://{host}"}
    refused_before_the_service(entry, f"/w/{desktop.pk}/desktop/", headers, socket_upstream)


def test_a_ticket_lets_a_members_socket_in_once_and_never_reaches_the_service(entry, users, desktop,
                                                                             socket_upstream):
    """The desktop's viewer on the platform's page: no workspace cookie, a single-use ticket in the query."""
    url = urlsplit(desktop_socket_url(entry, users["ada"], desktop.pk))
    assert url.netloc == workspace_host(entry, desktop.pk)
    assert url.path == f"/w/{desktop.pk}/desktop/"
    path = f"{url.path}?{url.query}&token=1"
    headers = {"Host": url.netloc, "Origin": entry.url}  # the platform's page opens it
    before = len(socket_upstream.closes)
    with open_socket(entry, path, headers, subprotocols=SUBPROTOCOLS) as socket:
        assert socket.subprotocol == "binary"
        socket.send("headers")
        seen = json.loads(socket.recv(timeout=10))
    assert seen["path"] == "/?token=1"
    assert "ticket" not in json.dumps(seen)
    eventually(lambda: len(socket_upstream.closes) > before, what="the service saw the first socket close")
    # The same ticket again: refused before the service is dialled.
    refused_before_the_service(entry, path, headers, socket_upstream)
    # A browser holding the host's cookie too (VS Code's frame set it): the ticket still never reaches the
    # service, on the front's direct path as on Daphne's.
    url = urlsplit(desktop_socket_url(entry, users["ada"], desktop.pk))
    cookie = signed_in(users["ada"], entry, desktop.pk)["Cookie"]
    with open_socket(entry, f"{url.path}?{url.query}", {**headers, "Cookie": cookie},
                     subprotocols=SUBPROTOCOLS) as socket:
        socket.send("headers")
        seen = json.loads(socket.recv(timeout=10))
    assert seen["path"] == "/" and "ticket" not in json.dumps(seen)


def test_another_sites_page_cannot_open_a_members_socket(entry, users, make_session, desktop, socket_upstream):
    """Only the session's own host (VS Code, a preview) and the platform's exact origin may open its sockets."""
    other = make_session(users["ada"], {"desktop": ready(socket_upstream.port)})
    headers = signed_in(users["ada"], entry, desktop.pk)
    for origin in ("https://evil.example", f"http://{workspace_host(entry, other.pk)}",
                   f"https://{workspace_host(entry, desktop.pk)}", "null"):
        refused_before_the_service(entry, f"/w/{desktop.pk}/desktop/", {**headers, "Origin": origin},
                                   socket_upstream)
    without = {name: value for name, value in headers.items() if name != "Origin"}
    refused_before_the_service(entry, f"/w/{desktop.pk}/desktop/", without, socket_upstream)
    # The platform's own page (the desktop's viewer) may.
    with open_socket(entry, f"/w/{desktop.pk}/desktop/", {**headers, "Origin": entry.url},
                     subprotocols=SUBPROTOCOLS) as socket:
        socket.send("ping")
        assert socket.recv(timeout=10) == "ping"


def test_the_platforms_host_on_another_port_cannot_open_a_members_socket(entry, users, desktop, socket_upstream):
    """A preview or any other server on the platform's host name but another port is another origin."""
    headers = {**signed_in(users["ada"], entry, desktop.pk), "Origin": f"http://127.0.0.1:{free_port()}"}
    refused_before_the_service(entry, f"/w/{desktop.pk}/desktop/", headers, socket_upstream)


def test_a_sessions_host_opens_no_other_sessions_sockets(entry, users, make_session, desktop, socket_upstream):
    other = make_session(users["ada"], {"desktop": ready(socket_upstream.port)})
    headers = signed_in(users["ada"], entry, desktop.pk)
    refused_before_the_service(entry, f"/w/{other.pk}/desktop/", headers, socket_upstream)


def test_the_platforms_host_serves_no_workspace_sockets(entry, users, desktop, socket_upstream):
    client = Client()
    client.force_login(users["ada"])
    host = urlsplit(entry.url).netloc
    headers = {"Host": host, "Origin": entry.url, "Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    before = len(socket_upstream.closes)
    with pytest.raises(InvalidStatus):  # no route there (today a 500 from channels' URLRouter)
        open_socket(entry, f"/w/{desktop.pk}/desktop/", headers, subprotocols=SUBPROTOCOLS)
    time.sleep(0.2)
    assert len(socket_upstream.closes) == before


def test_a_service_that_is_not_ready_closes_with_4503(entry, users, make_session):
    session = make_session(users["ada"], {"desktop": {"state": "starting", "port": None, "reason": ""}})
    with open_socket(entry, f"/w/{session.pk}/desktop/", signed_in(users["ada"], entry, session.pk),
                     subprotocols=SUBPROTOCOLS) as socket:
        assert closed_with(socket) == 4503


def test_a_service_that_does_not_answer_closes_with_4502(entry, users, make_session):
    session = make_session(users["ada"], {"desktop": ready(free_port())})
    with open_socket(entry, f"/w/{session.pk}/desktop/", signed_in(users["ada"], entry, session.pk),
                     subprotocols=SUBPROTOCOLS) as socket:
        assert closed_with(socket) == 4502
