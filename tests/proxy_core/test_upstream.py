"""proxy_core.upstream, the proxies' HTTP/1.1 client for http:// services: framing, streaming, request bodies.

Against a raw TCP server that answers with exact bytes, so every framing case is what a service sends.
"""

import asyncio

import h11
import pytest

from proxy_core import upstream
from proxy_core.upstream import BrokenBody, UpstreamError
from tests.support.raw_server import RawServer


class Pieces:
    """Stands in for the connection: each read returns the next piece, then b"" (the service closed)."""

    def __init__(self, pieces):
        self.pieces = list(pieces)

    async def read(self):
        return self.pieces.pop(0) if self.pieces else b""

    def close(self):
        pass


async def parsed(raw: bytes, step: int | None = None, method: str = "GET"):
    """(status, headers, [body pieces]) of `raw` arriving `step` bytes per read (all at once by default)."""
    step = step or max(len(raw), 1)
    http = h11.Connection(h11.CLIENT)
    http.send(h11.Request(method=method, target="/", headers=[("Host", "x"), ("Connection", "close")]))
    http.send(h11.EndOfMessage())
    connection = Pieces(raw[i:i + step] for i in range(0, len(raw), step))
    response = upstream.Response(await upstream._read_head(connection, http), connection, http)
    return response.status, response.headers, [piece async for piece in response.body()]


def parse(raw: bytes, step: int | None = None, method: str = "GET"):
    return asyncio.run(parsed(raw, step, method))


def test_framing_across_any_split():
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    length = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello worldIGNORED"
    until_close = b"HTTP/1.0 200 OK\r\n\r\nhello world"
    for raw in (chunked, length, until_close):
        for step in (1, 2, 3, 7, len(raw)):
            status, _, pieces = parse(raw, step)
            assert (status, b"".join(pieces)) == (200, b"hello world"), (raw, step)


def test_chunked_gives_everything_a_read_completes_in_one_piece():
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n2\r\ngh"
    assert parse(raw + b"\r\n0\r\n\r\n")[2] == [b"abcdefgh"]
    assert all(type(piece) is bytes for piece in parse(raw + b"\r\n0\r\n\r\n")[2])  # what Daphne accepts


@pytest.mark.parametrize("body", [
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",  # invalid chunk size
    b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX\r\n",  # no CRLF after the chunk
    b"Transfer-Encoding: chunked\r\n\r\n5\r\nab",  # closed inside a chunk
    b"Content-Length: 5\r\n\r\nab",  # closed short of the length
])
def test_broken_bodies_are_errors(body):
    with pytest.raises(BrokenBody):
        parse(b"HTTP/1.1 200 OK\r\n" + body)


