"""Several Daphne processes behind the front proxy, as `make run` runs them (`manage.py run_web`)."""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from websockets.asyncio.client import connect

from inspect_site.web import RESTART_WINDOW_SECONDS, RESTARTS_ALLOWED, may_restart
from sandboxes.lifecycle import State
from sandboxes.models import Sandbox
from sessions.models import Session
from tests.support import live_server
from tests.support.front import FrontServer
from tests.support.live_server import LiveServer
from tests.support.rows import repo_with_image
from tests.support.waiting import eventually

pytestmark = pytest.mark.sandbox

BASE = Path(__file__).resolve().parents[2]
db = pytest.mark.django_db(transaction=True)  # the Daphnes read and write the rows from their own processes


@pytest.fixture(scope="module")
def two_daphnes(django_db_setup):
    """Two Daphne processes on the test database and the front proxy before them."""
    daphnes = []
    try:
        for _ in range(2):
            daphnes.append(LiveServer())
            daphnes[-1].start()
        front = FrontServer(*daphnes).start()
        yield front
        front.stop()
    finally:
        for daphne in daphnes:
            daphne.stop()


@pytest.fixture
def run_web(django_db_setup):
    """Starts `manage.py run_web` on the test database, its sockets in `var_dir`; stopped after the test."""
    started = []

    def start(var_dir: Path) -> subprocess.Popen:
        env = {**os.environ, "VAR_DIR": str(var_dir), "WEB_PROCESSES": "2",
               "DATABASE_URL": live_server.test_database_url()}
        started.append(subprocess.Popen([sys.executable, "manage.py", "run_web"], cwd=BASE, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def answers_on(socket_path: Path, timeout: float = 30) -> httpx.Response:
    """The first answer on a unix socket, waiting for its Daphne to start."""
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path))) as client:

        def answer() -> httpx.Response | None:
            try:
                return client.get("http://localhost/accounts/login/", timeout=2)
            except httpx.TransportError:
                return None

        return eventually(answer, timeout=timeout, interval=0.1, what=f"an answer on {socket_path}")


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too: only its parent's wait is missing.
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")


def test_run_web_serves_on_a_socket_per_process_and_stops_them_together(run_web, tmp_path):
    web = run_web(tmp_path)
    for index in range(2):
        response = answers_on(tmp_path / f"daphne-{index}.sock")
        assert response.status_code == 200 and "csrfmiddlewaretoken" in response.text
    daphnes = children(web.pid)
    assert len(daphnes) == 2
    web.send_signal(signal.SIGTERM)
    assert web.wait(timeout=15) == 0
    assert all(gone(pid) for pid in daphnes)


def test_a_daphne_that_dies_is_started_again_and_the_other_serves_on(run_web, tmp_path):
    web = run_web(tmp_path)
    for index in range(2):
        answers_on(tmp_path / f"daphne-{index}.sock")
    first, second = children(web.pid)
    os.kill(first, signal.SIGKILL)
    eventually(lambda: gone(first), timeout=10, what="the killed Daphne to be reaped")
    assert answers_on(tmp_path / "daphne-0.sock").status_code == 200  # a new one, on the same socket
    assert answers_on(tmp_path / "daphne-1.sock").status_code == 200
    now = children(web.pid)
    assert second in now and first not in now and len(now) == 2
    assert web.poll() is None  # run_web (and so `make run`) goes on


def test_a_daphne_that_keeps_dying_stops_them_all():
    """The decision alone: restarts are allowed until one Daphne ends too often within the window."""
    assert may_restart([0.0] * RESTARTS_ALLOWED, 1.0)
    assert not may_restart([0.0] * (RESTARTS_ALLOWED + 1), 1.0)
    assert may_restart([0.0] * (RESTARTS_ALLOWED + 1), RESTART_WINDOW_SECONDS + 1)  # long ago: forgiven


def test_the_daphnes_end_with_run_web_even_when_it_is_killed(run_web, tmp_path):
    web = run_web(tmp_path)
    for index in range(2):
        answers_on(tmp_path / f"daphne-{index}.sock")
    daphnes = children(web.pid)
    web.kill()  # no chance to stop them itself
    web.wait()
    eventually(lambda: all(gone(pid) for pid in daphnes), timeout=15, interval=0.1,
               what="every Daphne ended with run_web")


def test_run_web_refuses_sockets_a_running_platform_serves_and_reuses_stale_ones(run_web, tmp_path):
    with socket.socket(socket.AF_UNIX) as stale:  # left by a run that was killed: nothing answers on it
        stale.bind(str(tmp_path / "daphne-1.sock"))
    web = run_web(tmp_path)
    answers_on(tmp_path / "daphne-0.sock")
    answers_on(tmp_path / "daphne-1.sock")
    second = run_web(tmp_path)
    assert second.wait(timeout=30) != 0
    assert "is in use: is the platform running already?" in second.stdout.read().decode()
    assert answers_on(tmp_path / "daphne-0.sock", timeout=1).status_code == 200  # the running one goes on
    assert web.poll() is None


