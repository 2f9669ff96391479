"""When a session's sandbox is snapshotted and let go (sessions/lifecycle.py), and the facts the
tasks gather for it (sessions/tasks.idle_facts)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sandboxes.lifecycle import State
from sandboxes.models import Snapshot
from sessions import lifecycle, services, tasks
from sessions.models import Prompt, Session

TIMEOUT = timedelta(minutes=10)
NOW = timezone.now()


def facts(**changes) -> lifecycle.IdleFacts:
    base = dict(agent_busy=False, queued_prompts=0, sandbox_state=State.READY,
                last_activity_at=NOW - timedelta(minutes=11), snapshot_taken_since_activity=False)
    return lifecycle.IdleFacts(**{**base, **changes})


def test_an_idle_agent_is_snapshotted_once_and_then_let_go_after_the_timeout():
    assert lifecycle.should_snapshot(facts())
    assert not lifecycle.should_release(facts(), NOW, TIMEOUT)  # its work is not saved yet
    saved = facts(snapshot_taken_since_activity=True)
    assert not lifecycle.should_snapshot(saved)
    assert lifecycle.should_release(saved, NOW, TIMEOUT)
    assert not lifecycle.should_release(facts(snapshot_taken_since_activity=True, last_activity_at=NOW), NOW, TIMEOUT)
    for busy in (facts(agent_busy=True), facts(queued_prompts=1), facts(sandbox_state=State.PROVISIONING)):
        assert not lifecycle.should_snapshot(busy)
        assert not lifecycle.should_release(busy, NOW, TIMEOUT)


def test_a_sandbox_with_nothing_new_is_not_snapshotted_again_and_is_let_go():
    """Restored while someone wrote a follow-up they never sent: it holds only the last snapshot."""
    unchanged = facts(nothing_new=True)
    assert not lifecycle.should_snapshot(unchanged)
    assert lifecycle.should_release(unchanged, NOW, TIMEOUT)
    assert not lifecycle.should_release(facts(nothing_new=True, last_activity_at=NOW), NOW, TIMEOUT)


@pytest.mark.django_db(transaction=True)
def test_a_restored_sandbox_has_nothing_new_until_a_prompt_runs_in_it(session, user, make_sandbox, repo):
    old = make_sandbox(State.TERMINATED)
    snapshot = Snapshot.objects.create(repo=repo, image=old.image, sandbox=old, backend="local", backend_ref="snap")
    Session.objects.filter(pk=session.pk).update(sandbox=old, last_snapshot=snapshot)
    earlier = Prompt.objects.create(session=session, author=user, text="before", position=1, status="done",
                                    started_at=NOW - timedelta(hours=1), finished_at=NOW - timedelta(hours=1))
    services.note_typing(session, user)
    session = Session.objects.select_related("sandbox", "last_snapshot").get(pk=session.pk)
    assert session.sandbox.restored_from_id == snapshot.pk and earlier.status == "done"
    assert tasks.idle_facts(session).nothing_new

    prompt = services.submit_prompt(session, user, "now change something")
    Prompt.objects.filter(pk=prompt.pk).update(status=Prompt.Status.RUNNING)  # sent, not started yet
    assert not tasks.idle_facts(session).nothing_new
    Prompt.objects.filter(pk=prompt.pk).update(status=Prompt.Status.DONE, started_at=timezone.now())
    assert not tasks.idle_facts(session).nothing_new
