"""The front proxy: which requests nginx relays itself (ide/front.py), its header rules (ide/nginx/), and
`manage.py run_front`. The proxy's behaviour through it is tested in test_proxy_http.py and
test_proxy_sockets.py, which run through Daphne alone and through the front."""

import http.client
import json
import os
import subprocess
import sys
import time
from urllib.parse import quote

import httpx
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client

from ide.front import ROUTE_PATH, front_key, goes_direct, route
from ide.headers import rewrite_location, rewrite_set_cookie
from ide.targets import Target
from ide.views import ide_origin
from inspect_site.management.commands.run_front import default_workspace_listen
from tests.ide.support import ready, signed_in
from tests.support.front import FrontServer
from tests.support.live_server import BASE, free_port, stop_group, wait_until_answering
from tests.support.waiting import eventually

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]

def test_only_a_ready_plain_http_service_goes_direct():
    assert goes_direct(Target(200, base_url="http://127.0.0.1:41234"))
    assert not goes_direct(Target(403, "no"))
    assert not goes_direct(Target(503, "starting", starting=True))
    # Tunnels (https) need TLS and a resolver: Daphne's proxy relays them.
    assert not goes_direct(Target(200, base_url="https://abc.modal.host"))


def browser(user=None, origin: str = "http://127.0.0.1:8000", host: str = "127.0.0.1:8000") -> list:
    headers = [(b"host", host.encode()), (b"origin", origin.encode())]
    if user is not None:
        client = Client()
        client.force_login(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}; csrftoken=t; theme=light"
        headers.append((b"cookie", cookie.encode()))
    return headers


def test_a_members_ready_service_goes_direct_without_the_platforms_cookies(users, make_session, upstream, install):
    session = make_session(users["ada"], {"ide": ready(upstream.port), "preview-3000": ready(upstream.port)})
    found = route(f"/w/{session.pk}/ide/a%2Fb?x=1", browser(users["ada"]), websocket=False)
    assert found.direct
    assert found.upstream == f"127.0.0.1:{upstream.port}"
    assert found.prefix == f"/w/{session.pk}/ide"
    assert found.cookie == "theme=light"
    assert found.static == install.prefix  # VS Code's files stay with the control plane
    assert route(f"/w/{session.pk}/preview-3000/", browser(users["ada"]), websocket=False).static == ""
    assert route(f"/w/{session.pk}/ide/x", browser(users["ada"]), websocket=True).direct


def test_everything_else_is_left_to_daphne(users, make_session, upstream):
    ada, bob = users["ada"], users["bob"]
    session = make_session(ada, {"ide": ready(upstream.port),
                                 "desktop": {"state": "starting", "port": None, "reason": ""}})
    prefix = f"/w/{session.pk}"
    assert not route(f"{prefix}/ide/x", browser(bob), websocket=False).direct
    assert not route(f"{prefix}/ide/x", browser(), websocket=False).direct  # anonymous
    assert not route("/w/999999/ide/x", browser(ada), websocket=False).direct
    assert not route(f"{prefix}/desktop/x", browser(ada), websocket=False).direct
    assert not route(f"{prefix}/ide/x", browser(ada, host="evil.example"), websocket=False).direct
    # A socket opened by another site's page: Daphne refuses it.
    assert not route(f"{prefix}/ide/x", browser(ada, origin="https://evil.example"), websocket=True).direct


def test_the_routing_question_is_answered_only_to_the_front(entry, live, users, make_session, upstream):
    session = make_session(users["ada"], {"ide": ready(upstream.port)})
    asked = {**signed_in(users["ada"], live), "X-Original-Uri": f"/w/{session.pk}/ide/x", "X-Original-Method": "GET"}
    # Browsers cannot reach it through the front (an internal location)...
    assert httpx.get(entry.url + ROUTE_PATH, headers=asked).status_code == 404
    # ...and Daphne answers it only with the front's key.
    for key in ({}, {"X-Front-Key": "wrong"}):
        refused = httpx.get(live.url + ROUTE_PATH, headers={**asked, **key})
        assert refused.status_code == 404 and "x-route-upstream" not in refused.headers
    answered = httpx.get(live.url + ROUTE_PATH, headers={**asked, "X-Front-Key": front_key()})
    assert answered.headers["x-route"] == "direct"
    assert answered.headers["x-route-upstream"] == f"127.0.0.1:{upstream.port}"


