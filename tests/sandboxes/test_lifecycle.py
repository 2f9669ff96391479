"""The lifecycle decisions, called directly: no database, no backend, no clock."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sandboxes import lifecycle
from sandboxes.lifecycle import ImageFacts, PoolMember, RebuildFacts, SandboxFacts, State, WarmSandbox

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HB = timedelta(seconds=120)
START = timedelta(seconds=300)


def test_allowed_transitions_follow_the_lifecycle():
    lifecycle.check_transition(State.PROVISIONING, State.SYNCING)
    lifecycle.check_transition(State.SYNCING, State.READY)
    lifecycle.check_transition(State.READY, State.RUNNING)
    lifecycle.check_transition(State.RUNNING, State.SNAPSHOTTING)
    lifecycle.check_transition(State.SNAPSHOTTING, State.READY)
    lifecycle.check_transition(State.RUNNING, State.TERMINATING)
    lifecycle.check_transition(State.TERMINATING, State.TERMINATED)


@pytest.mark.parametrize(
    "current,target",
    [
        (State.TERMINATED, State.READY),
        (State.TERMINATED, State.RUNNING),
        (State.PROVISIONING, State.RUNNING),
        (State.SYNCING, State.RUNNING),
        (State.READY, State.SYNCING),
        (State.FAILED, State.READY),
    ],
)
def test_forbidden_transitions_raise(current, target):
    with pytest.raises(lifecycle.InvalidTransition):
        lifecycle.check_transition(current, target)


def facts(state, created_ago, heartbeat_ago=None):
    return SandboxFacts(
        state=state,
        created_at=T0 - timedelta(seconds=created_ago),
        last_heartbeat_at=None if heartbeat_ago is None else T0 - timedelta(seconds=heartbeat_ago),
    )


def test_running_sandbox_with_recent_heartbeat_is_kept():
    assert lifecycle.reap_decision(facts(State.RUNNING, 3600, 30), T0, HB, START).action == "keep"


def test_a_silent_sandbox_is_reaped_only_when_its_processes_are_gone_and_else_saved_first():
    silent = facts(State.RUNNING, 3600, 121)
    assert lifecycle.reap_decision(silent, T0, HB, START).action == "ask"  # first: is it alive?
    dead = lifecycle.reap_decision(replace(silent, alive=False), T0, HB, START)
    assert dead.action == "reap" and dead.reason == "no heartbeat for 121 s and its processes are gone"
    # Alive: its bridge may be reconnecting after the control plane was down. Kept for the grace, then saved.
    assert lifecycle.reap_decision(replace(silent, alive=True), T0, HB, START, timedelta(seconds=600)).action \
        == "keep"
    long_silent = replace(facts(State.RUNNING, 3600, 601), alive=True)
    saved = lifecycle.reap_decision(long_silent, T0, HB, START, timedelta(seconds=600))
    assert saved.action == "save" and "its work was saved first" in saved.reason


def test_a_silent_sandbox_whose_bridge_died_gets_a_new_bridge_and_keeps_its_work():
    silent = replace(facts(State.RUNNING, 3600, 121), alive=True)
    restarted = lifecycle.reap_decision(replace(silent, bridge_alive=False), T0, HB, START)
    assert restarted.action == "restart_bridge" and "its bridge is gone" in restarted.reason
    # Its bridge still runs: it may be reconnecting after the control plane was down.
    assert lifecycle.reap_decision(replace(silent, bridge_alive=True), T0, HB, START).action == "keep"
    assert lifecycle.reap_decision(replace(silent, alive=False, bridge_alive=False), T0, HB, START).action == "reap"
    # One whose bridge keeps dying is not given new ones for ever: it goes the silent way, kept for the grace.
    worn = replace(silent, bridge_alive=False, bridge_restarts=lifecycle.MAX_BRIDGE_RESTARTS)
    assert lifecycle.reap_decision(worn, T0, HB, START, timedelta(seconds=600)).action == "keep"


def test_starting_sandbox_gets_the_start_timeout_not_the_heartbeat_one():
    assert lifecycle.reap_decision(facts(State.SYNCING, 200), T0, HB, START).action == "keep"
    decision = lifecycle.reap_decision(facts(State.PROVISIONING, 301), T0, HB, START)
    assert decision.action == "reap" and "did not start" in decision.reason


def test_a_start_or_a_snapshot_whose_worker_went_silent_died_with_it():
    silence = timedelta(seconds=60)

    def with_pulse(state, ago):
        return replace(facts(state, 100, 100), worker_pulse_at=T0 - timedelta(seconds=ago),
                       snapshot_started_at=T0 - timedelta(seconds=100))

    for state in State.STARTING:
        assert lifecycle.reap_decision(with_pulse(state, 20), T0, HB, START, worker_silence=silence).action == "keep"
        ended = lifecycle.reap_decision(with_pulse(state, 61), T0, HB, START, worker_silence=silence)
        assert ended.action == "reap" and "the worker starting it has been silent for 61 s" in ended.reason
    # Waiting in the queue for a worker (no pulse yet) is not silence: it gets the start timeout.
    assert lifecycle.reap_decision(facts(State.PROVISIONING, 100), T0, HB, START, worker_silence=silence).action \
        == "keep"
    assert lifecycle.reap_decision(with_pulse(State.SNAPSHOTTING, 20), T0, HB, START, worker_silence=silence).action \
        == "keep"
    back = lifecycle.reap_decision(with_pulse(State.SNAPSHOTTING, 61), T0, HB, START, worker_silence=silence)
    assert back.action == "recover" and "its worker has been silent for 61 s" in back.reason
    # Once ready, an old pulse means nothing.
    assert lifecycle.reap_decision(with_pulse(State.RUNNING, 3600), T0, HB, START, worker_silence=silence).action \
        == "keep"


def test_ended_sandboxes_are_never_reaped():
    for state in (State.TERMINATED, State.FAILED):
        assert lifecycle.reap_decision(facts(state, 99999), T0, HB, START).action == "keep"


def test_a_termination_that_never_finished_is_finished():
    assert lifecycle.reap_decision(facts(State.TERMINATING, 999, 500), T0, HB, START).action == "reap"
    assert lifecycle.reap_decision(facts(State.TERMINATING, 999, 5), T0, HB, START).action == "keep"


def test_pool_starts_what_is_missing():
    plan = lifecycle.pool_plan(3, 7, [PoolMember("a", 7, State.READY)])
    assert plan.start == 2 and plan.retire == []


def test_pool_counts_starting_members():
    members = [PoolMember("a", 7, State.READY), PoolMember("b", 7, State.SYNCING)]
    assert lifecycle.pool_plan(2, 7, members).start == 0


def test_pool_replaces_members_on_an_older_image():
    members = [PoolMember("old1", 6, State.READY), PoolMember("old2", 6, State.READY)]
    members.append(PoolMember("new", 7, State.READY))
    plan = lifecycle.pool_plan(2, 7, members)
    assert plan.start == 1
    assert set(plan.retire) == {"old1", "old2"}


def test_pool_shrinks_when_its_size_is_lowered():
    members = [PoolMember(x, 7, State.READY) for x in "abc"]
    plan = lifecycle.pool_plan(1, 7, members)
    assert plan.start == 0 and plan.retire == ["b", "c"]


def test_pool_keeps_one_warm_while_someone_writes_a_new_sessions_prompt():
    wanted_until = T0 + timedelta(minutes=3)
    assert lifecycle.pool_target(0, wanted_until, T0) == 1
    assert lifecycle.pool_target(3, wanted_until, T0) == 3
    assert lifecycle.pool_target(0, wanted_until, wanted_until) == 0  # expired
    assert lifecycle.pool_target(0, None, T0) == 0


def test_pool_waits_for_a_first_image():
    assert lifecycle.pool_plan(3, None, []) == lifecycle.PoolPlan()


# --- restoring into the warm pool -----------------------------------------------


SNAPSHOT = lifecycle.SnapshotFacts(image_id=7, synced_commit="abc", applies_live=True)


def test_a_follow_up_restores_into_a_ready_pooled_sandbox_of_the_same_image_and_commit():
    warm = [WarmSandbox("starting", 7, State.PROVISIONING, ""), WarmSandbox("ready", 7, State.READY, "abc")]
    assert lifecycle.restore_target(SNAPSHOT, warm) == "ready"


def test_a_pooled_sandbox_on_another_image_is_not_used_for_a_restore():
    # The files its setup made, outside git, are not those the snapshot's changes were made over.
    warm = [WarmSandbox("newer-image", 8, State.READY, "abc"), WarmSandbox("newer-image-2", 8, State.READY, "def")]
    assert lifecycle.restore_target(SNAPSHOT, warm) is None


def test_a_pooled_sandbox_on_another_commit_is_used_when_none_is_on_the_snapshots_own():
    newer = WarmSandbox("newer-head", 7, State.READY, "def")
    same = WarmSandbox("same-commit", 7, State.READY, "abc")
    assert lifecycle.restore_target(SNAPSHOT, [newer, same]) == "same-commit"
    assert lifecycle.restore_target(SNAPSHOT, [newer]) == "newer-head"
    # ... whose workspace is reset to the snapshot's commit first.
    assert lifecycle.restore_reset_to("abc", "def") == "abc"
    assert lifecycle.restore_reset_to("abc", "abc") == ""
    assert lifecycle.restore_reset_to("", "def") == ""
    # Once such a reset failed for the snapshot (its commit not found), only its own commit will do.
    failed = lifecycle.SnapshotFacts(image_id=7, synced_commit="abc", applies_live=True, reset_failed=True)
    assert lifecycle.restore_target(failed, [newer]) is None
    assert lifecycle.restore_target(failed, [newer, same]) == "same-commit"


def test_no_restore_into_the_pool_without_a_known_commit_or_a_backend_that_can():
    warm = [WarmSandbox("ready", 7, State.READY, "abc")]
    assert lifecycle.restore_target(lifecycle.SnapshotFacts(7, "", True), warm) is None
    assert lifecycle.restore_target(lifecycle.SnapshotFacts(7, "abc", False), warm) is None


def rebuild(last_ago=None, active=False, commit="abc", fingerprint="f1"):
    return RebuildFacts(
        interval=timedelta(minutes=30),
        last_attempt_at=None if last_ago is None else T0 - timedelta(minutes=last_ago),
        build_active=active,
        current_commit=commit,
        current_fingerprint=fingerprint,
    )


def test_rebuild_is_due_after_the_interval_only():
    assert not lifecycle.rebuild_due(rebuild(last_ago=29), T0)
    assert lifecycle.rebuild_due(rebuild(last_ago=30), T0)
    assert lifecycle.rebuild_due(rebuild(last_ago=None, commit=None, fingerprint=None), T0)


def test_no_rebuild_while_one_is_active():
    assert not lifecycle.rebuild_due(rebuild(last_ago=90, active=True), T0)


def test_rebuild_only_when_head_or_setup_changed():
    facts_ = rebuild(last_ago=40)
    assert lifecycle.rebuild_reason(facts_, "abc", "f1") is None
    assert "branch head moved" in lifecycle.rebuild_reason(facts_, "def", "f1")
    assert lifecycle.rebuild_reason(facts_, "abc", "f2") == "setup changed"
    assert lifecycle.rebuild_reason(rebuild(commit=None, fingerprint=None), "abc", "f1") == "no image in service"


def test_images_in_use_are_not_collected():
    images = [ImageFacts(1, "ready", True), ImageFacts(2, "ready", True), ImageFacts(3, "ready", True),
              ImageFacts(4, "failed", False)]
    assert lifecycle.images_to_collect(images, current_id=3, referenced={2}) == [1]
