"""Lifecycle decisions as pure functions: facts in, a decision out.

Nothing here touches the database, a backend or the clock; tasks gather the facts,
call these, and carry out what they return. Tests call them directly.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta


class State:
    PROVISIONING = "provisioning"
    SYNCING = "syncing"
    READY = "ready"
    RUNNING = "running"
    SNAPSHOTTING = "snapshotting"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    FAILED = "failed"

    CHOICES = [
        (PROVISIONING, "provisioning"),
        (SYNCING, "syncing"),
        (READY, "ready"),
        (RUNNING, "running"),
        (SNAPSHOTTING, "snapshotting"),
        (TERMINATING, "terminating"),
        (TERMINATED, "terminated"),
        (FAILED, "failed"),
    ]
    # States in which the sandbox's processes may exist and need freeing eventually.
    LIVE = (PROVISIONING, SYNCING, READY, RUNNING, SNAPSHOTTING, TERMINATING)
    STARTING = (PROVISIONING, SYNCING)
    STARTING_OR_READY = (READY, SYNCING, PROVISIONING)  # nearest to ready first


TRANSITIONS: dict[str, frozenset[str]] = {
    State.PROVISIONING: frozenset({State.SYNCING, State.READY, State.TERMINATING, State.FAILED}),
    State.SYNCING: frozenset({State.READY, State.TERMINATING, State.FAILED}),
    State.READY: frozenset({State.RUNNING, State.SNAPSHOTTING, State.TERMINATING, State.FAILED}),
    State.RUNNING: frozenset({State.READY, State.SNAPSHOTTING, State.TERMINATING, State.FAILED}),
    State.SNAPSHOTTING: frozenset({State.READY, State.RUNNING, State.TERMINATING, State.FAILED}),
    State.TERMINATING: frozenset({State.TERMINATED, State.FAILED}),
    State.FAILED: frozenset({State.TERMINATING, State.TERMINATED}),
    State.TERMINATED: frozenset(),
}


class InvalidTransition(Exception):
    pass


def check_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"a sandbox cannot go from {current} to {target}")


# --- the reaper -------------------------------------------------------------


@dataclass(frozen=True)
class SandboxFacts:
    state: str
    created_at: datetime
    last_heartbeat_at: datetime | None
    alive: bool | None = None  # what the backend says of its processes; None: not asked (yet)
    bridge_alive: bool | None = None  # whether its bridge's process runs; None: not asked, or it has none
    bridge_restarts: int = 0  # how many new bridges it was given already
    snapshot_started_at: datetime | None = None
    worker_pulse_at: datetime | None = None  # while a worker starts it or saves its work (provisioning.worker_pulse)


@dataclass(frozen=True)
class Decision:
    # "keep" | "ask" (whether it is alive, then decide again) | "save" (snapshot, then reap) | "reap"
    # | "recover" (a snapshot that never finished: back to running) | "restart_bridge" (its bridge died)
    action: str
    reason: str = ""


KEEP = Decision("keep")
MAX_BRIDGE_RESTARTS = 3  # new bridges the reaper starts in one sandbox at most
ASK = Decision("ask")


def reap_decision(
    facts: SandboxFacts, now: datetime, heartbeat_timeout: timedelta, start_timeout: timedelta,
    silent_grace: timedelta = timedelta(minutes=10), snapshot_timeout: timedelta = timedelta(minutes=15),
    worker_silence: timedelta = timedelta(seconds=60),
) -> Decision:
    """Should a live sandbox be reaped? Starting ones get `start_timeout` to come up. A running one whose
    heartbeats stopped for `heartbeat_timeout` is reaped only if its processes are gone: a sandbox still alive
    may have a bridge reconnecting after the control plane was down, so it is kept for `silent_grace`, then
    its work is saved (a snapshot) before it is reaped; one whose bridge's process is gone gets a new bridge.
    A start or a snapshot whose worker stopped saying it is still on it for `worker_silence` died with that
    worker: the start is reaped, the sandbox goes back to work."""
    if facts.state not in State.LIVE:
        return KEEP
    if facts.state == State.TERMINATING:
        # A terminate that never finished (its worker died): finish it.
        if now - (facts.last_heartbeat_at or facts.created_at) > heartbeat_timeout:
            return Decision("reap", "termination did not finish")
        return KEEP
    worker_silent = facts.worker_pulse_at is not None and now - facts.worker_pulse_at > worker_silence
    silent_for = f"{int((now - facts.worker_pulse_at).total_seconds())} s" if facts.worker_pulse_at else ""
    if facts.state == State.SNAPSHOTTING and worker_silent:
        return Decision("recover", f"saving its work stopped: its worker has been silent for {silent_for}")
    if facts.state == State.SNAPSHOTTING and facts.snapshot_started_at is not None \
            and now - facts.snapshot_started_at > snapshot_timeout:
        return Decision("recover", f"saving its work did not finish within {int(snapshot_timeout.total_seconds())} s")
    if facts.state in State.STARTING and worker_silent:
        return Decision("reap", f"its start stopped: the worker starting it has been silent for {silent_for}")
    if facts.state in State.STARTING:
        if now - facts.created_at > start_timeout:
            return Decision("reap", f"did not start within {int(start_timeout.total_seconds())} s")
        return KEEP
    last = facts.last_heartbeat_at or facts.created_at
    silent = now - last
    if silent <= heartbeat_timeout:
        return KEEP
    seconds = int(silent.total_seconds())
    if facts.alive is None:
        return ASK
    if not facts.alive:
        return Decision("reap", f"no heartbeat for {seconds} s and its processes are gone")
    # The sandbox lives on without its bridge (killed): nothing else starts it. A bridge that keeps dying is not
    # started again for ever: the sandbox then goes the silent way (kept for the grace, saved, reaped).
    if facts.bridge_alive is False and facts.bridge_restarts < MAX_BRIDGE_RESTARTS:
        return Decision("restart_bridge", f"no heartbeat for {seconds} s and its bridge is gone: started again")
    if silent <= silent_grace:
        return KEEP
    return Decision("save", f"no heartbeat for {seconds} s; its work was saved first")


# --- the warm pool ----------------------------------------------------------


@dataclass(frozen=True)
class PoolMember:
    sandbox_id: str
    image_id: int
    state: str


@dataclass(frozen=True)
class PoolPlan:
    start: int = 0
    retire: list[str] = field(default_factory=list)


def warm_wanted(warm_wanted_until: datetime | None, now: datetime) -> bool:
    """Is a repo's wish for a warm sandbox still on (someone writes a new session's first prompt, or a
    session's sandbox was let go a while ago and a follow-up may come)?"""
    return warm_wanted_until is not None and now < warm_wanted_until


