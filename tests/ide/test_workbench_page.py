"""VS Code's page answered by the control plane while the sandbox's code-server starts, compared with the
real code-server's answer; the page's requests held until VS Code is ready."""

import threading
import time
from urllib.parse import quote

import httpx
import pytest
from django.db import connection

from bridge.protocol import vscode_facts
from ide import vscode_static, workbench_page
from sandboxes.models import Sandbox
from sandboxes.tools import tools_dir
from tests.ide.support import open_socket, ready, signed_in

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]

OTHER_COMMIT = "0" * 40


def starting(facts: dict | None) -> dict:
    report = {"state": "starting", "port": None, "reason": ""}
    return {"ide": {**report, "vscode": facts}} if facts else {"ide": report}


def sandbox_facts(code_server) -> dict:
    """What the bridge reports for a code-server started on that folder and home."""
    return vscode_facts(tools_dir(), code_server.home, code_server.folder)["vscode"]


def get(live, path: str, headers: dict, **kwargs) -> httpx.Response:
    return httpx.get(live.url + path, headers=headers, timeout=30, **kwargs)


def test_the_page_is_the_one_code_server_answers_for_the_bridges_flags(install, code_server):
    facts = sandbox_facts(code_server)
    folder = str(code_server.folder)

    real = httpx.get(code_server.url + "/", headers=code_server.headers, timeout=30)
    mine = workbench_page.answer(facts, b"")
    assert real.status_code == mine.status == 302
    assert dict(mine.headers)[b"location"].decode() == real.headers["location"] == f"./?folder={folder}"

    real = httpx.get(code_server.url + "/", params={"folder": folder}, headers=code_server.headers, timeout=30)
    mine = workbench_page.answer(facts, f"folder={folder}".encode(), shared=False)
    assert real.status_code == mine.status == 200
    assert mine.body == real.content  # byte for byte: the same configuration, paths and script URLs
    headers = {name.decode(): value.decode() for name, value in mine.headers}
    assert headers["content-type"] == real.headers["content-type"]
    assert headers["content-security-policy"] == real.headers["content-security-policy"]

    # As the proxy answers it: the same page, its scripts and styles from the path every session shares.
    shared = workbench_page.answer(facts, f"folder={folder}".encode())
    assert shared.body == with_shared_files(real.content, install)
    policy = workbench_page.content_security_policy(shared.body)  # its own inline script's hash
    assert dict(shared.headers)[b"content-security-policy"] == policy.encode()


def with_shared_files(page: bytes, install) -> bytes:
    """code-server's page with VS Code's own files (stylesheet, scripts, messages) at the shared path; its
    webviews stay under the session's path."""
    own, shared = install.prefix.strip("/"), vscode_static.shared_base(install)
    for attribute in ("href", "src"):
        page = page.replace(f'{attribute}="{own}/'.encode(), f'{attribute}="{shared}/'.encode())
    changed = page.replace(f"new URL('{own}'".encode(), f"new URL('{shared}'".encode())
    assert changed != page
    return changed


def test_another_commit_or_request_is_left_to_code_server(install, code_server):
    facts = sandbox_facts(code_server)
    assert workbench_page.answer({**facts, "commit": OTHER_COMMIT}, b"folder=/x") is None
    assert workbench_page.answer(None, b"folder=/x") is None
    assert workbench_page.answer(facts, b"workspace=/x.code-workspace") is None
    assert workbench_page.answer(facts, b"folder=/x&tkn=secret") is None


def test_while_vs_code_starts_members_get_its_page_from_the_control_plane(
        live, users, make_session, upstream, install, code_server):
    facts = sandbox_facts(code_server)
    session = make_session(users["ada"], starting(facts))
    ada = signed_in(users["ada"], live, session.pk)
    before = len(upstream.requests)

    moved = get(live, f"/w/{session.pk}/ide/", ada)
    assert moved.status_code == 302 and moved.headers["location"] == f"./?folder={code_server.folder}"
    page = get(live, f"/w/{session.pk}/ide/", ada, params={"folder": str(code_server.folder)})
    assert page.status_code == 200
    real = httpx.get(code_server.url + "/", params={"folder": str(code_server.folder)},
                     headers=code_server.headers).content
    assert page.content == with_shared_files(real, install)
    assert len(upstream.requests) == before

    bob = signed_in(users["bob"], live, session.pk)
    refused = get(live, f"/w/{session.pk}/ide/", bob, params={"folder": str(code_server.folder)})
    assert refused.status_code == 403 and "not a member" in refused.text


