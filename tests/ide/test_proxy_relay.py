"""The workspace proxy's relay when a service answers something that is not quite HTTP."""

import asyncio

from ide.paths import ServicePath
from ide.proxy import HttpProxy
from ide.targets import Target
from tests.support.raw_server import RawServer


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


async def relayed(script):
    """What the proxy sends the browser for a service that answers `script`."""
    sent, requests = [], [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the browser stays

    async def send(message):
        sent.append(message)

    async with RawServer(script, close=False) as server:
        scope = {"type": "http", "method": "GET", "headers": [(b"host", b"testserver")], "query_string": b""}
        await HttpProxy().forward(scope, receive, send, ServicePath(1, "ide", "/"), Target(200, base_url=server.url))
    return sent


def test_the_relay_answers_a_malformed_head_with_502():
    sent = run(relayed([b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", asyncio.Event()]))
    assert sent[0]["status"] == 502 and not sent[-1].get("more_body")


def test_the_relay_ends_a_malformed_body_short():
    script = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", b"zz\r\n", asyncio.Event()]
    sent = run(relayed(script))
    assert sent[0]["status"] == 200
    assert b"".join(message.get("body", b"") for message in sent[1:]) == b"abc"
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
