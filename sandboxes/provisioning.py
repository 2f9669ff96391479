"""Carrying out sandbox lifecycle decisions: create, provision, snapshot, terminate,
keep the warm pool full, reap the stuck. The decisions themselves are in lifecycle.py."""

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from bridge.protocol import RESTORE_ASIDE, RESTORE_DONE, RESTORE_SKIP
from sandboxes import bridge_channel, bridge_launch, lifecycle
from sandboxes.backends import get_backend
from sandboxes.backends.base import BackendError, SandboxBackend, StartRequest, sync_script
from sandboxes.lifecycle import State
from sandboxes.models import Repo, Sandbox, Snapshot
from sandboxes.signals import bridge_restarted, sandbox_phase_changed, snapshot_taken

logger = logging.getLogger(__name__)
# How a sandbox ends whose restore over another commit failed; the snapshot's next restore then avoids that.
RESET_RESTORE_FAILED = "restoring the snapshot over another commit failed"
# How long a sandbox is kept warm for someone writing a new session's prompt (the page asks again
# every 30 s while they write).
WARM_WANTED_FOR = timedelta(minutes=3)


class NoImage(Exception):
    """The repo has no ready image yet, so no sandbox can start."""


def announce(sandbox: Sandbox) -> None:
    """Tell listeners the sandbox's phase changed: in-process ones (the sessions app) by a
    signal, the sandbox's bridge socket over the channel layer."""
    sandbox_phase_changed.send(sender=Sandbox, sandbox=sandbox)
    try:
        bridge_channel.send_phase(sandbox.pk, sandbox.state, sandbox.synced_commit, sandbox.end_reason)
    except Exception:  # the channel layer being down must not stop a sandbox
        logger.exception("could not announce sandbox %s", sandbox.pk)


def create_sandbox(repo: Repo, pooled: bool = False, snapshot: Snapshot | None = None) -> Sandbox:
    image = snapshot.image if snapshot else repo.current_image()
    if image is None:
        raise NoImage(f"{repo.name} has no ready image yet")
    return Sandbox.objects.create(
        repo=repo, image=image, restored_from=snapshot, pooled=pooled, backend=image.backend
    )


