"""Relaying one response while watching for the client to go away (a closed tab, an aborted model call):
then the upstream request is cancelled, so the service or provider stops working for nobody."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]


class ClientGone(Exception):
    """The client disconnected while its request body was being read."""


async def request_body(first: bytes, receive: Receive, done: asyncio.Event) -> AsyncIterator[bytes]:
    """The client's body as it arrives, chunk by chunk; `done` is set once it is all read."""
    if first:
        yield first
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        if message.get("body"):
            yield message["body"]
        if not message.get("more_body", False):
            done.set()
            return


async def until_disconnect(receive: Receive, body_read: asyncio.Event | None = None) -> None:
    """Returns once the client has gone; `body_read`: wait for the body reader to finish first."""
    if body_read is not None:
        await body_read.wait()  # until then the body reader owns receive()
    while (await receive())["type"] != "http.disconnect":
        pass


async def relay_until_disconnect(relay: Awaitable[None], receive: Receive,
                                 body_read: asyncio.Event | None = None) -> None:
    """Run `relay` until it ends or the client goes, whichever comes first; the other is cancelled.
    An exception `relay` raised is raised here."""
    relaying = asyncio.ensure_future(relay)
    watching = asyncio.ensure_future(until_disconnect(receive, body_read))
    try:
        await asyncio.wait({relaying, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        relaying.cancel()
        watching.cancel()
    if relaying.done() and not relaying.cancelled() and relaying.exception() is not None:
        raise relaying.exception()  # type: ignore[misc]
