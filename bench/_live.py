"""The platform as it runs in production, for the benchmarks (needs Django set up): Daphne in a
subprocess, a Celery worker in this process, the scripted model provider answering at once
(the same parts as tests/end_to_end), and the sockets browsers and bridges open on it."""

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone
from websockets.asyncio.client import ClientConnection, connect

from bench._fixtures import local_backend
from ide import workspace_hosts
from inspect_site.celery import app
from sandboxes.lifecycle import State
from sandboxes.models import Repo, RepoImage, Sandbox
from sessions.models import Session
from tests.support.front import FrontServer
from tests.support.live_server import LiveServer
from tests.support.model_server import ScriptedModelServer

PROVIDER = "scripted"
USER_PREFIX = "bench-"
OPENCODE_LOG = Path(".local/share/opencode/log")  # under the sandbox's home
LINE = re.compile(r'^timestamp=(?P<at>\S+) .*?message=(?P<message>"[^"]*"|\S+)')


class Platform:
    """`with Platform() as platform:` the Daphnes behind the front proxy (nginx), the worker and the model
    server, stopped at the end (in reverse order) even when starting one of them fails."""

    def __enter__(self) -> "Platform":
        self.stack = ExitStack()
        try:
            self.model = ScriptedModelServer().start()
            self.stack.callback(self.model.stop)
            base_url = self.model.url + "/v1"
            env = {
                "OPENAI_COMPATIBLE_NAME": PROVIDER, "OPENAI_COMPATIBLE_BASE_URL": base_url,
                "OPENAI_COMPATIBLE_MODELS": PROVIDER, "OPENAI_COMPATIBLE_API_KEY": "sk-bench-provider-key",
            }
            # Browsers and bridges reach the Daphnes through the front proxy, as under `make run` (WEB_PROCESSES
            # of them; BENCH_WEB_PROCESSES overrides it). BENCH_FRONT=0 leaves the front out, to measure what it
            # costs, and so runs one Daphne.
            front = os.environ.get("BENCH_FRONT", "1") != "0"
            count = int(os.environ.get("BENCH_WEB_PROCESSES", settings.WEB_PROCESSES)) if front else 1
            self.lives = []
            for _ in range(count):
                live = LiveServer(env=env)
                self.stack.callback(live.stop)  # before start(): a start cut short still stops it
                self.lives.append(live.start())
            self.live = self.lives[0]  # what "through Daphne alone" figures use
            self.url = self.live.url
            self.browser_url = self.live.browser_url  # where browsers open it: the workspace hosts' site
            if front:
                front_server = FrontServer(*self.lives)
                self.stack.callback(front_server.stop)
                self.url = front_server.start().url
                self.browser_url = front_server.browser_url
            # This process runs the worker, which provisions sandboxes: they must find this platform.
            self.stack.enter_context(override_settings(
                MODEL_PROVIDERS=[{"name": PROVIDER, "kind": "openai", "label": "Scripted", "base_url": base_url,
                                  "api_key": "sk-bench-provider-key", "models": [PROVIDER]}],
                DEFAULT_MODEL=f"{PROVIDER}/{PROVIDER}",
                SANDBOX_CONTROL_PLANE_URL=self.url,
                SANDBOX_START_BRIDGE=True,
            ))
            self.stack.enter_context(start_worker(app, pool="threads", concurrency=2, perform_ping_check=False,
                                                  loglevel="WARNING", shutdown_timeout=30))
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def browser_headers(self, user: User) -> dict[str, str]:
        """What a signed-in browser on the platform's own page sends with its socket."""
        client = Client()
        client.force_login(user)
        return {"Cookie": f"sessionid={client.cookies['sessionid'].value}", "Origin": self.url}

    def workspace_headers(self, user: User, session_id: int, url: str) -> dict[str, str]:
        """What a browser signed in on session `session_id`'s workspace host (ide/workspace_hosts.py) sends to
        the server at `url` (Python resolves no *.localhost name, so the Host header carries it)."""
        host = f"s-{session_id}.{settings.WORKSPACE_HOST}:{url.rsplit(':', 1)[1]}"
        cookie = workspace_hosts.cookie_value(user, session_id)
        return {"Host": host, "Cookie": f"{workspace_hosts.COOKIE_NAME}={cookie}", "Origin": f"http://{host}"}

    def model_calls_since(self, since: float) -> list[float]:
        """When (time.monotonic) the scripted provider received agent requests (with tools) after `since`."""
        return [r["at"] for r in list(self.model.requests)
                if r["path"].endswith("/chat/completions") and r["body"].get("tools") and r["at"] >= since]


def make_user(name: str) -> User:
    return User.objects.create_user(USER_PREFIX + name, f"{name}@example.com", None)


def delete_users() -> None:
    User.objects.filter(username__startswith=USER_PREFIX).delete()


def fake_ready_image(repo: Repo) -> RepoImage:
    """An image row only: the simulated bridges need no sandbox behind them."""
    return RepoImage.objects.create(repo=repo, status=RepoImage.Status.READY, backend="local",
                                    backend_ref="", commit_sha="0" * 40, finished_at=timezone.now())


