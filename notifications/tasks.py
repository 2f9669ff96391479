"""What a person is told, on every device they subscribed. Run by the Celery worker: a push service may be slow."""

from celery import shared_task
from django.conf import settings
from django.urls import reverse

from notifications import push
from notifications.models import PushSubscription
from notifications.wire import Notification
from sessions.models import Prompt, Session

MAX_ERROR_CHARS = 200
OUTCOMES: dict[str, str] = {Prompt.Status.DONE: "Done", Prompt.Status.CANCELLED: "Stopped"}


def session_notification(session: Session, body: str) -> Notification:
    """The session's title (no prompt's text), an outcome, and the session page's path."""
    return Notification(title=session.title or f"Session {session.pk}", body=body,
                        url=reverse("session-detail", args=[session.pk]), tag=f"session-{session.pk}")


def failure(error: str) -> str:
    error = " ".join(error.split())
    return error if len(error) <= MAX_ERROR_CHARS else error[:MAX_ERROR_CHARS - 1] + "…"


def notify(user_id: int | None, session: Session, body: str) -> int:
    """Sends to every device of the person, if they may still see the session. How many took it."""
    if user_id is None or not settings.VAPID_PRIVATE_KEY:
        return 0
    subscriptions = list(PushSubscription.objects.filter(user_id=user_id).select_related("user"))
    if not subscriptions or not session.is_member(subscriptions[0].user):
        return 0
    notification = session_notification(session, body)
    return sum(push.send(subscription, notification) for subscription in subscriptions)


@shared_task
def notify_run_finished(prompt_id: int) -> int:
    """A prompt's run ended: its author hears how."""
    prompt = Prompt.objects.select_related("session").filter(pk=prompt_id).first()
    if prompt is None or prompt.status in Prompt.OPEN:
        return 0
    body = OUTCOMES.get(prompt.status) or "Failed: " + failure(prompt.session.error or "the run did not finish")
    return notify(prompt.author_id, prompt.session, body)


@shared_task
def notify_agent_error(session_id: int, error: str) -> int:
    """The agent hit an error: the author of the prompt it was working on (else the session's creator) hears."""
    session = Session.objects.filter(pk=session_id).first()
    if session is None:
        return 0
    running = session.prompts.filter(status=Prompt.Status.RUNNING).values_list("author_id", flat=True).first()
    return notify(running or session.creator_id, session, "Error: " + failure(error))
