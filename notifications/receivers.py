"""The receivers of the sessions app's signals (connected in apps.py): each enqueues a task, if anyone listens."""

from django.db import transaction

from notifications import tasks
from notifications.models import PushSubscription


def on_run_finished(sender, session, prompt, **kwargs) -> None:
    """sessions.signals.run_finished, sent after commit."""
    if prompt.author_id is not None and PushSubscription.objects.filter(user_id=prompt.author_id).exists():
        tasks.notify_run_finished.delay(prompt.pk)


def on_agent_error(sender, session, error: str, **kwargs) -> None:
    """sessions.signals.agent_error, sent inside the event's transaction: the task is sent once it is committed."""
    if PushSubscription.objects.exists():  # who is told is worked out by the task
        transaction.on_commit(lambda: tasks.notify_agent_error.delay(session.pk, error))
