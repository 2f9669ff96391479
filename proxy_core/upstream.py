"""The proxy's HTTP/1.1 client for plain http:// services: h11 for the protocol, large reads for speed.

Why not httpx: it reads at most 64 KiB per step and every step goes through httpcore and anyio (~100+
steps and ASGI messages per 5 MB), which cost Daphne 3x the CPU for large assets. Here an asyncio
Protocol keeps what the socket has buffered (pausing at 2 MiB) and each step hands all of it to h11 in one
`receive_data`, so a 5 MB file is a few dozen steps and ASGI messages, while a slow stream's first bytes
still go out as soon as they arrive (a step takes what is there, it never waits for more).
All parsing and framing (request head and body, status line, headers, Content-Length, chunked, until
close, HEAD/1xx/204/304) is h11's. https upstreams (tunnels) stay on httpx. One connection per request
(`Connection: close`): a loopback connect costs far less than the bookkeeping of a pool.
The model proxy (model_proxy/calls.py) uses it too, for http:// providers (Ollama, the tests' model),
with a read timeout; errors are named as httpx names them, since their names reach people in messages.
"""

import asyncio
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import h11

READ_SIZE = 1024 * 1024  # reading pauses when twice this is waiting
MAX_HEAD = 64 * 1024  # status line and headers
CONNECT_TIMEOUT = 5.0
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
OWN_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection", b"host"})


class UpstreamError(Exception):
    """The service could not be reached or answered something that is not HTTP."""


class ConnectError(UpstreamError):
    """Nothing accepted the connection."""


class ConnectTimeout(ConnectError):
    pass


class ReadTimeout(UpstreamError):
    """The service sent nothing for longer than the caller's read timeout (before or within its body)."""


class BrokenBody(Exception):
    """The service's response body was cut short or malformed (after its head was relayed)."""


class Connection(asyncio.Protocol):
    """One connection to the service. What arrives is kept as the bytes objects the transport made, and
    `read` hands them over joined (or as they are, when there is one)."""

    transport: asyncio.Transport  # set by connection_made, before create_connection returns the connection

    def __init__(self, read_timeout: float | None = None):
        self.loop = asyncio.get_running_loop()
        self.read_timeout = read_timeout
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.eof = False
        self.error: Exception | None = None
        self.reading_paused = False
        self.waiter: asyncio.Future | None = None
        self.drain_waiter: asyncio.Future | None = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered >= 2 * READ_SIZE and not self.reading_paused:
            self.reading_paused = True  # the browser side is slower: stop reading until it catches up
            self.transport.pause_reading()
        self._wake()

    def eof_received(self):
        self.eof = True
        self._wake()

    def connection_lost(self, exc):
        self.eof = True
        self.error = exc
        self._wake()
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    def pause_writing(self):
        self.drain_waiter = self.loop.create_future()

    def resume_writing(self):
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)
        self.drain_waiter = None

    def _wake(self):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def write(self, data: bytes) -> None:
        if self.error is not None or self.transport.is_closing():
            raise ConnectionResetError("the service closed the connection")
        self.transport.write(data)
        if self.drain_waiter is not None:
            await self.drain_waiter
        if self.error is not None:
            raise ConnectionResetError("the service closed the connection") from self.error

    async def read(self) -> bytes:
        """What has arrived (waiting for something if nothing has); b"" once the service closed."""
        while not self.chunks:
            if self.error is not None:
                raise self.error
            if self.eof:
                return b""
            self.waiter = self.loop.create_future()
            try:
                await asyncio.wait_for(self.waiter, self.read_timeout)
            except TimeoutError:
                raise ReadTimeout(f"nothing for {self.read_timeout} s") from None
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks = []
        self.buffered = 0
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        self.transport.abort()


class Response:
    def __init__(self, head: h11.Response, connection: Connection, http: h11.Connection):
        self.status = head.status_code
        self.headers = list(head.headers)  # [(lower-case name, value), ...]
        self.connection = connection
        self.http = http

    async def body(self) -> AsyncIterator[bytes]:
        """The decoded body, one piece per read: all the payload it completes (never waiting for more)."""
        while True:
            pieces = []
            failure: h11.ProtocolError | None = None
            try:
                while type(event := self.http.next_event()) is h11.Data:
                    pieces.append(event.data)
            except h11.ProtocolError as error:
                failure = error  # raised after passing on what came before it
            if pieces:
                yield bytes(pieces[0]) if len(pieces) == 1 else b"".join(pieces)
            if failure is not None:
                raise BrokenBody(failure)
            if event is h11.NEED_DATA:
                self.http.receive_data(await self.connection.read())
            elif type(event) is not h11.EndOfMessage:
                raise BrokenBody(f"unexpected {event!r}")
            else:
                return

    def close(self) -> None:
        self.connection.close()


async def _send_request(connection: Connection, http: h11.Connection, method: str, target: str, host: str,
                        headers, content) -> None:
    length = next((value for name, value in headers if name == b"content-length"), None)
    if isinstance(content, bytes | bytearray):
        framing = [(b"Content-Length", b"%d" % len(content))] if content or method in BODY_METHODS else []
    elif length is not None:
        framing = [(b"Content-Length", b"%d" % int(length))]
    else:
        framing = [(b"Transfer-Encoding", b"chunked")]
    head = h11.Request(method=method.encode("latin-1"), target=target.encode("latin-1"), headers=[
        (b"Host", host.encode("latin-1")), *((n, v) for n, v in headers if n not in OWN_HEADERS),
        *framing, (b"Connection", b"close")])
    if isinstance(content, bytes | bytearray):
        await connection.write(http.send(head) + (http.send(h11.Data(data=bytes(content))) if content else b"")
                               + http.send(h11.EndOfMessage()))
        return
    await connection.write(http.send(head))
    async for chunk in content:
        if chunk:
            await connection.write(http.send(h11.Data(data=chunk)))
    await connection.write(http.send(h11.EndOfMessage()))


async def _read_head(connection: Connection, http: h11.Connection) -> h11.Response:
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            http.receive_data(await connection.read())
        elif type(event) is h11.Response:
            return event
        elif type(event) is not h11.InformationalResponse:  # 100 Continue, 103 Early Hints: the answer follows
            raise UpstreamError(f"unexpected {event!r}")


async def request(method: str, url: str, headers: list[tuple[bytes, bytes]], content,
                  connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float | None = None) -> Response:
    """Send a request to an http:// URL and read the response head; the body is `response.body()`.

    `headers` are lower-case names; Host, Connection and the framing headers are this client's own
    (a Content-Length the browser sent is kept for a streamed body). `content` is bytes or an async
    iterator of bytes. `read_timeout` bounds each wait for the service's bytes (None: no bound).
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http:// URL: {url}")
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    loop = asyncio.get_running_loop()
    try:
        _, connection = await asyncio.wait_for(
            loop.create_connection(lambda: Connection(read_timeout), parts.hostname, parts.port or 80),
            connect_timeout)
    except TimeoutError as error:
        raise ConnectTimeout(f"no connection within {connect_timeout} s") from error
    except OSError as error:
        raise ConnectError(f"cannot connect: {error!r}") from error
    try:
        sock = connection.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        await _send_request(connection, http, method, target, parts.netloc, headers, content)
        return Response(await _read_head(connection, http), connection, http)
    except (OSError, h11.ProtocolError) as error:
        connection.close()
        raise UpstreamError(f"{type(error).__name__}: {error}") from error
    except BaseException:
        connection.close()
        raise
