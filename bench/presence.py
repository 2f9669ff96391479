"""Presence on the live platform (two Daphnes behind the front proxy): 50 people's pages in one session, each
socket on whichever Daphne the front gave it. Figures: how long until everyone sees a newcomer, a typing
notice reaching the 49 others, and a closed page leaving everyone's list. The floor, in the same run: a ping's
round trip on the same sockets. See docs/benchmarks.md and docs/sessions.md (Presence)."""

import asyncio
import time

import websockets
from django.db import transaction

from bench._common import goal, p50, report, say
from bench._live import (
    Platform,
    Viewer,
    delete_users,
    fake_ready_image,
    make_user,
    session_on,
    simulated_sandbox,
)
from bench._simulated import latency_line, pct
from sandboxes.models import Repo

VIEWERS = 50
TYPING_ROUNDS = 40  # each by another person: a socket forwards typing at most every 1.5 s
LEAVE_ROUNDS = 8
REPO = "bench-presence"


class Page:
    """A person's page: its socket, and what it received (arrival time, message) by a reader task."""

    def __init__(self, viewer: Viewer, user_id: int):
        self.viewer, self.user_id = viewer, user_id
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.reader: asyncio.Task | None = None

    def start_reading(self) -> None:
        async def read() -> None:
            try:
                while True:
                    await self.inbox.put(await self.viewer.receive(3600))
            except websockets.ConnectionClosed:
                return  # closed by close(): nothing more to read
        self.reader = asyncio.ensure_future(read())

    async def until(self, wanted, timeout: float = 30.0) -> float:
        """When the first message `wanted` accepts arrived (earlier ones are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            at, message = await asyncio.wait_for(self.inbox.get(), max(0.01, deadline - time.monotonic()))
            if wanted(message):
                return at

    async def close(self) -> None:
        if self.reader:
            self.reader.cancel()
        await self.viewer.close()


def people_count(n: int):
    return lambda m: m.get("type") == "presence" and len(m["people"]) == n


async def measure(platform: Platform, session_id: int, members: list[tuple[int, dict]]) -> dict[str, list[float]]:
    pages: list[Page] = []
    joins: list[float] = []
    for user_id, headers in members:  # one by one: each newcomer is seen by everyone before the next
        started = time.monotonic()
        page = Page(await Viewer(platform.ws_url, session_id, headers).open(surface="web"), user_id)
        page.start_reading()
        pages.append(page)
        seen = await asyncio.gather(*(p.until(people_count(len(pages))) for p in pages))
        joins.append(max(seen) - started)
    say(f"{len(pages)} pages in, each seeing all {VIEWERS}")

    typing: list[float] = []
    for round_ in range(TYPING_ROUNDS):
        sender = pages[round_ % len(pages)]
        others = [p for p in pages if p is not sender]
        started = time.monotonic()
        await sender.viewer.send({"type": "typing"})
        arrived = await asyncio.gather(*(p.until(lambda m, uid=sender.user_id: m.get("type") == "typing"
                                                 and m["user_id"] == uid) for p in others))
        typing.extend(at - started for at in arrived)

    leaves: list[float] = []
    for round_ in range(LEAVE_ROUNDS):
        leaving = pages.pop(round_ % len(pages))
        started = time.monotonic()
        await leaving.close()
        arrived = await asyncio.gather(*(p.until(people_count(len(pages))) for p in pages))
        leaves.extend(at - started for at in arrived)
        back = Page(await Viewer(platform.ws_url, session_id, leaving.viewer.headers).open(surface="web"),
                    leaving.user_id)
        back.start_reading()
        pages.append(back)
        await asyncio.gather(*(p.until(people_count(len(pages))) for p in pages))

    pings: list[float] = []
    for _ in range(5):
        async def ping(page: Page) -> float:
            started = time.monotonic()
            await page.viewer.send({"type": "ping"})
            return await page.until(lambda m: m.get("type") == "pong") - started
        pings.extend(await asyncio.gather(*(ping(p) for p in pages)))
    for page in pages:
        await page.close()
    return {"join": joins, "typing": typing, "leave": leaves, "ping": pings}


def run() -> None:
    try:
        with Platform() as platform:
            repo = Repo.objects.create(name=REPO, clone_url="https://example.com/bench-presence.git")
            with transaction.atomic():
                image = fake_ready_image(repo)
                sandbox, _token = simulated_sandbox(repo, image)
                users = [make_user(f"presence-{i}") for i in range(VIEWERS)]
                session = session_on(repo, sandbox, users)
            members = [(u.pk, platform.browser_headers(u)) for u in users]
            figures = asyncio.run(measure(platform, session.pk, members))
            say(f"join (until all see the newcomer): {latency_line(figures['join'])}")
            say(f"typing (to each of the {VIEWERS - 1} others): {latency_line(figures['typing'])}")
            say(f"leave (a closed page gone from the others' lists): {latency_line(figures['leave'])}")
            say(f"floor, a ping's round trip on the same sockets: {latency_line(figures['ping'])}")
            report("presence_typing_p50", p50(figures["typing"]) * 1000, "ms", 1)
            report("presence_typing_p99", pct(figures["typing"], 99) * 1000, "ms", 1)
            report("presence_join_p99", pct(figures["join"], 99) * 1000, "ms", 1)
            report("presence_leave_p99", pct(figures["leave"], 99) * 1000, "ms", 1)
            report("presence_ping_p99", pct(figures["ping"], 99) * 1000, "ms", 1)
            report("presence_typing_p99_over_ping_p99", pct(figures["typing"], 99) / pct(figures["ping"], 99), "x", 2)
            goal("presence update p99 (typing, 50 viewers, two Daphnes)", pct(figures["typing"], 99) * 1000, "ms",
                 250)
    finally:
        Repo.objects.filter(name=REPO).delete()
        delete_users()
