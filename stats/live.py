"""'Humans prompting now': the people who typed in a session's prompt box within TYPING_WINDOW_SECONDS, or whose
prompt is queued or running. Never cached: the stats socket (stats/consumers.py) recomputes it when someone
starts typing (sessions.signals.member_typing) and every REFRESH_SECONDS, so people who stopped drop out."""

import logging
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from sessions.models import Membership, Prompt

GROUP = "stats"
TYPING_WINDOW_SECONDS = 60.0
REFRESH_SECONDS = 10.0

logger = logging.getLogger(__name__)


def prompting_now(repo_ids: frozenset[int] | None) -> int:
    """Distinct people typing or waiting on a prompt in these repos (None: every repo)."""
    typing = Membership.objects.filter(last_typed_at__gte=timezone.now() - timedelta(seconds=TYPING_WINDOW_SECONDS))
    waiting = Prompt.objects.filter(status__in=Prompt.OPEN, author__isnull=False)
    if repo_ids is not None:
        typing = typing.filter(session__repo_id__in=repo_ids)
        waiting = waiting.filter(session__repo_id__in=repo_ids)
    people = Q(pk__in=typing.values("user_id")) | Q(pk__in=waiting.values("author_id"))
    return get_user_model().objects.filter(people).count()


def tell_viewers(**kwargs) -> None:
    """Someone started typing or a run ended: each stats socket counts again for its own repos. A failure here
    must not fail the typing that caused it; the next refresh catches up."""
    try:
        async_to_sync(get_channel_layer().group_send)(GROUP, {"type": "stats.changed"})
    except Exception:
        logger.exception("could not tell the stats sockets")
