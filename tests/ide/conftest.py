"""Sessions whose sandboxes are rows pointing at real services started here, and the real Daphne."""

import shutil

import pytest
from django.core.management import call_command
from django.utils import timezone

from ide import vscode_static
from sandboxes.lifecycle import State
from sandboxes.models import Sandbox
from sessions.models import Session
from tests.ide.support import LIVE_SANDBOX_ROOT, CodeServer, HttpUpstream, SocketUpstream
from tests.support.front import FrontServer
from tests.support.live_server import LiveServer


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker):
    """Daphne serving inspect_site.asgi on the test database, once per module (it only reads rows)."""
    LIVE_SANDBOX_ROOT.mkdir(parents=True, exist_ok=True)
    server = LiveServer(env={"SANDBOX_ROOT": str(LIVE_SANDBOX_ROOT)}).start()
    yield server
    server.stop()
    shutil.rmtree(LIVE_SANDBOX_ROOT, ignore_errors=True)


@pytest.fixture(scope="module", params=["daphne", "front"])
def entry(request, live):
    """Where browsers connect: Daphne itself, or the front proxy (nginx) in front of it, as `make run` serves."""
    if request.param == "daphne":
        yield live
        return
    front = FrontServer(live).start()
    yield front
    front.stop()


@pytest.fixture(scope="module")
def upstream():
    server = HttpUpstream("one").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def other_upstream():
    server = HttpUpstream("two").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def socket_upstream():
    server = SocketUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def install() -> vscode_static.Install:
    """The pinned code-server in the sandbox tools, installed and precompressed as `make setup` leaves it."""
    call_command("install_sandbox_tools")
    found = vscode_static.local_install()
    assert found is not None
    return found


@pytest.fixture(scope="module")
def code_server(install, tmp_path_factory):
    """That code-server running on an empty folder, as a sandbox's bridge runs it."""
    server = CodeServer(tmp_path_factory.mktemp("workspace"), tmp_path_factory.mktemp("code-server-home")).start()
    yield server
    server.stop()


@pytest.fixture
def make_session(repo):
    """make_session(owner, services, state=RUNNING) -> a session whose sandbox reports `services`."""

    def make(owner, services: dict | None, state: str = State.RUNNING) -> Session:
        sandbox = None
        if services is not None:
            sandbox = Sandbox.objects.create(repo=repo, image=repo.current_image(), state=state, backend="local",
                                             backend_ref="ref", ready_at=timezone.now(), services=services)
        session = Session.objects.create(repo=repo, creator=owner, status=Session.Status.IDLE, sandbox=sandbox)
        session.add_member(owner, "owner")
        return session

    return make
