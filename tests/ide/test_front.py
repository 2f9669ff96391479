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
from django.test import Client, override_settings

from ide import workspace_hosts
from ide.front import ROUTE_PATH, front_key, goes_direct, route
from ide.headers import rewrite_location, rewrite_set_cookie
from ide.targets import Target
from tests.ide.support import ready, signed_in, workspace_host
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


PLATFORM = "127.0.0.1:8000"


def browser(user=None, session_id: int = 0, *, cookie_session: int | None = None, origin: str | None = None,
            host: str | None = None, platform_cookie: bool = True) -> list:
    """A browser's headers on session `session_id`'s workspace host (or `host`), signed in there as `user` with
    the workspace cookie of session `cookie_session` (default: this one), the platform's cookies beside it."""
    host = host or f"s-{session_id}.{settings.WORKSPACE_HOST}:8000"
    headers = [(b"host", host.encode()), (b"origin", (origin or f"http://{host}").encode())]
    if user is not None:
        cookie_session = session_id if cookie_session is None else cookie_session
        cookies = [f"{workspace_hosts.COOKIE_NAME}={workspace_hosts.cookie_value(user, cookie_session)}"]
        if platform_cookie:
            client = Client()
            client.force_login(user)
            cookies.append(f"sessionid={client.cookies['sessionid'].value}; csrftoken=t")
        headers.append((b"cookie", "; ".join([*cookies, "theme=light"]).encode()))
    return headers


def test_a_members_ready_service_goes_direct_without_the_platforms_cookies(users, make_session, upstream, install):
    session = make_session(users["ada"], {"ide": ready(upstream.port), "preview-3000": ready(upstream.port)})
    ada, host = browser(users["ada"], session.pk), f"s-{session.pk}.{settings.WORKSPACE_HOST}:8000"
    found = route(f"/w/{session.pk}/ide/a%2Fb?x=1", ada, websocket=False)
    assert found.direct
    assert found.upstream == f"127.0.0.1:{upstream.port}"
    assert found.prefix == f"/w/{session.pk}/ide"
    # Neither the platform's cookies nor the workspace host's, and VS Code's service secret added.
    secret = session.sandbox.service_secret()
    assert found.cookie == f"theme=light; code-server-session={secret}"
    assert route(f"/w/{session.pk}/preview-3000/", ada, websocket=False).cookie == "theme=light"
    # A browser's own cookie of that name is no way in: the secret replaces it.
    forged = [(name, value + b"; code-server-session=guess" if name == b"cookie" else value) for name, value in ada]
    assert route(f"/w/{session.pk}/ide/x", forged, websocket=False).cookie == found.cookie
    assert found.static == install.prefix  # VS Code's files stay with the control plane
    # nginx adds the workspace host's frame-ancestors to the service's answers, for the scheme it was reached on.
    assert found.policy == workspace_hosts.frame_ancestors("http", host)
    assert f"http://{PLATFORM}" in found.policy.split()
    assert route(f"/w/{session.pk}/ide/x", ada, websocket=False, scheme="https").policy \
        == workspace_hosts.frame_ancestors("https", host)
    assert route(f"/w/{session.pk}/preview-3000/", ada, websocket=False).static == ""
    # The workspace cookie alone is the sign-in there.
    assert route(f"/w/{session.pk}/ide/x", browser(users["ada"], session.pk, platform_cookie=False),
                 websocket=False).direct
    # Sockets always go through Daphne, which closes them the moment their person loses the session.
    assert not route(f"/w/{session.pk}/ide/x", ada, websocket=True).direct


