"""Celery tasks: open a session's pull request, and push later hand-offs to it. Each says on the session's page
how it went (events `pull_request`, `pull_request_failed`, `branch_pushed`, `push_failed`)."""

import logging

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from pulls import opening
from sessions.events import append_event
from sessions.models import Session

logger = logging.getLogger(__name__)


@shared_task
def open_pull_request(session_id: int, user_id: int, draft: bool, title: str, body: str) -> None:
    session = Session.objects.select_related("repo").filter(pk=session_id).first()
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if session is None or user is None:
        return
    by = user.get_full_name() or user.get_username()
    try:
        pull = opening.open_pull_request(session, user, draft, title, body)
    except opening.CannotOpen as why:
        append_event(session.pk, "pull_request_failed", {"message": str(why), "by": by})
        return
    except Exception:
        logger.exception("opening the pull request of session %s failed", session_id)
        append_event(session.pk, "pull_request_failed", {"message": "Opening the pull request failed unexpectedly; "
                                                                    "try again.", "by": by})
        return
    append_event(session.pk, "pull_request", {**pull.as_event(), "sha": pull.pushed_sha, "by": by})


def on_pull_request_asked(sender, session: Session, user, title: str, body: str, draft: bool, **kwargs) -> None:
    """The agent asked, for `user`: open it once the event's transaction commits, with the session's prefilled
    title and body where the agent gave none."""
    default_title, default_body = opening.prefilled(session, settings.SITE_ROOT)
    args = (session.pk, user.pk, draft, title.strip()[:opening.MAX_TITLE_CHARS] or default_title,
            body[:opening.MAX_BODY_CHARS] or default_body)
    transaction.on_commit(lambda: open_pull_request.delay(*args))


@shared_task
def push_to_pull_request(session_id: int) -> None:
    """The sandbox handed over new commits: push them to the session's open pull request, if it has one."""
    session = Session.objects.select_related("repo").filter(pk=session_id).first()
    if session is None:
        return
    done = opening.push_update(session)
    if done is None:
        return
    pull, pushed = done
    if pushed.ok:
        append_event(session.pk, "branch_pushed", {"number": pull.number, "url": pull.url, "sha": pushed.sha})
    else:
        append_event(session.pk, "push_failed", {"number": pull.number, "message": pushed.reason})