def become_ready(session, port: int, after: float) -> threading.Thread:
    def run():
        time.sleep(after)
        try:
            Sandbox.objects.filter(pk=session.sandbox_id).update(services={"ide": ready(port)})
        finally:
            connection.close()  # this thread's own connection, or the test database could not be dropped

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_request_made_while_vs_code_starts_waits_and_reaches_it_once_ready(live, users, make_session, upstream):
    # Another commit: no page of the control plane's, so even the page waits for code-server's.
    session = make_session(users["ada"], starting({"commit": OTHER_COMMIT, "folder": "/w", "data": "/d"}))
    thread = become_ready(session, upstream.port, after=1.0)
    started = time.monotonic()
    response = get(live, f"/w/{session.pk}/ide/", signed_in(users["ada"], live, session.pk), params={"folder": "/w"})
    waited = time.monotonic() - started
    thread.join()
    assert response.status_code == 200
    assert response.json()["server"] == "one" and response.json()["path"] == "/?folder=%2Fw"
    assert 0.9 < waited < 10


def test_other_services_that_are_starting_answer_at_once(live, users, make_session):
    session = make_session(users["ada"], {"desktop": {"state": "starting", "port": None, "reason": ""}})
    started = time.monotonic()
    response = get(live, f"/w/{session.pk}/desktop/", signed_in(users["ada"], live, session.pk))
    assert response.status_code == 503 and time.monotonic() - started < 5


def test_vs_codes_socket_waits_for_its_server_and_then_relays(live, users, make_session, socket_upstream):
    session = make_session(users["ada"], starting(None))
    thread = become_ready(session, socket_upstream.port, after=1.0)
    path = f"/w/{session.pk}/ide/stable-x/?reconnectionToken=1"
    with open_socket(live, path, signed_in(users["ada"], live, session.pk), subprotocols=["binary"]) as socket:
        socket.send("hello")
        assert socket.recv(timeout=10) == "hello"
    thread.join()


def test_once_vs_code_is_up_members_still_get_its_page_from_the_control_plane(
        entry, users, make_session, upstream, install, code_server):
    """So that its files come from the shared path: through Daphne and the front (which relays the rest of a
    ready VS Code straight to it) alike. Anything else still reaches code-server."""
    facts = sandbox_facts(code_server)
    session = make_session(users["ada"], {"ide": {**ready(upstream.port), "vscode": facts}})
    ada = signed_in(users["ada"], entry, session.pk)
    before = len(upstream.requests)

    folder = str(code_server.folder)
    page = get(entry, f"/w/{session.pk}/ide/", ada, params={"folder": folder})
    assert page.status_code == 200
    assert page.content == with_shared_files(httpx.get(code_server.url + "/", params={"folder": folder},
                                                      headers=code_server.headers).content,
                                             install)
    assert len(upstream.requests) == before
    assert get(entry, f"/w/{session.pk}/ide/", ada).headers["location"] == f"./?folder={folder}"

    other = get(entry, f"/w/{session.pk}/ide/", ada, params={"folder": folder, "tkn": "x"})
    assert other.status_code == 200 and other.json()["path"] == "/?folder=" + quote(folder, safe="") + "&tkn=x"
    assert get(entry, f"/w/{session.pk}/ide/manifest.json", ada).json()["path"] == "/manifest.json"

    bob = signed_in(users["bob"], entry, session.pk)
    refused = get(entry, f"/w/{session.pk}/ide/", bob, params={"folder": folder})
    assert refused.status_code == 403 and "not a member" in refused.text

