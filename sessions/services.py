"""Carrying out the queue's decisions (queue.py): new sessions and prompts, cancel, stop, and what
bridges and sandboxes report. Views, the session socket and the bridge socket call these.

Every change happens in one transaction holding the session's row lock, so two requests never
both send a prompt; channel-layer messages and Celery tasks go out only after it commits."""

import logging
import re

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from sandboxes import providers, provisioning, tasks
from sandboxes.lifecycle import State
from sandboxes.models import Repo, Sandbox, Snapshot
from sessions import queue, workspace
from sessions.events import append_event, append_events, check_kind
from sessions.models import MAX_PROMPT_CHARS, Event, Membership, Prompt, Session, clean_prompt

logger = logging.getLogger(__name__)
__all__ = ["MAX_PROMPT_CHARS", "cancel_prompt", "create_session", "dispatch", "handle_bridge_connected",
           "handle_bridge_event", "handle_bridge_events", "handle_sandbox_phase", "note_typing", "on_agent_idle",
           "stop", "submit_prompt"]

MODEL_RE = re.compile(r"^[\w.-]+/\S{1,150}$")
# What decisions change on a session; never last_seq, which only append_event moves.
STATE_FIELDS = ["status", "error", "sandbox", "agent_busy", "opencode_session_id", "title"]
# Bridge event kinds that change more than the log.
STATEFUL_KINDS = {"agent_session", "prompt_started", "busy", "idle", "title", "error"}
# Kinds only the control plane writes (a screenshot arrives as an upload, see sessions.views).
CONTROL_PLANE_KINDS = {"screenshot", "status", "prompt_finished", "sandbox_phase"}


# --- requests from people ------------------------------------------------------


def create_session(repo: Repo, user, prompt_text: str, model: str = "", context: dict | None = None) -> Session:
    """A new session owned by `user`, its first prompt queued and on its way."""
    text, context = clean_prompt(prompt_text, context)
    if not getattr(user, "is_authenticated", False):
        raise PermissionDenied("Sign in to start a session.")
    if model and not MODEL_RE.match(model):
        raise ValueError('Write the model as "providerID/modelID", e.g. "anthropic/claude-sonnet-4".')
    with transaction.atomic():
        session = Session.objects.create(repo=repo, creator=user, model=model)
        session.add_member(user, Membership.Role.OWNER)
        queue_prompt(session, user, text, context)
        dispatch(session)  # in the same transaction: the prompt's command leaves at its one commit
    return session


def submit_prompt(session: Session, user, text: str, context: dict | None = None) -> Prompt:
    """Queue a prompt; it is sent when the agent is idle (at once if it is idle now)."""
    check_member(session, user)
    text, context = clean_prompt(text, context)
    with transaction.atomic():
        prompt = queue_prompt(session, user, text, context)
        dispatch(session)  # in the same transaction: a warm prompt's command leaves at its one commit
    prompt.refresh_from_db()
    return prompt


def cancel_prompt(session: Session, user, prompt_id: int) -> Prompt:
    """Cancel a queued prompt. A running, finished or unknown prompt raises ValueError."""
    check_member(session, user)
    step(session, queue.CANCEL, prompt_id=prompt_id, user=user)
    return Prompt.objects.get(pk=prompt_id)


def stop(session: Session, user) -> None:
    """Abort the running prompt; the queued ones stay queued. Nothing running raises ValueError."""
    check_member(session, user)
    step(session, queue.STOP, user=user)


def note_typing(session: Session, user) -> bool:
    """A member is writing a prompt: a session without a live sandbox starts one now (restoring its
    last snapshot), so the follow-up finds it up. True when this started one."""
    check_member(session, user)
    action, _ = step(session, queue.TYPING, user=user)
    return isinstance(action, queue.StartSandbox)


def check_member(session: Session, user) -> None:
    if not session.is_member(user):
        raise PermissionDenied("You are not a member of this session.")


def queue_prompt(session: Session, user, text: str, context: dict) -> Prompt:
    """Append a prompt to the queue (inside the caller's transaction)."""
    status = Session.objects.select_for_update(of=("self",)).values_list("status", flat=True).get(pk=session.pk)
    if status == Session.Status.ARCHIVED:
        raise ValueError("This session is archived.")
    last = Prompt.objects.filter(session=session).aggregate(last=Max("position"))["last"] or 0
    prompt = Prompt.objects.create(session=session, author=user, text=text, context=context, position=last + 1)
    append_event(session.pk, "prompt_queued", {
        "prompt_id": prompt.pk, "position": prompt.position, "text": text, "context": context,
        "author": prompt.author_name(), "author_id": user.pk,
    })
    return prompt


# --- carrying out the queue's decisions -------------------------------------------


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
    from sessions import tasks as session_tasks  # tasks imports this module

    transaction.on_commit(lambda: session_tasks.snapshot_if_idle.delay(session.pk))


