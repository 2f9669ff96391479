"""The queue carried out: sessions, prompts, cancel, stop, and what bridges and sandboxes report.
Bridge commands are observed on the channel-layer group sandbox-<id>, as the bridge socket gets them."""

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from sandboxes import bridge_channel
from sandboxes.lifecycle import State
from sandboxes.models import Sandbox, Snapshot
from sessions import bridge_events, member_requests
from sessions.models import MAX_PROMPT_CHARS, Event, Prompt, Session
from tests.sessions.support import event_kinds, prompt_statuses

pytestmark = pytest.mark.django_db(transaction=True)


def bridge(sandbox: Sandbox, kind: str, **fields) -> Event | None:
    return bridge_events.handle_bridge_event(sandbox, uuid.uuid4().hex, {"kind": kind, **fields})


@pytest.fixture
def working(session, user, make_sandbox, listen):
    """A session whose agent is running prompt 1 on a ready sandbox; (session, sandbox, listener)."""
    sandbox = make_sandbox(State.RUNNING)
    Session.objects.filter(pk=session.pk).update(sandbox=sandbox)
    listener = listen(bridge_channel.group_name(sandbox.pk))
    first = member_requests.submit_prompt(session, user, "first")
    assert [c["prompt_id"] for c in listener.commands()] == [first.pk]
    bridge(sandbox, "prompt_started", prompt_id=first.pk)
    bridge(sandbox, "busy", prompt_id=first.pk)
    session.refresh_from_db()
    return session, sandbox, listener


def test_a_new_session_takes_a_warm_sandbox_and_its_prompt_goes_straight_to_the_bridge(
        repo, user, make_sandbox, listen, provisions):
    warm = make_sandbox(State.READY, pooled=True)
    listener = listen(bridge_channel.group_name(warm.pk))

    session = member_requests.create_session(repo, user, "fix the invoice table", model="anthropic/claude-sonnet-4",
                                             context={"component": "InvoiceTable"})

    assert session.sandbox_id == warm.pk and session.status == Session.Status.RUNNING
    assert session.branch == f"inspect/{session.pk}"
    assert session.memberships.get().role == "owner"
    prompt = session.prompts.get()
    claimed, command = listener.commands()
    assert claimed == {"name": "claimed"}  # its dev servers may start now
    assert command == {
        "name": "prompt", "prompt_id": prompt.pk, "text": prompt.text_for_agent(), "author": "Ada",
        "model": {"providerID": "anthropic", "modelID": "claude-sonnet-4"}, "opencode_session_id": None,
        "commit": {"branch": session.branch, "author": {"name": "Ada", "email": "ada@example.com"},
                   "co_authors": [], "message": "fix the invoice table"},
    }
    assert "InvoiceTable" in command["text"]
    assert prompt.status == Prompt.Status.RUNNING
    assert provisions == []
    assert event_kinds(session) == ["prompt_queued", "sandbox_phase", "status"]
    assert session.events.last().data["status"] == "running"


def test_without_a_warm_sandbox_one_is_provisioned_and_the_prompt_waits_for_it(repo, user, listen, provisions):
    session = member_requests.create_session(repo, user, "add a dark mode")

    sandbox = session.sandbox
    assert sandbox.state == State.PROVISIONING and provisions == [str(sandbox.pk)]
    assert session.status == Session.Status.STARTING
    assert prompt_statuses(session) == [(session.prompts.get().pk, "queued")]

    listener = listen(bridge_channel.group_name(sandbox.pk))
    Sandbox.objects.filter(pk=sandbox.pk).update(state=State.SYNCING)
    bridge_events.handle_sandbox_phase(sandbox)
    assert [c["name"] for c in listener.commands()] == ["prompt"]
    session.refresh_from_db()
    assert session.status == Session.Status.RUNNING
    bridge_events.handle_sandbox_phase(sandbox)  # the same phase reported twice: logged once, nothing resent
    assert listener.nothing()
    assert event_kinds(session).count("sandbox_phase") == 2  # provisioning, then syncing


