"""VS Code's static files from the control plane's own copy of code-server, through the real Daphne,
compared with what the real code-server serves. They are served on workspace hosts only (a session's own
paths on its host, the shared path on any session's host), never on the platform's origin."""

import gzip
import http.client

import httpx
import pytest
from django.test import Client

from ide import vscode_static
from proxy_core import precompressed
from tests.ide.support import ready, signed_in, workspace_host

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]

WORKBENCH_JS = "out/vs/code/browser/workbench/workbench.js"
# What the workbench loads, as it asks for them: scripts, style, font (with its query), images.
LOADED = [WORKBENCH_JS, "out/vs/code/browser/workbench/workbench.css", "out/nls.messages.js",
          "out/media/codicon.ttf?5d4d76ab2ce5108968ad644d591a16a6", "out/media/letterpress-light.svg",
          "out/vs/workbench/contrib/welcomeGettingStarted/common/media/dark.png",
          "out/vs/workbench/contrib/webview/browser/pre/index.html?id=1"]


@pytest.fixture
def ada_session(users, make_session, upstream):
    """Ada's session, whose "VS Code" is the recording upstream: nothing static may reach it."""
    return make_session(users["ada"], {"ide": ready(upstream.port)})


def get(entry, path: str, headers: dict, encoding: str) -> httpx.Response:
    return httpx.get(entry.url + path, headers={**headers, "Accept-Encoding": encoding}, timeout=30)


def raw_get(entry, path: str, headers: dict) -> tuple[int, bytes]:
    """A path sent exactly as written (httpx would resolve "..")."""
    connection = http.client.HTTPConnection("127.0.0.1", entry.port, timeout=10)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    answer = response.status, response.read()
    connection.close()
    return answer


def test_the_local_install_is_the_one_code_server_names_in_its_page(install, code_server):
    page = httpx.get(code_server.url + "/?folder=" + str(code_server.folder), headers=code_server.headers,
                     timeout=30).text
    assert f'src="{install.prefix.lstrip("/")}{WORKBENCH_JS}"' in page
    assert precompressed.fresh_variant(install.root / WORKBENCH_JS) is not None  # written at install time


def test_vscode_files_come_from_the_local_copy_gzipped_or_not_byte_for_byte_as_code_server_serves_them(
        entry, users, ada_session, upstream, install, code_server):
    headers = signed_in(users["ada"], entry, ada_session.pk)
    before = len(upstream.requests)
    for name in LOADED:
        path = f"/w/{ada_session.pk}/ide{install.prefix}{name}"
        original = httpx.get(code_server.url + install.prefix + name,
                             headers={"Accept-Encoding": "identity", **code_server.headers}, timeout=30)
        assert original.status_code == 200
        file = install.root / name.split("?")[0]
        compressible = precompressed.compressible(file, file.stat().st_size)

        zipped = get(entry, path, headers, "gzip, deflate, br, zstd")
        assert zipped.status_code == 200, name
        assert zipped.content == original.content, name  # httpx undid the gzip
        assert zipped.headers["content-type"] == original.headers["content-type"], name
        assert zipped.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert zipped.headers["vary"] == "Accept-Encoding"
        assert zipped.headers.get("content-encoding") == ("gzip" if compressible else None), name
        assert int(zipped.headers["content-length"]) == zipped.num_bytes_downloaded
        if compressible:
            assert zipped.num_bytes_downloaded < len(original.content), name

        plain = get(entry, path, headers, "identity")
        assert plain.status_code == 200 and "content-encoding" not in plain.headers
        assert plain.content == original.content, name
        assert plain.headers["content-length"] == str(len(original.content))
        assert plain.headers["vary"] == "Accept-Encoding"
    assert len(upstream.requests) == before  # all of it from the local copy


def test_gzip_refused_with_q_0_gives_the_file_as_it_is(entry, users, ada_session, install):
    headers = signed_in(users["ada"], entry, ada_session.pk)
    response = get(entry, f"/w/{ada_session.pk}/ide{install.prefix}{WORKBENCH_JS}", headers, "br, gzip;q=0")
    assert "content-encoding" not in response.headers
    assert response.content == (install.root / WORKBENCH_JS).read_bytes()


def test_head_answers_the_headers_alone(entry, users, ada_session, install):
    url = entry.url + f"/w/{ada_session.pk}/ide{install.prefix}{WORKBENCH_JS}"
    response = httpx.head(url, headers={**signed_in(users["ada"], entry, ada_session.pk), "Accept-Encoding": "gzip"},
                          timeout=10)
    assert response.status_code == 200 and response.content == b""
    variant = precompressed.variant_path(install.root / WORKBENCH_JS)
    assert response.headers["content-length"] == str(variant.stat().st_size)


def test_vscode_files_are_there_before_the_sandboxs_code_server_is(entry, users, make_session, install):
    starting = make_session(users["ada"], {"ide": {"state": "starting", "port": None, "reason": ""}})
    no_sandbox = make_session(users["ada"], None)
    for session in (starting, no_sandbox):
        headers = signed_in(users["ada"], entry, session.pk)  # each session on its own host
        response = get(entry, f"/w/{session.pk}/ide{install.prefix}{WORKBENCH_JS}", headers, "gzip")
        assert response.status_code == 200
        assert response.content == (install.root / WORKBENCH_JS).read_bytes()
        assert get(entry, f"/w/{session.pk}/ide/", headers, "gzip").status_code == 503  # the page itself waits