def simulated_sandbox(repo: Repo, image: RepoImage) -> tuple[Sandbox, str]:
    """A running sandbox row (no processes: backend_ref is blank, so terminating it ends nothing)
    and the token its bridge presents."""
    now = timezone.now()
    sandbox = Sandbox.objects.create(repo=repo, image=image, state=State.RUNNING, backend="local",
                                     ready_at=now, last_heartbeat_at=now)
    return sandbox, sandbox.issue_token()


def session_on(repo: Repo, sandbox: Sandbox, members: list[User]) -> Session:
    session = Session.objects.create(repo=repo, creator=members[0], status=Session.Status.IDLE, sandbox=sandbox)
    for index, user in enumerate(members):
        session.add_member(user, "owner" if index == 0 else "member")
    return session


def opencode_log(sandbox: Sandbox, since_wall: float) -> list[tuple[float, str]]:
    """OpenCode's own log in a live local sandbox (it is kept in the home folder, so a restored
    sandbox has its predecessors' lines too): (seconds after `since_wall`, message) from then on."""
    folder = local_backend().sandboxes / sandbox.backend_ref / "upper" / OPENCODE_LOG
    lines = []
    for path in sorted(folder.glob("*.log")) if sandbox.backend_ref and folder.is_dir() else []:
        for line in path.read_text(errors="replace").splitlines():
            found = LINE.match(line)
            if found:
                at = datetime.fromisoformat(found["at"].replace("Z", "+00:00")).timestamp() - since_wall
                if at >= 0:
                    lines.append((at, found["message"].strip('"')))
    return sorted(lines)


def in_thread(function: Callable, *args):
    """A database read from async code: in a worker thread, its connection closed after."""
    def call():
        try:
            return function(*args)
        finally:
            connection.close()

    return asyncio.to_thread(call)


# --- a browser's socket ----------------------------------------------------------------------


class Viewer:
    """A browser on /ws/sessions/<id>/: subscribed, then every message with its arrival time."""

    def __init__(self, platform_ws_url: str, session_id: int, headers: dict[str, str]):
        self.url = f"{platform_ws_url}/ws/sessions/{session_id}/"
        self.headers = headers
        self.socket: ClientConnection | None = None

    async def open(self, after: int = 0, surface: str | None = None) -> "Viewer":
        """`surface`: take part in presence as a person's page does (sessions/presence.py)."""
        self.socket = await connect(self.url, additional_headers=self.headers, open_timeout=60,
                                    max_size=None, proxy=None)
        await self.socket.send(json.dumps({"type": "subscribe", "after": after,
                                           **({"surface": surface} if surface else {})}))
        # Messages are handled in order: the pong says the subscription (and its replay) is done.
        await self.socket.send(json.dumps({"type": "ping"}))
        while (await self.receive(60))[1].get("type") != "pong":
            pass
        return self

    async def receive(self, timeout: float) -> tuple[float, dict]:
        raw = await asyncio.wait_for(self.socket.recv(), timeout)
        return time.monotonic(), json.loads(raw)

    async def send(self, message: dict) -> None:
        await self.socket.send(json.dumps(message))

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()


# --- simulated bridges and watchers, many at once ----------------------------------------------


@dataclass
class Stream:
    """One session fed by one simulated bridge and watched by some viewers."""

    session_id: int
    sandbox_id: str
    token: str
    viewer_headers: list[dict[str, str]]
    sent: int = 0
    acked: int = 0
    send_lag: list[float] = field(default_factory=list)  # how late each send left, against its schedule
    unacked: dict[str, float] = field(default_factory=dict)  # event id -> send time
    ack_latencies: list[float] = field(default_factory=list)  # send -> ack: stored, fanned out, answered
    last_ack_at: float = 0.0


@dataclass
class Watch:
    """What one viewer got."""

    stream: Stream
    seqs: list[int] = field(default_factory=list)
    deltas: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)


@dataclass
class StreamResult:
    streams: list[Stream]
    watches: list[Watch]
    connect_seconds: float
    send_seconds: float
    drain_seconds: float
    began: float  # time.monotonic() of the first send

    @property
    def stored_per_second(self) -> float:
        """Events the platform stored and acknowledged per second, first send to last ack."""
        acked = sum(s.acked for s in self.streams)
        last = max((s.last_ack_at for s in self.streams), default=0.0)
        return acked / (last - self.began) if acked and last > self.began else 0.0

    @property
    def sent(self) -> int:
        return sum(s.sent for s in self.streams)

    @property
    def expected(self) -> int:
        return sum(s.sent for s in self.streams for _ in s.viewer_headers)

    @property
    def received(self) -> int:
        return sum(len(w.deltas) for w in self.watches)

    @property
    def latencies(self) -> list[float]:
        return [x for w in self.watches for x in w.latencies]

    @property
    def ack_latencies(self) -> list[float]:
        return [x for s in self.streams for x in s.ack_latencies]

    def order_problems(self) -> list[str]:
        """Each viewer must get seqs 1, 2, 3, … with no gap and no duplicate (the log holds only
        these events), and every text_delta once."""
        problems = []
        for w in self.watches:
            if w.seqs != list(range(1, len(w.seqs) + 1)):
                dupes = len(w.seqs) - len(set(w.seqs))
                problems.append(f"session {w.stream.session_id}: seqs not 1..n in order ({dupes} duplicate(s), "
                                f"{len(w.seqs)} received, last {w.seqs[-1] if w.seqs else None})")
            elif len(w.deltas) != len(w.seqs):
                problems.append(f"session {w.stream.session_id}: a text_delta came twice")
        return problems


