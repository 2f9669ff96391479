"""The reaper and the recoveries it carries out, against the real local backend and the database: dead
sandboxes, silent ones whose work is saved, starts and snapshots whose worker died, bridges that died."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from sandboxes import provisioning
from sandboxes.backends import get_backend
from sandboxes.lifecycle import State
from sandboxes.models import Repo, Sandbox
from tests.support.waiting import eventually

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]


@pytest.fixture
def repo(built_repo) -> Repo:
    return built_repo


def reaped(now) -> dict[str, tuple[str, bool]]:
    return {sandbox_id: (reason, action == "save") for sandbox_id, reason, action in provisioning.reap(now=now)}


def test_the_reaper_finds_dead_sandboxes_and_saves_the_work_of_silent_live_ones(repo, settings):
    from sandboxes import tasks
    from sessions.models import Session

    running = provisioning.provision(provisioning.create_sandbox(repo).pk)
    running.move_to(State.RUNNING)
    session = Session.objects.create(repo=repo, sandbox=running)
    backend = get_backend()
    backend.exec(running.backend_ref, "echo unsaved work > notes.txt")
    gone = provisioning.provision(provisioning.create_sandbox(repo).pk)
    gone.move_to(State.RUNNING)
    backend.terminate(gone.backend_ref)  # its processes die behind our back
    pooled = provisioning.provision(provisioning.create_sandbox(repo, pooled=True).pk)
    healthy = provisioning.provision(provisioning.create_sandbox(repo, pooled=True).pk)
    backend.terminate(pooled.backend_ref)

    # Silent past the heartbeat timeout (the control plane was down): the dead go, the living are kept.
    later = timezone.now() + timedelta(seconds=settings.SANDBOX_HEARTBEAT_TIMEOUT_SECONDS + 1)
    found = reaped(later)
    assert str(running.pk) not in found  # alive: its bridge may be reconnecting
    assert found[str(gone.pk)] == (f"no heartbeat for {settings.SANDBOX_HEARTBEAT_TIMEOUT_SECONDS + 1} s and its "
                                   "processes are gone", False)
    assert found[str(pooled.pk)] == ("its processes are gone", False)
    assert str(healthy.pk) not in found  # alive in the pool: its heartbeat was recorded

    # Silent past the grace: saved, then reaped. Its work is the session's to restore.
    much_later = timezone.now() + timedelta(seconds=settings.SANDBOX_SILENT_GRACE_SECONDS + 1)
    reason, save = reaped(much_later)[str(running.pk)]
    assert save and "its work was saved first" in reason
    tasks.terminate_sandbox(str(running.pk), f"reaped: {reason}", save)
    session.refresh_from_db()
    assert session.last_snapshot is not None and session.last_snapshot.sandbox_id == running.pk
    saved = backend.snapshots / session.last_snapshot.backend_ref / "upper" / "workspace" / "notes.txt"
    assert saved.read_text() == "unsaved work\n"
    running.refresh_from_db()
    assert running.state == State.TERMINATED and "saved first" in running.end_reason


@pytest.mark.django_db(transaction=True)  # the pulse writes from a thread of its own, on its own connection
def test_a_worker_says_it_is_on_a_sandbox_while_it_starts_or_saves_it(repo, settings):
    settings.SANDBOX_WORKER_SILENCE_SECONDS = 2  # a pulse every 0.5 s
    sandbox = provisioning.create_sandbox(repo)
    with provisioning.worker_pulse(sandbox.pk):
        first = eventually(lambda: Sandbox.objects.get(pk=sandbox.pk).worker_pulse_at, timeout=5, what="a pulse")
        eventually(lambda: Sandbox.objects.get(pk=sandbox.pk).worker_pulse_at > first, timeout=5, what="another")
    assert Sandbox.objects.get(pk=sandbox.pk).worker_pulse_at is None  # no worker is on it any more
    threading.Event().wait(1.2)
    assert Sandbox.objects.get(pk=sandbox.pk).worker_pulse_at is None  # and the pulse stopped with the block


def test_a_start_whose_worker_died_is_ended_and_its_session_gets_another_sandbox(repo, settings, enqueued,
                                                                                django_capture_on_commit_callbacks):
    from sandboxes import tasks
    from sessions.models import Prompt, Session

    settings.MODEL_PROVIDERS = [{"name": "local", "kind": "openai", "label": "Local",
                                 "base_url": "http://127.0.0.1:9/v1", "models": ["scripted"]}]

    # A worker took the sandbox (its pulse says so) and was killed before the start finished.
    dead_start = provisioning.create_sandbox(repo)
    Sandbox.objects.filter(pk=dead_start.pk).update(worker_pulse_at=timezone.now() - timedelta(seconds=61))
    session = Session.objects.create(repo=repo, sandbox=dead_start, status=Session.Status.STARTING)
    Prompt.objects.create(session=session, text="fix it", position=1)
    # The task delivered again to another worker leaves it alone: the first one may still be on it.
    assert provisioning.provision(dead_start.pk).backend_ref == ""

    [(sandbox_id, reason, action)] = provisioning.reap()
    assert sandbox_id == str(dead_start.pk) and action == "reap"
    assert reason.startswith("its start stopped: the worker starting it has been silent for 6")
    with django_capture_on_commit_callbacks(execute=True):
        tasks.terminate_sandbox(sandbox_id, f"reaped: {reason}", False)
    dead_start.refresh_from_db()
    assert dead_start.state == State.TERMINATED and "its start stopped" in dead_start.end_reason
    session.refresh_from_db()
    # The queued prompt waits for a new sandbox, on its way; nothing was lost.
    assert session.sandbox_id != dead_start.pk and session.sandbox.state == State.PROVISIONING
    assert enqueued["sandboxes.tasks.provision_sandbox"] == [str(session.sandbox_id)]
    assert Prompt.objects.get(session=session).status == Prompt.Status.QUEUED


def test_a_live_sandbox_without_its_bridge_gets_one_new_bridge_however_many_rounds_see_it(repo, settings,
                                                                                        monkeypatch):
    from sandboxes import bridge_launch

    sandbox = provisioning.provision(provisioning.create_sandbox(repo).pk)  # started without a bridge
    sandbox.move_to(State.RUNNING)
    settings.SANDBOX_START_BRIDGE = True  # but expected to have one: as if its bridge had been killed
    started = []
    monkeypatch.setattr(bridge_launch, "start_bridge", lambda backend, box, synced: started.append(box.pk))
    silent_since = timezone.now() - timedelta(seconds=settings.SANDBOX_HEARTBEAT_TIMEOUT_SECONDS + 1)
    Sandbox.objects.filter(pk=sandbox.pk).update(last_heartbeat_at=silent_since)
    [(sandbox_id, reason, action)] = provisioning.reap()
    assert (sandbox_id, action) == (str(sandbox.pk), "restart_bridge") and "its bridge is gone" in reason
    # Two rounds that saw the same silence: one restarts it, the other finds it done.
    assert provisioning.restart_bridge(sandbox.pk, reason) is True
    assert provisioning.restart_bridge(sandbox.pk, reason) is False
    assert started == [sandbox.pk]
    assert Sandbox.objects.get(pk=sandbox.pk).bridge_restarts == 1
    assert provisioning.reap(now=timezone.now()) == []  # the new bridge gets a whole heartbeat timeout


def test_a_sandbox_that_cannot_say_whether_its_bridge_runs_does_not_stop_the_round(repo, settings, monkeypatch):
    from sandboxes import bridge_launch
    from sandboxes.backends.base import BackendError

    sandboxes = [provisioning.provision(provisioning.create_sandbox(repo).pk) for _ in range(2)]
    for sandbox in sandboxes:
        sandbox.move_to(State.RUNNING)
    settings.SANDBOX_START_BRIDGE = True

    def ask(backend, sandbox):
        if sandbox.pk == sandboxes[0].pk:
            raise BackendError("its /tmp is not writable")
        return False

    monkeypatch.setattr(bridge_launch, "bridge_running", ask)
    later = timezone.now() + timedelta(seconds=settings.SANDBOX_HEARTBEAT_TIMEOUT_SECONDS + 1)
    assert [(d[0], d[2]) for d in provisioning.reap(now=later)] == [(str(sandboxes[1].pk), "restart_bridge")]
