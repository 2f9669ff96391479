"""The prompt queue's decisions as pure functions: a session's facts and a request in, what to do out.

Nothing here touches the database, the channel layer or a sandbox; dispatch.py gathers the facts,
calls `decide`, and carries out what it returns. Tests call these directly.

The rules:
- One prompt runs at a time. Follow-ups are queued, never injected into a running turn: the
  oldest queued prompt is sent when the agent is idle and the sandbox is ready.
- A prompt is sent once the sandbox's bridge can take it: from `syncing` on (the bridge holds
  writes until the sync is done), or as soon as the bridge says hello. A prompt sent before the
  bridge connected is sent again when it does, and one the bridge has not said it started within
  RESEND_AFTER_SECONDS is sent again at its next heartbeat (its command was lost on the way, e.g. by a
  Redis restart); the bridge ignores a prompt_id it already has.
- A prompt that needs a sandbox starts one: from the session's last snapshot when it has one
  (a follow-up keeps its work), otherwise a fresh one (the warm pool first).
- Someone writing a prompt in a session without a live sandbox starts it then (restoring the last
  snapshot), so the follow-up they are about to send finds it ready or nearly so. Writing in a
  failed session starts nothing: only sending a prompt tries again.
- Only queued prompts can be cancelled. Stop aborts the running prompt and keeps the queue.
- A sandbox that dies under a run fails that run and the session; a failed session waits for
  a new prompt before it starts anything again (so a broken sandbox cannot loop). So does a bridge that
  died under a run and was started again: the sandbox and its work stay, the run is lost.
"""

from dataclasses import dataclass

from sandboxes.lifecycle import State

# What a request is about.
PROMPT_SUBMITTED = "prompt_submitted"
AGENT_IDLE = "agent_idle"
SANDBOX_READY = "sandbox_ready"
SANDBOX_ENDED = "sandbox_ended"
BRIDGE_CONNECTED = "bridge_connected"
STOP = "stop"
CANCEL = "cancel"
TYPING = "typing"  # a member is writing a prompt
BRIDGE_HEARTBEAT = "bridge_heartbeat"  # the bridge is alive (every 10 s)
BRIDGE_RESTARTED = "bridge_restarted"  # the bridge had died; a new one (and a new OpenCode) was started
REQUESTS = (PROMPT_SUBMITTED, AGENT_IDLE, SANDBOX_READY, SANDBOX_ENDED, BRIDGE_CONNECTED, STOP, CANCEL, TYPING,
            BRIDGE_HEARTBEAT, BRIDGE_RESTARTED)
BRIDGE_RESTARTED_REASON = "The agent stopped during the run and was started again, with the work so far: " \
    "send the prompt again to go on."
# A running prompt the bridge has not said it started for this long is sent again at its next heartbeat.
RESEND_AFTER_SECONDS = 15

# Sandbox states, grouped by what they mean for a prompt.
USABLE = frozenset({State.SYNCING, State.READY, State.RUNNING})  # its bridge is up, or about to say hello
STARTING = frozenset({State.PROVISIONING})
BUSY = frozenset({State.SNAPSHOTTING})  # alive; prompts wait until the snapshot is taken
ALIVE = USABLE | STARTING | BUSY  # anything else (terminating, terminated, failed, None) is gone


@dataclass(frozen=True)
class Facts:
    agent_busy: bool = False
    sandbox_state: str | None = None  # the session's current sandbox, None when it has none
    snapshot_id: str | None = None  # the session's last snapshot
    queued: tuple[int, ...] = ()  # queued prompt ids, oldest first
    running: int | None = None  # the prompt handed to the agent and not finished yet
    running_confirmed: bool = False  # the bridge said prompt_started for it
    running_unconfirmed_seconds: float = 0.0  # how long since it was sent, while not confirmed
    failed: bool = False  # the session is failed; only a new prompt starts anything again

    @property
    def sandbox_alive(self) -> bool:
        return self.sandbox_state in ALIVE


@dataclass(frozen=True)
class SendPrompt:
    prompt_id: int


