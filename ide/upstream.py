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


class Response:
    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, framing):
        self.status = status
        self.headers = headers
        self.reader = reader
        self.writer = writer
        self.framing = framing

    async def body(self) -> AsyncIterator[bytes]:
        """The decoded body, in pieces of what each read brought (never waiting to fill a piece)."""
        framing = self.framing
        if framing is None:
            return
        while not framing.done:
            data = await self.reader.read(READ_SIZE)
            if not data:
                framing.eof()
                return
            out = framing.feed(data)
            if out:
                yield out

    def close(self) -> None:
        self.writer.transport.abort()


def _request_head(method: str, target: str, host: str, headers: list[tuple[bytes, bytes]], framing: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1")]
    for name, value in headers:
        if name in (b"content-length", b"transfer-encoding", b"connection", b"host"):
            continue  # framing and connection handling are this client's
        lines.append(name + b": " + value + b"\r\n")
    lines.append(framing.encode() + b"Connection: close\r\n\r\n")
    return b"".join(lines)


async def request(method: str, url: str, headers: list[tuple[bytes, bytes]], content) -> Response:
    """Send a request to an http:// URL and read the response head; the body is `response.body()`.

    `headers` are lower-case names without Host, Connection or framing headers of their own except a
    Content-Length the client sent; `content` is bytes or an async iterator of bytes.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http:// URL: {url}")
    port = parts.port or 80
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, port, limit=READ_SIZE), CONNECT_TIMEOUT)
    except (TimeoutError, OSError) as error:
        raise UpstreamError(f"cannot connect: {error!r}") from error
    try:
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        length = next((value for name, value in headers if name == b"content-length"), None)
        if isinstance(content, bytes | bytearray):
            size = len(content)
            framing = f"Content-Length: {size}\r\n" if size or method in BODY_METHODS else ""
            writer.write(_request_head(method, target, parts.netloc, headers, framing) + content)
        elif length is not None:
            writer.write(_request_head(method, target, parts.netloc, headers, f"Content-Length: {int(length)}\r\n"))
            async for chunk in content:
                writer.write(chunk)
                await writer.drain()
        else:
            writer.write(_request_head(method, target, parts.netloc, headers, "Transfer-Encoding: chunked\r\n"))
            async for chunk in content:
                if chunk:
                    writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    await writer.drain()
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as error:
                raise UpstreamError("connection closed before a response") from error
            except asyncio.LimitOverrunError as error:
                raise UpstreamError("response head too large") from error
            if len(head) > MAX_HEAD:
                raise UpstreamError("response head too large")
            status, response_headers = parse_head(head[:-4])
            if not 100 <= status < 200 or status == 101:
                break  # 1xx (100 Continue, 103 Early Hints) are interim: the real answer follows
        return Response(status, response_headers, reader, writer,
                        body_framing(method, status, response_headers))
    except (OSError, UpstreamError) as error:
        writer.transport.abort()
        if isinstance(error, UpstreamError):
            raise
        raise UpstreamError(f"connection failed: {error!r}") from error
    except BaseException:
        writer.transport.abort()
        raise
