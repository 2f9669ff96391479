"""The workspace proxy over HTTP, through the real Daphne to real services, on each session's workspace host
(ide/workspace_hosts.py): requests go to the entry's address with the session's host in Host."""

import hashlib
import json

import httpx
import pytest
from django.test import Client

from ide import workspace_hosts
from sandboxes.lifecycle import State
from tests.ide.support import BIG, ready, signed_in, workspace_host
from tests.support.live_server import free_port

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ada_session(users, make_session, upstream):
    return make_session(users["ada"], {"ide": ready(upstream.port)})


def get(entry, path: str, headers: dict | None = None, **kwargs) -> httpx.Response:
    return httpx.get(entry.url + path, headers=headers, timeout=10, **kwargs)


def platform_signed_in(user) -> dict[str, str]:
    """A browser on the platform's own origin (no workspace Host), signed in there as `user`."""
    client = Client()
    client.force_login(user)
    return {"Cookie": f"sessionid={client.cookies['sessionid'].value}; theme=light"}


def test_a_member_gets_the_service_bytes_unchanged(entry, users, ada_session):
    response = get(entry, f"/w/{ada_session.pk}/ide/big", signed_in(users["ada"], entry, ada_session.pk))
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(BIG))
    assert response.content == BIG


def test_the_request_reaches_the_service_without_the_prefix_or_platform_cookies(entry, users, ada_session, upstream):
    headers = signed_in(users["ada"], entry, ada_session.pk)
    response = get(entry, f"/w/{ada_session.pk}/ide/echo/a%2Fb?x=1&y=%20", headers)
    echo = response.json()
    assert echo["server"] == "one" and echo["method"] == "GET"
    assert echo["path"] == "/echo/a%2Fb?x=1&y=%20"
    # The platform's cookies and the workspace host's sign the user in: a sandbox must never see them.
    # VS Code gets its sandbox's service secret instead, added by the proxy.
    assert echo["headers"]["cookie"] == f"theme=light; code-server-session={ada_session.sandbox.service_secret()}"
    assert "secret" not in json.dumps(echo)
    assert "sessionid" not in json.dumps(echo)
    assert workspace_hosts.COOKIE_NAME not in json.dumps(echo)
    # code-server compares Origin with X-Forwarded-Host; Host is the service's own address.
    assert echo["headers"]["origin"] == headers["Origin"] == f"http://{workspace_host(entry, ada_session.pk)}"
    assert echo["headers"]["x-forwarded-host"] == workspace_host(entry, ada_session.pk)
    assert echo["headers"]["x-forwarded-prefix"] == f"/w/{ada_session.pk}/ide"
    assert echo["headers"]["host"] == f"127.0.0.1:{upstream.port}"


def test_request_bodies_stream_to_the_service(entry, users, ada_session):
    payload = BIG[: 3 * 1024 * 1024]

    def chunks():
        for start in range(0, len(payload), 256 * 1024):
            yield payload[start:start + 256 * 1024]

    url = entry.url + f"/w/{ada_session.pk}/ide/upload"
    headers = signed_in(users["ada"], entry, ada_session.pk)
    streamed = httpx.post(url, content=chunks(), headers=headers, timeout=10).json()
    assert streamed["method"] == "POST"
    assert streamed["body_length"] == len(payload)
    assert streamed["body_sha256"] == hashlib.sha256(payload).hexdigest()
    plain = httpx.post(url, content=b"x=1", headers=headers, timeout=10).json()
    assert plain["body_length"] == 3 and plain["headers"]["content-length"] == "3"


def test_responses_stream_as_the_service_sends_them(entry, users, ada_session, upstream):
    upstream.release.clear()
    url = entry.url + f"/w/{ada_session.pk}/ide/slow"
    with httpx.stream("GET", url, headers=signed_in(users["ada"], entry, ada_session.pk), timeout=10) as response:
        chunks = response.iter_raw()
        # The service holds back its second half until the first has reached the browser.
        assert next(chunks) == b"first"
        upstream.release.set()
        assert b"".join(chunks) == b"second"