def test_follow_ups_queue_while_the_agent_works_and_run_one_by_one_after_idle(working, other_user):
    session, sandbox, listener = working
    session.add_member(other_user)
    second = member_requests.submit_prompt(session, other_user, "second")
    third = member_requests.submit_prompt(session, other_user, "third")
    assert (second.status, third.status) == ("queued", "queued")
    assert listener.nothing()  # never injected into the running turn

    first = session.prompts.get(position=1)
    bridge(sandbox, "idle", prompt_id=first.pk)
    [command] = listener.commands()
    assert (command["prompt_id"], command["author"]) == (second.pk, "bob")
    # What the run commits when it ends: Bob's change; Ada's run made no commit, so her prompt shaped it.
    assert command["commit"]["branch"] == session.branch and command["commit"]["message"] == "second"
    assert command["commit"]["author"] == {"name": "bob", "email": "bob@example.com"}
    assert command["commit"]["co_authors"] == [{"name": "Ada", "email": "ada@example.com"}]
    assert prompt_statuses(session) == [(first.pk, "done"), (second.pk, "running"), (third.pk, "queued")]

    bridge(sandbox, "prompt_started", prompt_id=second.pk)
    bridge(sandbox, "commit", prompt_id=second.pk, sha="b" * 40)  # Bob's run committed, before its idle
    bridge(sandbox, "idle", prompt_id=second.pk)
    [command] = listener.commands()
    assert command["prompt_id"] == third.pk and command["commit"]["co_authors"] == []  # Bob's commit came between
    bridge(sandbox, "idle", prompt_id=third.pk)
    assert listener.nothing()
    session.refresh_from_db()
    assert session.status == Session.Status.IDLE and not session.agent_busy


def test_only_a_queued_prompt_can_be_cancelled(working, other_user):
    session, sandbox, listener = working
    queued = member_requests.submit_prompt(session, session.creator, "second")
    running = session.prompts.get(position=1)

    assert member_requests.cancel_prompt(session, session.creator, queued.pk).status == "cancelled"
    assert event_kinds(session)[-1] == "prompt_cancelled"
    events = session.events.count()
    for prompt_id, message in [(queued.pk, "Only a queued prompt"), (running.pk, "already running"),
                               (999_999, "Only a queued prompt")]:
        with pytest.raises(ValueError, match=message):
            member_requests.cancel_prompt(session, session.creator, prompt_id)
    with pytest.raises(PermissionDenied):
        member_requests.cancel_prompt(session, other_user, queued.pk)
    assert session.events.count() == events
    assert prompt_statuses(session) == [(running.pk, "running"), (queued.pk, "cancelled")]

    bridge(sandbox, "idle", prompt_id=running.pk)  # the cancelled prompt is never sent
    assert listener.nothing()


def test_stop_aborts_the_run_and_the_queue_carries_on(working):
    session, sandbox, listener = working
    queued = member_requests.submit_prompt(session, session.creator, "next")
    running = session.prompts.get(position=1)

    member_requests.stop(session, session.creator)
    assert listener.commands() == [{"name": "stop"}]
    assert prompt_statuses(session) == [(running.pk, "running"), (queued.pk, "queued")]
    assert session.events.last().data == {"prompt_id": running.pk, "by": "Ada"}

    bridge(sandbox, "idle", prompt_id=running.pk)
    assert prompt_statuses(session) == [(running.pk, "cancelled"), (queued.pk, "running")]
    assert [c["prompt_id"] for c in listener.commands()] == [queued.pk]


def test_stop_with_nothing_running_is_refused(session, user, make_sandbox):
    Session.objects.filter(pk=session.pk).update(sandbox=make_sandbox(State.READY))
    with pytest.raises(ValueError, match="Nothing is running"):
        member_requests.stop(session, user)
    assert not session.events.exists()


@pytest.mark.parametrize(("text", "context"), [
    ("", None), ("  ", None), ("x" * (MAX_PROMPT_CHARS + 1), None), ("fix", "not an object"),
])
def test_a_bad_prompt_changes_nothing(working, text, context):
    session, sandbox, listener = working
    before = (Prompt.objects.count(), Event.objects.count())
    with pytest.raises(ValueError):
        member_requests.submit_prompt(session, session.creator, text, context)
    assert (Prompt.objects.count(), Event.objects.count()) == before


