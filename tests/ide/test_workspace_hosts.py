"""Workspace hosts (ide/workspace_hosts.py): a session's services on a host of their own, reached with a
single-use ticket exchanged for a cookie of that host. Through the real Daphne, alone and behind nginx."""

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.test import Client

from ide import workspace_hosts
from tests.ide.support import ready, signed_in, workspace_host

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ada_session(users, make_session, upstream):
    return make_session(users["ada"], {"ide": ready(upstream.port), "preview-3000": ready(upstream.port)})


def ticket_link(entry, user, session_id: int, service: str = "ide") -> str:
    """What the platform's page gets from /sessions/<id>/open/<service>/: the exchange URL on the session's host."""
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    answer = httpx.get(f"{entry.url}/sessions/{session_id}/open/{service}/", headers={"Cookie": cookie}, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def follow(entry, link: str) -> httpx.Response:
    """A browser following `link` on a workspace host (sent to `entry`'s address with the link's Host)."""
    parts = urlsplit(link)
    return httpx.get(f"{entry.url}{parts.path}?{parts.query}", headers={"Host": parts.netloc}, timeout=10)


def test_a_member_gets_in_with_a_ticket_once(entry, users, ada_session):
    link = ticket_link(entry, users["ada"], ada_session.pk, "preview-3000")
    assert urlsplit(link).netloc == workspace_host(entry, ada_session.pk)
    entered = follow(entry, link)
    assert entered.status_code == 302
    assert entered.headers["location"] == f"/w/{ada_session.pk}/preview-3000/"
    cookie = entered.headers["set-cookie"]
    assert cookie.startswith(workspace_hosts.COOKIE_NAME + "=")
    for attribute in ("HttpOnly", "Secure", "SameSite=None", "Partitioned", "Path=/"):
        assert attribute in cookie
    assert "Domain" not in cookie  # the session's host only
    value = cookie.split(";")[0].split("=", 1)[1]
    page = httpx.get(f"{entry.url}/w/{ada_session.pk}/preview-3000/hello", timeout=10, headers={
        "Host": workspace_host(entry, ada_session.pk), "Cookie": f"{workspace_hosts.COOKIE_NAME}={value}"})
    assert page.status_code == 200 and page.json()["path"] == "/hello"
    # The workspace cookie never reaches the sandbox.
    assert workspace_hosts.COOKIE_NAME not in page.json()["headers"].get("cookie", "")
    # The same ticket again: refused, and no cookie.
    again = follow(entry, link)
    assert again.status_code == 403 and "set-cookie" not in again.headers


def test_a_ticket_opens_only_its_own_sessions_host(entry, users, make_session, ada_session, upstream):
    other = make_session(users["ada"], {"ide": ready(upstream.port)})
    link = ticket_link(entry, users["ada"], ada_session.pk)
    parts = urlsplit(link)
    elsewhere = httpx.get(f"{entry.url}{parts.path}?{parts.query}", timeout=10,
                          headers={"Host": workspace_host(entry, other.pk)})
    assert elsewhere.status_code == 403 and "set-cookie" not in elsewhere.headers
    # A cookie of one session's host does not open another session's services on it.
    headers = signed_in(users["ada"], entry, ada_session.pk)
    crossed = httpx.get(f"{entry.url}/w/{other.pk}/ide/", headers=headers, timeout=10)
    assert crossed.status_code == 404


def test_an_expired_or_forged_ticket_is_refused(entry, users, ada_session, settings, monkeypatch):
    link = ticket_link(entry, users["ada"], ada_session.pk)
    query = parse_qs(urlsplit(link).query)
    forged = query["ticket"][0][:-2] + ("AA" if not query["ticket"][0].endswith("AA") else "BB")
    host = {"Host": workspace_host(entry, ada_session.pk)}
    answer = httpx.get(f"{entry.url}{workspace_hosts.TICKET_PATH}", params={"ticket": forged, "next": query["next"][0]},
                       headers=host, timeout=10)
    assert answer.status_code == 403
    # Expiry is checked by the signature's age, here without waiting a minute.
    ticket = workspace_hosts.issue_ticket(users["ada"], ada_session.pk)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + workspace_hosts.TICKET_SECONDS + 1)
    assert workspace_hosts.redeem_ticket(ticket, ada_session.pk) is None
    monkeypatch.setattr(time, "time", real_time)
    assert workspace_hosts.redeem_ticket(ticket, ada_session.pk) == (users["ada"].pk, "")