@pytest.mark.parametrize("who", ["bob", "anonymous"])
def test_non_members_get_403_for_vscode_files(entry, users, ada_session, install, who):
    # On Ada's session's host: Bob with a workspace cookie of his own for it, or nobody signed in there.
    headers = signed_in(users["bob"], entry, ada_session.pk) if who == "bob" \
        else {"Host": workspace_host(entry, ada_session.pk)}
    for name in (WORKBENCH_JS, "out/../../../../etc/passwd"):
        status, body = raw_get(entry, f"/w/{ada_session.pk}/ide{install.prefix}{name}", headers)
        assert status == 403 and b"not a member" in body


@pytest.mark.parametrize("name, status", [
    ("out/../../../../../../../../../etc/passwd", 400),
    ("out/%2e%2e/%2E%2E/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 400),
    ("..%2F..%2F..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd", 400),
    ("out/nls.messages.js%00.png", 400),
    ("%2Fetc%2Fpasswd", 404),  # "/etc/passwd" is taken under the root, as code-server's join does
    ("/etc/passwd", 404),
    ("node_modules/@vscode/ripgrep/bin/rg", 404),  # a symlink to the system's rg, outside the root
    ("out", 404),  # a folder
    ("out/no-such-file.js", 404),
])
@pytest.mark.parametrize("where", ["session", "shared"])
def test_paths_outside_vscode_are_refused_and_nothing_outside_is_read(entry, users, ada_session, upstream, install,
                                                                      name, status, where):
    assert not (install.root / "node_modules/@vscode/ripgrep/bin/rg").resolve().is_relative_to(install.root)
    before = len(upstream.requests)
    shared = vscode_static.shared_base(install) + "/"
    base = f"/w/{ada_session.pk}/ide{install.prefix}" if where == "session" else shared
    answer, body = raw_get(entry, base + name, signed_in(users["ada"], entry, ada_session.pk))
    assert answer == status
    assert b"root:" not in body and b"\x7fELF" not in body
    assert len(upstream.requests) == before  # refused here, not passed on


def test_vs_codes_files_at_the_shared_path_are_for_signed_in_users_only(entry, users, make_session, install):
    """The path every session's workbench page loads them from (a browser keeps them across sessions): on
    any session's workspace host, never on the platform's origin."""
    base = vscode_static.shared_base(install)
    ada_session = make_session(users["ada"], None)  # no sandbox needed: the same files for everyone
    ada = signed_in(users["ada"], entry, ada_session.pk)
    script = get(entry, f"{base}/{WORKBENCH_JS}", ada, "gzip")
    assert script.status_code == 200 and script.headers["content-type"] == "text/javascript"
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert script.content == (install.root / WORKBENCH_JS).read_bytes()
    head = httpx.head(entry.url + f"{base}/out/nls.messages.js", headers=ada, timeout=30)
    assert head.status_code == 200 and head.content == b""
    # Not session-specific: the same files on another session's host, for another member.
    bob_session = make_session(users["bob"], None)
    bobs = get(entry, f"{base}/{WORKBENCH_JS}", signed_in(users["bob"], entry, bob_session.pk), "gzip")
    assert bobs.status_code == 200 and bobs.content == script.content

    assert raw_get(entry, f"{base}/{WORKBENCH_JS}", {"Host": workspace_host(entry, ada_session.pk)})[0] == 403
    # The platform's origin serves no workspace path, the shared one included, even to its signed-in users.
    client = Client()
    client.force_login(users["ada"])
    platform = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    assert get(entry, f"{base}/{WORKBENCH_JS}", platform, "gzip").status_code == 404
    assert raw_get(entry, f"{base}/{WORKBENCH_JS}", {})[0] == 404
    assert get(entry, f"/w/vscode/stable-{'0' * 40}/static/out/nls.messages.js", ada, "gzip").status_code == 404
    posted = httpx.post(entry.url + f"{base}/out/nls.messages.js", headers=ada, timeout=30)
    assert posted.status_code == 405 and posted.headers["allow"] == "GET, HEAD"


def test_another_commit_and_other_methods_go_to_the_sandbox_as_before(entry, users, ada_session, install):
    headers = signed_in(users["ada"], entry, ada_session.pk)
    other = f"/stable-{'0' * 40}/static/{WORKBENCH_JS}"
    echo = get(entry, f"/w/{ada_session.pk}/ide{other}", headers, "gzip").json()
    assert echo["server"] == "one" and echo["path"] == other
    posted = httpx.post(entry.url + f"/w/{ada_session.pk}/ide{install.prefix}{WORKBENCH_JS}", headers=headers,
                        content=b"x", timeout=10).json()
    assert posted["method"] == "POST" and posted["path"] == install.prefix + WORKBENCH_JS


def test_a_missing_gzip_variant_is_written_on_the_first_request_and_kept(entry, users, ada_session, install):
    file = install.root / "npm-shrinkwrap.json"  # not under out/: not precompressed at install time
    variant = precompressed.variant_path(file)
    variant.unlink(missing_ok=True)
    try:
        response = get(entry, f"/w/{ada_session.pk}/ide{install.prefix}npm-shrinkwrap.json",
                       signed_in(users["ada"], entry, ada_session.pk), "gzip")
        assert response.headers["content-encoding"] == "gzip"
        assert response.content == file.read_bytes()
        assert precompressed.fresh_variant(file) == variant
        assert gzip.decompress(variant.read_bytes()) == file.read_bytes()
    finally:
        variant.unlink(missing_ok=True)


@pytest.mark.parametrize("value, accepted", [
    ("gzip, deflate, br, zstd", True), ("GZIP", True), ("br;q=1.0, gzip;q=0.5", True), ("*", True),
    ("x-gzip", True), ("", False), ("identity", False), ("br", False), ("gzip;q=0", False), ("gzip; q=0.000", False),
    ("*;q=0", False), ("gzip;q=0, *", False), ("gzip;q=oops", False),
])
def test_accept_encoding(value, accepted):
    assert vscode_static.accepts_gzip(value) is accepted