def pool_target(pool_size: int, warm_wanted_until: datetime | None, now: datetime) -> int:
    """How many unclaimed sandboxes to keep: the repo's pool size, and at least one while a warm one is
    wanted (`warm_wanted`); it is retired as an extra once that wish has expired."""
    return max(pool_size, 1) if warm_wanted(warm_wanted_until, now) else pool_size


def pool_plan(target_size: int, current_image_id: int | None, members: list[PoolMember]) -> PoolPlan:
    """Keep `target_size` unclaimed sandboxes on the current image.

    Members on an older image are retired (the newer image is ready, or it would not
    be current); extras beyond the target are retired, newest first kept."""
    if current_image_id is None:
        return PoolPlan()
    live = [m for m in members if m.state in (State.PROVISIONING, State.SYNCING, State.READY)]
    outdated = [m.sandbox_id for m in live if m.image_id != current_image_id]
    current = [m for m in live if m.image_id == current_image_id]
    extras = [m.sandbox_id for m in current[target_size:]]
    return PoolPlan(start=max(0, target_size - len(current)), retire=outdated + extras)


@dataclass(frozen=True)
class SnapshotFacts:
    image_id: int
    synced_commit: str  # the commit its workspace was synced to before the session's changes ("" unknown)
    applies_live: bool  # its backend can apply a snapshot to a running sandbox
    reset_failed: bool = False  # restoring it into a sandbox on another commit failed before


@dataclass(frozen=True)
class WarmSandbox:
    sandbox_id: str
    image_id: int
    state: str
    synced_commit: str


def restore_target(snapshot: SnapshotFacts, warm: list[WarmSandbox]) -> str | None:
    """Which warm pooled sandbox a follow-up's snapshot is restored into, or None for a new sandbox
    started from it. A ready one on the snapshot's image: its OpenCode already runs (a new one starts
    cold, seconds). One on the snapshot's commit first; one synced to another (the branch moved on) has
    its workspace reset to the snapshot's commit before the changes land (`restore_reset_to`), unless such
    a reset failed for this snapshot before (its commit could not be found: then a new sandbox, which has
    it). Never one on another image: the files its setup made, outside git, are not those the snapshot
    was made over."""
    if not snapshot.applies_live or not snapshot.synced_commit:
        return None
    ready = [m for m in warm if m.state == State.READY and m.image_id == snapshot.image_id]
    same_commit = [m for m in ready if m.synced_commit == snapshot.synced_commit]
    chosen = (same_commit or ([] if snapshot.reset_failed else ready))[:1]
    return chosen[0].sandbox_id if chosen else None


def restore_reset_to(snapshot_commit: str, sandbox_commit: str) -> str:
    """The commit to reset a warm sandbox's workspace to before a snapshot is applied ("": none)."""
    return snapshot_commit if snapshot_commit and snapshot_commit != sandbox_commit else ""


# --- image rebuilds ---------------------------------------------------------


@dataclass(frozen=True)
class RebuildFacts:
    interval: timedelta
    last_attempt_at: datetime | None  # when the newest build of any outcome was queued
    build_active: bool
    current_commit: str | None  # the image in service, if any
    current_fingerprint: str | None


def rebuild_due(facts: RebuildFacts, now: datetime) -> bool:
    """Is it time to look at the branch head again?"""
    if facts.build_active:
        return False
    if facts.last_attempt_at is None:
        return True
    return now - facts.last_attempt_at >= facts.interval


def rebuild_reason(facts: RebuildFacts, head_commit: str, fingerprint: str) -> str | None:
    """Why a due repo needs a new image, or None when nothing changed."""
    if facts.current_commit is None:
        return "no image in service"
    if head_commit != facts.current_commit:
        return f"branch head moved to {head_commit[:10]}"
    if fingerprint != facts.current_fingerprint:
        return "setup changed"
    return None


# --- image garbage collection -----------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    image_id: int
    status: str  # a RepoImage status
    has_files: bool


def images_to_collect(images: list[ImageFacts], current_id: int | None, referenced: set[int]) -> list[int]:
    """Images whose files can go: not in service, not used by a live sandbox or a snapshot."""
    return [
        img.image_id
        for img in images
        if img.has_files and img.image_id != current_id and img.image_id not in referenced
        and img.status in ("ready", "failed")
    ]