def test_outsiders_and_archived_sessions_take_no_prompts(session, user, other_user):
    with pytest.raises(PermissionDenied):
        member_requests.submit_prompt(session, other_user, "let me in")
    Session.objects.filter(pk=session.pk).update(status=Session.Status.ARCHIVED)
    with pytest.raises(ValueError, match="archived"):
        member_requests.submit_prompt(session, user, "more")
    assert not Prompt.objects.exists() and not Event.objects.exists()


def test_a_resent_bridge_event_is_stored_and_applied_once(working):
    session, sandbox, listener = working
    second = member_requests.submit_prompt(session, session.creator, "second")
    third = member_requests.submit_prompt(session, session.creator, "third")
    first = session.prompts.get(position=1)
    idle = {"kind": "idle", "prompt_id": first.pk}

    assert bridge_events.handle_bridge_event(sandbox, "idle-1", idle) is not None
    assert bridge_events.handle_bridge_event(sandbox, "idle-1", idle) is None  # resent after a reconnect
    assert [c["prompt_id"] for c in listener.commands()] == [second.pk]
    assert prompt_statuses(session)[2] == (third.pk, "queued")
    assert session.events.filter(bridge_event_id="idle-1").count() == 1


def test_the_agents_session_id_and_title_are_kept_for_the_next_prompts(working):
    session, sandbox, listener = working
    bridge(sandbox, "agent_session", opencode_session_id="ses_123")
    bridge(sandbox, "title", title="Fix the invoice table")
    bridge(sandbox, "idle", prompt_id=session.prompts.get(position=1).pk)
    member_requests.submit_prompt(session, session.creator, "and the footer")
    [command] = listener.commands()
    assert command["opencode_session_id"] == "ses_123"
    session.refresh_from_db()
    assert session.title == "Fix the invoice table"


def test_events_from_a_sandbox_without_a_session_are_not_stored(make_sandbox):
    assert bridge_events.handle_bridge_event(make_sandbox(), "x", {"kind": "text", "text": "hi"}) is None
    with pytest.raises(ValueError):
        bridge_events.handle_bridge_event(make_sandbox(), "x", {"text": "no kind"})
    assert not Event.objects.exists()


def test_a_bridge_reconnecting_gets_the_prompt_sent_while_it_was_away(session, user, make_sandbox, listen):
    sandbox = make_sandbox(State.SYNCING)
    Session.objects.filter(pk=session.pk).update(sandbox=sandbox)
    prompt = member_requests.submit_prompt(session, user, "sent before the bridge listened")  # lost: nobody listened
    listener = listen(bridge_channel.group_name(sandbox.pk))

    bridge_events.handle_bridge_connected(sandbox)
    assert [c["prompt_id"] for c in listener.commands()] == [prompt.pk]
    bridge(sandbox, "prompt_started", prompt_id=prompt.pk)
    bridge_events.handle_bridge_connected(sandbox)  # confirmed: not sent again
    assert listener.nothing()


def test_a_prompt_whose_command_was_lost_is_sent_again_at_the_bridges_heartbeat(session, user, make_sandbox,
                                                                                  listen):
    sandbox = make_sandbox(State.READY)
    Session.objects.filter(pk=session.pk).update(sandbox=sandbox)
    prompt = member_requests.submit_prompt(session, user, "lost on the way")  # nobody listened: the command is lost
    listener = listen(bridge_channel.group_name(sandbox.pk))

    bridge_events.handle_bridge_heartbeat(sandbox)  # too soon to say it is lost
    assert listener.nothing()
    Prompt.objects.filter(pk=prompt.pk).update(sent_at=timezone.now() - timedelta(seconds=16))
    bridge_events.handle_bridge_heartbeat(sandbox)
    assert [c["prompt_id"] for c in listener.commands()] == [prompt.pk]
    bridge(sandbox, "prompt_started", prompt_id=prompt.pk)
    Prompt.objects.filter(pk=prompt.pk).update(sent_at=timezone.now() - timedelta(seconds=60))
    bridge_events.handle_bridge_heartbeat(sandbox)  # confirmed: not sent again
    assert listener.nothing()