def on_sandbox_phase(sender, sandbox: Sandbox, **kwargs) -> None:
    handle_sandbox_phase(sandbox)


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
            Prompt.objects.filter(pk=prompt_id).update(status=Prompt.Status.RUNNING)
            session.status, session.error = Session.Status.RUNNING, ""
            send_to_bridge(session.sandbox_id, {
                "name": "prompt", "prompt_id": prompt_id, "text": prompt.text_for_agent(),
                "author": prompt.author_name(), "model": session.model_spec(),
                "opencode_session_id": session.opencode_session_id or None,
            })
        case queue.StartSandbox(snapshot_id):
            return start_sandbox(session, snapshot_id)
        case queue.Abort(prompt_id):
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
            why = session.sandbox.end_reason if session.sandbox_id else ""
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
        transaction.on_commit(lambda: tasks.apply_snapshot.delay(str(sandbox.pk), str(snapshot.pk)))
    if from_pool:
        workspace.replay_services(session, sandbox)
        send_to_bridge(sandbox.pk, {"name": "claimed"})  # its dev servers may wait for a session
    if sandbox.state == State.PROVISIONING and not from_pool:  # a pooled one is on its way already
        transaction.on_commit(lambda: tasks.provision_sandbox.delay(str(sandbox.pk)))
    return sandbox.state in queue.USABLE


def record_status(session: Session, before: str) -> None:
    """Settle the session's status from its facts; log a `status` event when it changed."""
    if session.status == Session.Status.ARCHIVED:
        return
    status = queue.status_for(session.facts())
    if status != session.status:
        Session.objects.filter(pk=session.pk).update(status=status)
        session.status = status
    if session.status != before:
        sandbox_state = session.sandbox.state if session.sandbox_id else None
        append_event(session.pk, "status", {"status": session.status, "reason": session.error,
                                            "sandbox_state": sandbox_state})


def send_to_bridge(sandbox_id, command: dict) -> None:
    """After commit, hand a command to the sandbox's bridge socket, which numbers and forwards it."""
    group = provisioning.group_name(sandbox_id)
    message = {"type": "bridge.command", "command": command}

    def send() -> None:
        try:
            async_to_sync(get_channel_layer().group_send)(group, message)
        except Exception:
            logger.exception("could not send %s to %s", command["name"], group)

    transaction.on_commit(send)


# --- what bridges and sandboxes report ---------------------------------------------


def check_bridge_event(bridge_event_id: str, event: dict) -> None:
    """ValueError saying what is wrong with a bridge's event, before anything is written."""
    if not isinstance(bridge_event_id, str) or not 0 < len(bridge_event_id) <= 100:
        raise ValueError("A bridge event needs an id of 1 to 100 characters.")
    if not isinstance(event, dict) or not isinstance(event.get("kind"), str):
        raise ValueError("A bridge event is an object with a kind.")
    check_kind(event["kind"])  # here too: one bad event must not refuse its whole batch
    if event["kind"] in CONTROL_PLANE_KINDS:
        raise ValueError(f"A bridge cannot send {event['kind']!r} events.")


def is_plain(event) -> bool:
    """Only stored and shown (text, tool calls, diffs): nothing about the session or sandbox changes.
    False for what is not an event with a kind at all (check_bridge_event says what is wrong)."""
    kind = event.get("kind") if isinstance(event, dict) else None
    return isinstance(kind, str) and kind not in STATEFUL_KINDS and kind != "service"


def handle_bridge_event(sandbox: Sandbox, bridge_event_id: str, event: dict) -> Event | None:
    """Store a bridge's event (once per id) and apply it. None: already stored, or the sandbox
    serves no session any more; either way the bridge may be told it is stored."""
    check_bridge_event(bridge_event_id, event)
    if event["kind"] == "service":  # kept on the sandbox too: a pooled one serves no session yet
        report = workspace.clean_service_report(sandbox, event)
        workspace.record_service(sandbox, report)
        event = {"kind": "service", **report}
    session = Session.objects.filter(sandbox=sandbox).first()
    if session is None:
        logger.info("event %s from sandbox %s, which serves no session", bridge_event_id, sandbox.pk)
        return None
    kind = event["kind"]
    data = {k: v for k, v in event.items() if k != "kind"}
    with transaction.atomic():
        stored = append_event(session.pk, kind, data, bridge_event_id)
        if stored is None:
            return None
        idle = kind in STATEFUL_KINDS and apply_bridge_event(session, kind, data)
    if idle:
        on_agent_idle(session)
    return stored


