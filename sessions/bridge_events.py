"""What bridges and sandboxes report, applied to their sessions: bridge events stored in the session's log
(and what they change: the agent busy or idle, its session id, the title), a sandbox's phase changes and a
bridge saying hello. The bridge socket (bridge_socket.py) and the sandboxes app's signal call these."""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from bridge.protocol import EVENT_KINDS, MAX_EVENT_ID_LENGTH
from sandboxes.bridge_channel import send_to_bridge
from sandboxes.lifecycle import State
from sandboxes.models import Sandbox
from sessions import queue, signals, workspace
from sessions.dispatch import STATE_FIELDS, announce_run_finished, dispatch, on_agent_idle, record_status
from sessions.events import append_event, append_events, check_kind
from sessions.models import Event, Prompt, Session

logger = logging.getLogger(__name__)
# Bridge event kinds that change more than the log.
STATEFUL_KINDS = {"agent_session", "prompt_started", "busy", "idle", "title", "error", "commit",
                  "pull_request_asked"}


def on_sandbox_phase(sender, sandbox: Sandbox, **kwargs) -> None:
    """The receiver of sandboxes.signals.sandbox_phase_changed (connected in apps.py)."""
    handle_sandbox_phase(sandbox)


def on_snapshot_taken(sender, snapshot, **kwargs) -> None:
    """The receiver of sandboxes.signals.snapshot_taken: the session working in that sandbox restores from it
    next (a follow-up after the sandbox ended, whoever saved it: the idle snapshot or the reaper)."""
    Session.objects.filter(sandbox_id=snapshot.sandbox_id).update(last_snapshot=snapshot)


def check_bridge_event(bridge_event_id: str, event: dict) -> None:
    """ValueError saying what is wrong with a bridge's event, before anything is written."""
    if not isinstance(bridge_event_id, str) or not 0 < len(bridge_event_id) <= MAX_EVENT_ID_LENGTH:
        raise ValueError(f"A bridge event needs an id of 1 to {MAX_EVENT_ID_LENGTH} characters.")
    if not isinstance(event, dict) or not isinstance(event.get("kind"), str):
        raise ValueError("A bridge event is an object with a kind.")
    check_kind(event["kind"])  # here too: one bad event must not refuse its whole batch
    if event["kind"] not in EVENT_KINDS:  # what the platform writes itself (a queued prompt, a status) above all
        raise ValueError(f"A bridge cannot send {event['kind'][:50]!r} events.")


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
    elif kind == "prompt_started" and prompt_id is not None:
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
            announce_run_finished(session, prompt)
    elif kind == "commit" and prompt_id is not None:  # the running prompt's, before its idle; one per run
        running = session.prompts.filter(pk=prompt_id, status=Prompt.Status.RUNNING, commit_sha="")
        running.update(commit_sha=str(data.get("sha") or "")[:64])
    elif kind == "pull_request_asked" and prompt_id is not None:
        ask_for_pull_request(session, prompt_id, data)
    elif kind == "title":
        session.title = str(data.get("title") or "")[:300]
    elif kind == "error":
        session.error = f"{data.get('name') or 'Error'}: {data.get('message') or ''}"[:2000]
        signals.agent_error.send(Session, session=session, error=session.error)
    session.save(update_fields=STATE_FIELDS)
    record_status(session, before)
    return kind == "idle"


def ask_for_pull_request(session: Session, prompt_id: int, data: dict) -> None:
    """For the author of the prompt the agent is working on: the running one, whose run is ending (the bridge
    sends this before the run's idle). Any other prompt of the session, or of another, is nobody's request."""
    prompt = session.prompts.select_related("author").filter(pk=prompt_id, status=Prompt.Status.RUNNING).first()
    if prompt is None or prompt.author is None:
        return
    title = data.get("title") if isinstance(data.get("title"), str) else ""
    body = data.get("body") if isinstance(data.get("body"), str) else ""
    signals.pull_request_asked.send(Session, session=session, user=prompt.author, title=title, body=body,
                                    draft=data.get("draft") is True)


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


def on_bridge_restarted(sender, sandbox: Sandbox, **kwargs) -> None:
    """The receiver of sandboxes.signals.bridge_restarted: a run the dead bridge was doing is over."""
    for session in Session.objects.filter(sandbox_id=sandbox.pk):
        dispatch(session, queue.BRIDGE_RESTARTED)


def handle_bridge_heartbeat(sandbox: Sandbox) -> None:
    """A bridge is alive: a prompt it has not said it started for a while is sent to it again (queue.py)."""
    waited = timezone.now() - timedelta(seconds=queue.RESEND_AFTER_SECONDS)
    lost = Prompt.objects.filter(session__sandbox_id=sandbox.pk, status=Prompt.Status.RUNNING, started_at=None,
                                 sent_at__lte=waited)
    for session in Session.objects.filter(pk__in=lost.values("session_id")):
        dispatch(session, queue.BRIDGE_HEARTBEAT)


def as_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
