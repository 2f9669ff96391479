"""The dispatch engine: carrying out the queue's decisions (queue.py) for a session.

Every change happens in one transaction holding the session's row lock, so two requests never both send a
prompt; channel-layer messages and Celery tasks go out only after it commits."""

import logging

from django.db import transaction
from django.utils import timezone

from model_providers import providers
from sandboxes import jobs, provisioning
from sandboxes.bridge_channel import send_to_bridge
from sandboxes.lifecycle import State
from sandboxes.models import Snapshot
from sessions import commits, queue, signals, workspace
from sessions.events import append_event
from sessions.models import Prompt, Session

logger = logging.getLogger(__name__)
# What decisions change on a session; never last_seq, which only append_event moves.
STATE_FIELDS = ["status", "error", "sandbox", "agent_busy", "opencode_session_id", "title"]


def dispatch(session: Session, request: str = queue.PROMPT_SUBMITTED) -> list[queue.Action]:
    """Ask the queue what to do and do it, until nothing more can happen now."""
    actions = []
    for _ in range(4):
        action, again = step(session, request)
        actions.append(action)
        if not again:
            break
    session.refresh_from_db()
    return actions


def on_agent_idle(session: Session) -> None:
    """The agent finished a run: take the next prompt, or save the work so a follow-up can restore it."""
    dispatch(session, queue.AGENT_IDLE)
    transaction.on_commit(lambda: jobs.enqueue("sessions.tasks.snapshot_if_idle", session.pk))


def step(session: Session, request: str, prompt_id: int | None = None, user=None) -> tuple[queue.Action, bool]:
    """One decision, carried out in one locked transaction. Returns (action, whether to decide again)."""
    with transaction.atomic():
        locked = Session.objects.select_for_update(of=("self",)).select_related("sandbox", "repo").get(pk=session.pk)
        if locked.status == Session.Status.ARCHIVED:
            return queue.Nothing("the session is archived"), False
        before = locked.status
        action = queue.decide(locked.facts(), request, prompt_id)
        again = carry_out(locked, action, user)
        locked.save(update_fields=STATE_FIELDS)
        record_status(locked, before)
    return action, again


def carry_out(session: Session, action: queue.Action, user) -> bool:
    by = (user.get_full_name() or user.get_username()) if user is not None else None
    now = timezone.now()
    match action:
        case queue.Reject(reason):
            raise ValueError(reason)
        case queue.SendPrompt(prompt_id):
            prompt = session.prompts.select_related("author").get(pk=prompt_id)
            commit = commits.commit_spec(session, prompt)
            people = [p["email"] for p in ([commit["author"], *commit["co_authors"]] if commit else [])]
            Prompt.objects.filter(pk=prompt_id).update(status=Prompt.Status.RUNNING, sent_at=now, commit_people=people)
            session.status, session.error = Session.Status.RUNNING, ""
            send_to_bridge(session.sandbox_id, {
                "name": "prompt", "prompt_id": prompt_id, "text": prompt.text_for_agent(),
                "author": prompt.author_name(), "model": session.model_spec(),
                "opencode_session_id": session.opencode_session_id or None,
                "commit": commit,
            })
        case queue.StartSandbox(snapshot_id):
            return start_sandbox(session, snapshot_id)
        case queue.Abort(prompt_id):
            if prompt_id is not None:  # None: a run that is not ours (stopped all the same)
                Prompt.objects.filter(pk=prompt_id).update(stop_requested=True)
            append_event(session.pk, "stop_requested", {"prompt_id": prompt_id, "by": by})
            send_to_bridge(session.sandbox_id, {"name": "stop"})
        case queue.CancelPrompt(prompt_id):
            Prompt.objects.filter(pk=prompt_id).update(status=Prompt.Status.CANCELLED, finished_at=now)
            append_event(session.pk, "prompt_cancelled", {"prompt_id": prompt_id, "by": by})
        case queue.FailRun(prompt_id, reason):
            if prompt_id is not None:
                Prompt.objects.filter(pk=prompt_id).update(status=Prompt.Status.FAILED, finished_at=now)
                append_event(session.pk, "prompt_finished", {"prompt_id": prompt_id, "status": "failed"})
                announce_run_finished(session, Prompt.objects.get(pk=prompt_id))
            why = session.sandbox.end_reason if session.sandbox else ""
            session.agent_busy = False
            session.status, session.error = Session.Status.FAILED, f"{reason.rstrip('.')} ({why})." if why else reason
            return True
    return False


def start_sandbox(session: Session, snapshot_id: str | None) -> bool:
    """Give the session a sandbox; True when it is ready at once (a warm one from the pool)."""
    snapshot = Snapshot.objects.filter(pk=snapshot_id).first() if snapshot_id else None
    if not providers.configured_providers():
        # The agent could not call any model: say what to set instead of starting a sandbox that hangs.
        session.status, session.error = Session.Status.FAILED, providers.NO_PROVIDER_MESSAGE
        return False
    try:
        if snapshot is not None:
            sandbox = provisioning.claim_for_restore(snapshot)
            from_pool = sandbox is not None
            if sandbox is None:
                sandbox = provisioning.create_sandbox(session.repo, snapshot=snapshot)
        else:
            sandbox, from_pool = provisioning.claim_or_create(session.repo)
    except provisioning.NoImage as e:
        session.status, session.error = Session.Status.FAILED, f"{e}: try again once its image is built."
        return False
    session.sandbox, session.agent_busy = sandbox, False
    session.status, session.error = Session.Status.STARTING, ""
    if snapshot is None:
        session.opencode_session_id = ""  # the agent's session lived in the old sandbox
    append_event(session.pk, "sandbox_phase", {
        "sandbox_id": str(sandbox.pk), "state": sandbox.state, "reason": "", "from_pool": from_pool,
        "restored_from": str(snapshot.pk) if snapshot else None,
    })
    if from_pool and snapshot is not None:
        # Before any prompt: the bridge takes commands in order, and this one waits for the files.
        send_to_bridge(sandbox.pk, {"name": "resume"})
        transaction.on_commit(lambda: jobs.enqueue("sandboxes.tasks.apply_snapshot", str(sandbox.pk), str(snapshot.pk)))
    if from_pool:
        workspace.replay_services(session, sandbox)
        send_to_bridge(sandbox.pk, {"name": "claimed"})  # its dev servers may wait for a session
    if sandbox.state == State.PROVISIONING and not from_pool:  # a pooled one is on its way already
        transaction.on_commit(lambda: jobs.enqueue("sandboxes.tasks.provision_sandbox", str(sandbox.pk)))
    return sandbox.state in queue.USABLE


def announce_run_finished(session: Session, prompt: Prompt) -> None:
    """Tell the apps above (notifications) once the run's end is stored."""
    transaction.on_commit(lambda: signals.run_finished.send(Session, session=session, prompt=prompt))


def record_status(session: Session, before: str) -> None:
    """Settle the session's status from its facts; log a `status` event when it changed."""
    if session.status == Session.Status.ARCHIVED:
        return
    status = queue.status_for(session.facts())
    if status != session.status:
        Session.objects.filter(pk=session.pk).update(status=status)
        session.status = status
    if session.status != before:
        sandbox_state = session.sandbox.state if session.sandbox else None
        append_event(session.pk, "status", {"status": session.status, "reason": session.error,
                                            "sandbox_state": sandbox_state})
