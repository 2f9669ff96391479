"""The queue's decisions, called directly: facts in, an action out."""

import pytest

from sessions import queue
from sessions.queue import (
    Abort,
    CancelPrompt,
    Facts,
    FailRun,
    Nothing,
    Reject,
    SendPrompt,
    StartSandbox,
    decide,
    status_for,
)

READY = Facts(sandbox_state="ready")


def test_a_prompt_on_an_idle_agent_with_a_ready_sandbox_is_sent_at_once():
    assert decide(Facts(sandbox_state="ready", queued=(7,)), queue.PROMPT_SUBMITTED) == SendPrompt(7)
    assert decide(Facts(sandbox_state="running", queued=(7,)), queue.PROMPT_SUBMITTED) == SendPrompt(7)


def test_follow_ups_wait_while_a_prompt_runs_and_are_never_injected():
    running = Facts(sandbox_state="ready", running=1, running_confirmed=True, queued=(2, 3))
    assert isinstance(decide(running, queue.PROMPT_SUBMITTED), Nothing)
    busy = Facts(sandbox_state="ready", agent_busy=True, queued=(2,))
    assert isinstance(decide(busy, queue.PROMPT_SUBMITTED), Nothing)
    sent_not_confirmed = Facts(sandbox_state="ready", running=1, queued=(2,))
    assert isinstance(decide(sent_not_confirmed, queue.SANDBOX_READY), Nothing)


def test_when_the_agent_goes_idle_the_oldest_queued_prompt_runs():
    assert decide(Facts(sandbox_state="ready", queued=(2, 3)), queue.AGENT_IDLE) == SendPrompt(2)
    assert isinstance(decide(READY, queue.AGENT_IDLE), Nothing)


def test_a_prompt_without_a_sandbox_starts_one_restoring_the_last_snapshot():
    assert decide(Facts(queued=(1,)), queue.PROMPT_SUBMITTED) == StartSandbox(None)
    assert decide(Facts(queued=(1,), snapshot_id="snap"), queue.PROMPT_SUBMITTED) == StartSandbox("snap")
    ended = Facts(sandbox_state="terminated", queued=(1,), snapshot_id="snap")
    assert decide(ended, queue.PROMPT_SUBMITTED) == StartSandbox("snap")


def test_writing_a_follow_up_starts_the_sandbox_so_it_is_up_when_the_prompt_is_sent():
    assert decide(Facts(snapshot_id="snap"), queue.TYPING) == StartSandbox("snap")
    assert decide(Facts(sandbox_state="terminated", snapshot_id="snap"), queue.TYPING) == StartSandbox("snap")
    assert decide(Facts(), queue.TYPING) == StartSandbox(None)
    for state in ("provisioning", "syncing", "ready", "running", "snapshotting"):
        assert isinstance(decide(Facts(sandbox_state=state, snapshot_id="snap"), queue.TYPING), Nothing)
    # Only sending a prompt retries a failed session (a broken image must not restart on every keystroke).
    assert isinstance(decide(Facts(sandbox_state="failed", failed=True, snapshot_id="snap"), queue.TYPING), Nothing)
    assert queue.status_for(Facts(sandbox_state="provisioning", snapshot_id="snap")) == "idle"


@pytest.mark.parametrize("state", ["provisioning", "snapshotting"])
def test_prompts_wait_for_a_starting_or_snapshotting_sandbox(state):
    assert isinstance(decide(Facts(sandbox_state=state, queued=(1,)), queue.PROMPT_SUBMITTED), Nothing)


def test_a_syncing_sandbox_takes_prompts_since_its_bridge_holds_writes_until_the_sync():
    assert decide(Facts(sandbox_state="syncing", queued=(1,)), queue.SANDBOX_READY) == SendPrompt(1)


def test_a_run_whose_bridge_died_fails_and_says_so_and_an_idle_agent_loses_nothing():
    running = Facts(sandbox_state="running", running=4, running_confirmed=True, agent_busy=True, queued=(5,))
    assert decide(running, queue.BRIDGE_RESTARTED) == FailRun(4, queue.BRIDGE_RESTARTED_REASON)
    assert isinstance(decide(Facts(sandbox_state="ready", queued=(5,)), queue.BRIDGE_RESTARTED), Nothing)


