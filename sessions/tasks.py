"""Celery tasks for sessions: snapshot once the agent is idle, let idle sandboxes go."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from sandboxes import provisioning
from sandboxes import tasks as sandbox_tasks
from sandboxes.backends import get_backend
from sessions import dispatch, lifecycle, queue
from sessions.events import append_event
from sessions.models import Prompt, Session

logger = logging.getLogger(__name__)


def idle_facts(session: Session) -> lifecycle.IdleFacts:
    snapshot, sandbox = session.last_snapshot, session.sandbox
    # The agent's work ends when its last prompt does; a snapshot after that holds all of it.
    last_work = session.prompts.aggregate(done=Max("finished_at"), started=Max("started_at"))
    work_ended_at = max(filter(None, last_work.values()), default=session.created_at)
    return lifecycle.IdleFacts(
        agent_busy=session.agent_busy,
        queued_prompts=session.prompts.filter(status=Prompt.Status.QUEUED).count(),
        sandbox_state=sandbox.state if sandbox else None,
        last_activity_at=session.last_activity_at,
        snapshot_taken_since_activity=bool(
            snapshot and snapshot.sandbox_id == session.sandbox_id and snapshot.created_at >= work_ended_at
        ),
        nothing_new=bool(
            sandbox and sandbox.restored_from_id == session.last_snapshot_id
            and not session.prompts.filter(Q(started_at__gte=sandbox.created_at) | Q(status=Prompt.Status.RUNNING))
            .exists()
        ),
    )


@shared_task
def snapshot_if_idle(session_id: int) -> None:
    session = Session.objects.select_related("sandbox", "last_snapshot").filter(pk=session_id).first()
    if session is None or not lifecycle.should_snapshot(idle_facts(session)):
        return
    try:
        saved = provisioning.take_snapshot(session.sandbox_id) is not None  # the session's latest (on_snapshot_taken)
    except Exception as error:
        # The prompts queued while it was saving must not wait for a snapshot that will not come.
        logger.exception("session %s: saving its sandbox's work failed", session.pk)
        append_event(session.pk, "error", {"name": "SnapshotFailed",
                                           "message": f"Saving the sandbox's work failed: {str(error)[:300]}"})
        saved = True  # tried: what was queued meanwhile goes on
    if saved:
        session.refresh_from_db()
        dispatch.dispatch(session, queue.AGENT_IDLE)  # prompts that arrived while it was saving


@shared_task
def release_idle_sandboxes() -> None:
    now = timezone.now()
    timeout = timedelta(seconds=settings.SESSION_IDLE_TIMEOUT_SECONDS)
    warm_repos = set()
    sessions = Session.objects.select_related("sandbox", "last_snapshot", "repo").filter(sandbox__isnull=False)
    for session in sessions:
        if lifecycle.should_release(idle_facts(session), now, timeout):
            minutes = int(timeout.total_seconds() // 60)
            provisioning.terminate(session.sandbox_id, f"the session was idle for {minutes} minutes")
            if keep_warm_for_follow_ups(session):
                warm_repos.add(session.repo_id)
    for repo_id in warm_repos:  # one fill per repo, however many of its sessions were let go
        sandbox_tasks.fill_warm_pool.delay(repo_id)


def keep_warm_for_follow_ups(session: Session) -> bool:
    """A follow-up to a session whose sandbox was let go restores its snapshot into a warm sandbox of
    the repo when one is ready on the snapshot's image (seconds sooner than a new one), so the repo's
    pool keeps one for a while (docs/sessions.md). True when it asked for one."""
    keep_for = timedelta(seconds=settings.SESSION_FOLLOW_UP_WARM_SECONDS)
    current = session.repo.current_image()
    snapshot = session.last_snapshot
    facts = lifecycle.ReleasedFacts(
        restores_into_running=get_backend(session.sandbox.backend).applies_snapshots_live,
        archived=session.status == Session.Status.ARCHIVED,
        snapshot_on_current_image=bool(snapshot and current and snapshot.image_id == current.pk),
    )
    if not lifecycle.keep_warm_after_release(keep_for, facts):
        return False
    provisioning.want_warm(session.repo, keep_for)
    return True