def test_a_sandbox_dying_under_a_run_fails_it_and_the_next_prompt_restores_the_snapshot(
        working, repo, provisions):
    session, sandbox, listener = working
    queued = member_requests.submit_prompt(session, session.creator, "queued")
    snapshot = Snapshot.objects.create(repo=repo, image=sandbox.image, sandbox=sandbox, backend="local",
                                       backend_ref="snap")
    Session.objects.filter(pk=session.pk).update(last_snapshot=snapshot)
    Sandbox.objects.filter(pk=sandbox.pk).update(state=State.TERMINATED, end_reason="reaped: no heartbeat",
                                                  terminated_at=timezone.now())

    bridge_events.handle_sandbox_phase(sandbox)
    session.refresh_from_db()
    running = session.prompts.get(position=1)
    assert running.status == "failed" and queued.pk == session.prompts.get(position=2, status="queued").pk
    assert session.status == Session.Status.FAILED
    assert session.error == "The sandbox ended during the run (reaped: no heartbeat)."
    assert provisions == []  # a failed session starts nothing by itself

    later = member_requests.submit_prompt(session, session.creator, "try again")
    session.refresh_from_db()
    assert session.sandbox.restored_from_id == snapshot.pk and provisions == [str(session.sandbox_id)]
    assert session.status == Session.Status.STARTING and session.error == ""
    assert prompt_statuses(session)[1:] == [(queued.pk, "queued"), (later.pk, "queued")]


def test_a_repo_without_an_image_fails_the_session_with_a_clear_reason(repo, user):
    repo.images.update(status="building")
    session = member_requests.create_session(repo, user, "anything")
    assert session.status == Session.Status.FAILED and "no ready image" in session.error
    assert session.sandbox is None and prompt_statuses(session)[0][1] == "queued"


def test_without_a_model_provider_the_session_says_what_to_set_and_starts_nothing(repo, user, settings, provisions):
    settings.MODEL_PROVIDERS = []
    session = member_requests.create_session(repo, user, "anything")
    assert session.status == Session.Status.FAILED
    assert "OPENAI_API_KEY" in session.error and "ANTHROPIC_API_KEY" in session.error
    assert session.sandbox is None and provisions == []
    status = session.events.filter(kind="status").last()
    assert "No model provider is configured" in status.data["reason"]  # shown on the session page


def test_a_bad_model_name_creates_nothing(repo, user):
    with pytest.raises(ValueError, match="providerID/modelID"):
        member_requests.create_session(repo, user, "hi", model="no-slash")
    assert not Session.objects.exists()


def test_writing_a_follow_up_restores_the_sandbox_before_the_prompt_is_sent(
        session, user, other_user, make_sandbox, repo, listen, provisions):
    old = make_sandbox(State.TERMINATED, end_reason="the session was idle for 10 minutes")
    snapshot = Snapshot.objects.create(repo=repo, image=old.image, sandbox=old, backend="local", backend_ref="snap")
    Session.objects.filter(pk=session.pk).update(sandbox=old, last_snapshot=snapshot)

    with pytest.raises(PermissionDenied):
        member_requests.note_typing(session, other_user)
    assert provisions == []

    assert member_requests.note_typing(session, user) is True
    session.refresh_from_db()
    restoring = session.sandbox
    assert restoring.restored_from_id == snapshot.pk and provisions == [str(restoring.pk)]
    assert session.status == Session.Status.IDLE  # nothing is queued: the session waits for its prompt
    assert member_requests.note_typing(session, user) is False  # already on its way: nothing more starts
    assert provisions == [str(restoring.pk)]

    prompt = member_requests.submit_prompt(session, user, "and now the footer")
    assert prompt.status == "queued"
    listener = listen(bridge_channel.group_name(restoring.pk))
    Sandbox.objects.filter(pk=restoring.pk).update(state=State.READY)
    bridge_events.handle_sandbox_phase(restoring)
    assert [(c["name"], c["prompt_id"]) for c in listener.commands()] == [("prompt", prompt.pk)]
    assert session.sandbox_id == restoring.pk and provisions == [str(restoring.pk)]