@contextmanager
def worker_pulse(sandbox_id: uuid.UUID) -> Iterator[None]:
    """While the block runs, say every quarter of SANDBOX_WORKER_SILENCE_SECONDS that this worker is still on the
    sandbox (its `worker_pulse_at`). If the worker is killed the pulse stops, and the reaper takes it as dead."""
    stop = threading.Event()
    interval = max(0.5, settings.SANDBOX_WORKER_SILENCE_SECONDS / 4)

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    Sandbox.objects.filter(pk=sandbox_id).update(worker_pulse_at=timezone.now())
                except Exception:  # the database busy or away for a moment: the next beat tries again
                    logger.warning("sandbox %s: the worker's pulse missed a beat", sandbox_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()  # this thread's own

    thread = threading.Thread(target=beat, name=f"pulse-{sandbox_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        Sandbox.objects.filter(pk=sandbox_id).update(worker_pulse_at=None)  # no worker is on it now


def provision(sandbox_id: uuid.UUID) -> Sandbox | None:
    """Start the sandbox; a fresh one syncs to the branch head before it is ready."""
    sandbox = Sandbox.objects.select_related("image", "repo", "restored_from").filter(pk=sandbox_id).first()
    if sandbox is None or sandbox.state != State.PROVISIONING or sandbox.backend_ref:
        return sandbox
    if not Sandbox.objects.filter(pk=sandbox.pk, state=State.PROVISIONING, worker_pulse_at=None).update(
            worker_pulse_at=timezone.now()):
        return sandbox  # another worker has it (a redelivered task): if that one died, the reaper ends the start
    with worker_pulse(sandbox.pk):
        return bring_up(sandbox)


def bring_up(sandbox: Sandbox) -> Sandbox:
    """provision()'s work, once this worker holds the sandbox."""
    backend = get_backend(sandbox.backend)
    image = sandbox.image
    snapshot = sandbox.restored_from
    try:
        ref = backend.start(StartRequest(
            sandbox_id=str(sandbox.pk), image_ref=image.backend_ref, env=image.env,
            snapshot_ref=snapshot.backend_ref if snapshot else None, clone_url=sandbox.repo.clone_url,
            mounts=bridge_launch.bridge_mounts() if settings.SANDBOX_START_BRIDGE else {},
            control_plane_url=settings.SANDBOX_CONTROL_PLANE_URL, ports=bridge_launch.forwarded_ports(sandbox),
        ))
        Sandbox.objects.filter(pk=sandbox.pk).update(backend_ref=ref)
        sandbox.backend_ref = ref
        if settings.SANDBOX_START_BRIDGE:
            # The agent starts while the workspace syncs: reads at once, writes once synced.
            bridge_launch.start_bridge(backend, sandbox, synced=snapshot is not None)
        if snapshot is None:
            # Reads could begin now; writes wait for this sync (see docs/sandboxes.md).
            sandbox.move_to(State.SYNCING)
            announce(sandbox)
            result = backend.exec(ref, sync_script(sandbox.repo.default_branch), timeout=300)
            if result.exit_code != 0:
                raise BackendError(f"git sync failed: {result.output.strip()[-500:]}")
            synced = result.output.strip().splitlines()[-1]
        else:
            synced = snapshot_base_commit(snapshot) or image.commit_sha
        now = timezone.now()
        if not sandbox.move_to(State.READY, synced_commit=synced, ready_at=now, last_heartbeat_at=now):
            backend.terminate(ref)  # terminated while starting
            return sandbox
        announce(sandbox)
        if not settings.SANDBOX_START_BRIDGE:  # otherwise the bridge runs them, and reports their state
            for index, command in enumerate(image.start_commands):
                backend.start_service(ref, f"start-{index}", command)
    except (BackendError, OSError) as e:
        logger.warning("sandbox %s failed to start: %s", sandbox.pk, e)
        if sandbox.backend_ref:
            backend.terminate(sandbox.backend_ref)
        Sandbox.objects.filter(pk=sandbox.pk).exclude(state=State.TERMINATED).update(
            state=State.FAILED, end_reason=str(e), terminated_at=timezone.now()
        )
        sandbox.refresh_from_db()
        announce(sandbox)
    return sandbox


def take_snapshot(sandbox_id: uuid.UUID) -> Snapshot | None:
    sandbox = Sandbox.objects.select_related("image").get(pk=sandbox_id)
    resume_state = sandbox.state
    now = timezone.now()
    if resume_state not in (State.READY, State.RUNNING) or \
            not sandbox.move_to(State.SNAPSHOTTING, snapshot_started_at=now, worker_pulse_at=now):
        return None
    with worker_pulse(sandbox.pk):
        return write_snapshot(sandbox, resume_state)


def write_snapshot(sandbox: Sandbox, resume_state: str) -> Snapshot:
    """take_snapshot()'s work: the sandbox's changes into a snapshot, then the sandbox back to `resume_state`."""
    backend = get_backend(sandbox.backend)
    snapshot_id = uuid.uuid4()
    started = time.monotonic()
    try:
        info = backend.snapshot(sandbox.backend_ref, str(snapshot_id))
    finally:
        # Only this snapshot's state: if the reaper gave it up and a later snapshot began, that one is not ours.
        Sandbox.objects.filter(pk=sandbox.pk, state=State.SNAPSHOTTING,
                               snapshot_started_at=sandbox.snapshot_started_at).update(state=resume_state)
    snapshot = Snapshot.objects.create(
        id=snapshot_id, repo_id=sandbox.repo_id, image=sandbox.image, sandbox=sandbox,
        backend=sandbox.backend, backend_ref=info.ref, size_bytes=info.size_bytes,
        duration_seconds=time.monotonic() - started,
    )
    snapshot_taken.send(sender=Snapshot, snapshot=snapshot)
    return snapshot


def terminate(sandbox_id: uuid.UUID, reason: str = "") -> Sandbox | None:
    sandbox = Sandbox.objects.filter(pk=sandbox_id).first()
    if sandbox is None or sandbox.state == State.TERMINATED:
        return sandbox
    if sandbox.state != State.TERMINATING:
        Sandbox.objects.filter(pk=sandbox.pk).exclude(state=State.TERMINATED).update(
            state=State.TERMINATING, pooled=False, end_reason=reason or sandbox.end_reason,
            last_heartbeat_at=timezone.now(),
        )
    if sandbox.backend_ref:
        get_backend(sandbox.backend).terminate(sandbox.backend_ref)
    Sandbox.objects.filter(pk=sandbox.pk).update(state=State.TERMINATED, terminated_at=timezone.now())
    sandbox.refresh_from_db()
    announce(sandbox)
    return sandbox


def claim_or_create(repo: Repo) -> tuple[Sandbox, bool]:
    """A sandbox for a new session: from the warm pool if one is ready. (sandbox, from_pool)"""
    sandbox = Sandbox.claim_from_pool(repo)
    if sandbox is not None:
        return sandbox, True
    return create_sandbox(repo), False


def snapshot_base_commit(snapshot: Snapshot) -> str:
    """The commit the snapshotted workspace was synced to before the session changed it."""
    source = snapshot.sandbox
    return source.synced_commit if source is not None else ""


def claim_for_restore(snapshot: Snapshot) -> Sandbox | None:
    """A warm pooled sandbox that the snapshot can be restored into (see lifecycle.restore_target),
    claimed and marked as restored from it; None when there is none."""
    facts = lifecycle.SnapshotFacts(
        snapshot.image_id, snapshot_base_commit(snapshot), get_backend(snapshot.backend).applies_snapshots_live,
        reset_failed=Sandbox.objects.filter(restored_from=snapshot, end_reason__startswith=RESET_RESTORE_FAILED)
        .exists(),
    )
    warm = [
        lifecycle.WarmSandbox(str(pk), image_id, state, commit)
        for pk, image_id, state, commit in Sandbox.objects.filter(
            repo_id=snapshot.repo_id, backend=snapshot.backend, pooled=True, state=State.READY,
        ).order_by("created_at").values_list("pk", "image_id", "state", "synced_commit")[:20]
    ]
    for _ in range(3):  # another claimer may win the one chosen
        target = lifecycle.restore_target(facts, warm)
        if target is None:
            return None
        if Sandbox.claim(target, State.READY, restored_from=snapshot):
            return Sandbox.objects.get(pk=target)
        warm = [w for w in warm if w.sandbox_id != target]
    return None


def apply_snapshot(sandbox_id: uuid.UUID, snapshot_id: uuid.UUID) -> None:
    """Copy a snapshot's files into the running sandbox that claim_for_restore gave it. The bridge
    waits for them (the `resume` command) before it goes on with the conversation."""
    sandbox = Sandbox.objects.filter(pk=sandbox_id).first()
    snapshot = Snapshot.objects.select_related("sandbox").filter(pk=snapshot_id).first()
    if sandbox is None or snapshot is None or sandbox.state not in State.LIVE:
        return
    base = snapshot_base_commit(snapshot)
    reset_to = lifecycle.restore_reset_to(base, sandbox.synced_commit)
    try:
        get_backend(sandbox.backend).apply_snapshot(
            sandbox.backend_ref, snapshot.backend_ref, RESTORE_SKIP, RESTORE_ASIDE, RESTORE_DONE, reset_to=reset_to,
        )
    except BackendError as e:
        logger.warning("restoring snapshot %s into sandbox %s failed: %s", snapshot.pk, sandbox.pk, e)
        terminate(sandbox.pk, f"{RESET_RESTORE_FAILED} ({e})" if reset_to else str(e))
        return
    if base:  # its own snapshots are made over the snapshot's commit now, whatever it was synced to
        Sandbox.objects.filter(pk=sandbox.pk).update(synced_commit=base)


def pool_changes(repo: Repo) -> lifecycle.PoolPlan:
    members = [
        lifecycle.PoolMember(str(s.pk), s.image_id, s.state)
        for s in repo.sandboxes.filter(pooled=True, state__in=State.LIVE).order_by("created_at")
    ]
    current = repo.current_image()
    target = lifecycle.pool_target(repo.warm_pool_size, repo.warm_wanted_until, timezone.now())
    return lifecycle.pool_plan(target, current.pk if current else None, members)


def want_warm(repo: Repo, wanted_for: timedelta = WARM_WANTED_FOR) -> None:
    """Someone may soon need a sandbox of this repo (they write a new session's prompt, or a session's
    sandbox was let go and a follow-up may come): keep one warm for `wanted_for`, never shortening a
    longer wish. fill_warm_pool then starts it unless one is waiting already."""
    until = timezone.now() + wanted_for
    Repo.objects.filter(pk=repo.pk).filter(
        Q(warm_wanted_until__isnull=True) | Q(warm_wanted_until__lt=until)
    ).update(warm_wanted_until=until)
    repo.refresh_from_db(fields=["warm_wanted_until"])


def fill_pool(repo: Repo) -> tuple[list[Sandbox], list[str]]:
    """Create the sandboxes the pool lacks; return them (to provision) and the ids to retire."""
    with transaction.atomic():
        list(Repo.objects.select_for_update().filter(pk=repo.pk).values_list("pk", flat=True))  # one fill at a time
        plan = pool_changes(repo)
        # Only those still in the pool: one a session claimed meanwhile is the session's now.
        retired = [pk for pk in plan.retire if Sandbox.objects.filter(pk=pk, pooled=True).update(pooled=False)]
        created = [create_sandbox(repo, pooled=True) for _ in range(plan.start)]
    return created, retired


def reap(now=None) -> list[tuple[str, str, str]]:
    """Decide for every live sandbox whether to reap it; return (id, reason, action) of those to act on:
    "reap", "save" (its work first, then reap), "recover" or "restart_bridge" (lifecycle.reap_decision)."""
    now = now or timezone.now()
    heartbeat_timeout = timedelta(seconds=settings.SANDBOX_HEARTBEAT_TIMEOUT_SECONDS)
    start_timeout = timedelta(seconds=settings.SANDBOX_START_TIMEOUT_SECONDS)
    silent_grace = timedelta(seconds=settings.SANDBOX_SILENT_GRACE_SECONDS)
    snapshot_timeout = timedelta(seconds=settings.SANDBOX_SNAPSHOT_TIMEOUT_SECONDS)
    worker_silence = timedelta(seconds=settings.SANDBOX_WORKER_SILENCE_SECONDS)
    doomed = []
    for sandbox in Sandbox.objects.filter(state__in=State.LIVE):
        if sandbox.pooled and sandbox.state == State.READY:
            # Nobody drives a pooled sandbox, so the pool checks it is alive instead.
            if get_backend(sandbox.backend).is_alive(sandbox.backend_ref):
                sandbox.record_heartbeat(at=now)
            else:
                doomed.append((str(sandbox.pk), "its processes are gone", "reap"))
                continue
        facts = lifecycle.SandboxFacts(sandbox.state, sandbox.created_at, sandbox.last_heartbeat_at,
                                       snapshot_started_at=sandbox.snapshot_started_at,
                                       worker_pulse_at=sandbox.worker_pulse_at,
                                       bridge_restarts=sandbox.bridge_restarts)
        decision = lifecycle.reap_decision(facts, now, heartbeat_timeout, start_timeout, silent_grace,
                                           snapshot_timeout, worker_silence)
        if decision.action == "ask":
            backend = get_backend(sandbox.backend)
            alive = bool(sandbox.backend_ref) and backend.is_alive(sandbox.backend_ref)
            facts = dataclasses.replace(facts, alive=alive, bridge_alive=ask_bridge(backend, sandbox, alive))
            decision = lifecycle.reap_decision(facts, now, heartbeat_timeout, start_timeout, silent_grace,
                                               snapshot_timeout, worker_silence)
        if decision.action in ("reap", "save", "recover", "restart_bridge"):
            doomed.append((str(sandbox.pk), decision.reason, decision.action))
    return doomed


def ask_bridge(backend: SandboxBackend, sandbox: Sandbox, alive: bool) -> bool | None:
    """Whether a live sandbox's bridge process runs; None when it has none or the sandbox would not say (one
    sandbox's failing answer must not stop the reaper's round for the others)."""
    if not alive or not settings.SANDBOX_START_BRIDGE:
        return None
    try:
        return bridge_launch.bridge_running(backend, sandbox)
    except (BackendError, OSError) as error:
        logger.warning("sandbox %s: could not ask whether its bridge runs: %s", sandbox.pk, error)
        return None


def restart_bridge(sandbox_id: uuid.UUID, reason: str) -> bool:
    """Start a new bridge (and so a new OpenCode, on the same conversation) in a sandbox whose bridge died; its
    sessions are told first that a run it was doing is lost. False if the sandbox is no longer at work or another
    reaper round restarts it already."""
    sandbox = Sandbox.objects.select_related("image", "repo").filter(
        pk=sandbox_id, state__in=(State.READY, State.RUNNING)).first()
    if sandbox is None:
        return False
    # Still silent (not restarted by an overlapping round meanwhile, nor back), and compare-and-set on that
    # silence: one round restarts it, and the new bridge gets a whole heartbeat timeout to say hello.
    now = timezone.now()
    heard_lately = now - timedelta(seconds=settings.SANDBOX_HEARTBEAT_TIMEOUT_SECONDS)
    if sandbox.last_heartbeat_at is not None and sandbox.last_heartbeat_at > heard_lately:
        return False
    if not Sandbox.objects.filter(pk=sandbox.pk, state__in=(State.READY, State.RUNNING),
                                  last_heartbeat_at=sandbox.last_heartbeat_at).update(
            last_heartbeat_at=now, bridge_restarts=F("bridge_restarts") + 1):
        return False
    logger.warning("sandbox %s: %s", sandbox.pk, reason)
    bridge_restarted.send(sender=Sandbox, sandbox=sandbox)  # before the new bridge can ask for the lost prompt
    bridge_launch.start_bridge(get_backend(sandbox.backend), sandbox, synced=True)
    return True


def recover_snapshotting(sandbox_id: uuid.UUID, reason: str) -> bool:
    """A snapshot whose worker died left the sandbox "snapshotting": back to work (ready if pooled), so its
    session's queued prompts go on. False if it moved meanwhile."""
    sandbox = Sandbox.objects.filter(pk=sandbox_id, state=State.SNAPSHOTTING).first()
    if sandbox is None or not sandbox.move_to(State.READY if sandbox.pooled else State.RUNNING):
        return False
    logger.warning("sandbox %s: %s; back to %s", sandbox.pk, reason, sandbox.state)
    announce(sandbox)
    return True
