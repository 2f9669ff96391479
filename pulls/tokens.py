"""People's GitHub tokens: kept encrypted from sign-in, refreshed before they expire, and marked broken when GitHub
no longer takes them (the person is asked to connect GitHub again)."""

import logging
import time
import uuid
from datetime import timedelta

import httpx
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from pulls import github_api
from pulls.models import GitHubToken
from sandboxes import crypto

logger = logging.getLogger(__name__)
REFRESH_BEFORE = timedelta(minutes=5)
REFRESH_WAIT_SECONDS = 30
REFRESH_HTTP_SECONDS = 10  # per phase of the request (connect, send, read): 40 s at the very most
REFRESH_LOCK_SECONDS = 120


class NoToken(Exception):
    """The person has no usable GitHub token; the message says how to connect one."""


def connect_message(again: bool = False) -> str:
    where = reverse("socialaccount_connections")
    if again:
        return f"Your GitHub connection no longer works (revoked or expired): connect GitHub again at {where}."
    return f"Connect your GitHub account first, at {where}: pull requests are opened as you."


def store(user, github_id: int, login: str, access: str, refresh: str = "", expires_at=None) -> GitHubToken:
    record, _ = GitHubToken.objects.update_or_create(user=user, defaults={
        "github_id": github_id, "login": login, "access_encrypted": crypto.encrypt(access),
        "refresh_encrypted": crypto.encrypt(refresh) if refresh else "", "expires_at": expires_at,
        "broken_at": None, "updated_at": timezone.now(),
    })
    return record


def store_from_sociallogin(sociallogin) -> None:
    """Keep the token allauth got at a GitHub sign-in, sign-up or connection (allauth itself keeps none)."""
    account, token = sociallogin.account, sociallogin.token
    if account.provider != "github" or token is None or not token.token or account.user_id is None:
        return
    store(account.user, int(account.uid), str(account.extra_data.get("login") or ""), token.token,
          token.token_secret or "", token.expires_at)


def has_usable_token(user) -> bool:
    """Whether `user` has a GitHub token GitHub has not refused (read from the database only: no call to GitHub)."""
    return GitHubToken.objects.filter(user=user, broken_at__isnull=True).exists()


def access_token_for(user) -> str:
    """`user`'s GitHub token, refreshed first when it is about to expire. Raises NoToken."""
    record = GitHubToken.objects.filter(user=user).first() if user is not None else None
    if record is None:
        raise NoToken(connect_message())
    if record.broken_at is not None:
        raise NoToken(connect_message(again=True))
    if record.expires_at is not None and record.expires_at - timezone.now() < REFRESH_BEFORE:
        record = refresh(record)
    return record.access_token


def mark_broken(user) -> None:
    GitHubToken.objects.filter(user=user).update(broken_at=timezone.now())


def refresh(record: GitHubToken) -> GitHubToken:
    """Trade the refresh token for a new pair (GitHub revokes the old pair). One process at a time per token (a
    lock in the shared cache, not a row lock: GitHub's answer may take seconds, and SQLite would stop every writer
    meanwhile). Only GitHub's refusal (or no refresh token) marks the token broken; no answer, or one that is not
    GitHub's OAuth answer (an outage's error page), leaves it for the next try."""
    lock, mine = f"pulls.refresh.{record.pk}", uuid.uuid4().hex
    deadline = time.monotonic() + REFRESH_WAIT_SECONDS
    # Held far longer than a refresh can take (GitHub's answer is cut at REFRESH_HTTP_SECONDS), so it never
    # lapses under its holder.
    while not cache.add(lock, mine, timeout=REFRESH_LOCK_SECONDS):
        if time.monotonic() > deadline:
            raise NoToken("Your GitHub token is being refreshed; try again in a moment.")
        time.sleep(0.2)
    try:
        record = GitHubToken.objects.get(pk=record.pk)
        if record.broken_at is not None:
            raise NoToken(connect_message(again=True))
        if record.expires_at is None or record.expires_at - timezone.now() >= REFRESH_BEFORE:
            return record  # another process refreshed it meanwhile
        body = ask_github_to_refresh(record) if record.refresh_token else {}
        if body.get("access_token"):
            record.access_encrypted = crypto.encrypt(body["access_token"])
            if body.get("refresh_token"):
                record.refresh_encrypted = crypto.encrypt(body["refresh_token"])
            expires_in = body.get("expires_in")
            record.expires_at = timezone.now() + timedelta(seconds=int(expires_in)) if expires_in else None
            record.updated_at = timezone.now()
            record.save()
            return record
        logger.info("GitHub refused to refresh the token of user %s: %s", record.user_id, body.get("error"))
        record.broken_at = timezone.now()
        record.save(update_fields=["broken_at"])
        raise NoToken(connect_message(again=True))
    finally:
        if cache.get(lock) == mine:
            cache.delete(lock)


def ask_github_to_refresh(record: GitHubToken) -> dict:
    """GitHub's OAuth answer to a refresh: a new pair, or its `error`. NoToken when GitHub gave neither."""
    app: dict[str, str] = settings.SOCIALACCOUNT_PROVIDERS["github"]["APP"]  # type: ignore[assignment]
    try:
        answer = httpx.post(f"{github_api.web_url()}/login/oauth/access_token", timeout=REFRESH_HTTP_SECONDS,
                            headers={"Accept": "application/json"}, data={
                                "client_id": app["client_id"], "client_secret": app["secret"],
                                "grant_type": "refresh_token", "refresh_token": record.refresh_token})
    except httpx.HTTPError as error:
        raise NoToken(f"GitHub did not answer ({type(error).__name__}); try again in a moment.") from None
    body = oauth_answer(answer)
    if not body.get("access_token") and not body.get("error"):
        raise NoToken(f"GitHub answered {answer.status_code} when asked to refresh your token; try again in a "
                      "moment.")
    return body


def oauth_answer(answer: httpx.Response) -> dict:
    """The JSON object GitHub's token endpoint answers with (a token, or an `error`), or {} for anything else."""
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return {}
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