LOCATIONS = [
    "/login?next=/home", "login", "../up", "?q=1", "#top", "///triple", "/x?", "/x#",
    "//127.0.0.1:{port}/x", "http://127.0.0.1:{port}/abs?x=1#f", "HTTP://127.0.0.1:{port}",
    "http://user@127.0.0.1:{port}/u", "http://127.0.0.1:80/x", "https://github.com/login",
    "http://{host}/y", "http://[::1]:5/x", "http://127.0.0.1:abc/x", "ws://127.0.0.1:{port}/s",
    "{prefix}/already", "{prefix}x", "/\t/evil/x",
]
COOKIES = [
    "theme=dark; Path=/; Domain=127.0.0.1; HttpOnly", "sessionid=planted; Path=/", "csrftoken=x",
    " messages = y ; Path=/", "deep=1; Path=/settings", "nopath=1", "rel=1; Path=relative",
    "under=1; Path={prefix}/x", "empty=1; ; Secure;", "odd; path = /a ; SameSite=Lax", "x=1; Path",
]


def respond(entry, user, session, status: int, headers: list[tuple[str, str]]) -> http.client.HTTPResponse:
    """The service answers with `headers`; read raw, since some Locations here are no valid URL for a client."""
    query = f"status={status}&h={quote(json.dumps(headers))}"
    connection = http.client.HTTPConnection("127.0.0.1", entry.port, timeout=10)
    connection.request("GET", f"/w/{session.pk}/ide/respond?{query}", headers=signed_in(user, entry))
    response = connection.getresponse()
    response.text = response.read().decode()
    connection.close()
    return response


def test_redirects_and_cookies_follow_the_same_rules_both_ways(entry, users, make_session, upstream):
    """nginx's Lua (ide/nginx/inspect_front.lua) gives what ide/headers.py gives, case by case."""
    session = make_session(users["ada"], {"ide": ready(upstream.port)})
    prefix, host = f"/w/{session.pk}/ide", f"127.0.0.1:{entry.port}"
    for template in LOCATIONS:
        location = template.format(port=upstream.port, host=host, prefix=prefix)
        response = respond(entry, users["ada"], session, 302, [("Location", location)])
        expected = rewrite_location(location, prefix=prefix, upstream=upstream.url, browser_host=host)
        assert (location, response.getheader("location")) == (location, expected)
    cookies = [template.format(prefix=prefix) for template in COOKIES]
    response = respond(entry, users["ada"], session, 200, [("Set-Cookie", cookie) for cookie in cookies])
    expected = [rewrite_set_cookie(cookie, prefix=prefix) for cookie in cookies]
    assert response.headers.get_all("set-cookie") == [cookie for cookie in expected if cookie is not None]


def test_a_service_cannot_steer_the_front_or_wipe_the_platforms_data(entry, users, make_session, upstream):
    session = make_session(users["ada"], {"ide": ready(upstream.port)})
    response = respond(entry, users["ada"], session, 200, [
        ("X-Accel-Redirect", "/accounts/login/"), ("X-Accel-Limit-Rate", "1"), ("Clear-Site-Data", '"*"')])
    assert response.status == 200 and response.text == "as asked"
    assert response.getheader("clear-site-data") is None


