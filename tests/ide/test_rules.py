"""The proxy's pure rules: paths, headers, cookies, redirects."""

import pytest

from ide.headers import (
    browser_response_headers,
    filter_cookie_header,
    rewrite_location,
    rewrite_set_cookie,
    upstream_request_headers,
)
from ide.paths import parse, service_path
from ide.sockets import sendable_close_code, upstream_close_code

PREFIX = "/w/7/ide"
UPSTREAM = "http://127.0.0.1:41234"


def test_service_path_and_parse_round_trip():
    assert service_path(7, "preview-3000") == "/w/7/preview-3000/"
    path = parse("/w/7/preview-3000/src/app.js")
    assert (path.session_id, path.service, path.rest) == (7, "preview-3000", "/src/app.js")
    assert path.prefix == "/w/7/preview-3000"
    assert parse("/w/7/ide").rest == ""
    assert parse("/w/7/ide/a%2Fb").rest == "/a%2Fb"


@pytest.mark.parametrize("path", ["/w/x/ide/", "/w/7/IDE/", "/w/7/", "/w/7/ide_x/", "/ws/sessions/7/", "/w//ide/"])
def test_parse_refuses_other_paths(path):
    assert parse(path) is None


def test_platform_cookies_are_filtered_out():
    value = "sessionid=abc; theme=dark; csrftoken=xyz;messages=m; vscode-tkn=1"
    assert filter_cookie_header(value) == "theme=dark; vscode-tkn=1"
    assert filter_cookie_header("sessionid=abc") == ""


def test_request_headers_drop_hop_by_hop_and_spoofed_forwarding():
    headers = [
        (b"host", b"platform.example"), (b"connection", b"keep-alive, x-secret-hop"), (b"x-secret-hop", b"1"),
        (b"keep-alive", b"timeout=5"), (b"x-forwarded-host", b"spoofed.example"), (b"cookie", b"sessionid=abc"),
        (b"origin", b"https://platform.example"), (b"accept", b"text/html"),
    ]
    out = dict(upstream_request_headers(headers, prefix=PREFIX, scheme="https", client="10.0.0.1"))
    assert out == {
        b"origin": b"https://platform.example", b"accept": b"text/html",
        b"x-forwarded-host": b"platform.example", b"x-forwarded-proto": b"https",
        b"x-forwarded-prefix": PREFIX.encode(), b"x-forwarded-for": b"10.0.0.1",
    }


@pytest.mark.parametrize("location, expected", [
    ("/login?next=/", PREFIX + "/login?next=/"),
    (UPSTREAM + "/x#frag", PREFIX + "/x#frag"),
    (UPSTREAM, PREFIX + "/"),
    ("//127.0.0.1:41234/x", PREFIX + "/x"),
    ("http://platform.example/home", PREFIX + "/home"),
    (PREFIX + "/already", PREFIX + "/already"),
    ("relative/path", "relative/path"),
    ("https://github.com/login", "https://github.com/login"),
    ("http://127.0.0.1:9999/other-port", "http://127.0.0.1:9999/other-port"),
])
def test_redirects_are_pointed_under_the_prefix(location, expected):
    assert rewrite_location(location, prefix=PREFIX, upstream=UPSTREAM, browser_host="platform.example") == expected


@pytest.mark.parametrize("cookie, expected", [
    ("a=1; Path=/; HttpOnly", f"a=1; Path={PREFIX}/; HttpOnly"),
    ("a=1; path=/static; Domain=127.0.0.1; SameSite=Lax", f"a=1; Path={PREFIX}/static; SameSite=Lax"),
    ("a=1", "a=1"),
    (f"a=1; Path={PREFIX}/x", f"a=1; Path={PREFIX}/x"),
    ("sessionid=planted; Path=/", None),
    ("csrftoken=planted", None),
])
def test_service_cookies_are_scoped(cookie, expected):
    assert rewrite_set_cookie(cookie, prefix=PREFIX) == expected


def test_response_headers():
    headers = [(b"Content-Type", b"text/html"), (b"Transfer-Encoding", b"chunked"), (b"Clear-Site-Data", b'"*"'),
               (b"Location", b"/next"), (b"Set-Cookie", b"sessionid=x"), (b"Content-Length", b"10")]
    out = browser_response_headers(headers, prefix=PREFIX, upstream=UPSTREAM, browser_host="platform.example")
    assert out == [(b"content-type", b"text/html"), (b"location", PREFIX.encode() + b"/next"),
                   (b"content-length", b"10")]


def test_close_codes_survive_daphne():
    assert [sendable_close_code(c) for c in (1000, 1001, 1011, 4123, 3000, 1005, None)] == [
        1000, 4001, 4011, 4123, 3000, 1000, 1000]
    assert [upstream_close_code(c) for c in (1000, 1001, 4321, 1005, 1006, None)] == [
        1000, 1001, 4321, 1000, 1000, 1000]