def test_a_prompt_the_bridge_never_heard_of_is_sent_again_at_its_heartbeat():
    lost = Facts(sandbox_state="running", running=4, running_unconfirmed_seconds=queue.RESEND_AFTER_SECONDS)
    assert decide(lost, queue.BRIDGE_HEARTBEAT) == SendPrompt(4)
    # Not yet: the command may still be on its way, or the bridge waiting for OpenCode.
    just_sent = Facts(sandbox_state="running", running=4, running_unconfirmed_seconds=3)
    assert isinstance(decide(just_sent, queue.BRIDGE_HEARTBEAT), Nothing)
    confirmed = Facts(sandbox_state="running", running=4, running_confirmed=True)
    assert isinstance(decide(confirmed, queue.BRIDGE_HEARTBEAT), Nothing)
    # A heartbeat takes no queued prompt by itself: only the running one, resent.
    assert isinstance(decide(Facts(sandbox_state="ready", queued=(5,)), queue.BRIDGE_HEARTBEAT), Nothing)


def test_a_bridge_saying_hello_gets_the_prompt_it_missed_or_the_next_one():
    missed = Facts(sandbox_state="ready", running=4, running_confirmed=False, queued=(5,))
    assert decide(missed, queue.BRIDGE_CONNECTED) == SendPrompt(4)
    confirmed = Facts(sandbox_state="ready", running=4, running_confirmed=True, queued=(5,))
    assert isinstance(decide(confirmed, queue.BRIDGE_CONNECTED), Nothing)
    # Its hello comes before the sandbox reports syncing: the bridge is there to take it.
    assert decide(Facts(sandbox_state="provisioning", queued=(5,)), queue.BRIDGE_CONNECTED) == SendPrompt(5)


def test_only_queued_prompts_can_be_cancelled():
    facts = Facts(sandbox_state="ready", running=1, queued=(2, 3))
    assert decide(facts, queue.CANCEL, prompt_id=3) == CancelPrompt(3)
    assert isinstance(decide(facts, queue.CANCEL, prompt_id=1), Reject)
    assert isinstance(decide(facts, queue.CANCEL, prompt_id=99), Reject)
    assert isinstance(decide(facts, queue.CANCEL, prompt_id=None), Reject)


def test_stop_aborts_the_running_prompt_and_leaves_the_queue_alone():
    facts = Facts(sandbox_state="ready", running=1, agent_busy=True, queued=(2,))
    assert decide(facts, queue.STOP) == Abort(1)
    assert decide(Facts(sandbox_state="ready", agent_busy=True), queue.STOP) == Abort(None)
    assert isinstance(decide(Facts(sandbox_state="ready", queued=(2,)), queue.STOP), Reject)
    assert isinstance(decide(Facts(sandbox_state="terminated", agent_busy=True), queue.STOP), Reject)


def test_a_sandbox_ending_under_a_run_fails_it_and_nothing_restarts_until_a_new_prompt():
    under_run = Facts(sandbox_state="terminated", running=1, queued=(2,))
    assert decide(under_run, queue.SANDBOX_ENDED) == FailRun(1, "The sandbox ended during the run.")
    failed = Facts(sandbox_state="terminated", queued=(2,), failed=True)
    assert isinstance(decide(failed, queue.SANDBOX_ENDED), Nothing)
    assert isinstance(decide(failed, queue.AGENT_IDLE), Nothing)
    assert decide(failed, queue.PROMPT_SUBMITTED) == StartSandbox(None)


def test_a_sandbox_that_failed_to_start_fails_the_session_once():
    facts = Facts(sandbox_state="failed", queued=(1,))
    assert decide(facts, queue.SANDBOX_ENDED) == FailRun(None, "The sandbox failed to start.")
    assert isinstance(decide(Facts(sandbox_state="failed", queued=(1,), failed=True), queue.SANDBOX_ENDED), Nothing)


def test_a_cleanly_ended_sandbox_with_prompts_queued_is_replaced():
    facts = Facts(sandbox_state="terminated", queued=(3,), snapshot_id="s")
    assert decide(facts, queue.SANDBOX_ENDED) == StartSandbox("s")
    assert isinstance(decide(Facts(sandbox_state="terminated"), queue.SANDBOX_ENDED), Nothing)


def test_unknown_requests_are_refused():
    with pytest.raises(ValueError):
        decide(READY, "inject")


@pytest.mark.parametrize(("facts", "status"), [
    (Facts(queued=(1,)), "starting"),
    (Facts(sandbox_state="provisioning", queued=(1,)), "starting"),
    (Facts(sandbox_state="ready", running=1), "running"),
    (Facts(sandbox_state="ready", agent_busy=True), "running"),
    (Facts(sandbox_state="ready"), "idle"),
    (Facts(sandbox_state="terminated"), "idle"),
    (Facts(sandbox_state="ready", running=1, failed=True), "failed"),
])
def test_status_follows_the_facts(facts, status):
    assert status_for(facts) == status