def test_headers_and_responses_without_body():
    status, headers, pieces = parse(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A:  b \r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nabc")
    assert (status, pieces) == (200, [b"abc"])
    assert headers == [(b"content-length", b"3"), (b"x-a", b"b"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
    assert parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", method="HEAD")[2] == []
    assert parse(b"HTTP/1.1 204 No Content\r\n\r\nabc")[2] == []
    assert parse(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")[2] == []
    assert parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")[2] == [b"abc"]


async def fetch(url, method="GET", headers=(), content=b""):
    response = await upstream.request(method, url, list(headers), content)
    try:
        return response.status, response.headers, b"".join([chunk async for chunk in response.body()])
    finally:
        response.close()


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_content_length_body_and_the_request_sent():
    async def go():
        async with RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"], close=False) as server:
            prefix = [(b"x-forwarded-prefix", b"/w/1/ide")]
            status, headers, body = await fetch(server.url + "/a%2Fb?x=1", headers=prefix)
            assert (status, body) == (200, b"hello")
            assert server.request.startswith(b"GET /a%2Fb?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
            assert b"x-forwarded-prefix: /w/1/ide\r\n" in server.request
            assert b"Connection: close\r\n" in server.request
            assert b"content-length" not in server.request.lower()  # a GET without a body says nothing of one

    run(go())


def test_chunked_body_is_decoded():
    async def go():
        script = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", b"6\r\n world\r\n0\r\n\r\n"]
        async with RawServer(script, close=False) as server:
            status, headers, body = await fetch(server.url + "/")
            assert body == b"hello world"
            assert (b"transfer-encoding", b"chunked") in headers  # the proxy drops it as hop-by-hop

    run(go())


def test_a_body_without_length_ends_when_the_service_closes():
    async def go():
        async with RawServer([b"HTTP/1.0 200 OK\r\n\r\n", b"all of ", b"it"]) as server:
            assert (await fetch(server.url + "/"))[2] == b"all of it"

    run(go())


def test_a_short_body_is_an_error():
    async def go():
        async with RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"]) as server:
            with pytest.raises(BrokenBody):
                await fetch(server.url + "/")

    run(go())


@pytest.mark.parametrize("method,status", [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_responses_without_body_do_not_wait_for_one(method, status):
    async def go():
        # The connection stays open: reading a body that is not there would hang.
        head = f"HTTP/1.1 {status} X\r\nContent-Length: 100\r\n\r\n".encode()
        async with RawServer([head, asyncio.Event()], close=False) as server:
            assert await fetch(server.url + "/", method=method) == (status, [(b"content-length", b"100")], b"")

    run(go())


def test_interim_responses_are_skipped():
    async def go():
        script = [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                  b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"]
        async with RawServer(script, close=False) as server:
            assert await fetch(server.url + "/", method="POST", content=b"x") == (
                201, [(b"content-length", b"2")], b"ok")

    run(go())


def test_the_first_bytes_arrive_before_the_service_finishes():
    async def go():
        release = asyncio.Event()
        script = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n", release,
                  b"6\r\nsecond\r\n0\r\n\r\n"]
        async with RawServer(script, close=False) as server:
            response = await upstream.request("GET", server.url + "/events", [], b"")
            body = response.body()
            assert await body.__anext__() == b"first"  # while the service still holds the rest back
            release.set()
            assert b"".join([chunk async for chunk in body]) == b"second"
            response.close()

    run(go())


def test_request_bodies_stream_with_their_length_or_chunked():
    async def chunks():
        yield b"abc"
        yield b""
        yield b"defg"

    async def go():
        answer = [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]
        async with RawServer(answer, close=False) as server:
            await fetch(server.url + "/", "POST", [(b"content-length", b"7")], chunks())
            assert server.request.endswith(b"Content-Length: 7\r\nConnection: close\r\n\r\nabcdefg")
        async with RawServer(answer, close=False) as server:
            await fetch(server.url + "/", "POST", [], chunks())
            assert server.request.endswith(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                           b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
        async with RawServer(answer, close=False) as server:
            await fetch(server.url + "/", "POST", [(b"content-length", b"0")], b"")
            assert server.request.endswith(b"Content-Length: 0\r\nConnection: close\r\n\r\n")

    run(go())


def test_unreachable_and_non_http_services_are_upstream_errors():
    async def go():
        async with RawServer([b"SSH-2.0-OpenSSH_9\r\n\r\n"]) as server:
            with pytest.raises(UpstreamError):
                await fetch(server.url + "/")
            url = server.url
        with pytest.raises(UpstreamError):
            await fetch(url + "/")

    run(go())


@pytest.mark.parametrize("raw,close", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", False),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", False),
    (b"HTTP/1.1 200 OK\r\n\x00\x01: garbage\r\n\r\n", False),
    (b"HTTP/1.1 2000 OK\r\n\r\n", False),
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 100_000, False),  # a head that never ends
    (b"HTTP/1.1 200 OK\r\n", True),  # closed inside the head
    (b"", True),  # closed without a word
])
def test_malformed_heads_are_upstream_errors(raw, close):
    async def go():
        async with RawServer([raw, asyncio.Event()] if not close else [raw], close=close) as server:
            with pytest.raises(UpstreamError):
                await fetch(server.url + "/")

    run(go())