def test_a_browser_that_goes_away_ends_the_upstream_request(entry, users, ada_session, upstream):
    upstream.hung_up.clear()
    url = entry.url + f"/w/{ada_session.pk}/ide/hang"
    with httpx.stream("GET", url, headers=signed_in(users["ada"], entry, ada_session.pk), timeout=10) as response:
        assert next(response.iter_raw()) == b"first"
    # The long poll is not left open on the service once its browser is gone.
    assert upstream.hung_up.wait(5)


def test_redirects_stay_under_the_prefix(entry, users, ada_session):
    headers = signed_in(users["ada"], entry, ada_session.pk)
    prefix = f"/w/{ada_session.pk}/ide"
    assert get(entry, prefix + "/redirect", headers).headers["location"] == prefix + "/login?next=/home"
    assert get(entry, prefix + "/redirect-absolute", headers).headers["location"] == prefix + "/abs?x=1"
    assert get(entry, prefix + "/redirect-away", headers).headers["location"] == "https://github.com/login"


def test_the_bare_prefix_redirects_to_its_slash_form(entry, users, ada_session):
    response = get(entry, f"/w/{ada_session.pk}/ide?folder=/home", signed_in(users["ada"], entry, ada_session.pk))
    assert response.status_code == 302
    assert response.headers["location"] == f"/w/{ada_session.pk}/ide/?folder=/home"


def test_service_cookies_are_scoped_to_the_prefix_and_cannot_replace_the_platforms(entry, users, ada_session):
    headers = signed_in(users["ada"], entry, ada_session.pk)
    response = get(entry, f"/w/{ada_session.pk}/ide/cookie", headers)
    cookies = response.headers.get_list("set-cookie")
    prefix = f"/w/{ada_session.pk}/ide"
    assert cookies == [f"theme=dark; Path={prefix}/; HttpOnly", f"deep=1; Path={prefix}/settings"]
    # Nor the workspace host's own cookie, which signs the user in there.
    planted = json.dumps([["Set-Cookie", f"{workspace_hosts.COOKIE_NAME}=planted; Path=/"],
                          ["Set-Cookie", "kept=1; Path=/"]])
    response = get(entry, f"/w/{ada_session.pk}/ide/respond", headers, params={"h": planted})
    assert response.status_code == 200
    assert response.headers.get_list("set-cookie") == [f"kept=1; Path={prefix}/"]


@pytest.mark.parametrize("who", ["bob", "anonymous", "platform-cookies-only"])
def test_non_members_are_refused_and_nothing_reaches_the_service(entry, users, ada_session, upstream, who):
    before = len(upstream.requests)
    host = workspace_host(entry, ada_session.pk)
    if who == "bob":  # signed in on ada's session's host with his own workspace cookie
        headers = signed_in(users["bob"], entry, ada_session.pk)
    elif who == "anonymous":
        headers = {"Host": host}
    else:  # ada's platform sign-in (sessionid) without the workspace cookie signs nobody in on the host
        headers = {**platform_signed_in(users["ada"]), "Host": host}
    response = get(entry, f"/w/{ada_session.pk}/ide/echo", headers)
    assert response.status_code == 403
    assert "not a member" in response.text
    assert len(upstream.requests) == before


def test_an_unknown_session_looks_like_a_forbidden_one(entry, users):
    response = get(entry, "/w/999999/ide/", signed_in(users["ada"], entry, 999999))
    assert response.status_code == 403 and "not a member" in response.text


def test_a_session_path_reaches_only_its_own_sandbox(entry, users, make_session, upstream, other_upstream):
    mine = make_session(users["ada"], {"ide": ready(upstream.port)})
    theirs = make_session(users["bob"], {"ide": ready(other_upstream.port),
                                         f"preview-{other_upstream.port}": ready(other_upstream.port)})
    ada, bob = signed_in(users["ada"], entry, mine.pk), signed_in(users["bob"], entry, theirs.pk)
    before = len(other_upstream.requests)
    assert get(entry, f"/w/{mine.pk}/ide/echo", ada).json()["server"] == "one"
    # Naming the other sandbox's service (or port) under my session finds nothing.
    response = get(entry, f"/w/{mine.pk}/preview-{other_upstream.port}/echo", ada)
    assert response.status_code == 503
    # The other session's path on my session's host is no path there; on its own host I am no member.
    assert get(entry, f"/w/{theirs.pk}/ide/echo", ada).status_code == 404
    assert get(entry, f"/w/{theirs.pk}/ide/echo", signed_in(users["ada"], entry, theirs.pk)).status_code == 403
    assert len(other_upstream.requests) == before
    assert get(entry, f"/w/{theirs.pk}/ide/echo", bob).json()["server"] == "two"