def test_run_web_leaves_a_file_that_is_not_a_socket_alone(run_web, tmp_path):
    (tmp_path / "daphne-1.sock").write_text("someone's notes")
    web = run_web(tmp_path)
    assert web.wait(timeout=30) != 0
    assert "is in the way: it is not a socket" in web.stdout.read().decode()
    assert (tmp_path / "daphne-1.sock").read_text() == "someone's notes"


def test_the_front_skips_a_daphne_that_stopped(two_daphnes):
    """A Daphne restarting (or gone) costs no request: nginx tries the next one at once."""
    stopped = two_daphnes.daphnes[1]
    stopped.stop()
    try:
        for _ in range(10):
            response = httpx.get(f"{two_daphnes.url}/accounts/login/", timeout=5)
            assert response.status_code == 200
    finally:
        stopped.start()
    # Once back, the front sends it requests again at once (it was not written off): now the other one stops.
    other = two_daphnes.daphnes[0]
    other.stop()
    try:
        for _ in range(10):
            assert httpx.get(f"{two_daphnes.url}/accounts/login/", timeout=5).status_code == 200
    finally:
        other.start()


@db
def test_failed_logins_are_counted_across_daphne_processes(two_daphnes):
    """allauth refuses a login after 5 failures: the count is the platform's, not each process's."""
    User.objects.create_user("grace", "grace@example.com", "the-right-password-1")

    def log_in(daphne: LiveServer, password: str) -> httpx.Response:
        with httpx.Client(base_url=daphne.url, timeout=10) as browser:
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', browser.get("/accounts/login/").text)[1]
            return browser.post("/accounts/login/", data={"login": "grace", "password": password,
                                                          "csrfmiddlewaretoken": token})

    first, second = two_daphnes.daphnes
    try:
        for attempt in range(5):  # three on one process, two on the other
            failed = log_in(first if attempt % 2 == 0 else second, "wrong")
            assert failed.status_code == 200 and "not correct" in failed.text
        refused = log_in(first, "the-right-password-1")
        assert refused.status_code != 302 and "Too many failed login attempts" in refused.text
    finally:
        cache.clear()  # the count per address would outlive this test (the cache table is not flushed)


@db
def test_a_session_is_live_across_daphne_processes(two_daphnes):
    """The bridge's socket on one Daphne, a member's page on the other: events reach the page, and the page's
    prompt reaches the bridge (the channel layer and the database carry them between the processes)."""
    bridge_daphne, page_daphne = two_daphnes.daphnes
    repo = repo_with_image()
    now = timezone.now()
    sandbox = Sandbox.objects.create(repo=repo, image=repo.images.get(), state=State.RUNNING, backend="local",
                                     ready_at=now, last_heartbeat_at=now)
    token = sandbox.issue_token()
    ada = User.objects.create_user("ada")
    session = Session.objects.create(repo=repo, creator=ada, status=Session.Status.IDLE, sandbox=sandbox)
    session.add_member(ada, "owner")
    client = Client()
    client.force_login(ada)
    page_headers = {"Cookie": f"sessionid={client.cookies['sessionid'].value}", "Origin": page_daphne.url}

    async def scenario() -> tuple[list[dict], dict]:
        async with connect(f"{bridge_daphne.url.replace('http', 'ws')}/ws/sandbox/{sandbox.pk}/", proxy=None,
                           additional_headers={"Authorization": f"Bearer {token}"}) as bridge, \
                connect(f"{page_daphne.url.replace('http', 'ws')}/ws/sessions/{session.pk}/", proxy=None,
                        additional_headers=page_headers) as page:
            await bridge.send(json.dumps({"type": "hello", "bridge_version": "test", "opencode_version": "test",
                                          "synced": True}))
            await page.send(json.dumps({"type": "subscribe", "after": 0}))
            await page.send(json.dumps({"type": "ping"}))
            while json.loads(await asyncio.wait_for(page.recv(), 10)).get("type") != "pong":
                pass
            for word in ("one", "two", "three"):
                await bridge.send(json.dumps({"type": "event", "id": uuid.uuid4().hex, "event": {
                    "kind": "text_delta", "message_id": "m", "part_id": "p", "delta": word}}))
            seen = []
            while len(seen) < 3:
                message = json.loads(await asyncio.wait_for(page.recv(), 10))
                if message.get("type") == "event" and message["kind"] == "text_delta":
                    seen.append(message)
            await page.send(json.dumps({"type": "prompt", "text": "from the other process"}))
            while True:
                message = json.loads(await asyncio.wait_for(bridge.recv(), 10))
                if message.get("type") == "command" and message["name"] == "prompt":
                    return seen, message

    seen, command = asyncio.run(scenario())
    assert [event["data"]["delta"] for event in seen] == ["one", "two", "three"]
    assert [event["seq"] for event in seen] == sorted(event["seq"] for event in seen)
    assert command["text"] == "from the other process"
