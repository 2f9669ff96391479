"""One pooled httpx client per event loop and purpose: connections stay open between requests (Daphne runs
one loop for the process's lifetime). Keyed weakly by the loop, so a loop that ended (tests run several)
takes its clients with it."""

import asyncio
import weakref
from collections.abc import Callable

import httpx

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, httpx.AsyncClient]]" = (
    weakref.WeakKeyDictionary())


def loop_client(purpose: str, make: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    """This event loop's client for `purpose`, made by `make()` the first time (or after it was closed)."""
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(purpose)
    if client is None or client.is_closed:
        client = clients[purpose] = make()
    return client


async def aclose_loop_clients() -> None:
    """Close this event loop's clients (tests, shutdown)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose()