def test_everything_else_is_left_to_daphne(users, make_session, upstream):
    ada, bob = users["ada"], users["bob"]
    session = make_session(ada, {"ide": ready(upstream.port),
                                 "desktop": {"state": "starting", "port": None, "reason": ""}})
    other = make_session(ada, {"ide": ready(upstream.port)})
    prefix, pk, host = f"/w/{session.pk}", session.pk, f"s-{session.pk}.{settings.WORKSPACE_HOST}:8000"
    assert not route(f"{prefix}/ide/x", browser(bob, pk), websocket=False).direct
    assert not route(f"{prefix}/ide/x", browser(None, pk), websocket=False).direct  # anonymous
    assert not route("/w/999999/ide/x", browser(ada, 999999), websocket=False).direct
    assert not route(f"{prefix}/desktop/x", browser(ada, pk), websocket=False).direct
    assert not route(f"{prefix}/ide/x", browser(ada, pk, host="evil.example"), websocket=False).direct
    # The platform's own host serves no workspace, even to its signed-in member.
    assert not route(f"{prefix}/ide/x", browser(ada, pk, host=PLATFORM), websocket=False).direct
    # The platform's session cookie is no sign-in on a workspace host: only that host's own cookie is.
    client = Client()
    client.force_login(ada)
    platform_only = [(b"host", host.encode()), (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]
    assert not route(f"{prefix}/ide/x", platform_only, websocket=False).direct
    # One session's host and cookie open no other session's services, and another session's cookie opens none here.
    assert not route(f"/w/{other.pk}/ide/x", browser(ada, pk), websocket=False).direct
    assert not route(f"/w/{other.pk}/ide/x", browser(ada, pk, cookie_session=other.pk), websocket=False).direct
    assert not route(f"{prefix}/ide/x", browser(ada, pk, cookie_session=other.pk), websocket=False).direct
    # A socket opened by another site's page, or by another session's host: Daphne refuses it.
    assert not route(f"{prefix}/ide/x", browser(ada, pk, origin="https://evil.example"), websocket=True).direct
    assert not route(f"{prefix}/ide/x", browser(ada, pk, origin=f"http://s-{other.pk}.{settings.WORKSPACE_HOST}:8000"),
                     websocket=True).direct


def live_policy(live, host: str) -> str:
    """The frame-ancestors the live Daphne gives workspace host `host` (its own ALLOWED_HOSTS, not this process's)."""
    with override_settings(ALLOWED_HOSTS=live.env["ALLOWED_HOSTS"].split(",")):
        return workspace_hosts.frame_ancestors("http", host)


def test_the_routing_question_is_answered_only_to_the_front(entry, live, users, make_session, upstream):
    session = make_session(users["ada"], {"ide": ready(upstream.port)})
    asked = {**signed_in(users["ada"], live, session.pk), "X-Original-Uri": f"/w/{session.pk}/ide/x",
             "X-Original-Method": "GET"}
    # Browsers cannot reach it through the front (an internal location)...
    assert httpx.get(entry.url + ROUTE_PATH, headers=asked).status_code == 404
    # ...and Daphne answers it only with the front's key.
    for key in ({}, {"X-Front-Key": "wrong"}):
        refused = httpx.get(live.url + ROUTE_PATH, headers={**asked, **key})
        assert refused.status_code == 404 and "x-route-upstream" not in refused.headers
    answered = httpx.get(live.url + ROUTE_PATH, headers={**asked, "X-Front-Key": front_key()})
    assert answered.headers["x-route"] == "direct"
    assert answered.headers["x-route-upstream"] == f"127.0.0.1:{upstream.port}"
    assert answered.headers["x-route-policy"] == live_policy(live, asked["Host"])


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
    connection.request("GET", f"/w/{session.pk}/ide/respond?{query}", headers=signed_in(user, entry, session.pk))
    response = connection.getresponse()
    response.text = response.read().decode()
    connection.close()
    return response


def test_redirects_and_cookies_follow_the_same_rules_both_ways(entry, users, make_session, upstream):
    """nginx's Lua (ide/nginx/inspect_front.lua) gives what ide/headers.py gives, case by case."""
    session = make_session(users["ada"], {"ide": ready(upstream.port)})
    prefix, host = f"/w/{session.pk}/ide", workspace_host(entry, session.pk)
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
                          headers=signed_in(users["ada"], entry, session.pk), timeout=30)
    assert response.status_code == 502
    assert time.monotonic() - started < 10


