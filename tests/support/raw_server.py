"""A TCP server that answers with exact bytes, so every framing case is what a service sends."""

import asyncio


class RawServer:
    """Accepts one connection at a time, records the request bytes, answers with `script`:
    a list of bytes to send and asyncio.Event()s to wait for in between."""

    def __init__(self, script, close: bool = True):
        self.script = script
        self.close = close
        self.request = b""
        self.request_complete = asyncio.Event()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def handle(self, reader, writer):
        self.request = await reader.readuntil(b"\r\n\r\n")
        head = self.request.lower()
        if b"content-length: " in head:
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            self.request += await reader.readexactly(length)
        elif b"transfer-encoding: chunked" in head:
            while not self.request.endswith(b"\r\n0\r\n\r\n"):
                self.request += await reader.read(65536)
        self.request_complete.set()
        for step in self.script:
            if isinstance(step, asyncio.Event):
                await step.wait()
            else:
                writer.write(step)
                await writer.drain()
        if self.close:
            writer.close()
