"""GitHub's webhooks: each delivery is checked against GITHUB_WEBHOOK_SECRET (X-Hub-Signature-256, compared in
constant time), applied once (by X-GitHub-Delivery) and recorded. Pull requests of the platform's repos are all
kept, opened through the platform or not; a session's own is shown live on its page."""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from pulls.models import PullRequest, WebhookDelivery
from sandboxes.models import Repo
from sessions.events import append_event
from sessions.models import Session

REVIEW_STATES = {"approved", "changes_requested", "commented", "dismissed"}


@dataclass(frozen=True)
class Outcome:
    status: int
    message: str


def signature_ok(body: bytes, header: str, secret: str) -> bool:
    if not secret or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode("latin-1", "replace"))


def receive(delivery_id: str, event: str, payload: dict) -> Outcome:
    """Apply a delivery whose signature was checked, once: one delivered again changes nothing more."""
    if WebhookDelivery.objects.filter(delivery_id=delivery_id).exists():
        return Outcome(200, "already received")
    full_name = str(((payload.get("repository") or {}).get("full_name")) or "")
    repo = Repo.objects.filter(github_repo__iexact=full_name).first() if full_name else None
    try:
        with transaction.atomic():
            outcome = apply(event, payload, repo)
            WebhookDelivery.objects.create(
                delivery_id=delivery_id, event=event[:50], action=str(payload.get("action") or "")[:50], repo=repo,
                github_repo=full_name[:201], status=outcome.status, outcome=outcome.message[:300])
    except IntegrityError:  # the same delivery, applied by another process a moment ago
        return Outcome(200, "already received")
    return outcome


def apply(event: str, payload: dict, repo: Repo | None) -> Outcome:
    if event == "ping":
        return Outcome(200, "pong")
    if event not in ("pull_request", "pull_request_review"):
        return Outcome(202, f"{event} events are not used")
    if repo is None:
        return Outcome(202, "not one of the platform's repos")
    data = payload.get("pull_request")
    if not isinstance(data, dict) or not isinstance(data.get("number"), int):
        return Outcome(400, "no pull_request in the payload")
    pull = record_pull(repo, data)
    if event == "pull_request_review":
        state = str((payload.get("review") or {}).get("state") or "").lower()
        if state in REVIEW_STATES:
            PullRequest.objects.filter(pk=pull.pk).update(review_state=state)
            pull.review_state = state
    if pull.session_id is not None:
        append_event(pull.session_id, "pull_request", pull.as_event())
    return Outcome(200, f"#{pull.number} {pull.state}" + (f", review {pull.review_state}" if pull.review_state else ""))


def record_pull(repo: Repo, data: dict) -> PullRequest:
    """Keep the pull request as GitHub says it is now (a delivery older than what is kept changes nothing). One
    from a session's branch of the repo itself (not a fork's branch of the same name) is linked to that session."""
    head = str((data.get("head") or {}).get("ref") or "")
    merged = bool(data.get("merged")) or bool(data.get("merged_at"))
    state = PullRequest.State.MERGED if merged else (
        PullRequest.State.CLOSED if data.get("state") == "closed" else PullRequest.State.OPEN)
    pull, created = PullRequest.objects.select_for_update().get_or_create(
        repo=repo, number=data["number"], defaults={"created_at": when(data.get("created_at")) or timezone.now()})
    updated = when(data.get("updated_at"))
    if pull.github_updated_at and updated and updated < pull.github_updated_at:
        return pull  # delivered late: GitHub said something newer already
    pull.github_updated_at = updated or pull.github_updated_at
    if pull.session_id is None and head and from_repo_itself(data):
        pull.session = Session.objects.filter(repo=repo, branch=head).first()
    pull.title = str(data.get("title") or "")[:300]
    pull.url = str(data.get("html_url") or "")[:500]
    pull.author_login = str((data.get("user") or {}).get("login") or "")[:100]
    pull.head_branch, pull.base_branch = head[:255], str((data.get("base") or {}).get("ref") or "")[:255]
    pull.state, pull.draft = state, bool(data.get("draft"))
    pull.merged_at = when(data.get("merged_at"))
    pull.updated_at = timezone.now()
    pull.save()
    return pull


def from_repo_itself(data: dict) -> bool:
    head_repo = ((data.get("head") or {}).get("repo") or {}).get("full_name")
    base_repo = ((data.get("base") or {}).get("repo") or {}).get("full_name")
    return isinstance(head_repo, str) and isinstance(base_repo, str) and head_repo.lower() == base_repo.lower()


def when(value: object) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None