def test_a_body_for_a_service_that_does_not_answer_gets_a_502_at_once(entry, users, make_session):
    """Through the front, only bodiless requests are handed to Daphne to try again: a body is never replayed."""
    session = make_session(users["ada"], {"ide": ready(free_port())})
    started = time.monotonic()
    response = httpx.post(f"{entry.url}/w/{session.pk}/ide/upload", content=b"x" * 300_000,
                          headers=signed_in(users["ada"], entry), timeout=30)
    assert response.status_code == 502
    assert time.monotonic() - started < 10


def test_run_front_serves_the_platform_through_nginx(live, tmp_path):
    """As the Procfile runs them: `run_web`'s Daphnes on their unix sockets in VAR_DIR, and `run_front` finding
    the same sockets by itself."""
    port = free_port()
    env = {**live.env, "VAR_DIR": str(tmp_path), "WEB_PROCESSES": "2"}
    web = subprocess.Popen([sys.executable, "manage.py", "run_web"], cwd=BASE, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workspace_port = free_port()
    env["WORKSPACE_PORT"] = str(workspace_port)  # as the Procfile leaves it: beside --listen, on this port
    front = subprocess.Popen([sys.executable, "manage.py", "run_front", "--listen", f"127.0.0.1:{port}",
                              "--workers", "1"], cwd=BASE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        response = wait_until_answering(f"http://127.0.0.1:{port}/accounts/login/", front, "run_front", 30,
                                        lambda: front.stdout.read().decode(), past_front=True)
        assert response.status_code == 200 and "csrfmiddlewaretoken" in response.text
        assert "origin-agent-cluster" not in response.headers
        workspace = httpx.get(f"http://127.0.0.1:{workspace_port}/accounts/login/")
        assert workspace.status_code == 404 and workspace.headers["origin-agent-cluster"] == "?1"
        config = tmp_path / "front" / "nginx.conf"
        assert os.stat(config).st_mode & 0o077 == 0  # it holds the routing key
        for index in range(2):
            assert f"server unix:{tmp_path / f'daphne-{index}.sock'} " in config.read_text()
    finally:
        stop_group(front, timeout=15)
        stop_group(web, timeout=15)


@pytest.mark.parametrize("workspace", ["127.0.0.1:9000", "0.0.0.0:9000", "127.0.0.1:http", "127.0.0.1:70000"])
def test_run_front_refuses_a_workspace_origin_it_cannot_serve(workspace, monkeypatch):
    def exec_nginx(*args):
        raise AssertionError("nginx was started")

    monkeypatch.setattr(os, "execv", exec_nginx)
    with pytest.raises(CommandError, match="workspace origin"):
        call_command("run_front", "--listen", "127.0.0.1:9000", "--workspace-listen", workspace)


@pytest.mark.parametrize(("listen", "environ", "expected"), [
    ("127.0.0.1:8000", {}, "127.0.0.1:8001"),
    ("127.0.0.1:8000", {"WORKSPACE_PORT": "9100"}, "127.0.0.1:9100"),
    ("[::1]:8000", {}, "[::1]:8001"),
    ("8000", {}, "8001"),
    ("unix:/run/front.sock", {"WORKSPACE_PORT": "9100"}, None),  # nginx's port map needs a TCP port
])
def test_run_fronts_workspace_origin_is_beside_its_listen_address(listen, environ, expected, monkeypatch):
    monkeypatch.delenv("WORKSPACE_PORT", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert default_workspace_listen(listen) == expected


def test_a_configured_workspace_origin_wins_over_the_page_host_only_behind_the_front(rf, settings):
    request = rf.get("/sessions/1/", HTTP_HOST="127.0.0.1:8000", HTTP_X_WORKSPACE_PORT="8001")
    assert ide_origin(request) == "http://127.0.0.1:8001"
    settings.WORKSPACE_ORIGIN = "https://inspect.example.com:8443"  # a TLS proxy in front maps the port
    assert ide_origin(request) == "https://inspect.example.com:8443"
    assert ide_origin(rf.get("/sessions/1/", HTTP_HOST="127.0.0.1:8000")) == ""  # no front: the page's origin


def test_a_removed_member_is_refused_once_the_fronts_answer_expires(users, make_session, upstream, live):
    """The front keeps Daphne's answer for FRONT_ROUTE_CACHE_SECONDS: a membership ends within that long."""
    front = FrontServer(live).start()
    try:
        ada, bob = users["ada"], users["bob"]
        session = make_session(ada, {"ide": ready(upstream.port)})
        session.add_member(bob)
        url, headers = f"{front.url}/w/{session.pk}/ide/echo", signed_in(bob, front)  # one browser: one cookie
        assert httpx.get(url, headers=headers).json()["server"] == "one"
        session.memberships.filter(user=bob).delete()
        removed = time.monotonic()
        eventually(lambda: httpx.get(url, headers=headers).status_code == 403,
                   timeout=settings.FRONT_ROUTE_CACHE_SECONDS + 1, interval=0.1, what="the removed member refused")
        assert time.monotonic() - removed < settings.FRONT_ROUTE_CACHE_SECONDS + 0.5
    finally:
        front.stop()


def test_the_workspace_origin_serves_only_the_workspace_and_asks_for_a_process_of_its_own(
        users, make_session, upstream, live):
    """VS Code's frame is loaded from the front's second port (ide/nginx/nginx.conf): an origin of its own,
    the same site (cookies ignore ports), whose answers ask Chromium for an origin-keyed agent cluster."""
    front = FrontServer(live).start()
    try:
        ada, bob = users["ada"], users["bob"]
        session = make_session(ada, {"ide": ready(upstream.port)})
        path = f"/w/{session.pk}/ide/echo"
        answer = httpx.get(front.workspace_url + path, headers=signed_in(ada, front))
        assert answer.json()["server"] == "one" and answer.headers["origin-agent-cluster"] == "?1"
        assert "origin-agent-cluster" not in httpx.get(front.url + path, headers=signed_in(ada, front)).headers
        assert httpx.get(front.workspace_url + path, headers=signed_in(bob, front)).status_code == 403
        assert httpx.get(front.workspace_url + path).status_code in (302, 403)  # signed out: never the service
        # The platform's own pages are not on that origin: a script from a sandbox there cannot read them.
        for other in ("/", "/accounts/login/", f"/sessions/{session.pk}/", "/static/sessions/workspace.js"):
            assert httpx.get(front.workspace_url + other, headers=signed_in(ada, front)).status_code == 404

        def page_origin(url: str, **headers) -> str:
            page = httpx.get(f"{url}/sessions/{session.pk}/", headers={**signed_in(ada, front), **headers})
            assert page.status_code == 200
            # VS Code's frame and its "Open in new tab" link (VS Code is ready: the frame has its src at once).
            origin = page.text.split('data-ide-origin="', 1)[1].split('"', 1)[0]
            assert f'href="{origin}/w/{session.pk}/ide/"' in page.text
            assert f'src="{origin}/w/{session.pk}/ide/"' in page.text
            return origin

        assert page_origin(front.url) == front.workspace_url
        # The front's port, never one a browser sends.
        assert page_origin(front.url, **{"X-Workspace-Port": "1"}) == front.workspace_url
        assert page_origin(live.url) == ""  # Daphne alone: the page's own origin
        # A sandbox cannot answer the header itself (a second value would undo it).
        asked = quote(json.dumps([["Origin-Agent-Cluster", "?0"]]))
        upstream_says = httpx.get(f"{front.workspace_url}/w/{session.pk}/ide/respond?h={asked}",
                                  headers=signed_in(ada, front))
        assert upstream_says.headers.get_list("origin-agent-cluster") == ["?1"]
    finally:
        front.stop()
    without = FrontServer(live, workspace_origin=False).start()  # run_front --no-workspace-origin
    try:
        page = httpx.get(f"{without.url}/sessions/{session.pk}/", headers=signed_in(ada, without))
        assert 'data-ide-origin=""' in page.text
    finally:
        without.stop()
