"""A minimal HTTP/1.1 client for plain http:// services, built for relaying: asyncio streams, large reads.

The proxy's hot path. httpx reads at most 64 KiB per step and every step goes through httpcore, anyio
and h11; here each step takes whatever the socket has buffered (up to READ_SIZE), so a 5 MB file is a
few dozen reads and ASGI messages instead of a hundred or more, while a slow stream's first bytes still
go out as soon as they arrive (a read returns what is there, it never waits for more).
https upstreams (tunnels) stay on httpx. One connection per request (`Connection: close`): a loopback
connect costs far less than the bookkeeping of a pool.
"""

import asyncio
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

READ_SIZE = 1024 * 1024  # per read, and per ASGI message: what is buffered, up to this
MAX_HEAD = 64 * 1024  # status line and headers
CONNECT_TIMEOUT = 5.0
NO_BODY_STATUSES = frozenset({204, 304})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class UpstreamError(Exception):
    """The service could not be reached or answered something that is not HTTP."""


class BrokenBody(Exception):
    """The service's connection ended before the body it announced was complete."""


class LengthBody:
    """A body of Content-Length bytes."""

    def __init__(self, length: int):
        self.remaining = length

    @property
    def done(self) -> bool:
        return self.remaining == 0

    def feed(self, data: bytes) -> bytes:
        data = data[: self.remaining]
        self.remaining -= len(data)
        return data

    def eof(self) -> None:
        if self.remaining:
            raise BrokenBody(f"{self.remaining} bytes short")


class UntilCloseBody:
    """No length given: the body is everything until the service closes the connection."""

    done = False

    def feed(self, data: bytes) -> bytes:
        return data

    def eof(self) -> None:
        pass


class ChunkedBody:
    """Transfer-Encoding: chunked, decoded. `feed` takes raw bytes as they come and returns all the
    payload they complete, in one piece (however many chunks that spans)."""

    def __init__(self):
        self.buffer = bytearray()
        self.remaining = 0  # payload bytes left in the current chunk
        self.state = "size"  # size -> data -> crlf -> size ... -> trailers -> done

    @property
    def done(self) -> bool:
        return self.state == "done"

    def feed(self, data: bytes) -> bytes:
        if self.state == "data" and not self.buffer and len(data) <= self.remaining:
            self.remaining -= len(data)  # the common case mid-chunk: pass the read through, no copy
            if not self.remaining:
                self.state = "crlf"
            return data
        self.buffer += data
        out = bytearray()
        while not self.done:
            if self.state == "data":
                if not self.buffer:
                    break
                piece = self.buffer[: self.remaining]
                del self.buffer[: len(piece)]
                out += piece
                self.remaining -= len(piece)
                if not self.remaining:
                    self.state = "crlf"
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    raise BrokenBody("chunk framing line too long")
                break
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            if self.state == "crlf":
                if line:
                    raise BrokenBody("no CRLF after a chunk")
                self.state = "size"
            elif self.state == "size":
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BrokenBody(f"bad chunk size {line[:40]!r}") from None
                if size < 0:
                    raise BrokenBody("negative chunk size")
                self.remaining = size
                self.state = "data" if size else "trailers"
            elif not line:  # trailers end with an empty line; the trailers themselves are dropped
                self.state = "done"
        return bytes(out)

    def eof(self) -> None:
        if not self.done:
            raise BrokenBody("connection closed inside a chunked body")


def parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    """`HTTP/1.1 200 OK\\r\\nName: value\\r\\n...` -> (200, [(b"name", b"value"), ...])."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not (parts[1].isdigit() and len(parts[1]) == 3):
        raise UpstreamError(f"not an HTTP/1 status line: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise UpstreamError(f"malformed header line {line[:80]!r}")
        headers.append((name.lower(), value.strip()))
    return int(parts[1]), headers


def body_framing(method: str, status: int, headers: list[tuple[bytes, bytes]]):
    """How the response body is delimited (RFC 9112 §6.3); None when there is none."""
    if method == "HEAD" or status < 200 or status in NO_BODY_STATUSES:
        return None
    encodings = [v.strip().lower() for n, value in headers if n == b"transfer-encoding" for v in value.split(b",")]
    if encodings:
        return ChunkedBody() if encodings[-1] == b"chunked" else UntilCloseBody()
    lengths = {value.strip() for name, value in headers if name == b"content-length"}
    if lengths:
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise UpstreamError("invalid Content-Length")
        return LengthBody(int(next(iter(lengths))))
    return UntilCloseBody()


class Connection(asyncio.Protocol):
    """One connection to the service. What arrives is kept as the bytes objects the transport made, and
    `read` hands them over joined (or as they are, when there is one): no copying into a stream buffer
    and out again, which for large bodies costs as much as the rest of the relay."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
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

    def write(self, data: bytes) -> None:
        if self.error is not None or self.transport.is_closing():
            raise ConnectionResetError("the service closed the connection")
        self.transport.write(data)

    async def drain(self) -> None:
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
            await self.waiter
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks = []
        self.buffered = 0
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
        return data

    def unread(self, data: bytes) -> None:
        if data:
            self.chunks.insert(0, data)
            self.buffered += len(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Response:
    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], connection: Connection, framing):
        self.status = status
        self.headers = headers
        self.connection = connection
        self.framing = framing

    async def body(self) -> AsyncIterator[bytes]:
        """The decoded body, in pieces of what each read brought (never waiting to fill a piece)."""
        framing = self.framing
        if framing is None:
            return
        while not framing.done:
            data = await self.connection.read()
            if not data:
                framing.eof()
                return
            out = framing.feed(data)
            if out:
                yield out

    def close(self) -> None:
        self.connection.close()


def _request_head(method: str, target: str, host: str, headers: list[tuple[bytes, bytes]], framing: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1")]
    for name, value in headers:
        if name in (b"content-length", b"transfer-encoding", b"connection", b"host"):
            continue  # framing and connection handling are this client's
        lines.append(name + b": " + value + b"\r\n")
    lines.append(framing.encode() + b"Connection: close\r\n\r\n")
    return b"".join(lines)


async def _send_request(connection: Connection, method: str, target: str, host: str, headers, content) -> None:
    length = next((value for name, value in headers if name == b"content-length"), None)
    if isinstance(content, bytes | bytearray):
        size = len(content)
        framing = f"Content-Length: {size}\r\n" if size or method in BODY_METHODS else ""
        connection.write(_request_head(method, target, host, headers, framing) + content)
    elif length is not None:
        connection.write(_request_head(method, target, host, headers, f"Content-Length: {int(length)}\r\n"))
        async for chunk in content:
            connection.write(chunk)
            await connection.drain()
    else:
        connection.write(_request_head(method, target, host, headers, "Transfer-Encoding: chunked\r\n"))
        async for chunk in content:
            if chunk:
                connection.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                await connection.drain()
        connection.write(b"0\r\n\r\n")
    await connection.drain()


async def _read_head(connection: Connection) -> tuple[int, list[tuple[bytes, bytes]]]:
    buffer = b""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise UpstreamError("response head too large")
            data = await connection.read()
            if not data:
                raise UpstreamError("connection closed before a response")
            buffer += data
            continue
        status, headers = parse_head(buffer[:end])
        buffer = buffer[end + 4:]
        if not 100 <= status < 200 or status == 101:
            connection.unread(buffer)
            return status, headers
        # 1xx (100 Continue, 103 Early Hints) are interim: the real answer follows


async def request(method: str, url: str, headers: list[tuple[bytes, bytes]], content) -> Response:
    """Send a request to an http:// URL and read the response head; the body is `response.body()`.

    `headers` are lower-case names; Host, Connection and the framing headers are this client's own
    (a Content-Length the browser sent is kept for a streamed body). `content` is bytes or an async
    iterator of bytes.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http:// URL: {url}")
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    loop = asyncio.get_running_loop()
    try:
        _, connection = await asyncio.wait_for(
            loop.create_connection(Connection, parts.hostname, parts.port or 80), CONNECT_TIMEOUT)
    except (TimeoutError, OSError) as error:
        raise UpstreamError(f"cannot connect: {error!r}") from error
    try:
        sock = connection.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await _send_request(connection, method, target, parts.netloc, headers, content)
        status, response_headers = await _read_head(connection)
        return Response(status, response_headers, connection, body_framing(method, status, response_headers))
    except OSError as error:
        connection.close()
        raise UpstreamError(f"connection failed: {error!r}") from error
    except BaseException:
        connection.close()
        raise