@dataclass(frozen=True)
class StartSandbox:
    restore_snapshot_id: str | None = None


@dataclass(frozen=True)
class Abort:
    prompt_id: int | None  # None: the agent is busy with a run we did not start


@dataclass(frozen=True)
class CancelPrompt:
    prompt_id: int


@dataclass(frozen=True)
class FailRun:
    prompt_id: int | None
    reason: str


@dataclass(frozen=True)
class Nothing:
    reason: str = ""


@dataclass(frozen=True)
class Reject:
    """The request cannot be carried out; `reason` is shown to the user and nothing changes."""

    reason: str


Action = SendPrompt | StartSandbox | Abort | CancelPrompt | FailRun | Nothing | Reject


def next_step(facts: Facts, bridge_up: bool = False) -> Action:
    """What moves the queue forward now. `bridge_up`: a bridge just said hello, so the sandbox
    can take a prompt even if it has not reported a later state yet."""
    if not facts.sandbox_alive:
        if facts.running is not None:
            return FailRun(facts.running, "The sandbox ended during the run.")
        if facts.queued:
            return StartSandbox(facts.snapshot_id)
        return Nothing("nothing is queued")
    if facts.running is not None or facts.agent_busy:
        return Nothing("the agent is busy; follow-ups wait their turn")
    if not facts.queued:
        return Nothing("nothing is queued")
    if facts.sandbox_state not in USABLE and not (bridge_up and facts.sandbox_state in STARTING):
        return Nothing("waiting for the sandbox")
    return SendPrompt(facts.queued[0])


def decide(facts: Facts, request: str, prompt_id: int | None = None) -> Action:
    if request not in REQUESTS:
        raise ValueError(f"unknown request {request!r}")
    if request == CANCEL:
        if prompt_id in facts.queued:
            return CancelPrompt(prompt_id)
        if prompt_id is not None and prompt_id == facts.running:
            return Reject("This prompt is already running: stop it instead.")
        return Reject("Only a queued prompt can be cancelled.")
    if request == STOP:
        if facts.sandbox_alive and (facts.running is not None or facts.agent_busy):
            return Abort(facts.running)
        return Reject("Nothing is running.")
    if request == TYPING:
        if facts.failed:
            return Nothing("the session failed; sending a prompt tries again")
        if facts.sandbox_alive:
            return Nothing("the sandbox is up or on its way")
        return StartSandbox(facts.snapshot_id)
    if request == SANDBOX_ENDED:
        if facts.running is not None:
            return FailRun(facts.running, "The sandbox ended during the run.")
        if facts.sandbox_state == "failed" and not facts.failed:
            return FailRun(None, "The sandbox failed to start.")
        if facts.failed:
            return Nothing("the session failed; a new prompt tries again")
        return next_step(facts)
    if request == BRIDGE_CONNECTED and facts.sandbox_alive and facts.running is not None \
            and not facts.running_confirmed:
        return SendPrompt(facts.running)  # sent while no bridge was listening: send it again
    if request == BRIDGE_RESTARTED:
        if facts.running is not None or facts.agent_busy:
            return FailRun(facts.running, BRIDGE_RESTARTED_REASON)  # the run died with the bridge
        return Nothing("the agent was idle")
    if request == BRIDGE_HEARTBEAT:
        if facts.sandbox_alive and facts.running is not None and not facts.running_confirmed \
                and facts.running_unconfirmed_seconds >= RESEND_AFTER_SECONDS:
            return SendPrompt(facts.running)  # its command was lost on the way: send it again
        return Nothing("the bridge is alive")
    if facts.failed and request != PROMPT_SUBMITTED:
        return Nothing("the session failed; a new prompt tries again")
    return next_step(facts, bridge_up=request == BRIDGE_CONNECTED)


def status_for(facts: Facts) -> str:
    """The session's status (Session.Status values) given its facts."""
    if facts.failed:
        return "failed"
    if facts.sandbox_alive and (facts.running is not None or facts.agent_busy):
        return "running"
    if facts.queued:
        return "starting"  # the next prompt is on its way to the agent
    return "idle"