def test_non_members_get_no_ticket(entry, users, ada_session):
    client = Client()
    client.force_login(users["bob"])
    answer = httpx.get(f"{entry.url}/sessions/{ada_session.pk}/open/ide/", timeout=10,
                       headers={"Cookie": f"sessionid={client.cookies['sessionid'].value}"})
    assert answer.status_code == 404
    anonymous = httpx.get(f"{entry.url}/sessions/{ada_session.pk}/open/ide/", timeout=10)
    assert anonymous.status_code in (302, 404) and "ticket" not in anonymous.headers.get("location", "")


def test_the_platforms_origin_serves_no_workspace_and_the_workspace_host_no_platform(entry, users, ada_session):
    client = Client()
    client.force_login(users["ada"])
    platform = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    assert httpx.get(f"{entry.url}/w/{ada_session.pk}/ide/", headers=platform, timeout=10).status_code == 404
    on_workspace = signed_in(users["ada"], entry, ada_session.pk)
    for path in ("/", "/admin/", "/sessions/new", f"/sessions/{ada_session.pk}/"):
        assert httpx.get(entry.url + path, headers=on_workspace, timeout=10).status_code == 404, path


def test_workspace_answers_may_be_framed_by_the_platform_only_and_claim_no_wider_worker_scope(
        entry, users, ada_session):
    headers = signed_in(users["ada"], entry, ada_session.pk)
    worker = '[["Content-Type", "text/javascript"], ["Service-Worker-Allowed", "/"]]'
    answer = httpx.get(f"{entry.url}/w/{ada_session.pk}/preview-3000/respond", params={"h": worker},
                       headers=headers, timeout=10)
    assert answer.status_code == 200
    policy = answer.headers["content-security-policy"]
    assert policy.startswith("frame-ancestors 'self' ")
    assert f"http://127.0.0.1:{entry.port}" in policy.split()
    assert "service-worker-allowed" not in answer.headers


def test_the_exchange_sends_the_browser_nowhere_but_under_its_sessions_prefix(entry, users, ada_session):
    host = {"Host": workspace_host(entry, ada_session.pk)}
    prefix = f"/w/{ada_session.pk}/ide/"
    for target, expected in [(prefix + "/evil.example/x", prefix + "evil.example/x"),
                             ("https://evil.example/", prefix),
                             (prefix + "a\r\nSet-Cookie: x=1", prefix + "a%0D%0ASet-Cookie:%20x=1"),
                             (f"/w/{ada_session.pk + 1}/ide/", prefix)]:
        ticket = workspace_hosts.issue_ticket(users["ada"], ada_session.pk)
        answer = httpx.get(f"{entry.url}{workspace_hosts.TICKET_PATH}", params={"ticket": ticket, "next": target},
                           headers=host, timeout=10)
        assert answer.status_code == 302 and answer.headers["location"] == expected, target
        assert answer.headers.get_list("set-cookie")[0].startswith(workspace_hosts.COOKIE_NAME + "=")


def test_another_sessions_page_cannot_use_the_viewers_cookie(entry, users, ada_session, upstream):
    """Every session's host is the same site, so the browser sends session 12's cookie with requests that
    session 13's preview makes to it: they count as nobody's, on nginx's direct path as on Daphne's."""
    headers = signed_in(users["ada"], entry, ada_session.pk)
    url = f"{entry.url}/w/{ada_session.pk}/preview-3000/echo"
    before = len(upstream.requests)
    for method, mode in [("POST", "cors"), ("POST", "no-cors"), ("GET", "cors"), ("POST", "navigate")]:
        other_page = {**headers, "Origin": "http://s-99.inspect.localhost", "Sec-Fetch-Site": "same-site",
                      "Sec-Fetch-Mode": mode}
        answer = httpx.request(method, url, headers=other_page, content=b"x=1", timeout=10)
        assert answer.status_code == 403, (method, mode)
    assert len(upstream.requests) == before
    # Its own pages, and a navigation to it (the platform's frame, a link), are the viewer's.
    for site, mode in [("same-origin", "cors"), ("same-site", "navigate"), ("none", "navigate")]:
        answer = httpx.get(url, headers={**headers, "Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode}, timeout=10)
        assert answer.status_code == 200, (site, mode)
