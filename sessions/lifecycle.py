"""When a session's sandbox should be snapshotted or let go: pure decisions, tested directly."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sandboxes.lifecycle import State


@dataclass(frozen=True)
class IdleFacts:
    agent_busy: bool
    queued_prompts: int
    sandbox_state: str | None
    last_activity_at: datetime
    snapshot_taken_since_activity: bool
    # The sandbox holds nothing the session's last snapshot lacks: it was restored from it (or the
    # session has none) and no prompt has run in it, e.g. one started while someone wrote a follow-up.
    nothing_new: bool = False


def should_snapshot(facts: IdleFacts) -> bool:
    """Snapshot once the agent went idle with nothing queued, so a follow-up can restore it."""
    return (
        not facts.agent_busy
        and facts.queued_prompts == 0
        and facts.sandbox_state in (State.READY, State.RUNNING)
        and not facts.snapshot_taken_since_activity
        and not facts.nothing_new
    )


def should_release(facts: IdleFacts, now: datetime, idle_timeout: timedelta) -> bool:
    """Terminate the sandbox of a session idle for longer than the timeout, once its work is saved."""
    return (
        not facts.agent_busy
        and facts.queued_prompts == 0
        and facts.sandbox_state in (State.READY, State.RUNNING)
        and (facts.snapshot_taken_since_activity or facts.nothing_new)
        and now - facts.last_activity_at >= idle_timeout
    )


@dataclass(frozen=True)
class ReleasedFacts:
    restores_into_running: bool  # the sandbox's backend can apply a snapshot to a running sandbox
    archived: bool
    snapshot_on_current_image: bool  # the pool's sandboxes start on the current image only


def keep_warm_after_release(keep_for: timedelta, facts: ReleasedFacts) -> bool:
    """After a session's sandbox is let go, should its repo keep a warm sandbox for a follow-up? Only
    where the follow-up could restore into it (its OpenCode already up, seconds saved): a backend that
    applies snapshots to running sandboxes, a snapshot on the image the pool starts from, and a session
    that takes follow-ups (not an archived one)."""
    return (keep_for > timedelta(0) and facts.restores_into_running and facts.snapshot_on_current_image
            and not facts.archived)
