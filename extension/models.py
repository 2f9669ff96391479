"""What the Chrome extension needs on the control plane: people's extension tokens, and which staging URLs belong
to which repo. See docs/extension.md."""

import re
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from sandboxes.models import Repo, hash_token

TOKEN_PREFIX = "ixt_"  # greppable in a leaked log, and told apart from other tokens at a glance
MAX_PATTERN_CHARS = 500


class ExtensionToken(models.Model):
    """A person's token for one install of the extension: hashed at rest, named, revocable. It may create their
    sessions and follow their own sessions, nothing else (extension/api.py)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="extension_tokens")
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"

    @classmethod
    def mint(cls, user, name: str) -> tuple["ExtensionToken", str]:
        """A new token for `user`; the secret itself is returned once and never stored."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        return cls.objects.create(user=user, name=name.strip()[:100] or "Chrome", token_hash=hash_token(secret)), secret

    @classmethod
    def holder(cls, presented: str):
        """The active user a live token belongs to, or None (unknown, revoked, or the account deactivated)."""
        if not presented.startswith(TOKEN_PREFIX) or len(presented) > 200:
            return None
        token = cls.objects.select_related("user").filter(token_hash=hash_token(presented), revoked_at=None).first()
        if token is None or not token.user.is_active:
            return None
        cls.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return token.user


class StagingSite(models.Model):
    """A staging app's URLs and the repo that builds it: the extension preselects that repo on its pages."""

    repo = models.ForeignKey(Repo, models.CASCADE, related_name="staging_sites")
    url_pattern = models.CharField(
        max_length=MAX_PATTERN_CHARS,
        help_text="A URL with * for any characters, e.g. https://*.staging.example.com/*")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["repo__name", "url_pattern"]

    def __str__(self) -> str:
        return f"{self.url_pattern} → {self.repo}"

    def matches(self, url: str) -> bool:
        return pattern_regex(self.url_pattern).fullmatch(url) is not None


def pattern_regex(pattern: str) -> re.Pattern:
    """A URL pattern as a regex: `*` is any run of characters, everything else is itself."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