def test_writing_in_a_failed_or_archived_session_starts_nothing(session, user, provisions):
    Session.objects.filter(pk=session.pk).update(status=Session.Status.FAILED)
    assert member_requests.note_typing(session, user) is False
    Session.objects.filter(pk=session.pk).update(status=Session.Status.ARCHIVED)
    assert member_requests.note_typing(session, user) is False
    assert provisions == [] and Sandbox.objects.count() == 0


def test_a_failed_snapshot_tells_the_session_and_what_was_queued_meanwhile_goes_on(working, user, monkeypatch):
    from sandboxes.backends.base import BackendError
    from sandboxes.backends.local import LocalBackend
    from sessions import tasks

    session, sandbox, listener = working
    bridge(sandbox, "idle", prompt_id=session.prompts.get(position=1).pk)
    queued = []

    def failing_snapshot(self, ref, snapshot_id):
        queued.append(member_requests.submit_prompt(session, user, "written while it was saving"))
        raise BackendError("the disk is full")

    monkeypatch.setattr(LocalBackend, "snapshot", failing_snapshot)
    tasks.snapshot_if_idle(session.pk)
    [prompt] = queued
    assert [c["prompt_id"] for c in listener.commands()] == [prompt.pk]  # not stranded behind the snapshot
    failed = session.events.get(kind="error")
    assert failed.data["name"] == "SnapshotFailed" and "the disk is full" in failed.data["message"]
    sandbox.refresh_from_db()
    assert sandbox.state == State.RUNNING


def test_a_snapshot_whose_worker_died_is_recovered_and_the_queue_goes_on(working, user):
    from datetime import timedelta

    from sandboxes import provisioning
    from sandboxes import tasks as sandbox_tasks

    session, sandbox, listener = working
    bridge(sandbox, "idle", prompt_id=session.prompts.get(position=1).pk)
    long_ago = timezone.now() - timedelta(minutes=16)
    Sandbox.objects.filter(pk=sandbox.pk).update(state=State.SNAPSHOTTING, snapshot_started_at=long_ago)
    waiting = member_requests.submit_prompt(session, user, "waits for the snapshot")
    assert listener.nothing()  # the queue waits for a snapshotting sandbox
    [(sandbox_id, reason, action)] = [found for found in provisioning.reap() if found[0] == str(sandbox.pk)]
    assert action == "recover" and "did not finish within 900 s" in reason
    sandbox_tasks.reap_sandboxes()
    sandbox.refresh_from_db()
    assert sandbox.state == State.RUNNING
    sent = []  # the bridge is told of the phase too; the prompt's command follows
    try:
        while True:
            message = listener.receive(0.3)
            sent += [message["command"]["prompt_id"]] if "command" in message else []
    except TimeoutError:
        pass
    assert sent == [waiting.pk]


def test_the_running_prompts_commit_is_kept_and_its_agents_pull_request_goes_to_its_author(
        working, other_user, enqueued):
    session, sandbox, listener = working
    first = session.prompts.get(position=1)
    session.add_member(other_user)
    queued = member_requests.submit_prompt(session, other_user, "next")
    for prompt_id in (queued.pk, 999_999):  # not the running prompt: nobody's commit, nobody's request
        bridge(sandbox, "commit", prompt_id=prompt_id, sha="c" * 40)
        bridge(sandbox, "pull_request_asked", prompt_id=prompt_id, title="x", body="", draft=False)
    assert "pulls.tasks.open_pull_request" not in enqueued
    assert Prompt.objects.get(pk=queued.pk).commit_sha == ""

    bridge(sandbox, "commit", prompt_id=first.pk, sha="a" * 40)
    bridge(sandbox, "commit", prompt_id=first.pk, sha="d" * 40)  # one commit per run: the first stays
    assert Prompt.objects.get(pk=first.pk).commit_sha == "a" * 40
    bridge(sandbox, "pull_request_asked", prompt_id=first.pk, title="Add a greeting", body="", draft=True)
    [(session_id, user_id, draft, title, body)] = enqueued["pulls.tasks.open_pull_request"]
    assert (session_id, user_id, draft, title) == (session.pk, session.creator.pk, True, "Add a greeting")
    assert f"/sessions/{session.pk}/" in body  # the session's prefilled description links back to it
