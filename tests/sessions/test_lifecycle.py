"""When a session's sandbox is snapshotted and let go (sessions/lifecycle.py), and the facts the
tasks gather for it (sessions/tasks.idle_facts)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sandboxes import provisioning
from sandboxes import tasks as sandbox_tasks
from sandboxes.lifecycle import State
from sandboxes.models import Repo, RepoImage, Sandbox, Snapshot
from sessions import lifecycle, member_requests, tasks
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
    member_requests.note_typing(session, user)
    session = Session.objects.select_related("sandbox", "last_snapshot").get(pk=session.pk)
    assert session.sandbox.restored_from_id == snapshot.pk and earlier.status == "done"
    assert tasks.idle_facts(session).nothing_new

    prompt = member_requests.submit_prompt(session, user, "now change something")
    Prompt.objects.filter(pk=prompt.pk).update(status=Prompt.Status.RUNNING)  # sent, not started yet
    assert not tasks.idle_facts(session).nothing_new
    Prompt.objects.filter(pk=prompt.pk).update(status=Prompt.Status.DONE, started_at=timezone.now())
    assert not tasks.idle_facts(session).nothing_new


def test_a_warm_sandbox_is_kept_for_follow_ups_only_where_one_can_be_restored_into():
    hour = timedelta(hours=1)

    def released(**changes) -> lifecycle.ReleasedFacts:
        base = dict(restores_into_running=True, archived=False, snapshot_on_current_image=True)
        return lifecycle.ReleasedFacts(**{**base, **changes})

    assert lifecycle.keep_warm_after_release(hour, released())
    assert not lifecycle.keep_warm_after_release(timedelta(0), released())  # turned off
    # Its backend restores into new sandboxes only; the pool starts on a newer image than the snapshot's;
    # an archived session takes no follow-up.
    for facts in (released(restores_into_running=False), released(snapshot_on_current_image=False),
                  released(archived=True)):
        assert not lifecycle.keep_warm_after_release(hour, facts)


@pytest.mark.django_db(transaction=True)
def test_letting_an_idle_sandbox_go_keeps_one_warm_for_a_follow_up(session, make_sandbox, repo, settings,
                                                                   monkeypatch, provisions):
    monkeypatch.setattr(sandbox_tasks.fill_warm_pool, "delay", sandbox_tasks.fill_warm_pool)  # as the worker would
    settings.SESSION_FOLLOW_UP_WARM_SECONDS = 3600

    def idle(session: Session, image=None) -> Sandbox:
        sandbox = make_sandbox(State.READY, image=image or repo.current_image())
        snapshot = Snapshot.objects.create(repo=repo, image=sandbox.image, sandbox=sandbox, backend="local",
                                           backend_ref="snap")
        Session.objects.filter(pk=session.pk).update(sandbox=sandbox, last_snapshot=snapshot,
                                                     last_activity_at=timezone.now() - timedelta(minutes=11))
        return sandbox

    def let_go(session: Session, image=None) -> Sandbox:
        sandbox = idle(session, image)
        tasks.release_idle_sandboxes()
        sandbox.refresh_from_db()
        assert sandbox.state == State.TERMINATED and "idle for 10 minutes" in sandbox.end_reason
        return sandbox

    # Two sessions of the repo let go at once: one warm sandbox for both.
    other = Session.objects.create(repo=repo, creator=session.creator, status=Session.Status.IDLE)
    idle(other)
    let_go(session)
    [warm] = Sandbox.objects.filter(repo=repo, pooled=True, state=State.PROVISIONING)
    assert provisions == [str(warm.pk)]
    wanted_until = Repo.objects.get(pk=repo.pk).warm_wanted_until
    assert timedelta(minutes=59) < wanted_until - timezone.now() <= timedelta(hours=1)

    # Someone writing a new session's prompt meanwhile does not shorten the wish (nor start another).
    provisioning.want_warm(repo)
    assert Repo.objects.get(pk=repo.pk).warm_wanted_until == wanted_until
    assert provisioning.fill_pool(Repo.objects.get(pk=repo.pk)) == ([], [])

    # Turned off, or an archived session: nothing is kept.
    Sandbox.objects.filter(pk=warm.pk).update(state=State.TERMINATED, pooled=False)
    Repo.objects.filter(pk=repo.pk).update(warm_wanted_until=None)
    settings.SESSION_FOLLOW_UP_WARM_SECONDS = 0
    let_go(session)
    settings.SESSION_FOLLOW_UP_WARM_SECONDS = 3600
    older = repo.current_image()
    RepoImage.objects.create(repo=repo, status=RepoImage.Status.READY, backend="local", backend_ref="img2",
                             commit_sha="def456", finished_at=timezone.now())
    let_go(session, image=older)  # a snapshot on an older image than the pool's: none of its sandboxes would do
    Session.objects.filter(pk=session.pk).update(status=Session.Status.ARCHIVED)
    let_go(session)
    assert not Sandbox.objects.filter(repo=repo, pooled=True).exists()
    assert Repo.objects.get(pk=repo.pk).warm_wanted_until is None