def handle_bridge_events(batch: list[tuple[Sandbox, str, dict]]) -> list[str]:
    """Store and apply events from bridges, in order per sandbox; what was wrong with each ("" if it
    is stored, was already, or its sandbox serves no session). The events of sandboxes that sent only
    plain ones (most of a run: text, tool calls) are stored together in a few queries; the others
    one by one, each in a savepoint so that a refused one leaves the rest stored."""
    problems = [""] * len(batch)
    checked = []
    for index, (_sandbox, bridge_event_id, event) in enumerate(batch):
        try:
            check_bridge_event(bridge_event_id, event)
            checked.append(index)
        except ValueError as e:
            problems[index] = str(e)
    one_by_one = {batch[i][0].pk for i in checked if not is_plain(batch[i][2])}
    plain = [i for i in checked if batch[i][0].pk not in one_by_one]
    if plain:
        serving = {}  # the most recently active session of each sandbox, as handle_bridge_event's first()
        sessions = Session.objects.filter(sandbox__in={batch[i][0].pk for i in plain}).order_by("last_activity_at")
        for sandbox_id, session_id in sessions.values_list("sandbox_id", "pk"):
            serving[sandbox_id] = session_id
        entries = []
        for i in plain:
            sandbox, bridge_event_id, event = batch[i]
            if sandbox.pk not in serving:
                logger.info("event %s from sandbox %s, which serves no session", bridge_event_id, sandbox.pk)
                continue
            data = {k: v for k, v in event.items() if k != "kind"}
            entries.append((serving[sandbox.pk], event["kind"], data, bridge_event_id))
        if entries:
            append_events(entries)
    for i in checked:
        sandbox, bridge_event_id, event = batch[i]
        if sandbox.pk in one_by_one:
            try:
                with transaction.atomic():
                    handle_bridge_event(sandbox, bridge_event_id, event)
            except ValueError as e:
                problems[i] = str(e)
    return problems


def apply_bridge_event(session: Session, kind: str, data: dict) -> bool:
    """What a stored bridge event changes (inside its transaction). True when the agent went idle."""
    session = Session.objects.select_for_update(of=("self",)).select_related("sandbox").get(pk=session.pk)
    before = session.status
    prompt_id = as_int(data.get("prompt_id"))
    now = timezone.now()
    if kind == "agent_session":
        session.opencode_session_id = str(data.get("opencode_session_id") or "")[:200]
    elif kind == "prompt_started":
        started = session.prompts.filter(pk=prompt_id, status__in=Prompt.OPEN)
        started.update(status=Prompt.Status.RUNNING, started_at=now)
    elif kind == "busy":
        session.agent_busy = True
    elif kind == "idle":
        session.agent_busy = False
        running = session.prompts.filter(status=Prompt.Status.RUNNING)
        for prompt in running.filter(pk=prompt_id) if prompt_id is not None else running:
            prompt.status = Prompt.Status.CANCELLED if prompt.stop_requested else Prompt.Status.DONE
            prompt.finished_at = now
            prompt.save(update_fields=["status", "finished_at"])
            append_event(session.pk, "prompt_finished", {"prompt_id": prompt.pk, "status": prompt.status})
    elif kind == "title":
        session.title = str(data.get("title") or "")[:300]
    elif kind == "error":
        session.error = f"{data.get('name') or 'Error'}: {data.get('message') or ''}"[:2000]
    session.save(update_fields=STATE_FIELDS)
    record_status(session, before)
    return kind == "idle"


def handle_sandbox_phase(sandbox: Sandbox) -> None:
    """The sandbox changed state (sandbox.phase): a ready one takes the next prompt, an ended one
    fails the run it was doing."""
    row = Sandbox.objects.filter(pk=sandbox.pk).values_list("state", "end_reason").first()
    state, reason = row or (State.TERMINATED, "")
    for session in Session.objects.filter(sandbox_id=sandbox.pk):
        append_event(session.pk, "sandbox_phase", {"sandbox_id": str(sandbox.pk), "state": state, "reason": reason},
                     bridge_event_id=f"phase:{sandbox.pk}:{state}")
        if state in queue.USABLE:
            dispatch(session, queue.SANDBOX_READY)
        elif state not in queue.ALIVE:
            workspace.services_ended(session, sandbox)
            dispatch(session, queue.SANDBOX_ENDED)


def handle_bridge_connected(sandbox: Sandbox) -> None:
    """A bridge said hello: it can take commands now, and gets again a prompt sent while it was away
    and, if a session claimed its sandbox from the pool, `claimed` (and `resume` if it restored into it)."""
    sessions = list(Session.objects.filter(sandbox_id=sandbox.pk))
    if sessions and sandbox.claimed_at and sandbox.restored_from_id:
        send_to_bridge(sandbox.pk, {"name": "resume"})  # lost if it came while the bridge was away
    if sessions and sandbox.claimed_at:
        send_to_bridge(sandbox.pk, {"name": "claimed"})
    for session in sessions:
        dispatch(session, queue.BRIDGE_CONNECTED)


def as_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