def test_run_front_serves_the_platform_through_nginx(live, tmp_path):
    """As the Procfile runs them: `run_web`'s Daphnes on their unix sockets in VAR_DIR, and `run_front` finding
    the same sockets by itself."""
    port = free_port()
    env = {**live.env, "VAR_DIR": str(tmp_path), "WEB_PROCESSES": "2"}
    web = subprocess.Popen([sys.executable, "manage.py", "run_web"], cwd=BASE, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    front = subprocess.Popen([sys.executable, "manage.py", "run_front", "--listen", f"127.0.0.1:{port}",
                              "--workers", "1"], cwd=BASE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        response = wait_until_answering(f"http://127.0.0.1:{port}/accounts/login/", front, "run_front", 30,
                                        lambda: front.stdout.read().decode(), past_front=True)
        assert response.status_code == 200 and "csrfmiddlewaretoken" in response.text
        # The sessions' workspace hosts are on the same port, serving nothing of the platform's.
        workspace = httpx.get(f"http://127.0.0.1:{port}/accounts/login/",
                              headers={"Host": f"s-1.{settings.WORKSPACE_HOST}:{port}"})
        assert workspace.status_code == 404 and "csrfmiddlewaretoken" not in workspace.text
        config = tmp_path / "front" / "nginx.conf"
        assert os.stat(config).st_mode & 0o077 == 0  # it holds the routing key
        # Every placeholder filled in (the template's header comment names them).
        assert not [line for line in config.read_text().splitlines() if "@@" in line.partition("#")[0]]
        for index in range(2):
            assert f"server unix:{tmp_path / f'daphne-{index}.sock'} " in config.read_text()
    finally:
        stop_group(front, timeout=15)
        stop_group(web, timeout=15)


def test_a_removed_member_is_refused_once_the_fronts_answer_expires(users, make_session, upstream, live):
    """The front keeps Daphne's answer for FRONT_ROUTE_CACHE_SECONDS: a membership ends within that long."""
    front = FrontServer(live).start()
    try:
        ada, bob = users["ada"], users["bob"]
        session = make_session(ada, {"ide": ready(upstream.port)})
        session.add_member(bob)
        url, headers = f"{front.url}/w/{session.pk}/ide/echo", signed_in(bob, front, session.pk)  # one cookie
        assert httpx.get(url, headers=headers).json()["server"] == "one"
        session.memberships.filter(user=bob).delete()
        removed = time.monotonic()
        eventually(lambda: httpx.get(url, headers=headers).status_code == 403,
                   timeout=settings.FRONT_ROUTE_CACHE_SECONDS + 1, interval=0.1, what="the removed member refused")
        assert time.monotonic() - removed < settings.FRONT_ROUTE_CACHE_SECONDS + 0.5
    finally:
        front.stop()


def test_a_direct_answer_may_be_framed_by_the_platform_only_and_claims_no_wider_worker_scope(
        users, make_session, upstream, live):
    """The front adds the workspace host's frame-ancestors (X-Route-Policy, kept by the Lua) to the answers it
    relays itself, as Daphne's proxy does to its own (ide/workspace_auth.py), and drops Service-Worker-Allowed."""
    front = FrontServer(live).start()
    try:
        session = make_session(users["ada"], {"preview-3000": ready(upstream.port)})
        headers = signed_in(users["ada"], front, session.pk)
        policy = live_policy(live, headers["Host"])
        # A header that the service's Connection names passes on the direct path only (docs/front-proxy.md).
        asked = [["Content-Type", "text/javascript"], ["Service-Worker-Allowed", "/"],
                 ["Connection", "X-Relayed-By-Nginx"], ["X-Relayed-By-Nginx", "1"]]
        answer = httpx.get(f"{front.url}/w/{session.pk}/preview-3000/respond", params={"h": json.dumps(asked)},
                           headers=headers, timeout=10)
        assert answer.status_code == 200 and answer.text == "as asked"
        assert answer.headers.get("x-relayed-by-nginx") == "1"  # nginx relayed it, not Daphne's proxy
        assert answer.headers.get_list("content-security-policy") == [policy]
        assert f"http://127.0.0.1:{front.port}" in policy.split()
        assert "service-worker-allowed" not in answer.headers
        # Daphne's own answers on that path (here the redirect to the slash form) carry the policy once, not twice.
        bare = httpx.get(f"{front.url}/w/{session.pk}/preview-3000", headers=headers, timeout=10)
        assert bare.status_code in (301, 302) and bare.headers.get_list("content-security-policy") == [policy]
    finally:
        front.stop()
