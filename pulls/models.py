"""What the platform knows of GitHub: people's tokens (encrypted at rest), pull requests of the platform's repos,
and the webhook deliveries GitHub made. See docs/pull-requests.md."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from sandboxes import crypto
from sandboxes.models import Repo
from sessions.models import Session


class GitHubToken(models.Model):
    """A person's GitHub token. allauth keeps none (SOCIALACCOUNT_STORE_TOKENS is off): this is the only copy,
    encrypted with SECRETS_ENCRYPTION_KEY. It never leaves the control plane."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, models.CASCADE, related_name="github_token")
    login = models.CharField(max_length=100)
    github_id = models.BigIntegerField()
    access_encrypted = models.TextField()
    refresh_encrypted = models.TextField(blank=True)
    # A GitHub App's user-to-server tokens expire (8 hours) and are refreshed; an OAuth app's do not.
    expires_at = models.DateTimeField(null=True, blank=True)
    # GitHub said the token no longer works (revoked, or its refresh failed): the person connects again.
    broken_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"GitHub token of {self.user} (@{self.login})"

    @property
    def access_token(self) -> str:
        return crypto.decrypt(self.access_encrypted)

    @property
    def refresh_token(self) -> str:
        return crypto.decrypt(self.refresh_encrypted) if self.refresh_encrypted else ""


class PullRequest(models.Model):
    """A pull request of one of the platform's repos, opened through the platform or not (webhooks report all,
    so the share made through the platform can be computed)."""

    class State(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"
        MERGED = "merged"

    repo = models.ForeignKey(Repo, models.CASCADE, related_name="pull_requests")
    number = models.PositiveIntegerField()
    session = models.ForeignKey(Session, models.SET_NULL, null=True, blank=True, related_name="pull_requests")
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True,
                                  related_name="pull_requests")
    opened_through_platform = models.BooleanField(default=False)
    author_login = models.CharField(max_length=100, blank=True)
    title = models.CharField(max_length=300, blank=True)
    url = models.URLField(max_length=500, blank=True)
    head_branch = models.CharField(max_length=255, blank=True)
    base_branch = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    draft = models.BooleanField(default=False)
    review_state = models.CharField(max_length=30, blank=True, help_text="The last review's state, e.g. approved.")
    pushed_sha = models.CharField(max_length=64, blank=True, help_text="The head the platform last pushed.")
    github_updated_at = models.DateTimeField(null=True, blank=True, help_text="As of GitHub's last delivery.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    merged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repo", "number"], name="one_row_per_pull_request")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.repo.github_repo or self.repo.name}#{self.number}"

    def as_event(self) -> dict:
        """What the session page shows of it (the `pull_request` event)."""
        return {"number": self.number, "url": self.url, "title": self.title, "state": self.state,
                "draft": self.draft, "review_state": self.review_state, "author_login": self.author_login}


class WebhookDelivery(models.Model):
    """A signed delivery GitHub made to /github/webhook (unsigned ones change nothing and are not kept)."""

    delivery_id = models.CharField(max_length=100, unique=True, help_text="X-GitHub-Delivery")
    event = models.CharField(max_length=50)
    action = models.CharField(max_length=50, blank=True)
    repo = models.ForeignKey(Repo, models.SET_NULL, null=True, blank=True, related_name="webhook_deliveries")
    github_repo = models.CharField(max_length=201, blank=True)
    status = models.PositiveSmallIntegerField(help_text="The HTTP status answered.")
    outcome = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event}.{self.action} {self.delivery_id}"