async def _gather_bounded(coroutines: list, limit: int) -> list:
    gate = asyncio.Semaphore(limit)

    async def one(coroutine):
        async with gate:
            return await coroutine

    return await asyncio.gather(*(one(c) for c in coroutines))


async def stream_events(ws_url: str, streams: list[Stream], events: int, rate: float,
                        grace: float = 20.0) -> StreamResult:
    """Open every viewer (subscribed) and every bridge, then have each bridge send `events`
    text_delta events at `rate` per second (the bridges' starts spread over one interval), each
    carrying its send time; count what every viewer got and how late."""
    started = time.monotonic()
    watches = [Watch(s) for s in streams for _ in s.viewer_headers]
    viewers: list[Viewer] = []
    bridges: list[ClientConnection] = []
    tasks: list[asyncio.Task] = []
    try:
        async def open_viewer(watch: Watch, headers: dict) -> Viewer:
            viewer = Viewer(ws_url, watch.stream.session_id, headers)
            viewers.append(viewer)  # to close, whatever happens next
            return await viewer.open()

        heads = [h for s in streams for h in s.viewer_headers]
        opened = await _gather_bounded([open_viewer(w, h) for w, h in zip(watches, heads, strict=True)], 25)

        async def open_bridge(stream: Stream) -> ClientConnection:
            socket = await connect(f"{ws_url}/ws/sandbox/{stream.sandbox_id}/", open_timeout=60, proxy=None,
                                   additional_headers={"Authorization": f"Bearer {stream.token}"})
            bridges.append(socket)
            return socket

        sockets = await _gather_bounded([open_bridge(s) for s in streams], 25)
        connect_seconds = time.monotonic() - started

        expected_total = sum(events * len(s.viewer_headers) for s in streams)
        received = [0]
        all_in = asyncio.Event()

        async def watch(viewer: Viewer, w: Watch) -> None:
            async for raw in viewer.socket:
                now = time.monotonic()
                message = json.loads(raw)
                if message.get("type") != "event":
                    continue
                w.seqs.append(message["seq"])
                if message["kind"] == "text_delta":
                    delta = message["data"]["delta"]
                    if delta not in w.deltas:
                        w.deltas.add(delta)
                        w.latencies.append(now - float(delta))
                        received[0] += 1
                        if received[0] == expected_total:
                            all_in.set()

        async def acks(socket: ClientConnection, stream: Stream) -> None:
            async for raw in socket:
                now = time.monotonic()
                message = json.loads(raw)
                if message.get("type") == "ack" and message.get("id") in stream.unacked:
                    stream.ack_latencies.append(now - stream.unacked.pop(message["id"]))
                    stream.acked += 1
                    stream.last_ack_at = now

        async def feed(socket: ClientConnection, stream: Stream, offset: float, begin: float) -> None:
            for index in range(events):
                due = begin + offset + index / rate
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                now = time.monotonic()
                stream.send_lag.append(now - due)
                event_id = uuid.uuid4().hex
                stream.unacked[event_id] = now
                await socket.send(json.dumps({"type": "event", "id": event_id, "event": {
                    "kind": "text_delta", "message_id": "m", "part_id": "p", "delta": f"{now:.6f}"}}))
                stream.sent += 1

        tasks += [asyncio.create_task(watch(v, w)) for v, w in zip(opened, watches, strict=True)]
        tasks += [asyncio.create_task(acks(b, s)) for b, s in zip(sockets, streams, strict=True)]
        begin = time.monotonic() + 0.2
        spacing = 1 / rate / len(streams)
        await asyncio.gather(*(feed(b, s, i * spacing, begin) for i, (b, s) in enumerate(zip(sockets, streams,
                                                                                                strict=True))))
        sent_at = time.monotonic()
        send_seconds = sent_at - begin
        # The grace period: everything in, or no progress for `grace` seconds.
        last_count, last_progress = -1, time.monotonic()
        while not all_in.is_set() and time.monotonic() - last_progress < grace:
            if received[0] != last_count:
                last_count, last_progress = received[0], time.monotonic()
            try:
                await asyncio.wait_for(all_in.wait(), 0.5)
            except TimeoutError:
                pass
        drain_seconds = time.monotonic() - sent_at
        # Acks still on their way are counted too (they do not change the figures).
        deadline = time.monotonic() + 5
        while sum(s.acked for s in streams) < sum(s.sent for s in streams) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(v.close() for v in viewers), *(b.close() for b in bridges), return_exceptions=True)
    return StreamResult(streams, watches, connect_seconds, send_seconds, drain_seconds, begin)
