"""Waiting for something to happen, in one place: tests poll with these instead of loops of their own."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 10, interval: float = 0.05, what: str = "") -> T:
    """Call `check()` until it returns something truthy, and return that. After `timeout` seconds, an
    AssertionError saying `what` was awaited and what `check()` last returned. An AssertionError that
    `check()` raises counts as "not yet" (the last one is raised at the end)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            failure = None
        except AssertionError as error:
            value, failure = None, error  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() >= deadline:
            if failure is not None:
                raise failure
            raise AssertionError(f"not within {timeout} s: {what or check!r} (last: {value!r})")
        time.sleep(interval)


async def eventually_async(check: Callable[[], T | Awaitable[T]], timeout: float = 10, interval: float = 0.05,
                           what: str = "") -> T:
    """`eventually` for async tests: `check()` may be a coroutine function; the wait does not block the loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what or check!r} (last: {value!r})")
        await asyncio.sleep(interval)