def test_services_that_are_not_ready_say_so(entry, users, make_session):
    def ada(session):
        return signed_in(users["ada"], entry, session.pk)

    # (VS Code's own requests wait for it instead: tests/ide/test_workbench_page.py.)
    starting = make_session(users["ada"], {"preview-3000": {"state": "starting", "port": None, "reason": ""}})
    response = get(entry, f"/w/{starting.pk}/preview-3000/", ada(starting))
    assert response.status_code == 503 and "The preview on port 3000 is starting" in response.text
    assert response.headers["retry-after"]

    failed = make_session(users["ada"], {"desktop": {"state": "failed", "port": None, "reason": "Xvfb exited 1"}})
    response = get(entry, f"/w/{failed.pk}/desktop/", ada(failed))
    assert response.status_code == 502 and "The desktop failed: Xvfb exited 1" in response.text

    response = get(entry, f"/w/{failed.pk}/ide/", ada(failed))
    assert response.status_code == 503 and "VS Code is not running" in response.text

    no_sandbox = make_session(users["ada"], None)
    response = get(entry, f"/w/{no_sandbox.pk}/ide/", ada(no_sandbox))
    assert response.status_code == 503 and "no running sandbox" in response.text

    ended = make_session(users["ada"], {"ide": ready(free_port())}, state=State.TERMINATED)
    response = get(entry, f"/w/{ended.pk}/ide/", ada(ended))
    assert response.status_code == 503 and "no running sandbox" in response.text


def test_a_service_that_does_not_answer_gives_502(entry, users, make_session):
    session = make_session(users["ada"], {"ide": ready(free_port())})
    response = get(entry, f"/w/{session.pk}/ide/", signed_in(users["ada"], entry, session.pk))
    assert response.status_code == 502
    assert "VS Code did not answer" in response.text


@pytest.mark.parametrize("host", [
    "evil.example", "127.0.0.1", "inspect.localhost", "s-0.inspect.localhost", "x.s-{id}.inspect.localhost",
    "s-{id}.inspect.localhost.evil.example", "s-{id}x.inspect.localhost",
])
def test_a_host_that_is_not_the_sessions_workspace_host_gets_no_workspace(entry, users, ada_session, upstream, host):
    before = len(upstream.requests)
    name = host.format(id=ada_session.pk)
    headers = {**signed_in(users["ada"], entry, ada_session.pk), "Host": f"{name}:{entry.port}"}
    assert get(entry, f"/w/{ada_session.pk}/ide/echo", headers).status_code == 404
    assert len(upstream.requests) == before


def test_the_platforms_origin_serves_no_workspace_and_its_other_paths_still_reach_django(
        entry, users, ada_session, upstream):
    response = get(entry, "/accounts/login/")
    assert response.status_code == 200 and "csrftoken" in response.headers.get("set-cookie", "")
    assert get(entry, "/w/").status_code == 404
    # A member signed in on the platform (no workspace Host) reaches no service there.
    before = len(upstream.requests)
    for path in (f"/w/{ada_session.pk}/ide/echo", f"/w/{ada_session.pk}/ide/", f"/w/{ada_session.pk}/ide"):
        assert get(entry, path, platform_signed_in(users["ada"])).status_code == 404, path
    assert len(upstream.requests) == before
    # And the workspace host reaches none of the platform's pages.
    on_workspace = signed_in(users["ada"], entry, ada_session.pk)
    assert get(entry, "/accounts/login/", on_workspace).status_code == 404
